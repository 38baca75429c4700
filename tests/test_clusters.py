"""Companion C: time-localised clusters, their uncertainty, the waves and the surrogate forest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from torch import nn

from ecgrepro.beats import WAVE_CODES, wave_labels
from ecgrepro.explain.clusters import (
    assign,
    choose_k,
    fit_reducer,
    forest_agreement,
    k_sweep,
    normalised_entropy,
    stage_activations,
    valid_steps,
    wave_alignment,
    waves_on_grid,
)


def _planted(n=40, steps=60, dim=16, seed=0):
    """Records whose steps cycle through 3 states (blocks of 4-8 steps), each a Gaussian."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (3, dim))
    states = np.zeros((n, steps), int)
    for i in range(n):
        t, s = 0, rng.integers(3)
        while t < steps:
            length = rng.integers(4, 9)
            states[i, t : t + length] = s
            t, s = t + length, (s + 1) % 3
    features = means[states] + rng.normal(0, 1, (n, steps, dim))
    return features.astype(np.float32), states


def test_the_clusters_recover_a_planted_3_state_sequence():
    features, states = _planted()
    valid = np.ones(states.shape, bool)
    valid[:5, :10] = False  # padding in 5 records
    reducer = fit_reducer(features[valid], n_components=8)
    table, models = k_sweep(reducer.transform(features[valid]), ks=(2, 3, 5), seeds=(0, 1))
    assert choose_k(table) == 3
    assert table.set_index("k").loc[3, "stability"] > 0.95
    out = assign(features, valid, reducer, models[3, 0])
    assert np.all(out["labels"][~valid] == -1) and np.isnan(out["entropy"][~valid]).all()
    assert adjusted_rand_score(states[valid], out["labels"][valid]) > 0.95
    np.testing.assert_allclose(out["proportions"].sum(1), 1.0)
    assert np.nanmean(out["entropy"]) < 0.1  # well-separated states: confident assignments
    # the waves: a labelling that follows the states aligns far above its shifted copy
    truth = np.where(valid, states, -1)
    table, summary = wave_alignment(out["labels"], truth, 3, ("a", "b", "c"), n_boot=50)
    assert summary["nmi"] > 0.9 and summary["nmi_shifted"] < 0.3
    assert summary["nmi_low"] <= summary["nmi"] <= summary["nmi_high"]
    assert sorted(table.dominant) == ["a", "b", "c"]


def test_entropy_is_0_for_hard_and_1_for_uniform_assignments():
    k = 6
    hard = np.eye(k)
    uniform = np.full((3, k), 1 / k)
    np.testing.assert_allclose(normalised_entropy(hard), 0.0, atol=1e-12)
    np.testing.assert_allclose(normalised_entropy(uniform), 1.0)
    # unnormalised, a uniform assignment's entropy is log K
    np.testing.assert_allclose(normalised_entropy(uniform) * np.log(k), np.log(k))
    assert 0 < normalised_entropy(np.array([0.5, 0.5, 0, 0, 0, 0])) < 1


def test_the_forest_is_scored_on_records_it_was_not_fitted_on():
    rng = np.random.default_rng(0)
    x_train, x_test = rng.dirichlet(np.ones(6), 300), rng.dirichlet(np.ones(6), 200)
    noise_train, noise_test = rng.integers(0, 2, (300, 2)), rng.integers(0, 2, (200, 2))
    # predictions unrelated to the proportions: a forest scored on its own training records
    # would agree ~100%; on unseen records it agrees by chance only
    t = forest_agreement(x_train, noise_train, x_test, noise_test, noise_test, rng.random((200, 2)),
                         n_estimators=50, n_boot=20).set_index("metric")
    assert t.at["agreement", "value"] < 0.65 and t.at["agreement_cv", "value"] < 0.65
    # predictions that follow one proportion are learned
    learn_train = np.column_stack([x_train[:, 0] > 0.2, x_train[:, 1] > 0.2]).astype(int)
    learn_test = np.column_stack([x_test[:, 0] > 0.2, x_test[:, 1] > 0.2]).astype(int)
    t = forest_agreement(x_train, learn_train, x_test, learn_test, learn_test,
                         learn_test.astype(float), n_estimators=50, n_boot=20).set_index("metric")
    assert t.at["agreement", "value"] > 0.9 and t.at["agreement_cv", "value"] > 0.9
    assert t.at["agreement", "ci_low"] <= t.at["agreement", "value"] <= t.at["agreement", "ci_high"]
    assert t.at["accuracy_cnn", "value"] == 1.0


class TwoStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(12, 3, 4, stride=4)
        self.b = nn.Conv1d(3, 2, 2, stride=2)

    def forward(self, x):
        return self.b(self.a(x)).mean(-1)


def test_stage_activations_share_one_grid_and_leave_out_the_padding():
    torch.manual_seed(0)
    model = TwoStage().eval()
    x = np.random.default_rng(0).normal(size=(3, 12, 80)).astype(np.float32)
    features, valid = stage_activations(model, x, np.array([80, 40, 8]), ("a", "b"), batch_size=2)
    assert features.shape == (3, 20, 5) and valid.shape == (3, 20)
    assert valid[0].all() and valid[1].sum() == 10 and valid[2].sum() == 2
    np.testing.assert_array_equal(valid, valid_steps(np.array([80, 40, 8]), 80, 20))
    with pytest.raises(ValueError, match="no layer layer9"):
        stage_activations(model, x, None, ("a", "layer9"))


def test_wave_labels_of_a_synthetic_ecg_and_their_grid():
    fs = 100.0
    import neurokit2 as nk

    ecg = nk.ecg_simulate(duration=10, sampling_rate=int(fs), heart_rate=70, random_state=1)
    lead = np.concatenate([np.zeros(200), ecg[:800]])  # 2 s of front padding
    labels = wave_labels(lead, fs, n_valid=800, record="synthetic")
    assert np.all(labels[:200] == -1)
    share = np.bincount(labels[200:], minlength=4) / 800
    assert share[WAVE_CODES["QRS"]] > 0.05 and share[WAVE_CODES["T"]] > 0.05
    assert share[WAVE_CODES["other"]] > 0.2
    grid = waves_on_grid(labels[None], 125)
    assert grid.shape == (1, 125) and np.all(grid[0, :25] == -1)
    with pytest.raises(ValueError, match="synthetic"):
        wave_labels(np.zeros(1000), fs, record="synthetic")


def test_a_collapsed_mixture_is_counted_out_not_raised():
    z = np.zeros((60, 3))
    z[:30] = 1.0  # two repeated points: components collapse without a covariance floor
    table, models = k_sweep(z, ks=(4,), seeds=(0, 1), reg_covar=0.0)
    assert table.at[0, "fits"] == 0 and np.isnan(table.at[0, "bic"]) and not models
    with pytest.raises(ValueError, match="no Gaussian mixture"):
        choose_k(table)
    table, models = k_sweep(z, ks=(2, 4), seeds=(0,))  # the default floor fits both
    assert list(table.fits) == [1, 1] and choose_k(table) in (2, 4)
