"""Distributed training: sharding, DDP gradients, and one artifact per training.

The multi-process tests run ``tests/ddp_worker.py`` under torchrun
(``python -m torch.distributed.run``) with 2 gloo processes of 1 thread each
on the CPU, as ``ecgrepro train`` runs under ``torchrun --nproc_per_node N``.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgrepro import cli
from ecgrepro.artifacts import artifact_key
from ecgrepro.pipeline import paper_specs, setup
from ecgrepro.runtime import DistContext, resolve_sync_bn, shard_bounds
from ecgrepro.train import Samples, shard_batch, train_model

WORKER = Path(__file__).with_name("ddp_worker.py")

#: ``ecgrepro train`` on the quick profile for one epoch, on the CPU.
QUICK_ONE_EPOCH = ["--profile", "quick", "-p", "epochs", "1", "-p", "device", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 tests/ddp_worker.py ARGS``; fails the test if it fails."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(WORKER), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def entries(folder: Path) -> list[Path]:
    """A folder's entries without the lock files' ``.locks/``."""
    return [p for p in folder.iterdir() if p.name != ".locks"]


def test_shards_split_every_batch_into_contiguous_near_equal_parts():
    for world in range(1, 9):
        for n in range(0, 40):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 0


def test_the_shards_of_a_batch_are_the_one_process_batch_augmentation_included():
    rng = np.random.default_rng(0)
    n, length = 70, 64
    x = rng.normal(0, 0.2, (n, 12, length)).astype(np.float32)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    train = Samples([x], np.zeros(n, int), np.arange(n), y, rng.random(n) < 0.7)
    train.n_valid = rng.integers(length // 2, length + 1, n)
    order = np.random.default_rng(5).permutation(n)
    batches = [order[s : s + 32] for s in range(0, n, 32)]  # 32, 32, 6 records
    one = np.random.default_rng(9)
    single = [shard_batch(train, idx, one) for idx in batches]
    assert any(not np.array_equal(xb, x[idx]) for (xb, _), idx in zip(single, batches, strict=True))
    for world in (2, 4, 8):
        ranks = [np.random.default_rng(9) for _ in range(world)]  # the same seed on every rank
        for (want_x, want_y), idx in zip(single, batches, strict=True):
            parts = [shard_batch(train, idx, ranks[r], r, world) for r in range(world)]
            np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), want_x)
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), want_y)
        # every rank's generator made the same calls as the one process's
        assert all(g.bit_generator.state == one.bit_generator.state for g in ranks)


def test_batch_must_split_evenly_and_sync_bn_needs_gpus():
    train = Samples(
        [np.zeros((4, 12, 32), np.float32)],
        np.zeros(4, int),
        np.arange(4),
        np.zeros((4, 9), np.float32),
        np.zeros(4, bool),
    )
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        train_model(torch.nn.Linear(1, 1), train, train, batch_size=32, dist=DistContext(0, 3))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_sync_bn(None, cuda, 2) and not resolve_sync_bn(None, cpu, 2)
    assert not resolve_sync_bn(None, cuda, 1) and not resolve_sync_bn(True, cuda, 1)
    with pytest.raises(ValueError, match="GPUs only"):
        resolve_sync_bn(True, cpu, 2)


def test_a_ddp_step_gives_the_one_process_gradients(tmp_path):
    torchrun("grads", str(tmp_path))
    reports = [json.loads((tmp_path / f"grads-rank{r}.json").read_text()) for r in (0, 1)]
    print("max |DDP grad - one-process grad| per global batch (rank 0):", reports[0])
    for report in reports:
        assert [report[n]["records"] for n in ("8", "7", "1")] in ([4, 4, 1], [4, 3, 0])
        for n, case in report.items():
            assert case["largest_grad"] > 1e-3, n  # gradients worth comparing
            assert case["scaled"] < 1e-5, (n, case)
        # a plain mean per shard gets unequal shards wrong: the comparison can fail
        assert report["7"]["plain"] > 1e-4 and report["1"]["plain"] > 1e-4
    assert [reports[0][n]["records"] for n in ("8", "7", "1")] == [4, 4, 1]


def test_ddp_training_writes_the_artifact_once_from_rank_0(
    tmp_path, build_with_sample_cache, data_root, sample_cpsc, sample_ptbxl
):
    build = build_with_sample_cache
    args = ["train", "--model", "original", "--data", str(data_root), "--build-dir", str(build)]
    proc = torchrun("cli", str(tmp_path), str(build), *args, *QUICK_ONE_EPOCH)
    assert "2 process(es) on cpu" in proc.stdout
    folders = sorted(entries(build / "artifacts"))
    assert len(folders) == 1, folders  # no .tmp left, no second copy
    assert sorted(p.name for p in folders[0].iterdir()) == ["log.csv", "meta.json", "model.pt"]
    meta = json.loads((folders[0] / "meta.json").read_text())
    assert (meta["world_size"], meta["sync_bn"], meta["n_train"]) == (2, False, 128)
    # gloo on CPUs has no synchronised batch norm: the key says so (16 records per shard)
    spec = paper_specs(epochs=1)["original"]
    datasets = {"cpsc": sample_cpsc, "ptbxl": sample_ptbxl}
    assert folders[0].name == f"original-{artifact_key(spec, datasets, 'cpu', None, 16)}"
    assert folders[0].name != f"original-{artifact_key(spec, datasets, 'cpu')}"
    assert len(pd.read_csv(folders[0] / "log.csv")) == 1  # rank 0's log: one epoch
    ranks = [json.loads((tmp_path / f"writes-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["rc"] == ranks[1]["rc"] == 0
    assert ranks[1]["writes"] == []  # rank 1 wrote nothing into the build
    renames = [w for w in ranks[0]["writes"] if w[0] == "os.rename"]
    assert len(renames) == 1 and renames[0][2] == str(folders[0])  # stored exactly once
    opened = [Path(w[1]).name for w in ranks[0]["writes"] if w[0] == "open"]
    assert sorted(opened) == ["log.csv", "meta.json"]  # model.pt: torch.save writes it in C++


def test_train_command_stores_the_artifact_the_book_reuses(build_with_sample_cache, data_root):
    build = build_with_sample_cache
    args = ["train", "--model", "original", "--data", str(data_root), "--build-dir", str(build)]
    assert cli.main(args + QUICK_ONE_EPOCH) == 0
    (folder,) = entries(build / "artifacts")
    # what a page of `make book -p epochs 1` sets up on the CPU
    pipe = setup(str(data_root), str(build), 100, 10, 0, "cpu", "published", epochs=1)
    trained = pipe.model("original", 0, log=None)
    assert trained.reused and trained.folder == folder
    assert cli.main(args + QUICK_ONE_EPOCH + ["-p", "no_such", "1"]) == 2
