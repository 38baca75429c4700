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

At the paper's input (issue 26) it measures, on the CPU and, with CUDA present, on the GPU:
the data path alone (records/s delivered as augmented, device-ready batches,
:class:`ecgrepro.batches.BatchSource`; target >= 3,000 records/s), and for each speed option
(:data:`OPTIONS`: faithful, bf16, bf16 autotuned, paper-fast) the bare step, the real loop and
their ratio (target >= 95% on the CPU, 90% on a GPU); with CUDA it projects the paper profile's
Tables 2-3 training from each option's loop rate.

Target (issue 3): the training loop reaches >= 90% of the bare step's throughput.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ecgrepro.models import resnet34
from ecgrepro.runtime import autocast, deterministic_algorithms
from ecgrepro.throughput import (
    bare_step_throughput,
    compile_comparison,
    data_path_throughput,
    distributed_throughput,
    flops_per_record,
    inference_throughput,
    loop_throughput,
    matmul_peak_gflops,
)

SIZES = {"quick": 1000, "paper": 15000}
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


def paper_estimate(
    t_gpu: float, t_data: float, n_gpus: int, batch: int = 32, seeds: int = PAPER_SEEDS
) -> float:
    """Seconds to train the paper profile's Tables 2-3 models on ``n_gpus`` GPUs (a model).

    Per global batch of ``batch`` records, each of the ``n_gpus`` processes reads
    and augments its ``batch / n_gpus`` records (``t_data`` s each, serially in
    its training loop) and steps on them (``t_gpu`` s each), then waits for the
    gradient all-reduce (ring: ``2 (n - 1) / n`` x 66 MB over
    :data:`NVLINK_BYTES_PER_S`) and the synchronised batch norm's 2 collectives
    per layer (:data:`COLLECTIVE_LATENCY_S` each). Validation (1/10 of the
    records, a forward pass: 1/3 of a step) runs on rank 0 alone. ``seeds`` x
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
        total += seeds * PAPER_EPOCHS * (steps * per_step + validation)
    return total


class Report:
    """The benchmark's figures: each printed as it is measured and kept as a row.

    Attributes
    ----------
    rows : list of dict
        ``section, figure, value, unit``: one per measured or derived figure, the rows of
        ``bench.csv``.
    """

    def __init__(self):
        self.rows: list[dict] = []

    def say(self, line: str) -> None:
        """Print one line of the report."""
        print(line, flush=True)

    def add(self, section: str, figure: str, value: float, unit: str) -> float:
        """Keep one figure (returned, for the printed line)."""
        self.rows.append({"section": section, "figure": figure, "value": value, "unit": unit})
        return value

    def write(self, path: Path) -> Path:
        """Write the rows as CSV (``section, figure, value, unit``)."""
        import pandas as pd

        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(self.rows, columns=["section", "figure", "value", "unit"]).to_csv(
            path, index=False
        )
        return path


def section_sizes(r: Report, args, tmp: Path, peak: float) -> dict:
    """FLOPs, bare step and training loop at the quick and paper input sizes (CPU).

    Returns
    -------
    dict
        Per size (``quick``, ``paper``): ``bare``, ``loop`` (records/s), ``data_share``
        (share of the loop outside forward/backward) and ``both`` (FLOPs per record,
        forward + backward).
    """
    cpu = torch.device("cpu")
    figures = {}
    for name, n_samples in SIZES.items():
        fwd, both = flops_per_record(n_samples)
        steps = args.steps_quick if name == "quick" else args.steps_paper
        repeats = args.repeats if name == "quick" else args.repeats_paper
        # alternate the two measurements and keep the best of each, so that a
        # transient load on the machine does not bias their ratio
        bare, loop, data_share = 0.0, 0.0, 0.0
        for _ in range(repeats):
            bare = max(bare, bare_step_throughput(n_samples, args.batch, steps, cpu))
            rate, share = loop_throughput(n_samples, args.batch, steps, cpu, tmp)
            if rate > loop:
                loop, data_share = rate, share
        figures[name] = {"bare": bare, "loop": loop, "data_share": data_share, "both": both}
        sec = f"size {name}"
        r.add(sec, "forward FLOPs per record", fwd, "FLOP")
        r.add(sec, "forward+backward FLOPs per record", both, "FLOP")
        r.add(sec, "bare step", bare, "records/s")
        r.add(sec, "training loop", loop, "records/s")
        r.add(sec, "training loop / bare step", loop / bare, "ratio (target >= 0.9)")
        r.add(sec, "loop share outside forward/backward", data_share, "share")
        r.say(f"\n[{name}] input 12 x {n_samples}, batch {args.batch}, {steps} timed steps")
        r.say(
            f"  FLOPs per record: forward {fwd / 1e9:.2f} GFLOP, forward+backward "
            f"{both / 1e9:.2f} GFLOP"
        )
        r.say(
            f"  bare step (in-memory tensor): {bare:.1f} records/s = {bare * both / 1e9:.1f} "
            f"GFLOP/s ({100 * bare * both / 1e9 / peak:.0f}% of matmul peak)"
        )
        r.say(
            f"  training loop (memmap + augmentation): {loop:.1f} records/s = "
            f"{100 * loop / bare:.1f}% of bare (target >= 90%)"
        )
        r.say(
            "  share of loop time outside forward/backward (data, augmentation): "
            f"{100 * data_share:.1f}%"
        )
    return figures


def section_determinism(r: Report, args) -> None:
    """The bare step with and without torch's deterministic algorithms (quick size)."""
    cpu, n_samples, steps = torch.device("cpu"), SIZES["quick"], args.steps_compare
    r.say(
        f"\n[determinism, quick] bare step, batch {args.batch}, {steps} timed steps, best of "
        f"{args.repeats}"
    )
    plain, det = 0.0, 0.0
    for _ in range(args.repeats):
        plain = max(plain, bare_step_throughput(n_samples, args.batch, steps, cpu))
        with deterministic_algorithms(True):
            det = max(det, bare_step_throughput(n_samples, args.batch, steps, cpu))
    r.add("determinism", "default algorithms", plain, "records/s")
    r.add("determinism", "deterministic algorithms", det, "records/s")
    r.say(
        f"  default algorithms {plain:.1f} records/s; torch.use_deterministic_algorithms "
        f"{det:.1f} records/s ({100 * (det / plain - 1):+.1f}%)"
    )


