"""Faithfulness benchmark: deletion curves, Quantus cross-check, sanity checks, planted truth."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ecgrepro.config import LEADS
from ecgrepro.explain import faithfulness as F
from ecgrepro.models import ResNet1d

FS = 100.0


class Linear(nn.Module):
    """logit_c = sum_{lead, t} w_c[lead, t] x[lead, t]: its exact attribution is w * x."""

    def __init__(self, w: np.ndarray):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float32))  # (classes, leads, T)

    def forward(self, x):
        return torch.einsum("nlt,clt->nc", x, self.w)


def _linear_case(n=6, n_samples=400, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.02, (2, 12, n_samples)).astype(np.float32)
    x = rng.normal(0, 1, (n, 12, n_samples)).astype(np.float32)
    return Linear(w).eval(), x


def test_exact_attribution_of_a_linear_model_beats_random():
    model, x = _linear_case()
    target = np.zeros(len(x), dtype=int)
    true = x * model.w.detach().numpy()[0]  # exact attribution of logit 0
    rand = np.random.default_rng(1).random(x.shape).astype(np.float32)
    kw = {"n_steps": 20, "replacements": ("zero",), "lerf_replacements": ("zero",)}
    s_true = F.curve_scores(F.deletion_curves(model, x, true, target, FS, **kw))
    s_rand = F.curve_scores(F.deletion_curves(model, x, rand, target, FS, **kw))
    t = s_true.pivot(index="record", columns="metric", values="value")
    r = s_rand.pivot(index="record", columns="metric", values="value")
    assert (t["morf_auc:zero"] < r["morf_auc:zero"] - 0.1).all()
    assert (t["lerf_minus_morf:zero"] > 0.3).all()
    assert (t["insertion_auc"] > r["insertion_auc"]).all()
    # with the 0 mV replacement, insertion is the LeRF curve read backwards
    c = F.deletion_curves(model, x, true, target, FS, **kw)
    np.testing.assert_allclose(c["insertion"], c["lerf_zero"][:, ::-1], atol=1e-6)


def test_morf_curve_equals_quantus_region_perturbation():
    from ecgrepro.explain import zennit_compat

    zennit_compat.import_zennit()  # quantus imports zennit, which imports torchvision
    import quantus  # test-only dependency (requirements-nodeps.txt)

    rng = np.random.default_rng(3)
    n, n_samples, bin_len = 3, 64, 4  # one lead; 16 units of 40 ms at 100 Hz
    w = rng.normal(0, 0.3, (2, 1, n_samples)).astype(np.float32)
    model = nn.Sequential(Linear(w), nn.Sigmoid()).eval()  # outputs probabilities
    x = rng.normal(0, 1, (n, 1, n_samples)).astype(np.float32)
    target = np.array([0, 1, 0])
    a = rng.random(x.shape).astype(np.float32)  # distinct unit sums: no ties
    units = n_samples // bin_len

    ours = F.deletion_curves(
        Linear(w).eval(),
        x,
        a,
        target,
        FS,
        n_steps=units,
        replacements=("zero",),
        lerf_replacements=(),
    )
    metric = quantus.RegionPerturbation(
        patch_size=bin_len,
        order="morf",
        regions_evaluation=units,
        normalise=False,
        perturb_baseline=0.0,
        disable_warnings=True,
        display_progressbar=False,
    )
    drops = np.array(
        metric(
            model=model,
            x_batch=x,
            y_batch=target,
            a_batch=a,
            channel_first=True,
            softmax=False,
            device="cpu",
            batch_size=n,
        )
    )  # (n, units): p(x) - p(x with the first k units removed)
    np.testing.assert_allclose(
        ours["morf_zero"][:, 1:], ours["morf_zero"][:, :1] - drops, atol=1e-5
    )


def test_padding_is_never_a_deletion_unit():
    n_samples, bin_len = 100, 4
    x = np.ones((2, 12, n_samples), np.float32)
    n_valid = np.array([100, 37])
    x[1, :, : n_samples - 37] = 7.0  # a sentinel in the padding: it must never change
    maps = np.random.default_rng(0).random(x.shape)
    scores = F.unit_scores(maps, FS, n_valid)
    assert np.isfinite(scores[0]).all()
    n_units_1 = int(np.isfinite(scores[1, 0]).sum())
    assert n_units_1 == -(-37 // bin_len)  # units overlapping the 37 valid samples
    ranks = F.unit_ranks(scores, "morf")
    assert (ranks[1][~np.isfinite(scores[1].ravel())] >= 12 * n_units_1).all()
    valid = np.arange(n_samples) >= n_samples - 37
    every = np.ones((1, 12, scores.shape[-1]), bool)
    for rep in F.REPLACEMENTS:
        out = F.perturb(x[1], every, bin_len, valid, rep, blurred=np.zeros_like(x[1]))
        assert (out[0][:, ~valid] == 7.0).all(), rep  # padding untouched
        assert (out[0][:, valid] == 0).all(), rep  # a lead with nothing kept: 0 mV (blur: 0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12 * n_samples, 2)).eval()
    c = F.deletion_curves(model, x, maps, 0, FS, n_valid, n_steps=5)
    assert list(c["units"]) == [12 * 25, 12 * n_units_1]


def test_interpolation_joins_the_kept_neighbours():
    x = np.array([[0.0, 1.0, 5.0, 5.0, 4.0, 9.0]], np.float32)
    removed = np.array([[False, False, True, True, False, True]])
    valid = np.ones(6, bool)
    out = F.interpolate_removed(x, removed, valid)
    np.testing.assert_allclose(out, [[0.0, 1.0, 2.0, 3.0, 4.0, 4.0]])
    valid = np.array([False, True, True, True, True, True])  # sample 0 is padding, no anchor
    out = F.interpolate_removed(x, np.array([[False, True, True, False, False, False]]), valid)
    np.testing.assert_allclose(out, [[0.0, 5.0, 5.0, 5.0, 4.0, 9.0]])


def test_randomisation_changes_a_gradient_map_and_not_the_amplitude():
    torch.manual_seed(0)
    model = ResNet1d(layers=(1, 1, 1, 1), num_classes=2).eval()
    x = np.random.default_rng(0).normal(0, 1, (3, 12, 200)).astype(np.float32)
    target = np.zeros(3, dtype=int)
    methods = ("saliency", "amplitude")
    base, _ = F.time_maps(model, x, target, FS, methods=methods)
    stages = list(F.randomised_models(model, seed=1))
    assert [s for s, _ in stages] == list(F.STAGES)
    first = next(iter(model.parameters())).detach().clone()
    _, last = stages[-1]
    assert torch.equal(next(iter(model.parameters())), first)  # the model passed in is untouched
    rand, _ = F.time_maps(last, x, target, FS, methods=methods)
    rho, ssim = F.map_similarity(base["saliency"], rand["saliency"])
    assert (rho < 0.5).all() and (ssim < 0.5).all()
    rho, ssim = F.map_similarity(base["amplitude"], rand["amplitude"])
    np.testing.assert_allclose(rho, 1.0)
    np.testing.assert_allclose(ssim, 1.0)


def test_planted_marker_is_found_by_input_x_gradient_on_a_linear_detector():
    rng = np.random.default_rng(0)
    n, n_samples = 8, 1000
    t = np.arange(n_samples) / FS
    beat = np.zeros(n_samples, np.float32)
    for r in np.arange(0.5, 10, 0.8):  # R peaks every 800 ms
        beat += np.exp(-0.5 * ((t - r) / 0.012) ** 2).astype(np.float32)
    x = np.tile(beat, (n, 12, 1)) + rng.normal(0, 0.002, (n, 12, n_samples)).astype(np.float32)
    marker = np.array([0, 1] * (n // 2))
    xp, marker_out, window, problems = F.plant_markers(x, marker, FS, beats="one", seed=0)
    assert not problems and (marker_out == marker).all()
    width = len(F.notch(FS))
    assert (window.sum(axis=1) == width).all()
    box = F.marker_boxes(marker, window)
    np.testing.assert_allclose((xp - x)[box], np.tile(F.notch(FS), box.sum() // width), atol=1e-6)
    every, _, w_all, _ = F.plant_markers(x, marker, FS, beats="all", seed=0)
    assert (w_all.sum(axis=1) == width * 12).all()  # 12 R peaks, each with room before it
    assert ((xp - x)[~box] == 0).all()
    # detector: logit = -(sum of the marker leads); its exact attribution is input x gradient
    w = np.zeros((2, 12, n_samples), np.float32)
    for k, leads in enumerate(F.MARKERS.values()):
        w[k, [LEADS.index(lead) for lead in leads]] = -1.0
    model = Linear(w).eval()
    maps, _ = F.time_maps(
        model,
        xp - np.median(xp, axis=-1, keepdims=True),
        marker,
        FS,
        methods=("input_x_gradient", "random"),
    )
    mass = F.mass_accuracy(maps["input_x_gradient"], box)
    rank = F.rank_accuracy(maps["input_x_gradient"], box)
    assert (mass > 0.5).all() and (rank > 0.7).all()
    assert (F.rank_accuracy(maps["random"], box) < 0.3).all()


def test_planted_scores_limit_the_exact_games_to_their_first_records():
    """``n_exact8`` and ``n_exact12`` (the page's ``planted_exact8_records``, ``exact12_records``)
    only drop records from the exact games: the records kept score as in the full run."""
    rng = np.random.default_rng(1)
    n, n_samples = 4, 200
    x = rng.uniform(0.5, 1.5, (n, 12, n_samples)).astype(np.float32)  # positive: positive values
    marker = np.array([0, 1, 0, 1])
    w = np.zeros((2, 12, n_samples), np.float32)
    for k, leads in enumerate(F.MARKERS.values()):
        w[k, [LEADS.index(lead) for lead in leads]] = 1.0
    window = np.zeros((n, n_samples), bool)
    window[:, 50:70] = True
    box = F.marker_boxes(marker, window)
    backgrounds = {"shap_published": x[:2], "shap_principled": x[2:]}
    args = (Linear(w).eval(), x, marker, FS, np.full(n, n_samples), box, backgrounds)
    kw = {"nsamples": 4, "map_kw": {"methods": ("input_x_gradient", "random")}}
    full = F.planted_scores(*args, **kw)
    part = F.planted_scores(*args, **kw, n_exact8=1, n_exact12=0)
    assert len(full["shapley8|mass_accuracy"]) == len(full["shapley12|mass_accuracy"]) == n
    assert len(part["shapley8|mass_accuracy"]) == 1 and "shapley12|mass_accuracy" not in part
    for key in ("shapley8|mass_accuracy", "shapley8|rank_accuracy"):
        np.testing.assert_allclose(part[key], full[key][:1])
    key = "shap_principled|mass_accuracy"
    np.testing.assert_allclose(part[key], full[key])
    # the marker leads carry all the exact Shapley value of a detector that reads only them
    np.testing.assert_allclose(full["shapley12|mass_accuracy"], 1.0, atol=1e-6)


def test_mass_and_rank_accuracy_by_hand():
    maps = np.array([[3.0, -1.0, 1.0, 0.0]])
    box = np.array([[True, True, False, False]])
    np.testing.assert_allclose(F.mass_accuracy(maps, box), [0.75])
    np.testing.assert_allclose(F.rank_accuracy(maps, box), [0.5])  # top 2: 3.0 (in), 1.0 (out)


def test_holm_and_rankings():
    np.testing.assert_allclose(
        F.holm(np.array([0.01, 0.04, 0.03, np.nan])), [0.03, 0.06, 0.06, np.nan]
    )
    rng = np.random.default_rng(0)
    good = rng.normal(1.0, 0.1, 30)
    values = pd.DataFrame({"good": good, "mid": good - 0.5, "bad": good - 1.0})
    ranks, fried = F.rank_methods(values, higher_is_better=True, n_boot=200)
    assert list(ranks.method) == ["good", "mid", "bad"]
    assert ranks.mean_rank.tolist() == [1.0, 2.0, 3.0] and fried["p"] < 1e-6
    pairs = F.pairwise_wilcoxon(values, higher_is_better=True)
    assert set(pairs.better) == {"good", "mid"} and (pairs.p_holm < 0.05).all()


def test_lead_curves_remove_whole_leads():
    model, x = _linear_case(n=2, n_samples=50)
    values = np.tile(np.arange(12.0), (2, 1))  # V6 most relevant, I least
    c = F.lead_curves(model, x, values, 0, game="leads12")
    assert c["morf"].shape == (2, 13)
    with torch.no_grad():
        p_full = torch.sigmoid(model(torch.as_tensor(x))[:, 0]).numpy()
        x0 = x.copy()
        x0[:, LEADS.index("V6")] = 0
        p_no_v6 = torch.sigmoid(model(torch.as_tensor(x0))[:, 0]).numpy()
    np.testing.assert_allclose(c["morf"][:, 0], p_full, atol=1e-6)
    np.testing.assert_allclose(c["morf"][:, 1], p_no_v6, atol=1e-6)
    np.testing.assert_allclose(c["insertion"][:, -1], p_full, atol=1e-6)
    c8 = F.lead_curves(model, x, values[:, :8], 0, game="independent8")
    assert c8["lerf"].shape == (2, 9)


def test_bad_input_is_refused():
    model, x = _linear_case(n=1, n_samples=40)
    with pytest.raises(ValueError, match="unknown time-resolved"):
        F.time_maps(model, x, 0, FS, methods=("smoothgrad",))
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        F.time_maps(model, bad, 0, FS, methods=("random",))
    with pytest.raises(ValueError, match="replacement"):
        F.perturb(x[0], np.zeros((1, 12, 10), bool), 4, np.ones(40, bool), "noise")
    with pytest.raises(ValueError, match="order"):
        F.unit_ranks(np.zeros((1, 3)), "random")


def test_planted_dataset_labels_are_the_markers_and_the_source_is_untouched():
    import pandas as pd

    from ecgrepro.data.datasets import ECGDataset
    from ecgrepro.data.errors import SkipReport

    rng = np.random.default_rng(0)
    n, n_samples = 30, 1000
    t = np.arange(n_samples) / FS
    beat = sum(np.exp(-0.5 * ((t - r) / 0.012) ** 2) for r in np.arange(0.5, 10, 0.8))
    signals = np.tile(beat.astype(np.float32), (n, 12, 1))
    signals += rng.normal(0, 0.002, signals.shape).astype(np.float32)
    records = pd.DataFrame(
        {
            "record": [f"r{i}" for i in range(n)],
            "split": ["train"] * 20 + ["val"] * 5 + ["test"] * 5,
            "n_valid": np.full(n, n_samples),
        }
    )
    ds = ECGDataset(
        "ptbxl",
        signals,
        np.zeros((n, 9), np.float32),
        records,
        FS,
        n_samples,
        SkipReport("ptbxl"),
        cache_key="source",
    )
    planted, window, problems = F.planted_dataset(ds, seed=1)
    marker = planted.records["marker"].to_numpy()
    assert not problems and planted.name == "ptbxl_planted" and planted.y.shape == (n, 2)
    np.testing.assert_array_equal(planted.y.argmax(1)[marker >= 0], marker[marker >= 0])
    assert (planted.y[marker < 0] == 0).all() and set(marker) == {-1, 0, 1}
    assert list(planted.records.split) == list(records.split)  # splits kept
    changed = np.abs(planted.signals - signals) > 0
    np.testing.assert_array_equal(changed, F.marker_boxes(marker, window))
    assert ds.signals is signals and ds.name == "ptbxl"  # the source is not modified
    assert planted.data_key != ds.data_key


def test_verdicts_count_only_the_tests_that_ran():
    """A test without data for a method is "did not run", not a failure (issue #25, item 5)."""
    rows = []
    for record in range(8):
        for method, morf in (("random", 0.9), ("amplitude", 0.8), ("ig", 0.1), ("gradcam", 0.2)):
            rows.append(("time", "morf_auc:interpolate", method, record, morf + 0.01 * record))
        rows.append(("randomisation", "spearman:conv1", "ig", record, 0.1))
        rows.append(("planted", "mass_accuracy", "ig", record, 0.6))
        rows.append(("planted", "mass_accuracy", "random", record, 0.1))
    per_record = pd.DataFrame(rows, columns=["test", "metric", "method", "record", "value"])
    time_ = per_record[per_record.test == "time"]
    wide = time_.pivot(index="record", columns="method", values="value")
    pairs = F.pairwise_wilcoxon(wide, higher_is_better=False).assign(
        test="time", metric="morf_auc:interpolate"
    )
    v = F.verdicts(per_record, pairs, ["ig", "gradcam", "shapley12"], "conv1").set_index("method")
    assert (v.loc["ig", "passed"], v.loc["ig", "tests_run"]) == (3, 3)
    assert (v.loc["gradcam", "passed"], v.loc["gradcam", "tests_run"]) == (1, 1)
    assert "planted-marker test did not run" in v.loc["gradcam", "text"]
    assert v.loc["shapley12", "tests_run"] == 0
    assert "deletion test on the 12-lead curves did not run" in v.loc["shapley12", "text"]
