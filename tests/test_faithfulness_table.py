"""The faithfulness page's tidy table: one row per record explanation and metric, re-read."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecgrepro.explain import faithfulness as F
from ecgrepro.explain.faithfulness import table as T
from ecgrepro.parameters import page_declared

FS, N_SAMPLES, N_RECORDS, K_EXACT = 100, 200, 4, 2


class Linear(nn.Module):
    """Nine logits, each a fixed weighted sum of the input (a model the curves can run on)."""

    def __init__(self):
        super().__init__()
        w = np.random.default_rng(0).normal(0, 0.02, (9, 12, N_SAMPLES))
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float32))

    def forward(self, x):
        return torch.einsum("nlt,clt->nc", x, self.w)


def _fake_pipe(tmp_path):
    rng = np.random.default_rng(1)
    n = 10
    ds = SimpleNamespace(
        signals=rng.normal(0, 1, (n, 12, N_SAMPLES)).astype(np.float32),
        records=pd.DataFrame({"record": [f"r{i}" for i in range(n)], "n_valid": N_SAMPLES}),
        data_key="fake",
    )
    return SimpleNamespace(datasets={"cpsc": ds, "ptbxl": ds}, artifacts=tmp_path, device="cpu")


def _fake_shap_panel(model, ds, *args, **kwargs):
    """The SHAP page's principled records 3, 5, 7, 9 (classes 0-3), the first two exact."""
    rows, targets = np.array([3, 5, 7, 9]), np.arange(N_RECORDS)
    values = np.random.default_rng(2).random((N_RECORDS, 12))
    return SimpleNamespace(
        rows={"shap_principled": rows, "shapley12": rows[:K_EXACT]},
        targets={"shap_principled": targets},
        values={"shap_principled": values, "shapley12": values[:K_EXACT] + 1,
                "shapley8": values[:K_EXACT, :8]},
        exact=pd.DataFrame({"seconds": [1.0, 2.0], "seconds_8": [0.5, 0.5]}),
    )  # fmt: skip


def _fake_panel(model, x, targets, fs_hz, nv, given, shapley8, bg, *args):
    """Two maps' time curves and the given lead values' 12-lead curves (no slow maps)."""
    maps = {"random": np.random.default_rng(3).random(x.shape), "amplitude": np.abs(x)}
    return F.benchmark_curves(
        model, x, targets, fs_hz, nv, maps, {"leads12": given}, np.arange(len(shapley8)),
        n_steps=4, replacements=("zero",), lerf_replacements=("zero",),
    )  # fmt: skip


def test_curve_section_gives_one_row_per_record_and_metric_and_is_reread(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "shap_panel", _fake_shap_panel)
    monkeypatch.setattr(T, "panel_benchmark", _fake_panel)
    settings = F.Settings.of({**page_declared("faithfulness"), "fs_hz": FS, "n_records": 9})
    models = {m: SimpleNamespace(model=Linear().eval(), key=f"key-{m}") for m in F.MODEL_NAMES}
    pipe, log = _fake_pipe(tmp_path), []
    cs = F.curve_section(pipe, models, settings, log.append)

    assert tuple(cs.table.columns) == F.COLUMNS
    assert not cs.table.duplicated(["record", "method", "test", "metric"]).any()
    # MoRF, LeRF and insertion AUCs and LeRF - MoRF, one replacement: 4 metrics per record
    per_method = cs.table.groupby(["model", "dataset", "test", "method"]).size()
    assert set(per_method.loc[:, :, "time"]) == {N_RECORDS * 4}
    assert set(per_method.loc[:, :, "leads12"]) == {K_EXACT * 4}
    assert set(cs.table.method[cs.table.test == "leads12"]) == {
        "random", "amplitude", "shapley12", "shap_principled"}  # fmt: skip
    assert set(cs.table.record) == {f"{m}:{d}:{r}" for m in models for d in ("cpsc", "ptbxl")
                                    for r in (3, 5, 7, 9)}  # fmt: skip
    assert list(cs.counts["records (time-resolved)"]) == [N_RECORDS] * 4
    assert list(cs.counts["records (lead-level)"]) == [K_EXACT] * 4
    assert float(cs.panels["ours2", "ptbxl"]["seconds|map|shapley12"]) == 3.0
    assert sum("reusing" in line for line in log) == 0 and len(log) == 4

    # a rebuild re-reads every panel from the store, with the same table
    again = F.curve_section(pipe, models, settings, log.append)
    assert sum("reusing" in line for line in log) == 4
    pd.testing.assert_frame_equal(again.table, cs.table)

    means = F.record_means(cs.table, n_boot=20)
    assert list(means.columns) == [*F.COLUMNS[:4], "metric", "value", "ci_low", "ci_high"]
    assert len(means) == len(cs.table.groupby(["model", "dataset", "method", "test", "metric"]))


def test_records_parameters_are_capped():
    assert [F.capped(0, 5), F.capped(-1, 5), F.capped(3, 5), F.capped(9, 5)] == [5, 0, 3, 5]
