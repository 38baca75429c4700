"""Rank statistics over records: Friedman's test with records as blocks, mean ranks with
bootstrap intervals, pairwise Wilcoxon signed-rank tests with Holm's correction, verdicts,
and the mean of every metric over records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import friedmanchisquare, wilcoxon

from ecgrepro.explain.faithfulness.maps import BASELINE_METHODS, TIME_METHODS
from ecgrepro.metrics import percentile_interval

#: Tests and metrics where a larger value is better (the others: smaller is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "morf_auc": False,
    "lerf_auc": True,
    "insertion_auc": True,
    "lerf_minus_morf": True,
    "spearman": False,
    "ssim": False,
    "mass_accuracy": True,
    "rank_accuracy": True,
}


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), NaN left as NaN.

    Parameters
    ----------
    p : numpy.ndarray, shape (m,)

    Returns
    -------
    numpy.ndarray, shape (m,)
        ``min(1, max_{j <= i} (m - j + 1) p_(j))`` for the i-th smallest.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok])]
    m = len(order)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else np.array([])
    out[order] = np.minimum(adj, 1.0)
    return out


def rank_methods(
    values: pd.DataFrame, higher_is_better: bool, n_boot: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """Mean ranks of the methods over records, with bootstrap intervals, and Friedman's test.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per record (block), one column per method; records missing a
        method's value are dropped.
    higher_is_better : bool
        Rank 1 goes to the best value.
    n_boot : int
        Resamples of the records for the intervals.
    seed : int

    Returns
    -------
    ranks : pandas.DataFrame
        ``method, mean_rank, ci_low, ci_high, mean, mean_ci_low, mean_ci_high,
        records``, best first.
    friedman : dict
        ``statistic``, ``p`` and ``records``; NaN with fewer than 2 records or methods.
    """
    v = values.dropna()
    n, k = v.shape
    sign = -1.0 if higher_is_better else 1.0
    r = (sign * v).rank(axis=1, method="average").to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, n)) if n else np.zeros((n_boot, 0), int)
    boot_r = r[idx].mean(axis=1) if n else np.full((n_boot, k), np.nan)
    boot_m = v.to_numpy()[idx].mean(axis=1) if n else np.full((n_boot, k), np.nan)
    lo, hi = percentile_interval(boot_r)
    mlo, mhi = percentile_interval(boot_m)
    ranks = pd.DataFrame(
        {
            "method": v.columns,
            "mean_rank": r.mean(axis=0) if n else np.nan,
            "ci_low": lo,
            "ci_high": hi,
            "mean": v.mean().to_numpy(),
            "mean_ci_low": mlo,
            "mean_ci_high": mhi,
            "records": n,
        }
    ).sort_values("mean_rank", kind="stable")
    stat = p = np.nan
    if n >= 2 and k >= 3 and np.ptp(r, axis=1).any():
        stat, p = friedmanchisquare(*[v[c].to_numpy() for c in v.columns])
    return ranks.reset_index(drop=True), {"statistic": stat, "p": p, "records": n}


def pairwise_wilcoxon(values: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of every pair of methods, Holm-corrected.

    Parameters
    ----------
    values : pandas.DataFrame
        Records x methods, as :func:`rank_methods`.
    higher_is_better : bool

    Returns
    -------
    pandas.DataFrame
        ``a, b, median_difference (a - b), p, p_holm, better`` (the better
        method where ``p_holm < 0.05``, else "").
    """
    v = values.dropna()
    cols = list(v.columns)
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            d = (v[a] - v[b]).to_numpy()
            p = np.nan
            if len(d) >= 2 and np.any(d != 0):
                p = float(wilcoxon(v[a], v[b], zero_method="zsplit").pvalue)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "median_difference": float(np.median(d)) if len(d) else np.nan,
                    "p": p,
                }
            )
    out = pd.DataFrame(rows, columns=["a", "b", "median_difference", "p"])
    out["p_holm"] = holm(out["p"].to_numpy()) if len(out) else []
    better = (
        np.where((out.median_difference > 0) == higher_is_better, out.a, out.b) if len(out) else []
    )
    out["better"] = np.where(out.p_holm < 0.05, better, "") if len(out) else []
    return out


