"""Lead-level attributions: exact Shapley values, GradientExplainer, aggregation, selection."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.explain import (
    aggregate_per_lead,
    exact_lead_shapley,
    gradient_shap_per_lead,
    published_selection,
    shapley_from_values,
    stratified_selection,
)


class Linear1d(nn.Module):
    """f(x)_c = sum over leads and time of w[c, lead, t] x[lead, t] + b[c]."""

    def __init__(self, w, b):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float32))
        self.b = nn.Parameter(torch.as_tensor(b, dtype=torch.float32))

    def forward(self, x):
        return torch.einsum("nlt,clt->nc", x, self.w) + self.b


class Tiny(nn.Module):
    """A small nonlinear model: conv, ReLU, max-pool over time, linear."""

    def __init__(self, leads=4):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(leads, 6, 5, padding=2)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).amax(dim=2))


def test_exact_shapley_linear_closed_form():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(9, 12, 50)), rng.normal(size=9)
    x, base = (
        rng.normal(size=(12, 50)).astype(np.float32),
        rng.normal(size=(12, 50)).astype(np.float32),
    )
    phi, v = exact_lead_shapley(Linear1d(w, b).double().float(), x, base)
    expected = np.einsum("clt,lt->lc", w, x.astype(float) - base)  # phi_i = sum_t w_i (x_i - b_i)
    np.testing.assert_allclose(phi, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(phi.sum(axis=0), v[-1] - v[0], atol=1e-9)  # efficiency


def brute_force_shapley(f, n):
    """Average marginal contribution over all n! orderings."""
    phi = np.zeros((n,) + np.shape(f(frozenset())))
    for order in itertools.permutations(range(n)):
        present = set()
        for i in order:
            before = f(frozenset(present))
            present.add(i)
            phi[i] += f(frozenset(present)) - before
    return phi / math.factorial(n)


def test_exact_shapley_nonlinear_against_brute_force():
    model = Tiny().eval()
    rng = np.random.default_rng(1)
    x, base = rng.normal(size=(4, 40)).astype(np.float32), np.zeros((4, 40), np.float32)

    def f(coalition):
        xs = np.where(np.isin(np.arange(4), list(coalition))[:, None], x, base)
        with torch.no_grad():
            return model(torch.from_numpy(xs[None].astype(np.float32)))[0].double().numpy()

    phi, v = exact_lead_shapley(model, x, base, batch_size=5)
    np.testing.assert_allclose(phi, brute_force_shapley(f, 4), atol=1e-6)
    np.testing.assert_allclose(phi.sum(axis=0), v[-1] - v[0], atol=1e-9)


def test_shapley_from_values_symmetric_game():
    # v(S) = |S|^2 with 3 players: symmetric, so phi_i = v(N) / 3
    v = np.array([bin(k).count("1") ** 2 for k in range(8)], dtype=float)
    np.testing.assert_allclose(shapley_from_values(v, 3), [3.0, 3.0, 3.0])


def test_gradient_explainer_on_linear_model_matches_exact():
    # expected gradients of a linear model: w (x - b') averaged over sampled background
    # records b'; with every background record equal to one signal b that is w (x - b) exactly
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(9, 12, 30)), np.zeros(9)
    model = Linear1d(w, b).eval()
    bg = np.repeat(rng.normal(size=(1, 12, 30)).astype(np.float32), 20, axis=0)
    x = rng.normal(size=(3, 12, 30)).astype(np.float32)
    targets = np.array([0, 4, 4])
    per_lead = gradient_shap_per_lead(model, bg, x, targets, nsamples=50)
    for r in range(3):
        phi, _ = exact_lead_shapley(model, x[r], bg.mean(axis=0))
        np.testing.assert_allclose(per_lead[r], phi[:, targets[r]], rtol=1e-3, atol=1e-3)


def test_aggregate_per_lead_by_hand():
    values = np.array([[1.0, 3.0], [1.0, 1.0], [2.0, -1.0]])
    targets = np.array([0, 0, 2])
    out = aggregate_per_lead(values, targets, n_classes=3)
    np.testing.assert_allclose(out[0], [2 / 6, 4 / 6])  # sums (2, 4), normalised to 1
    assert np.isnan(out[1]).all()  # no record of class 1
    np.testing.assert_allclose(out[2], [2.0, -1.0])  # (2, -1) / 1
    np.testing.assert_allclose(out[3], [(2 / 6 + 2) / 2, (4 / 6 - 1) / 2])  # AVG of rows 0 and 2
    np.testing.assert_allclose(np.nansum(out[:3], axis=1), [1, 0, 1])


def test_published_selection_is_first_rows_and_overlaps():
    bg, ex = published_selection(500)
    assert bg.tolist() == list(range(100)) and ex.tolist() == list(range(200))
    assert set(bg) <= set(ex)  # the published explained records include the background
    bg, ex = published_selection(150)
    assert len(bg) == 100 and len(ex) == 150


def test_stratified_selection():
    y = np.zeros((30, 9))
    y[:10, 0] = 1
    y[10:13, 3] = 1
    y[12, 4] = 1
    bg, ex, targets = stratified_selection(np.arange(100, 200), np.arange(30), y, 20, 4, seed=0)
    assert len(bg) == 20 and bg.min() >= 100 and len(set(bg)) == 20
    assert np.bincount(targets, minlength=9).tolist() == [4, 0, 0, 3, 1, 0, 0, 0, 0]
    assert all(y[e, t] == 1 for e, t in zip(ex, targets, strict=True))
    _, ex2, _ = stratified_selection(np.arange(100, 200), np.arange(30), y, 20, 4, seed=0)
    assert ex.tolist() == ex2.tolist()


@pytest.mark.slow
def test_exact_shapley_on_resnet_efficiency():
    from ecgrepro.models import resnet34

    torch.manual_seed(0)
    model = resnet34().eval()
    x = np.random.default_rng(3).normal(0, 0.3, (12, 200)).astype(np.float32)
    phi, v = exact_lead_shapley(model, x, np.zeros_like(x), batch_size=512)
    assert phi.shape == (12, 9) and v.shape == (4096, 9)
    np.testing.assert_allclose(phi.sum(axis=0), v[-1] - v[0], atol=1e-6)


def test_spread_over_classes_takes_one_per_class_first():
    from ecgrepro.explain import spread_over_classes

    targets = np.array([0, 0, 0, 3, 3, 5])
    picked = spread_over_classes(targets, 4)
    assert sorted(targets[picked[:3]].tolist()) == [0, 3, 5]
    assert len(picked) == 4 and len(set(picked.tolist())) == 4
