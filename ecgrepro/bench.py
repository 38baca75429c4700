"""Training-speed benchmark (``make bench``): prints its figures, asserts nothing.

For the quick (100 Hz x 10 s) and paper (500 Hz x 30 s) input sizes it reports:

- the model's FLOPs per record (forward, and forward + backward), counted by
  :class:`torch.utils.flop_counter.FlopCounterMode`;
- the throughput (records/s) of a bare forward/backward/Adam step on an
  in-memory tensor, and of the real training loop
  (:func:`ecgrepro.train.train_one_epoch`) reading a memory-mapped signal file
  and augmenting, with the loop's share of time spent outside forward/backward;
- achieved GFLOP/s against a matmul peak measured on the same machine.

Target (issue 3): the training loop reaches >= 90% of the bare step's throughput.
With CUDA present it also runs the paper size with bf16 autocast and estimates
the wall time of the full paper reproduction (three models, 30 epochs, all
28,418 records).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ecgrepro.models import resnet34
from ecgrepro.train import Samples, train_one_epoch, train_step

SIZES = {"quick": 1000, "paper": 15000}
#: Records of the paper's reproduction: 21,541 mapped PTB-XL + 6,877 CPSC 2018.
PAPER_RECORDS = 21_541 + 6_877


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
    n_samples: int, batch: int, steps: int, device: torch.device, amp: bool = False
) -> float:
    """Records/s of forward/backward/Adam on one in-memory batch, after two warm-up steps."""
    torch.manual_seed(0)
    model = resnet34().to(device).train()
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


def loop_throughput(
    n_samples: int, batch: int, steps: int, device: torch.device, folder: Path, amp: bool = False
) -> tuple[float, float]:
    """Records/s of the real training loop over a memory-mapped file, and its data-time share."""
    n = batch * (steps + 2)
    path = folder / f"bench_{n_samples}.f32"
    rng = np.random.default_rng(0)
    mm = np.memmap(path, dtype="<f4", mode="w+", shape=(n, 12, n_samples))
    for i in range(n):
        mm[i] = rng.normal(0, 0.2, (12, n_samples))
    mm.flush()
    signals = np.memmap(path, dtype="<f4", mode="r", shape=(n, 12, n_samples))
    y = (rng.random((n, 9)) < 0.2).astype(np.float32)
    samples = Samples([signals], np.zeros(n, int), np.arange(n), y, np.ones(n, bool))
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-quick", type=int, default=8)
    parser.add_argument("--steps-paper", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per figure")
    args = parser.parse_args(argv)
    cpu = torch.device("cpu")
    print(
        f"ecgrepro training benchmark, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    peak = matmul_peak_gflops(cpu)
    print(f"matmul peak (fp32, 4096^3, best of 10): {peak:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        for name, n_samples in SIZES.items():
            fwd, both = flops_per_record(n_samples)
            steps = args.steps_quick if name == "quick" else args.steps_paper
            # alternate the two measurements and keep the best of each, so that a
            # transient load on the machine does not bias their ratio
            bare, loop, data_share = 0.0, 0.0, 0.0
            for _ in range(args.repeats):
                bare = max(bare, bare_step_throughput(n_samples, args.batch, steps, cpu))
                rate, share = loop_throughput(n_samples, args.batch, steps, cpu, Path(tmp))
                if rate > loop:
                    loop, data_share = rate, share
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
        else:
            print("\nno CUDA device: the bf16 paper-size GPU benchmark was not run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
