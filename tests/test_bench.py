"""make bench's paper-input section (#26, item 4) runs end to end at a tiny input size."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ecgrepro import bench
from ecgrepro.throughput import data_path_throughput


def test_the_data_path_delivers_batches_without_a_model(tmp_path):
    rate, mode = data_path_throughput(200, 4, 3, torch.device("cpu"), tmp_path, prefetch=2)
    assert rate > 0 and mode == "prefetch"
    assert data_path_throughput(200, 4, 3, torch.device("cpu"), tmp_path, prefetch=0)[1] == "inline"


def test_the_paper_path_section_measures_every_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(bench.SIZES, "paper", 200)
    args = SimpleNamespace(batch=4, steps_data=2, steps_options=1, batch_options=4, no_compile=True)
    report = bench.Report()
    figures = bench.section_paper_path(report, args, tmp_path, torch.device("cpu"))
    skipped = [n for n, o in bench.OPTIONS.items() if o["compile"]]
    skipped += [n for n, o in bench.OPTIONS.items() if o["amp"] == "bf16" and not bench.cpu_bf16()]
    assert set(figures) == set(bench.OPTIONS) - set(skipped)
    assert all(f["bare"] > 0 and f["loop"] > 0 for f in figures.values())
    names = {r["figure"] for r in report.rows}
    assert {"data path alone, prefetch", "data path alone, inline"} <= names
    assert "loop / bare, faithful (float32, deterministic)" in names
    assert "skipped (--no-compile)" in capsys.readouterr().out