def section_distributed(r: Report, args, tmp: Path) -> None:
    """The training loop in 1 process and in 2 gloo processes (DDP), quick size."""
    n_samples, steps = SIZES["quick"], args.steps_compare
    r.say(
        f"\n[distributed, quick] training loop, global batch {args.batch}, {steps} timed "
        "batches after 2"
    )
    threads = torch.get_num_threads()
    one = distributed_throughput(1, threads, n_samples, args.batch, steps, tmp)
    one_1 = distributed_throughput(1, 1, n_samples, args.batch, steps, tmp)
    two = distributed_throughput(2, 1, n_samples, args.batch, steps, tmp)
    r.add("distributed", f"1 process x {threads} threads", one, "records/s")
    r.add("distributed", "1 process x 1 thread", one_1, "records/s")
    r.add("distributed", "2 gloo processes x 1 thread", two, "records/s")
    r.say(f"  1 process x {threads} threads: {one:.1f} records/s")
    r.say(f"  1 process x 1 thread: {one_1:.1f} records/s")
    r.say(
        f"  2 gloo processes x 1 thread (DDP, {args.batch // 2} records each): {two:.1f} "
        f"records/s = {two / one:.2f}x one {threads}-thread process, {two / one_1:.2f}x one "
        "1-thread process"
    )


