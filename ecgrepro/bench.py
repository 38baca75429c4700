"""Training-speed benchmark (``make bench``): prints its figures, asserts nothing.

For the quick (100 Hz x 10 s) and paper (500 Hz x 30 s) input sizes it reports:

- the model's FLOPs per record (forward, and forward + backward), counted by
  :class:`torch.utils.flop_counter.FlopCounterMode`;
- the throughput (records/s) of a bare forward/backward/Adam step on an
  in-memory tensor, and of the real training loop
  (:func:`ecgrepro.train.train_one_epoch`) reading a memory-mapped signal file
  and augmenting, with the loop's share of time spent outside forward/backward;
- achieved GFLOP/s against a matmul peak measured on the same machine.

At the quick size it then compares (issue 15): the bare step with and without
torch's deterministic algorithms; the training loop in 1 process and in 2
gloo processes (DistributedDataParallel, the global batch split between
them); float32 against bfloat16 autocast, for training and inference; eager
against :func:`torch.compile` (training step and inference, the compile time
apart, the compiled logits against the eager ones). Last, it estimates the
paper profile's training wall time on 1, 4 and 8 GPUs from the measured
paper-size step and data costs (an estimate: its assumptions are printed).

Target (issue 3): the training loop reaches >= 90% of the bare step's throughput.
With CUDA present it also runs the paper size with bf16 autocast and estimates
the wall time from the GPU's own figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ecgrepro.models import resnet34
from ecgrepro.runtime import autocast, deterministic_algorithms, init_distributed
from ecgrepro.train import Samples, train_one_epoch, train_step

SIZES = {"quick": 1000, "paper": 15000}
#: Records of the paper's reproduction: 21,541 mapped PTB-XL + 6,877 CPSC 2018.
PAPER_RECORDS = 21_541 + 6_877
#: Records per dataset, for the per-model estimate (train folds 8/10, validation 1/10).
PAPER_DATASETS = {"cpsc": 6_877, "ptbxl": 21_541}
#: Trainings of Tables 2 and 3 under the paper profile: n_seeds = n_seeds_ours = 5 each.
PAPER_TRAININGS = {"original": ("cpsc",), "ours1": ("ptbxl",), "ours2": ("cpsc", "ptbxl")}
PAPER_SEEDS, PAPER_EPOCHS = 5, 30
#: H100 SXM dense TF32 peak (the default precision of cuDNN convolutions, amp off), FLOP/s.
H100_TF32_PEAK = 494.7e12
#: Assumed share of that peak a training step reaches (convolutional networks: 5-20%).
GPU_EFFICIENCY = (0.05, 0.10, 0.20)
#: Parameters (float32 gradients all-reduced per step) and batch-norm layers of the ResNet-34.
N_PARAMETERS, N_BATCHNORM = 16_610_185, 36
#: Assumed NCCL all-reduce bus bandwidth (NVLink) and latency of one small collective.
NVLINK_BYTES_PER_S, COLLECTIVE_LATENCY_S = 300e9, 25e-6


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


def bare_step_throughput(
    n_samples: int,
    batch: int,
    steps: int,
    device: torch.device,
    amp: str | bool = "off",
    model: nn.Module | None = None,
) -> float:
    """Records/s of forward/backward/Adam on one in-memory batch, after two warm-up steps.

    ``model``: the model to step (e.g. a compiled one); default a fresh ResNet-34.
    """
    torch.manual_seed(0)
    model = (model if model is not None else resnet34()).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    crit = nn.BCEWithLogitsLoss()
    x = torch.randn(batch, 12, n_samples, device=device)
    y = (torch.rand(batch, 9, device=device) < 0.2).float()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(steps + 2):
        if i == 2:
            sync()
            t0 = time.perf_counter()
        train_step(model, opt, crit, x, y, amp)
    sync()
    return batch * steps / (time.perf_counter() - t0)


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
) -> tuple[float, float]:
    """Records/s of the real training loop over a memory-mapped file, and its data-time share."""
    samples = synthetic_samples(folder, batch * (steps + 2), n_samples)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = resnet34().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    crit = nn.BCEWithLogitsLoss()
    train_one_epoch(model, samples, opt, crit, rng, batch, device, amp, max_batches=2)  # warm-up
    timings: dict = {}
    t0 = time.perf_counter()
    train_one_epoch(
        model, samples, opt, crit, rng, batch, device, amp, timings=timings, max_batches=steps
    )
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


def paper_estimate(t_gpu: float, t_data: float, n_gpus: int, batch: int = 32) -> float:
    """Seconds to train the paper profile's Tables 2-3 models on ``n_gpus`` GPUs (a model).

    Per global batch of ``batch`` records, each of the ``n_gpus`` processes reads
    and augments its ``batch / n_gpus`` records (``t_data`` s each, serially in
    its training loop) and steps on them (``t_gpu`` s each), then waits for the
    gradient all-reduce (ring: ``2 (n - 1) / n`` x 66 MB over
    :data:`NVLINK_BYTES_PER_S`) and the synchronised batch norm's 2 collectives
    per layer (:data:`COLLECTIVE_LATENCY_S` each). Validation (1/10 of the
    records, a forward pass: 1/3 of a step) runs on rank 0 alone. 5 x
    (Original, Ours_1, Ours_2), 30 epochs each, train folds 8/10 of each dataset.
    """
    comm = 0.0
    if n_gpus > 1:
        comm = 2 * (n_gpus - 1) / n_gpus * 4 * N_PARAMETERS / NVLINK_BYTES_PER_S
        comm += 2 * N_BATCHNORM * COLLECTIVE_LATENCY_S
    total = 0.0
    for datasets in PAPER_TRAININGS.values():
        n = sum(PAPER_DATASETS[d] for d in datasets)
        steps = np.ceil(0.8 * n / batch)
        per_step = batch / n_gpus * (t_gpu + t_data) + comm
        validation = 0.1 * n * (t_gpu / 3 + t_data)
        total += PAPER_SEEDS * PAPER_EPOCHS * (steps * per_step + validation)
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-quick", type=int, default=8)
    parser.add_argument("--steps-paper", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per figure")
    parser.add_argument("--repeats-paper", type=int, default=1, help="the same at the paper size")
    parser.add_argument("--steps-compare", type=int, default=6, help="timed batches per comparison")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (minutes)")
    args = parser.parse_args(argv)
    cpu = torch.device("cpu")
    print(
        f"ecgrepro training benchmark, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    peak = matmul_peak_gflops(cpu)
    print(f"matmul peak (fp32, 2048^3, best of 10): {peak:.1f} GFLOP/s")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n_samples in SIZES.items():
            fwd, both = flops_per_record(n_samples)
            steps = args.steps_quick if name == "quick" else args.steps_paper
            repeats = args.repeats if name == "quick" else args.repeats_paper
            # alternate the two measurements and keep the best of each, so that a
            # transient load on the machine does not bias their ratio
            bare, loop, data_share = 0.0, 0.0, 0.0
            for _ in range(repeats):
                bare = max(bare, bare_step_throughput(n_samples, args.batch, steps, cpu))
                rate, share = loop_throughput(n_samples, args.batch, steps, cpu, Path(tmp))
                if rate > loop:
                    loop, data_share = rate, share
            figures[name] = {"bare": bare, "loop": loop, "data_share": data_share, "both": both}
            print(f"\n[{name}] input 12 x {n_samples}, batch {args.batch}, {steps} timed steps")
            print(
                f"  FLOPs per record: forward {fwd / 1e9:.2f} GFLOP, forward+backward {both / 1e9:.2f} GFLOP"
            )
            print(
                f"  bare step (in-memory tensor): {bare:.1f} records/s = {bare * both / 1e9:.1f} GFLOP/s "
                f"({100 * bare * both / 1e9 / peak:.0f}% of matmul peak)"
            )
            print(
                f"  training loop (memmap + augmentation): {loop:.1f} records/s = "
                f"{100 * loop / bare:.1f}% of bare (target >= 90%)"
            )
            print(
                f"  share of loop time outside forward/backward (data, augmentation): {100 * data_share:.1f}%"
            )

        n_samples, steps = SIZES["quick"], args.steps_compare
        print(
            f"\n[determinism, quick] bare step, batch {args.batch}, {steps} timed steps, best of {args.repeats}"
        )
        plain, det = 0.0, 0.0
        for _ in range(args.repeats):
            plain = max(plain, bare_step_throughput(n_samples, args.batch, steps, cpu))
            with deterministic_algorithms(True):
                det = max(det, bare_step_throughput(n_samples, args.batch, steps, cpu))
        print(
            f"  default algorithms {plain:.1f} records/s; torch.use_deterministic_algorithms {det:.1f} "
            f"records/s ({100 * (det / plain - 1):+.1f}%)"
        )

        print(
            f"\n[distributed, quick] training loop, global batch {args.batch}, {steps} timed batches after 2"
        )
        threads = torch.get_num_threads()
        one = distributed_throughput(1, threads, n_samples, args.batch, steps, Path(tmp))
        one_1 = distributed_throughput(1, 1, n_samples, args.batch, steps, Path(tmp))
        two = distributed_throughput(2, 1, n_samples, args.batch, steps, Path(tmp))
        print(f"  1 process x {threads} threads: {one:.1f} records/s")
        print(f"  1 process x 1 thread: {one_1:.1f} records/s")
        print(
            f"  2 gloo processes x 1 thread (DDP, {args.batch // 2} records each): {two:.1f} records/s "
            f"= {two / one:.2f}x one {threads}-thread process, {two / one_1:.2f}x one 1-thread process"
        )

        print(
            f"\n[mixed precision, quick] batch {args.batch}, {steps} timed steps, best of {args.repeats}"
        )
        fwd, both = flops_per_record(n_samples)
        off_train, bf16_train, off_inf, bf16_inf = 0.0, 0.0, 0.0, 0.0
        torch.manual_seed(0)
        model = resnet34()
        for _ in range(args.repeats):
            off_train = max(off_train, bare_step_throughput(n_samples, args.batch, steps, cpu))
            bf16_train = max(
                bf16_train, bare_step_throughput(n_samples, args.batch, steps, cpu, "bf16")
            )
            off_inf = max(off_inf, inference_throughput(model, n_samples, args.batch, steps))
            bf16_inf = max(
                bf16_inf, inference_throughput(model, n_samples, args.batch, steps, "bf16")
            )
        x = torch.randn(args.batch, 12, n_samples)
        with torch.no_grad():
            logits = model.eval()(x)
            with autocast(cpu, "bf16"):
                diff = float((model(x).float() - logits).abs().max())
        print(
            f"  training step: amp off {off_train:.1f} records/s, bf16 autocast {bf16_train:.1f} records/s"
        )
        print(
            f"  inference: amp off {off_inf:.1f} records/s, bf16 autocast {bf16_inf:.1f} records/s"
        )
        print(
            f"  bf16 logits - float32 (untrained model): max abs {diff:.1e}, max |logit| "
            f"{float(logits.abs().max()):.2f}"
        )

        if args.no_compile:
            print("\n[torch.compile] skipped (--no-compile)")
        else:
            print(
                f"\n[torch.compile, quick] batch {args.batch}, {steps} timed steps (inductor, CPU, "
                "empty compile cache)"
            )
            cache = Path(tmp) / "inductor-cache"
            for line in compile_comparison(n_samples, args.batch, steps, peak, cache):
                print(line)

        paper = figures["paper"]
        t_cpu = 1 / paper["bare"]
        loop_time = 1 / paper["loop"]
        t_data = paper["data_share"] * loop_time  # data seconds per record in the real loop
        print(
            "\n[estimate, paper profile on GPUs] not measured: derived from the paper-size costs above "
            "(no GPU here)"
        )
        print(
            f"  measured here: step {t_cpu * 1e3:.0f} ms per record on this CPU "
            f"({paper['bare'] * paper['both'] / 1e9:.0f} GFLOP/s); reading + augmenting "
            f"{t_data * 1e3:.1f} ms per record (one loader thread per process; it stays on the CPU)"
        )
        print(
            f"  assumed: the GPU step reaches {', '.join(f'{100 * e:.0f}' for e in GPU_EFFICIENCY)}% "
            f"of an H100's dense TF32 peak ({H100_TF32_PEAK / 1e12:.0f} TFLOP/s; convolutional "
            f"networks: 5-20%), i.e. the CPU step cost scaled by FLOP/s; NVLink all-reduce at "
            f"{NVLINK_BYTES_PER_S / 1e9:.0f} GB/s; {COLLECTIVE_LATENCY_S * 1e6:.0f} us per synchronised "
            f"batch-norm collective; validation on rank 0 only; the host CPU as fast as this one"
        )
        print(
            f"  workload: 5 x (Original, Ours_1, Ours_2), {PAPER_EPOCHS} epochs, 500 Hz x 15,000 samples, "
            f"train folds 8/10 of 6,877 CPSC + 21,541 PTB-XL records; other pages not included"
        )
        cpu_hours = paper_estimate(t_cpu, t_data, 1) / 3600
        print(f"  on this CPU (1 process): {cpu_hours:,.0f} h")
        for n_gpus in (1, 4, 8):
            est = [
                paper_estimate(paper["both"] / (e * H100_TF32_PEAK), t_data, n_gpus)
                for e in GPU_EFFICIENCY
            ]
            print(
                f"  {n_gpus} GPU{'s' if n_gpus > 1 else ' '}: {est[1] / 3600:.1f} h "
                f"(range {est[2] / 3600:.1f}-{est[0] / 3600:.1f} h)"
            )

        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            n_samples = SIZES["paper"]
            name = torch.cuda.get_device_name(0)
            gpu_peak = matmul_peak_gflops(gpu, n=8192, dtype=torch.bfloat16)
            bare = bare_step_throughput(n_samples, args.batch, 20, gpu, amp=True)
            loop, data_share = loop_throughput(n_samples, args.batch, 20, gpu, Path(tmp), amp=True)
            # 3 models x 30 epochs over the train folds (8/10 of the records) + validation (1/10)
            est = 3 * 30 * (0.8 * PAPER_RECORDS / loop + 0.1 * PAPER_RECORDS / (3 * loop))
            print(f"\n[paper on CUDA: {name}] bf16 autocast, batch {args.batch}")
            print(f"  bf16 matmul peak: {gpu_peak / 1e3:.0f} TFLOP/s")
            print(
                f"  bare step {bare:.0f} records/s; training loop {loop:.0f} records/s "
                f"({100 * loop / bare:.0f}% of bare; {100 * data_share:.0f}% outside forward/backward)"
            )
            print(
                f"  estimated full paper reproduction (3 models x 30 epochs, {PAPER_RECORDS:,} records): "
                f"{est / 60:.1f} min (target < 20 min on one H200)"
            )
            t_gpu, t_data = 1 / bare, data_share / loop
            for n_gpus in (1, 4, 8):
                print(
                    f"  Tables 2-3 models (5 seeds), {n_gpus} GPU(s), from these figures: "
                    f"{paper_estimate(t_gpu, t_data, n_gpus) / 3600:.1f} h"
                )
        else:
            print("\nno CUDA device: the bf16 paper-size GPU benchmark was not run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
