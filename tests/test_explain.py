"""Lead-level attributions: the exact values of the lead games (a different game from
GradientExplainer's), GradientExplainer, aggregation and its flags, selection, padding."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.config import LEADS
from ecgrepro.explain import (
    INDEPENDENT_LEADS,
    SMALL_SUM_SHARE,
    aggregate_per_lead,
    exact_lead_shapley,
    gradient_shap_per_lead,
    limb_residual,
    published_selection,
    recompute_limb_leads,
    shapley_from_values,
    stratified_selection,
    sum_flags,
    valid_mean,
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


def test_lead_game_values_linear_closed_form():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(9, 12, 50)), rng.normal(size=9)
    x, base = (
        rng.normal(size=(12, 50)).astype(np.float32),
        rng.normal(size=(12, 50)).astype(np.float32),
    )
    phi, v = exact_lead_shapley(Linear1d(w, b).double().float(), x, base)
    expected = np.einsum("clt,lt->lc", w, x.astype(float) - base)  # phi_i = sum_t w_i (x_i - b_i)
    np.testing.assert_allclose(phi, expected, rtol=1e-4, atol=1e-3)
    # efficiency: an arithmetic check (it holds for any value function)
    np.testing.assert_allclose(phi.sum(axis=0), v[-1] - v[0], atol=1e-9)


def brute_force_shapley(f, n):
    """Average marginal contribution over all n! orderings (each coalition evaluated once)."""
    memo = {}

    def value(coalition):
        if coalition not in memo:
            memo[coalition] = f(coalition)
        return memo[coalition]

    phi = np.zeros((n,) + np.shape(value(frozenset())))
    for order in itertools.permutations(range(n)):
        present = set()
        for i in order:
            before = value(frozenset(present))
            present.add(i)
            phi[i] += value(frozenset(present)) - before
    return phi / math.factorial(n)


def test_lead_game_values_match_brute_force_over_orderings():
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


def test_gradient_explainer_meets_the_lead_game_only_for_a_linear_model_and_one_background():
    # the two are different games (sample players and a background distribution against lead
    # players and one baseline); they coincide here only. Expected gradients of a linear model:
    # w (x - b') averaged over sampled background records b'; with every background record
    # equal to one signal b that is w (x - b) exactly, which is also the lead game's value
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
def test_lead_game_efficiency_on_resnet_is_an_arithmetic_check():
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


def test_efficiency_holds_for_any_value_function():
    # random coalition values: no model, no meaning, and still the values add up
    v = np.random.default_rng(5).normal(size=(2**5, 3))
    np.testing.assert_allclose(shapley_from_values(v, 5).sum(axis=0), v[-1] - v[0], atol=1e-12)


class TripleProduct(nn.Module):
    """f(x) = x[lead 0, t 0] * x[lead 0, t 1] * x[lead 1, t 0]: one three-way interaction."""

    def forward(self, x):
        return (x[:, 0, 0] * x[:, 0, 1] * x[:, 1, 0])[:, None]


def test_lead_game_is_a_different_game_from_the_sample_game():
    # GradientExplainer approximates a game whose players are samples; summing that game's
    # values per lead is not the lead game's value. Here the three-way interaction splits
    # 1/3 per sample in the sample game (lead 0 holds two of the samples: 2/3) and 1/2 per
    # lead in the lead game.
    model = TripleProduct()
    x, base = np.ones((2, 2), np.float32), np.zeros((2, 2), np.float32)
    phi, _ = exact_lead_shapley(model, x, base)
    np.testing.assert_allclose(phi[:, 0], [0.5, 0.5])

    def sample_game(coalition):  # players 0..3 = (lead, t) in row-major order
        xs = np.where(np.isin(np.arange(4), list(coalition)).reshape(2, 2), x, base)
        return model(torch.from_numpy(xs[None]))[0].double().numpy()

    per_lead = brute_force_shapley(sample_game, 4)[:, 0].reshape(2, 2).sum(axis=1)
    np.testing.assert_allclose(per_lead, [2 / 3, 1 / 3])


def test_aggregate_negative_sum_flips_the_published_shares_not_the_abs_ones():
    values = np.array([[-3.0, 1.0], [-1.0, 0.5]])  # class 0: totals (-4, 1.5), signed sum -2.5
    targets = np.array([0, 0])
    signed = aggregate_per_lead(values, targets, n_classes=2)
    np.testing.assert_allclose(signed[0], [1.6, -0.6])  # the negative lead ranks first
    assert signed[0].argmax() == 0
    shares = aggregate_per_lead(values, targets, n_classes=2, normalise="abs")
    np.testing.assert_allclose(shares[0], [-4 / 5.5, 1.5 / 5.5])  # signs and order kept
    assert shares[0].argmax() == 1 and np.abs(shares[0]).sum() == pytest.approx(1)
    assert np.isnan(shares[1]).all()
    np.testing.assert_allclose(shares[2], shares[0])  # AVG of the one class row
    flags = sum_flags(values, targets, n_classes=2)
    assert flags.flag.tolist() == ["sum <= 0"]
    assert flags.signed_share.iloc[0] == pytest.approx(-2.5 / 5.5)
    with pytest.raises(ValueError, match="normalise"):
        aggregate_per_lead(values, targets, normalise="l2")


def test_sum_flags_marks_small_sums_where_published_shares_blow_up():
    values = np.array([[1.0, -0.98, 0.0], [2.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    targets = np.array([0, 1, 2])
    flags = sum_flags(values, targets, n_classes=3).set_index("class")
    assert flags.flag.tolist() == ["small sum", "", "sum <= 0"]  # class 2: all zero
    assert SMALL_SUM_SHARE == 0.05
    signed = aggregate_per_lead(values, targets, n_classes=3)
    assert np.abs(signed[0]).max() > 1 / SMALL_SUM_SHARE  # 1 / 0.02 = 50
    assert np.isnan(signed[2]).all()  # zero sum: no share at all, not inf
    assert np.abs(aggregate_per_lead(values, targets, 3, "abs")[0]).max() <= 1


def _consistent_record(rng, n=40):
    """12 leads whose III, aVR, aVL and aVF follow from I and II exactly."""
    x = rng.normal(size=(12, n)).astype(np.float32)
    return recompute_limb_leads(x)


def test_independent8_game_credits_i_and_ii_for_a_model_reading_avf():
    rng = np.random.default_rng(7)
    w = np.zeros((9, 12, 40))
    w[:, LEADS.index("aVF")] = rng.normal(size=(9, 40))  # the model reads lead aVF only
    model = Linear1d(w, np.zeros(9)).eval()
    x = _consistent_record(rng)
    zero = np.zeros_like(x)
    phi12, _ = exact_lead_shapley(model, x, zero)
    avf = np.einsum("ct,t->c", w[:, LEADS.index("aVF")], x[LEADS.index("aVF")].astype(float))
    np.testing.assert_allclose(phi12[LEADS.index("aVF")], avf, rtol=1e-4, atol=1e-4)
    assert np.abs(np.delete(phi12, LEADS.index("aVF"), axis=0)).max() < 1e-4
    phi8, v8 = exact_lead_shapley(model, x, zero, game="independent8")
    assert phi8.shape == (8, 9) and v8.shape == (256, 9)
    w_avf = w[:, LEADS.index("aVF")]
    # aVF = II - I/2: I gets -1/2 of w.I, II gets w.II, the chest leads nothing
    np.testing.assert_allclose(
        phi8[INDEPENDENT_LEADS.index("I")], -0.5 * w_avf @ x[0].astype(float), atol=1e-4
    )
    np.testing.assert_allclose(
        phi8[INDEPENDENT_LEADS.index("II")], w_avf @ x[1].astype(float), atol=1e-4
    )
    assert np.abs(phi8[2:]).max() < 1e-4
    np.testing.assert_allclose(phi8.sum(axis=0), v8[-1] - v8[0], atol=1e-9)
    np.testing.assert_allclose(phi8.sum(axis=0), phi12.sum(axis=0), atol=1e-4)


def test_independent8_game_matches_its_definition_by_brute_force():
    torch.manual_seed(0)
    model = Tiny(leads=12).eval()
    rng = np.random.default_rng(8)
    x = rng.normal(size=(12, 40)).astype(np.float32)  # recorded limb leads NOT consistent
    base = rng.normal(size=(12, 40)).astype(np.float32)
    players = [LEADS.index(lead) for lead in INDEPENDENT_LEADS]

    def f(coalition):  # absent players -> baseline; III, aVR, aVL, aVF from the coalition's I, II
        xs = base.astype(float).copy()
        for j in coalition:
            xs[players[j]] = x[players[j]]
        i, ii = xs[0].copy(), xs[1].copy()
        xs[2], xs[3], xs[4], xs[5] = ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2
        with torch.no_grad():
            return model(torch.from_numpy(xs[None].astype(np.float32)))[0].double().numpy()

    phi, v = exact_lead_shapley(model, x, base, game="independent8")
    np.testing.assert_allclose(phi, brute_force_shapley(f, 8), atol=1e-5)
    with torch.no_grad():  # the full coalition is the record with its limb leads recomputed
        full = model(torch.from_numpy(recompute_limb_leads(x)[None]))[0].double().numpy()
    np.testing.assert_allclose(v[-1], full, atol=1e-6)
    assert limb_residual(x) > 0.1 and limb_residual(recompute_limb_leads(x)) < 1e-6
    with pytest.raises(ValueError, match="game"):
        exact_lead_shapley(model, x, base, game="leads7")


def test_padding_is_ignored_by_gradient_shap_per_lead():
    # a padded toy record: the last 20 of 30 samples are signal, the first 10 zero-padding
    rng = np.random.default_rng(9)
    w = rng.normal(size=(9, 12, 30))
    model = Linear1d(w, np.zeros(9)).eval()
    bg = np.repeat(rng.normal(size=(1, 12, 30)).astype(np.float32), 10, axis=0)  # signal all along
    x = rng.normal(size=(1, 12, 30)).astype(np.float32)
    x[:, :, :10] = 0.0
    per_lead = gradient_shap_per_lead(model, bg, x, np.array([2]), nsamples=20, n_valid=[20])
    expected = np.einsum("lt,lt->l", w[2][:, 10:], (x[0] - bg[0])[:, 10:].astype(float))
    np.testing.assert_allclose(per_lead[0], expected, rtol=1e-3, atol=1e-3)
    with_padding = gradient_shap_per_lead(model, bg, x, np.array([2]), nsamples=20)
    assert np.abs(with_padding[0] - expected).max() > 0.1  # what counting the padding adds
    with pytest.raises(ValueError, match="n_valid"):
        gradient_shap_per_lead(model, bg, x, np.array([2]), nsamples=2, n_valid=[31])


def test_padding_is_never_replaced_by_the_baseline_in_the_lead_games():
    rng = np.random.default_rng(10)
    w = rng.normal(size=(9, 12, 30))
    model = Linear1d(w, np.zeros(9)).eval()
    x = _consistent_record(rng, 30)
    x[:, :10] = 0.0
    base = rng.normal(size=(12, 30)).astype(np.float32)  # a mean signal: non-zero on the padding
    phi, _ = exact_lead_shapley(model, x, base, n_valid=20)
    expected = np.einsum("clt,lt->lc", w[:, :, 10:], (x - base)[:, 10:].astype(float))
    np.testing.assert_allclose(phi, expected, rtol=1e-4, atol=1e-3)
    phi8, v8 = exact_lead_shapley(model, x, base, game="independent8", n_valid=20)
    np.testing.assert_allclose(phi8.sum(axis=0), v8[-1] - v8[0], atol=1e-9)
    # the mean baseline: each sample averaged over the records valid there
    signals = np.ones((3, 12, 30), np.float32)
    signals[0, :, :10] = 0.0  # record 0 padded: its zeros do not pull the mean down
    signals[2] = 5.0  # not averaged
    mean = valid_mean(signals, np.array([0, 1]), np.array([20, 30, 30]))
    np.testing.assert_allclose(mean, 1.0)