def section_precision(r: Report, args) -> None:
    """float32 against bfloat16 autocast, training step and inference (quick size)."""
    cpu, n_samples, steps = torch.device("cpu"), SIZES["quick"], args.steps_compare
    r.say(
        f"\n[mixed precision, quick] batch {args.batch}, {steps} timed steps, best of "
        f"{args.repeats}"
    )
    off_train, bf16_train, off_inf, bf16_inf = 0.0, 0.0, 0.0, 0.0
    torch.manual_seed(0)
    model = resnet34()
    for _ in range(args.repeats):
        off_train = max(off_train, bare_step_throughput(n_samples, args.batch, steps, cpu))
        bf16_train = max(
            bf16_train, bare_step_throughput(n_samples, args.batch, steps, cpu, "bf16")
        )
        off_inf = max(off_inf, inference_throughput(model, n_samples, args.batch, steps))
        bf16_inf = max(bf16_inf, inference_throughput(model, n_samples, args.batch, steps, "bf16"))
    x = torch.randn(args.batch, 12, n_samples)
    with torch.no_grad():
        logits = model.eval()(x)
        with autocast(cpu, "bf16"):
            diff = float((model(x).float() - logits).abs().max())
    for figure, value in (
        ("training step, amp off", off_train),
        ("training step, bf16 autocast", bf16_train),
        ("inference, amp off", off_inf),
        ("inference, bf16 autocast", bf16_inf),
    ):
        r.add("mixed precision", figure, value, "records/s")
    r.add("mixed precision", "bf16 - float32 logits, max abs", diff, "logit")
    r.say(
        f"  training step: amp off {off_train:.1f} records/s, bf16 autocast {bf16_train:.1f} "
        "records/s"
    )
    r.say(f"  inference: amp off {off_inf:.1f} records/s, bf16 autocast {bf16_inf:.1f} records/s")
    r.say(
        f"  bf16 logits - float32 (untrained model): max abs {diff:.1e}, max |logit| "
        f"{float(logits.abs().max()):.2f}"
    )


def section_compile(r: Report, args, tmp: Path, peak: float) -> None:
    """Eager against :func:`torch.compile` (quick size); its lines, as :func:`compile_comparison`."""
    if args.no_compile:
        r.say("\n[torch.compile] skipped (--no-compile)")
        return
    r.say(
        f"\n[torch.compile, quick] batch {args.batch}, {args.steps_compare} timed steps "
        "(inductor, CPU, empty compile cache)"
    )
    cache = tmp / "inductor-cache"
    for line in compile_comparison(SIZES["quick"], args.batch, args.steps_compare, peak, cache):
        r.say(line)


#: The speed options of issue #26, as ``ecgrepro.catalogue.SPEED_OPTIONS`` values.
OPTIONS = {
    "faithful (float32, deterministic)": {"amp": "off", "deterministic": True, "compile": False},
    "bf16, deterministic": {"amp": "bf16", "deterministic": True, "compile": False},
    "bf16, autotuned": {"amp": "bf16", "deterministic": False, "compile": False},
    "paper-fast (bf16, autotuned, compiled)": {
        "amp": "bf16",
        "deterministic": False,
        "compile": True,
    },
}
#: The data path must deliver this many records/s at the paper's input (2.5x the H200's
#: faithful step, issue #26), so that the host never starves the GPU.
DATA_PATH_TARGET = 3000.0