def verdicts(
    per_record: pd.DataFrame, pairs: pd.DataFrame, methods: list[str], last_stage: str
) -> pd.DataFrame:
    """Which of the three tests each method passes, with the numbers behind it.

    A method passes **deletion** when it beats both baselines with a
    Holm-corrected Wilcoxon p below 0.05 (MoRF AUC with interpolation for
    time-resolved maps; LeRF minus MoRF on the 12-lead curves for lead-level
    methods); **randomisation** when its median Spearman rho with the trained
    model's map is below 0.5 once every layer is random; **planted** when its
    median relevance mass accuracy is at least twice the random map's. The
    thresholds are the book's, stated on the page. A test that did not run
    for a method on this build (no pairs, no randomised or planted maps) is
    not counted as failed: ``tests_run`` says how many ran, ``passed`` how
    many of those passed.

    Parameters
    ----------
    per_record : pandas.DataFrame
        ``method, test, metric, value`` per record (the page's table).
    pairs : pandas.DataFrame
        :func:`pairwise_wilcoxon` output with ``test`` and ``metric`` columns.
    methods : list of str
    last_stage : str
        The last randomisation stage (``spearman:<last_stage>``).

    Returns
    -------
    pandas.DataFrame
        ``method, deletion, randomisation, planted, passed, tests_run, text``
        (a test that did not run is False in its column and "did not run" in the text).
    """

    def beats(test, metric, method, baseline):
        p = pairs[
            (pairs.test == test)
            & (pairs.metric == metric)
            & (
                ((pairs.a == method) & (pairs.b == baseline))
                | ((pairs.a == baseline) & (pairs.b == method))
            )
        ]
        return bool(len(p)) and p.better.iloc[0] == method

    def compared(test, metric, method):
        sel = (pairs.test == test) & (pairs.metric == metric)
        return bool(((pairs.a == method) | (pairs.b == method))[sel].any())

    def median_of(test, metric, method):
        sel = (per_record.test == test) & (per_record.metric == metric)
        v = per_record[sel & (per_record.method == method)].value.to_numpy(dtype=float)
        return float(np.nanmedian(v)) if np.isfinite(v).any() else np.nan

    rows = []
    for m in methods:
        test, metric, where = (
            ("time", "morf_auc:interpolate", "MoRF")
            if m in TIME_METHODS
            else ("leads12", "lerf_minus_morf", "the 12-lead curves")
        )
        dele_run = compared(test, metric, m)
        dele = dele_run and all(beats(test, metric, m, b) for b in BASELINE_METHODS)
        rho = median_of("randomisation", f"spearman:{last_stage}", m)
        rnd = bool(np.isfinite(rho) and rho < 0.5)
        mass = median_of("planted", "mass_accuracy", m)
        base = median_of("planted", "mass_accuracy", "random")
        plok = bool(np.isfinite(mass) and mass >= 2 * base)
        dele_txt = (
            f"the deletion test on {where} did not run on this build"
            if not dele_run
            else f"{'beats' if dele else 'does not beat'} both random and |x| on {where}"
        )
        rnd_txt = (
            "not randomised on this build"
            if not np.isfinite(rho)
            else f"its map {'changes with' if rnd else 'survives'} random weights "
            f"(median rho {rho:.2f} once every layer is random)"
        )
        plant_txt = (
            "the planted-marker test did not run on this build"
            if not np.isfinite(mass)
            else f"{'finds' if plok else 'misses'} the planted marker "
            f"(median mass accuracy {mass:.2f}; random {base:.2f})"
        )
        run = int(dele_run) + int(np.isfinite(rho)) + int(np.isfinite(mass))
        text = f"{dele_txt}; {rnd_txt}; {plant_txt}"
        rows.append((m, dele, rnd, plok, int(dele) + int(rnd) + int(plok), run, text))
    return pd.DataFrame(
        rows,
        columns=["method", "deletion", "randomisation", "planted", "passed", "tests_run", "text"],
    )


def record_means(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The mean over records per model, dataset, method, test and metric, with a 95% interval.

    Parameters
    ----------
    table : pandas.DataFrame
        The tidy table (:attr:`ecgrepro.explain.faithfulness.table.Benchmark.table`).
    n_boot : int
        Bootstrap resamples of the records (:func:`ecgrepro.explain.relevance.mean_interval`).
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``model, dataset, method, test, metric, value, ci_low, ci_high``, one row per group
        (sorted): the page's ``faithfulness.csv``.
    """
    from ecgrepro.explain.relevance import mean_interval

    out_rows = []
    for (m, d, meth, test, metric), g in table.groupby(
        ["model", "dataset", "method", "test", "metric"]
    ):
        v, lo, hi = mean_interval(g.value.to_numpy(), n_boot, seed)
        out_rows.append(
            {"model": m, "dataset": d, "method": meth, "test": test, "metric": metric,
             "value": v, "ci_low": lo, "ci_high": hi}
        )
    columns = ["model", "dataset", "method", "test", "metric", "value", "ci_low", "ci_high"]
    return pd.DataFrame(out_rows, columns=columns)
