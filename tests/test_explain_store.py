"""The explanation store: a result is computed once per key, re-read after, written atomically;
and the SHAP panel goes through it."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import ecgrepro.explain.shapley as shapley
from ecgrepro.explain import EXPLAIN_CODE_VERSION, cached, key_of, shap_panel, stored_payload
from ecgrepro.explain import store as store_module


class Counter:
    """A compute function that counts its calls."""

    def __init__(self, value=1.0):
        self.calls, self.value = 0, value

    def __call__(self):
        self.calls += 1
        return {"values": np.full((2, 3), self.value), "names": np.array(["a", "b"])}


def test_second_call_reads_the_stored_result_without_computing(tmp_path):
    compute = Counter()
    payload = {"model": "abc", "records": ["r1", "r2"], "nsamples": 50, "seed": 0}
    first = cached(tmp_path, "shap", payload, compute)
    second = cached(tmp_path, "shap", dict(payload), Counter(value=99.0))  # would differ if run
    assert compute.calls == 1
    np.testing.assert_array_equal(first["values"], second["values"])
    assert second["names"].tolist() == ["a", "b"]
    (path,) = tmp_path.glob("shap-*.npz")
    assert path.name == f"shap-{key_of(payload)}.npz"
    assert stored_payload(path) == payload  # the file says what it was computed for
    lines = []
    cached(tmp_path, "shap", payload, compute, log=lines.append)
    assert "reusing" in lines[0]


@pytest.mark.parametrize(
    "change",
    [
        {"model": "abd"},  # another model artifact
        {"records": ["r1", "r3"]},  # other records
        {"nsamples": 51},  # another parameter
        {"seed": 1},
        {"baseline": "mean"},  # a parameter that was not there
    ],
)
def test_any_change_of_the_key_computes_anew(tmp_path, change):
    payload = {"model": "abc", "records": ["r1", "r2"], "nsamples": 50, "seed": 0}
    cached(tmp_path, "shap", payload, Counter())
    again = Counter(value=2.0)
    out = cached(tmp_path, "shap", {**payload, **change}, again)
    assert again.calls == 1 and out["values"][0, 0] == 2.0
    assert len(list(tmp_path.glob("shap-*.npz"))) == 2


def test_the_code_version_is_part_of_the_key(tmp_path, monkeypatch):
    payload = {"model": "abc"}
    before = key_of(payload)
    monkeypatch.setattr(store_module, "EXPLAIN_CODE_VERSION", EXPLAIN_CODE_VERSION + 1)
    assert key_of(payload) != before
    assert key_of({"n": np.int64(3), "a": np.arange(2)}) == key_of({"n": 3, "a": [0, 1]})
    with pytest.raises(TypeError, match="stable JSON"):
        key_of({"model": object()})


def test_writes_atomically(tmp_path, monkeypatch):
    # the result is written under a temporary name and moved into place by os.replace
    moves = []
    real_replace = os.replace

    def spy(src, dst):
        moves.append((Path(src), Path(dst)))
        assert not Path(dst).exists()  # nothing under the final name before the move
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", spy)
    cached(tmp_path, "cam", {"k": 1}, Counter())
    ((src, dst),) = moves
    assert src.parent == dst.parent == tmp_path and src.name.endswith(".tmp")
    assert dst.is_file() and not src.exists()

    # a computation that fails leaves nothing, and nothing half-written
    def boom():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached(tmp_path, "cam", {"k": 2}, boom)

    # a write that fails half-way leaves no file under the final name and no temporary file
    def broken_savez(fh, **arrays):
        fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(store_module.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        cached(tmp_path, "cam", {"k": 3}, Counter())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".locks") == [dst.name]


def test_refuses_results_it_cannot_store_safely(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        cached(tmp_path, "x", {}, lambda: np.zeros(3))
    with pytest.raises(TypeError, match="objects"):
        cached(tmp_path, "x", {}, lambda: {"a": np.array([None, 1], dtype=object)})


class TinyECG(nn.Module):
    """12 leads -> 9 logits: conv, ReLU, max over time, linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(12, 4, 5, padding=2)
        self.fc = nn.Linear(4, 9)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).amax(dim=2))


