"""Throughput measurements of the ResNet-34 training step, loop and inference.

The primitives of ``make bench`` (:mod:`ecgrepro.bench`): each returns records/s (or FLOPs,
GFLOP/s) measured on this machine, and asserts nothing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ecgrepro.batches import PREFETCH_DEPTH, BatchSource, epoch_draws
from ecgrepro.models import resnet34
from ecgrepro.runtime import autocast, deterministic_algorithms, init_distributed
from ecgrepro.train import Samples, train_one_epoch, train_step


def matmul_peak_gflops(
    device: torch.device, n: int = 2048, repeats: int = 10, dtype=torch.float32
) -> float:
    """Best-of-``repeats`` GFLOP/s of an n x n matmul (2 n^3 FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def flops_per_record(n_samples: int) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one record of ``n_samples`` samples."""
    model = resnet34()
    x = torch.randn(1, 12, n_samples)
    with FlopCounterMode(display=False) as fwd:
        out = model(x)
    with FlopCounterMode(display=False) as both:
        out = model(x)
        out.sum().backward()
    return float(fwd.get_total_flops()), float(both.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step_throughput(
    n_samples: int,
    batch: int,
    steps: int,
    device: torch.device,
    amp: str | bool = "off",
    model: nn.Module | None = None,
    deterministic: bool | None = None,
    compile: bool = False,
) -> float:
    """Records/s of forward/backward/Adam on one in-memory batch, after two warm-up steps.

    ``model``: the model to step (e.g. a compiled one); default a fresh ResNet-34.
    ``deterministic``: True, False: under :func:`ecgrepro.runtime.deterministic_algorithms`
    with that value (True: as the book trains by default; False: cuDNN autotuned); None: the
    settings found. ``compile``: a :func:`torch.compile` d
    model (compiled in the warm-up steps, not timed).
    """
    torch.manual_seed(0)
    model = (model if model is not None else resnet34()).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    net = torch.compile(model) if compile else model
    crit = nn.BCEWithLogitsLoss()
    x = torch.randn(batch, 12, n_samples, device=device)
    y = (torch.rand(batch, 9, device=device) < 0.2).float()
    with nullcontext() if deterministic is None else deterministic_algorithms(deterministic):
        for i in range(steps + 2):
            if i == 2:
                _sync(device)
                t0 = time.perf_counter()
            train_step(net, opt, crit, x, y, amp)
        _sync(device)
    return batch * steps / (time.perf_counter() - t0)


def data_path_throughput(
    n_samples: int,
    batch: int,
    steps: int,
    device: torch.device,
    folder: Path,
    prefetch: int = PREFETCH_DEPTH,
    resident: bool = True,
) -> tuple[float, str]:
    """Records/s the data path delivers as device-ready, augmented batches, with no model.

    The batches of :class:`ecgrepro.batches.BatchSource` over a memory-mapped file of
    ``batch * (steps + 2)`` records (every record augmentable), shuffled, after two warm-up
    batches (which also bring the file into the page cache, as in a training's later epochs).

    Returns
    -------
    rate : float
        Records/s.
    mode : str
        The source's mode (``resident``, ``prefetch``, ``inline``).
    """
    samples = synthetic_samples(folder, batch * (steps + 2), n_samples)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(samples))
    batches = [order[a : a + batch] for a in range(0, len(order), batch)]
    draws = epoch_draws(samples.augment, batches, rng)
    source = BatchSource(samples, device, prefetch=prefetch, resident=resident)
    list(source.batches(batches[:2], draws[:2]))  # warm-up: page cache, device copy
    _sync(device)
    t0 = time.perf_counter()
    for _ in source.batches(batches[2:], draws[2:]):
        pass
    _sync(device)
    return batch * (len(batches) - 2) / (time.perf_counter() - t0), source.mode


@torch.no_grad()
def inference_throughput(
    model: nn.Module, n_samples: int, batch: int, steps: int, amp: str = "off"
) -> float:
    """Records/s of the forward pass in eval mode on one in-memory batch, after two warm-ups."""
    model.eval()
    x = torch.randn(batch, 12, n_samples)
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with autocast("cpu", amp):
            model(x)
    return batch * steps / (time.perf_counter() - t0)


def synthetic_samples(folder: Path, n: int, n_samples: int) -> Samples:
    """``n`` augmentable records of noise in a memory-mapped file under ``folder``."""
    path = folder / f"bench_{n_samples}_{n}.f32"
    rng = np.random.default_rng(0)
    if not path.is_file():
        mm = np.memmap(path, dtype="<f4", mode="w+", shape=(n, 12, n_samples))
        for i in range(n):
            mm[i] = rng.normal(0, 0.2, (12, n_samples))
        mm.flush()
        del mm
    signals = np.memmap(path, dtype="<f4", mode="r", shape=(n, 12, n_samples))
    y = (rng.random((n, 9)) < 0.2).astype(np.float32)
    return Samples([signals], np.zeros(n, int), np.arange(n), y, np.ones(n, bool))


def loop_throughput(
    n_samples: int,
    batch: int,
    steps: int,
    device: torch.device,
    folder: Path,
    amp: str | bool = "off",
    deterministic: bool | None = None,
    compile: bool = False,
) -> tuple[float, float]:
    """Records/s of the real training loop over a memory-mapped file, and its data-time share.

    ``deterministic`` and ``compile`` as :func:`bare_step_throughput`.
    """
    samples = synthetic_samples(folder, batch * (steps + 2), n_samples)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = resnet34().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    net = torch.compile(model) if compile else model
    crit = nn.BCEWithLogitsLoss()
    timings: dict = {}
    with nullcontext() if deterministic is None else deterministic_algorithms(deterministic):
        train_one_epoch(net, samples, opt, crit, rng, batch, device, amp, max_batches=2)
        _sync(device)
        t0 = time.perf_counter()
        train_one_epoch(
            net, samples, opt, crit, rng, batch, device, amp, timings=timings, max_batches=steps
        )
        _sync(device)
        wall = time.perf_counter() - t0
    return batch * steps / wall, timings["data"] / (timings["data"] + timings["step"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loop_worker(
    rank: int,
    world: int,
    threads: int,
    port: int,
    folder: str,
    n_samples: int,
    batch: int,
    steps: int,
    out: str,
) -> None:
    """One process of :func:`distributed_throughput` (``torch.multiprocessing.spawn`` target)."""
    torch.set_num_threads(threads)
    if world > 1:
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
        )
    dist, device = init_distributed("cpu")
    samples = synthetic_samples(Path(folder), batch * (steps + 2), n_samples)
    torch.manual_seed(0)
    model = resnet34()
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    crit = nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(0)
    train_one_epoch(net, samples, opt, crit, rng, batch, device, max_batches=2, dist=dist)
    dist.barrier()
    t0 = time.perf_counter()
    train_one_epoch(net, samples, opt, crit, rng, batch, device, max_batches=steps, dist=dist)
    dist.barrier()
    wall = time.perf_counter() - t0
    if dist.is_main:
        Path(out).write_text(json.dumps({"records_per_s": batch * steps / wall}))
    if world > 1:
        torch.distributed.destroy_process_group()


def distributed_throughput(
    world: int, threads: int, n_samples: int, batch: int, steps: int, folder: Path
) -> float:
    """Records/s of the training loop in ``world`` CPU processes (gloo DDP when more than one).

    Each process runs ``threads`` intra-op threads and trains on its
    ``batch / world`` records of every global batch (after 2 warm-up batches).
    """
    import torch.multiprocessing as mp

    synthetic_samples(folder, batch * (steps + 2), n_samples)  # written once, before the spawn
    out = folder / f"ddp_{world}_{threads}.json"
    args = (world, threads, _free_port(), str(folder), n_samples, batch, steps, str(out))
    mp.spawn(_loop_worker, args=args, nprocs=world, join=True)
    return json.loads(out.read_text())["records_per_s"]


def compile_comparison(
    n_samples: int, batch: int, steps: int, peak: float, cache: Path | None = None
) -> list[str]:
    """Eager against :func:`torch.compile`: records/s, share of peak, compile time, agreement.

    ``cache``: an empty folder for inductor's on-disk caches (``TORCHINDUCTOR_CACHE_DIR``), so
    that the compile time is a first compile's; None: the user's cache (a second compile in a
    new process mostly reads it back).
    """
    if cache is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    fwd, both = flops_per_record(n_samples)
    lines = []
    torch.manual_seed(0)
    model = resnet34().eval()
    x = torch.randn(batch, 12, n_samples)
    eager_inf = inference_throughput(model, n_samples, batch, steps)
    compiled = torch.compile(model, dynamic=False)
    t0 = time.perf_counter()
    with torch.no_grad():
        compiled(x)  # compiles
    compile_inf = time.perf_counter() - t0
    comp_inf = inference_throughput(compiled, n_samples, batch, steps)
    with torch.no_grad():
        diff = float((compiled(x) - model(x)).abs().max())
        scale = float(model(x).abs().max())
    lines.append(
        f"  inference: eager {eager_inf:.1f} records/s ({100 * eager_inf * fwd / 1e9 / peak:.0f}% of "
        f"matmul peak), compiled {comp_inf:.1f} records/s ({100 * comp_inf * fwd / 1e9 / peak:.0f}%); "
        f"compile {compile_inf:.0f} s; compiled logits - eager: max abs {diff:.1e} "
        f"(max |logit| {scale:.2f}; tolerance 1e-4)"
    )
    eager_train = bare_step_throughput(n_samples, batch, steps, torch.device("cpu"))
    torch.manual_seed(0)
    compiled_train = torch.compile(resnet34().train())
    y = (torch.rand(batch, 9) < 0.2).float()
    t0 = time.perf_counter()
    nn.BCEWithLogitsLoss()(compiled_train(x), y).backward()  # compiles forward and backward
    compile_train = time.perf_counter() - t0
    comp_train = bare_step_throughput(
        n_samples, batch, steps, torch.device("cpu"), model=compiled_train
    )
    lines.append(
        f"  training step: eager {eager_train:.1f} records/s ({100 * eager_train * both / 1e9 / peak:.0f}% "
        f"of matmul peak), compiled {comp_train:.1f} records/s ({100 * comp_train * both / 1e9 / peak:.0f}%); "
        f"compile {compile_train:.0f} s (inductor draws its own dropout masks: no bitwise comparison)"
    )
    return lines
