"""What tests/test_distributed.py runs under ``torchrun --nproc_per_node 2`` (gloo, CPU).

``python ddp_worker.py grads OUT``: one DDP gradient step of a ResNet-34 in eval
mode (dropout off, batch norm on its running statistics, so the shards' batch
statistics cannot differ) on global batches of 8, 7 and 1 records; each rank
writes ``OUT/grads-rank<r>.json``: the largest difference of every parameter's
gradient from one process's on the whole batch, with the loss scaling of
:func:`ecgrepro.train.train_step` and with a plain per-shard mean.

``python ddp_worker.py cli OUT BUILD ARGS...``: ``ecgrepro.cli.main(ARGS)`` with
an audit hook that records every write of this process under ``BUILD``; each
rank writes them to ``OUT/writes-rank<r>.json``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree", "os.mkdir"}


def grads(out: Path) -> None:
    from ecgrepro.models import resnet34
    from ecgrepro.runtime import init_distributed, shard_bounds
    from ecgrepro.train import train_step

    dist, device = init_distributed("cpu")
    torch.manual_seed(0)
    model = resnet34().eval()  # dropout off; batch norm on its running statistics
    with torch.no_grad():  # running statistics that are not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    reference = copy.deepcopy(model)
    ddp = nn.parallel.DistributedDataParallel(model)
    optimiser = torch.optim.SGD(ddp.parameters(), lr=0.0)  # the step leaves the weights
    criterion = nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(1)  # the same global batches on every rank
    report = {}
    for n_global in (8, 7, 1):
        x = torch.from_numpy(rng.normal(0, 0.5, (n_global, 12, 256)).astype(np.float32))
        y = torch.from_numpy((rng.random((n_global, 9)) < 0.3).astype(np.float32))
        lo, hi = shard_bounds(n_global, dist.rank, dist.world_size)
        reference.zero_grad()
        criterion(reference(x), y).backward()
        want = {n: p.grad.clone() for n, p in reference.named_parameters()}
        case = {"records": hi - lo}
        for how in ("scaled", "plain"):
            if how == "scaled":
                train_step(ddp, optimiser, criterion, x[lo:hi], y[lo:hi], "off", n_global, 2)
            elif hi > lo:  # a plain mean per shard, averaged by DDP (wrong for unequal shards)
                optimiser.zero_grad()
                criterion(ddp(x[lo:hi]), y[lo:hi]).backward()
            else:
                optimiser.zero_grad()
                (ddp(x[lo:hi]).sum() * 0.0).backward()
            got = {n: p.grad for n, p in model.named_parameters()}
            case[how] = max(float((got[n] - want[n]).abs().max()) for n in want)
        case["largest_grad"] = max(float(g.abs().max()) for g in want.values())
        report[str(n_global)] = case
    (out / f"grads-rank{dist.rank}.json").write_text(json.dumps(report))
    torch.distributed.destroy_process_group()


def cli(out: Path, build: Path, argv: list[str]) -> None:
    from ecgrepro.cli import main

    build = str(build.resolve())
    writes: list[list[str]] = []

    def under_build(path) -> bool:
        try:
            full = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        if f"{os.sep}.locks{os.sep}" in full:
            return False  # the inter-process lock files (ecgrepro.data.signals.lock_for)
        return full == build or full.startswith(build + os.sep)

    def audit(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None:
                return
            writing = any(c in mode for c in "wax+") if mode else bool((flags or 0) & WRITE_FLAGS)
            if writing and under_build(path):
                writes.append([event, os.fsdecode(path)])
        elif event in WRITE_EVENTS:
            path = args[0]
            if event == "os.mkdir" and os.path.isdir(path):
                return  # mkdir(exist_ok=True) of a folder that exists changes nothing
            if isinstance(path, (str, bytes, os.PathLike)) and under_build(path):
                paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
                writes.append([event] + [os.fsdecode(a) for a in paths])

    sys.addaudithook(audit)
    rc = main(argv)
    record = {"rc": rc, "writes": list(writes)}
    (out / f"writes-rank{os.environ['RANK']}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "grads":
        grads(Path(sys.argv[2]))
    else:
        cli(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