class ToyDataset:
    """What shap_panel reads of an ECGDataset: 24 records of 32 samples, some padded."""

    name, fs_hz, n_samples, data_key = "toy", 100.0, 32, "toykey"

    def __init__(self):
        rng = np.random.default_rng(0)
        self.signals = rng.normal(size=(24, 12, 32)).astype(np.float32)
        n_valid = np.where(np.arange(24) % 3 == 0, 20, 32)
        for i, nv in enumerate(n_valid):
            self.signals[i, :, : 32 - nv] = 0.0
        self.y = np.zeros((24, 9), np.float32)
        self.y[np.arange(24), np.arange(24) % 4] = 1
        split = np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 8)
        self.records = pd.DataFrame(
            {"record": [f"r{i}" for i in range(24)], "split": split, "n_valid": n_valid}
        )

    def subset(self, split):
        idx = np.flatnonzero(self.records.split == split)
        return idx, self.y[idx]


def test_shap_panel_reuses_every_stored_result(tmp_path, monkeypatch):
    ds, model = ToyDataset(), TinyECG().eval()
    kwargs = dict(n_background=4, n_explained=5, nsamples=3, n_per_class=1, exact_per_panel=2)
    first = shap_panel(model, ds, **kwargs, model_key="m1", store_dir=tmp_path)
    assert first.reused == []
    assert len(list(tmp_path.glob("*.npz"))) == 4  # published, principled, two lead games

    def must_not_run(*args, **kwargs):
        raise AssertionError("recomputed an explanation that was stored")

    monkeypatch.setattr(shapley, "gradient_shap_per_lead", must_not_run)
    monkeypatch.setattr(shapley, "exact_lead_shapley", must_not_run)
    second = shap_panel(model, ds, **kwargs, model_key="m1", store_dir=tmp_path)
    assert len(second.reused) == 4
    for method, matrix in first.matrices.items():
        np.testing.assert_array_equal(matrix, second.matrices[method])
    pd.testing.assert_frame_equal(first.exact, second.exact)
    pd.testing.assert_frame_equal(first.costs, second.costs)  # the seconds of the computation
    # another model key: computed again
    with pytest.raises(AssertionError, match="recomputed"):
        shap_panel(model, ds, **kwargs, model_key="m2", store_dir=tmp_path)
    with pytest.raises(ValueError, match="model_key"):
        shap_panel(model, ds, **kwargs, store_dir=tmp_path)


def test_shap_panel_methods_shapes_and_flags():
    ds, model = ToyDataset(), TinyECG().eval()
    r = shap_panel(model, ds, 4, 5, 3, 1, 2)
    assert set(r.matrices) == {
        "shap_published",
        "shap_principled",
        "shapley12",
        "shapley8",
    }
    assert r.matrices["shapley12"].shape == (10, 12)
    assert r.matrices["shapley8"].shape == (10, 8)
    for method in ("shap_principled", "shapley12", "shapley8"):  # |.|-normalised
        rows = r.matrices[method][:9]
        finite = np.isfinite(rows).all(axis=1)
        np.testing.assert_allclose(np.abs(rows[finite]).sum(axis=1), 1.0)
    assert set(r.flags.method) == set(r.matrices)
    assert set(r.flags.flag) <= {"", "sum <= 0", "small sum"}
    assert (r.exact.efficiency_error < 1e-6).all() and (r.exact.efficiency_error_8 < 1e-6).all()
    assert len(r.costs) == 4


def test_limb_credit_and_claim_ranks_read_the_panels():
    from ecgrepro.explain import claim_ranks, limb_credit

    ds, model = ToyDataset(), TinyECG().eval()
    r = shap_panel(model, ds, 4, 5, 3, 1, 2)  # exact values for one SNR and one AF record
    credit = limb_credit({"Fig. x": r}, ("AF", "PAC"))
    assert credit["class"].tolist() == ["AF"]  # PAC has no exact record
    row = credit.iloc[0]
    m12 = r.matrices["shapley12"][1]
    assert row.II_12 == m12[1] and row.aVF_12 == m12[5]
    assert row.derived_12 == pytest.approx(m12[2:6].sum())
    assert row.II_8 == r.matrices["shapley8"][1, 1]
    ranks = claim_ranks({"Fig. x": r}, [("AF", "II"), ("AF", "aVF"), ("PAC", "II")])
    assert ranks.loc["aVF for AF", ("Fig. x", "shapley8")] == "derived"
    assert ranks.loc["II for PAC", ("Fig. x", "shapley12")] == "-"
    assert 1 <= ranks.loc["II for AF", ("Fig. x", "shapley12")] <= 12
    assert r.row_marks("shapley12")[-1] == "" and len(r.row_marks("shapley12")) == 10