def section_paper_path(r: Report, args, tmp: Path, device: torch.device) -> dict:
    """At the paper's input: the data path alone, and bare step against loop for each option.

    On ``device`` (CUDA when present, else the CPU). The data path: records/s delivered as
    augmented, device-ready batches of 32 (no model), for each source mode that applies. The
    options (:data:`OPTIONS`): the bare step and the real loop (memory map, augmentation,
    batches through :class:`ecgrepro.batches.BatchSource`) at batch ``--batch-options``, and
    their ratio.

    Returns
    -------
    dict
        Option name -> ``{"bare": records/s, "loop": records/s}``.
    """
    n_samples, where = SIZES["paper"], device.type
    sec = f"paper path, {where}"
    r.say(f"\n[paper input on {where}] 12 x {n_samples}: the data path alone, batch {args.batch}")
    modes = [("prefetch", 2, False), ("inline", 0, False)]
    if where == "cuda":
        modes.insert(0, ("resident", 2, True))
    for label, prefetch, resident in modes:
        rate, mode = data_path_throughput(
            n_samples, args.batch, args.steps_data, device, tmp, prefetch, resident
        )
        r.add(sec, f"data path alone, {mode}", rate, f"records/s (target >= {DATA_PATH_TARGET:g})")
        r.say(
            f"  {label}: {rate:,.0f} records/s delivered ({rate / DATA_PATH_TARGET:.1f}x the "
            f"{DATA_PATH_TARGET:,.0f} target)"
        )
    batch = args.batch_options or (args.batch if where == "cuda" else 8)
    r.say(f"  options: bare step and real loop, batch {batch}, {args.steps_options} timed steps")
    figures = {}
    for name, option in OPTIONS.items():
        if option["compile"] and args.no_compile:
            r.say(f"  {name}: skipped (--no-compile)")
            continue
        if option["amp"] == "bf16" and where == "cpu" and not cpu_bf16():
            r.say(f"  {name}: skipped (this CPU has no bf16 instructions)")
            continue
        bare = bare_step_throughput(n_samples, batch, args.steps_options, device, **option)
        loop, share = loop_throughput(n_samples, batch, args.steps_options, device, tmp, **option)
        figures[name] = {"bare": bare, "loop": loop}
        r.add(sec, f"bare step, {name}", bare, "records/s")
        r.add(sec, f"training loop, {name}", loop, "records/s")
        r.add(sec, f"loop / bare, {name}", loop / bare, "ratio (target >= 0.95 CPU, 0.9 GPU)")
        r.say(
            f"  {name}: bare {bare:,.1f}, loop {loop:,.1f} records/s = {100 * loop / bare:.0f}% "
            f"of bare ({100 * share:.1f}% of the loop outside forward/backward)"
        )
    return figures


def cpu_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def section_estimate(r: Report, paper: dict) -> None:
    """The paper profile's Tables 2-3 training on 1, 4 and 8 GPUs, from the CPU figures.

    An estimate (:func:`paper_estimate`), not a measurement: its assumptions are printed.
    """
    t_cpu = 1 / paper["bare"]
    loop_time = 1 / paper["loop"]
    t_data = paper["data_share"] * loop_time  # data seconds per record in the real loop
    r.say(
        "\n[estimate, paper profile on GPUs] not measured: derived from the paper-size costs "
        "above (no GPU here)"
    )
    r.say(
        f"  measured here: step {t_cpu * 1e3:.0f} ms per record on this CPU "
        f"({paper['bare'] * paper['both'] / 1e9:.0f} GFLOP/s); reading + augmenting "
        f"{t_data * 1e3:.1f} ms per record (one loader thread per process; it stays on the CPU)"
    )
    r.say(
        f"  assumed: the GPU step reaches {', '.join(f'{100 * e:.0f}' for e in GPU_EFFICIENCY)}% "
        f"of an H100's dense TF32 peak ({H100_TF32_PEAK / 1e12:.0f} TFLOP/s; convolutional "
        f"networks: 5-20%), i.e. the CPU step cost scaled by FLOP/s; NVLink all-reduce at "
        f"{NVLINK_BYTES_PER_S / 1e9:.0f} GB/s; {COLLECTIVE_LATENCY_S * 1e6:.0f} us per "
        "synchronised batch-norm collective; validation on rank 0 only; the host CPU as fast "
        "as this one"
    )
    r.say(
        f"  workload: 5 x (Original, Ours_1, Ours_2), {PAPER_EPOCHS} epochs, 500 Hz x 15,000 "
        "samples, train folds 8/10 of 6,877 CPSC + 21,541 PTB-XL records; other pages not "
        "included"
    )
    cpu_hours = r.add(
        "estimate", "Tables 2-3 models, this CPU", paper_estimate(t_cpu, t_data, 1) / 3600, "h"
    )
    r.say(f"  on this CPU (1 process): {cpu_hours:,.0f} h")
    for n_gpus in (1, 4, 8):
        est = [
            paper_estimate(paper["both"] / (e * H100_TF32_PEAK), t_data, n_gpus)
            for e in GPU_EFFICIENCY
        ]
        r.add("estimate", f"Tables 2-3 models, {n_gpus} H100 (10% of peak)", est[1] / 3600, "h")
        r.say(
            f"  {n_gpus} GPU{'s' if n_gpus > 1 else ' '}: {est[1] / 3600:.1f} h "
            f"(range {est[2] / 3600:.1f}-{est[0] / 3600:.1f} h)"
        )


