"""Metrics and thresholds against direct computations."""

import numpy as np
import pytest

from ecgrepro.metrics import THRESHOLD_GRID, f1_optimal_thresholds, per_class_metrics


def direct(t, pred):
    tp = np.sum((t == 1) & pred)
    fp = np.sum((t == 0) & pred)
    fn = np.sum((t == 1) & ~pred)
    tn = np.sum((t == 0) & ~pred)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1, (tp + tn) / len(t)


def direct_auc(t, s):
    pos, neg = s[t == 1], s[t == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_metrics_match_direct_computation(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((200, 9)) < 0.2).astype(int)
    s = np.clip(0.3 * y + rng.random((200, 9)) * 0.8, 0, 1)
    th = rng.random(9)
    table = per_class_metrics(y, s, th)
    for k, c in enumerate(table.index[:-1]):
        p, r, f1, acc = direct(y[:, k], s[:, k] >= th[k])
        assert table.loc[c, ["precision", "recall", "f1", "accuracy"]].tolist() == pytest.approx(
            [p, r, f1, acc]
        )
        assert table.at[c, "auc"] == pytest.approx(direct_auc(y[:, k], s[:, k]))
    assert table.loc["AVG"].tolist() == pytest.approx(table.iloc[:-1].mean().tolist())


def test_auc_undefined_without_positives_is_left_out_of_avg():
    y = np.zeros((10, 2), int)
    y[:5, 0] = 1
    s = np.linspace(0, 1, 20).reshape(10, 2)
    table = per_class_metrics(y, s, np.array([0.5, 0.5]), classes=("A", "B"))
    assert np.isnan(table.at["B", "auc"])
    assert table.at["AVG", "auc"] == table.at["A", "auc"]


def test_thresholds_are_f1_argmax_on_grid():
    rng = np.random.default_rng(3)
    y = (rng.random((300, 3)) < 0.3).astype(int)
    s = np.clip(0.4 * y + rng.random((300, 3)) * 0.7, 0, 1)
    th, best = f1_optimal_thresholds(y, s)
    for k in range(3):
        f1s = [direct(y[:, k], s[:, k] > t)[2] for t in THRESHOLD_GRID]  # published: score > t
        assert th[k] == THRESHOLD_GRID[int(np.argmax(f1s))]
        assert best[k] == pytest.approx(max(f1s))


def test_separable_scores_give_f1_one():
    y = np.array([[0], [0], [1], [1]])
    s = np.array([[0.1], [0.2], [0.7], [0.9]])
    th, best = f1_optimal_thresholds(y, s)
    assert best[0] == 1.0 and 0.2 <= th[0] < 0.7


def test_threshold_search_counts_scores_above_t_as_the_published_code():
    # a positive scored exactly on a grid point: ">" must not count it at that point
    t = THRESHOLD_GRID[50]
    y = np.array([[1], [0], [0]])
    s = np.array([[t], [THRESHOLD_GRID[49]], [0.0]])
    th, best = f1_optimal_thresholds(y, s)
    assert best[0] == 1.0
    assert th[0] == THRESHOLD_GRID[49]  # score > t at 49 separates; with ">=" 50 would also


def test_a_class_without_validation_positives_is_flagged_with_threshold_zero():
    from ecgrepro.evaluate import threshold_flags

    rng = np.random.default_rng(0)
    y = np.zeros((16, 9), int)
    y[:3, 0] = 1  # 3 positives: fine
    y[:2, 1] = 1  # 2: rare
    s = rng.random((16, 9))
    th, _ = f1_optimal_thresholds(y, s)
    assert np.all(th[2:] == 0.0)  # no positives: F1 0 everywhere, the first candidate wins
    flags = threshold_flags(y, th)
    assert flags.at["SNR", "flag"] == ""
    assert flags.at["AF", "flag"].startswith("rare: 2")
    assert flags.loc[flags.index[2:], "flag"].str.startswith("no positives").all()
    assert list(flags.val_positives[:3]) == [3, 2, 0]


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        per_class_metrics(np.zeros((3, 9)), np.zeros((4, 9)), np.zeros(9))


def test_bootstrap_matches_direct_resampling():
    from ecgrepro.metrics import bootstrap_ci, bootstrap_metrics

    rng = np.random.default_rng(5)
    y = (rng.random((60, 9)) < 0.25).astype(int)
    s = np.clip(0.3 * y + rng.random((60, 9)) * 0.8, 0, 1)
    th = np.full(9, 0.5)
    boot = bootstrap_metrics(y, s, th, n_boot=40, seed=11, batch=7)
    idx = np.random.default_rng(11).integers(0, 60, size=(40, 60))
    for b in range(40):
        direct = per_class_metrics(y[idx[b]], s[idx[b]], th).to_numpy()
        np.testing.assert_allclose(boot[b], direct, equal_nan=True, atol=1e-12)
    # a class with positives that a resample misses: recall and F1 undefined there, not 0
    y2 = y.copy()
    y2[:, 0] = 0
    y2[0, 0] = 1
    boot2 = bootstrap_metrics(y2, s, th, n_boot=40, seed=11)
    missed = ~np.any(idx == 0, axis=1)
    assert missed.any() and (~missed).any()
    assert np.isnan(boot2[missed, 0, 1]).all() and np.isnan(boot2[missed, 0, 2]).all()
    assert not np.isnan(boot2[~missed, 0, 1]).any()
    ci = bootstrap_ci(y, s, th, n_boot=40, seed=11)
    row = ci[(ci["class"] == "AVG") & (ci.metric == "f1")].iloc[0]
    assert row.ci_low == pytest.approx(np.percentile(boot[:, -1, 2], 2.5))
    assert row.ci_high == pytest.approx(np.percentile(boot[:, -1, 2], 97.5))
    point = per_class_metrics(y, s, th)
    assert row.ci_low <= point.at["AVG", "f1"] <= row.ci_high


def test_difference_ci_paired_and_unpaired():
    from ecgrepro.evaluate import difference_ci

    rng = np.random.default_rng(1)
    y = (rng.random((200, 9)) < 0.3).astype(np.float32)
    good = np.clip(y * 0.6 + rng.random((200, 9)) * 0.5, 0, 1)
    bad = rng.random((200, 9))
    thr = np.full(9, 0.5)
    same = difference_ci((y, good, thr), (y, good, thr), n_boot=200, paired=True)
    assert np.allclose(same[["value", "ci_low", "ci_high"]].to_numpy(), 0.0)
    gap = difference_ci((y, good, thr), (y[:150], bad[:150], thr), n_boot=200)
    expect = per_class_metrics(y, good, thr) - per_class_metrics(y[:150], bad[:150], thr)
    got = gap.set_index(["class", "metric"]).value
    assert got[("AVG", "auc")] == pytest.approx(expect.at["AVG", "auc"])
    row = gap[(gap["class"] == "AVG") & (gap.metric == "auc")].iloc[0]
    assert 0 < row.ci_low < row.value < row.ci_high  # a clearly better model: positive gap
    with pytest.raises(ValueError, match="paired sets differ in size: 200 vs 150"):
        difference_ci((y, good, thr), (y[:150], bad[:150], thr), paired=True)


def test_confusion_counts_by_hand():
    from ecgrepro.evaluate import confusion_counts

    y = np.zeros((5, 9))
    y[[0, 1, 2], 1] = 1  # three AF records
    s = np.zeros((5, 9))
    s[[0, 1, 3], 1] = 0.9  # two found, one false alarm
    c = confusion_counts(y, s, np.full(9, 0.5))
    assert c.loc["AF"].tolist() == [2, 1, 1, 1]
    assert c.loc["SNR"].tolist() == [0, 0, 0, 5]


def test_seed_pooled_interval_holds_the_training_spread():
    from ecgrepro.evaluate import seed_pooled_table

    rng = np.random.default_rng(7)
    n = 400
    y = (rng.random((n, 9)) < 0.3).astype(int)
    th = np.full(9, 0.5)
    # three "training runs" whose skill differs: the spread between them is real
    runs = [(np.clip(a * y + rng.random((n, 9)) * 0.6, 0, 1), th) for a in (0.1, 0.3, 0.5)]
    table = seed_pooled_table(y, runs, n_boot=300, seed=0).set_index(["class", "metric"])
    one = seed_pooled_table(y, runs[1:2], n_boot=300, seed=0).set_index(["class", "metric"])
    f1 = table.loc[("AVG", "f1")]
    points = [per_class_metrics(y, s, t).at["AVG", "f1"] for s, t in runs]
    assert f1.value == pytest.approx(np.mean(points))
    assert (f1.seed_min, f1.seed_max) == (pytest.approx(min(points)), pytest.approx(max(points)))
    assert f1.n_seeds == 3 and one.loc[("AVG", "f1")].n_seeds == 1
    # the pooled interval covers every run's value; one run's test-only interval does not
    assert f1.ci_low <= min(points) and f1.ci_high >= max(points)
    solo = one.loc[("AVG", "f1")]
    assert not (solo.ci_low <= min(points) and solo.ci_high >= max(points))
    with pytest.raises(ValueError, match="at least one"):
        seed_pooled_table(y, [])