def section_cuda(r: Report, args, tmp: Path) -> None:
    """The paper's input on the CUDA device: data path, options, and the projected training.

    The projection of the paper profile's Tables 2-3 models (5 seeds of the Original, Ours_1
    and Ours_2, 30 epochs, the full datasets' train folds: :func:`paper_estimate`) uses each
    option's measured loop rate; ``ecgrepro plan --profile paper --rate R`` projects the whole
    plan (every page's models, from the data's own record counts) from the same rate.
    """
    if not torch.cuda.is_available():
        r.say("\nno CUDA device: the paper-size GPU benchmark was not run")
        return
    gpu = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    sec = f"cuda {name}"
    gpu_peak = matmul_peak_gflops(gpu, n=8192, dtype=torch.bfloat16)
    r.add(sec, "bf16 matmul peak", gpu_peak * 1e9, "FLOP/s")
    r.say(f"\n[CUDA: {name}] bf16 matmul peak {gpu_peak / 1e3:.0f} TFLOP/s")
    figures = section_paper_path(r, args, tmp, gpu)
    for option, f in figures.items():
        hours = paper_estimate(1 / f["loop"], 0.0, 1, args.batch) / 3600
        r.add(sec, f"Tables 2-3 models (5 seeds), one GPU, {option}", hours, "h")
        r.say(
            f"  Tables 2-3 models (5 seeds x 3, 30 epochs), one GPU, {option}: {hours:.1f} h "
            f"(ecgrepro plan --profile paper --rate {f['loop']:.0f}: the whole plan)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark's sections, print their figures and write them to ``--out``."""
    from ecgrepro.config import REPO_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-quick", type=int, default=8)
    parser.add_argument("--steps-paper", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per figure")
    parser.add_argument("--repeats-paper", type=int, default=1, help="the same at the paper size")
    parser.add_argument("--steps-compare", type=int, default=6, help="timed batches per comparison")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (minutes)")
    parser.add_argument("--steps-data", type=int, default=30, help="batches timed, data path")
    parser.add_argument("--steps-options", type=int, default=2, help="timed steps per option")
    parser.add_argument(
        "--batch-options", type=int, default=0, help="batch of the options (0: 32 on CUDA, 8 CPU)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "_build" / "tables" / "bench.csv",
        help="CSV of every figure (section, figure, value, unit)",
    )
    args = parser.parse_args(argv)
    r = Report()
    r.say(
        f"ecgrepro training benchmark, {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )
    peak = r.add("machine", "fp32 matmul peak", matmul_peak_gflops(torch.device("cpu")), "GFLOP/s")
    r.say(f"matmul peak (fp32, 2048^3, best of 10): {peak:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures = section_sizes(r, args, tmp, peak)
        section_determinism(r, args)
        section_distributed(r, args, tmp)
        section_precision(r, args)
        section_compile(r, args, tmp, peak)
        section_estimate(r, figures["paper"])
        section_paper_path(r, args, tmp, torch.device("cpu"))
        section_cuda(r, args, tmp)
    r.say(f"\nfigures written to {r.write(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
