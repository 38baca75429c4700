"""Thresholds from the validation fold and the paper's per-class tables.

Follows the published code (METHODS.md, "Thresholds and metrics"); the metric
primitives live in :mod:`ecgrepro.metrics`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import multilabel_confusion_matrix

from ecgrepro.config import CLASSES
from ecgrepro.metrics import (
    METRICS,
    bootstrap_ci,
    bootstrap_metrics,
    f1_optimal_thresholds,
    per_class_metrics,
    percentile_interval,
)
from ecgrepro.train import Samples, predict_scores


def evaluate(
    model, val: Samples, tests: dict[str, Samples], device="cpu", batch_size: int = 64
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """Choose thresholds on ``val`` and compute the per-class table on each test set.

    Parameters
    ----------
    model : torch.nn.Module
    val : Samples
        Validation records; thresholds maximise F1 per class on them.
    tests : dict of str -> Samples
        Test sets by name (``cpsc``, ``ptbxl``, ``combined``).
    device : str or torch.device
    batch_size : int

    Returns
    -------
    long : pandas.DataFrame
        Columns ``test_set, class, metric, value`` (class includes ``AVG``).
    scores : dict of str -> numpy.ndarray, shape (n, 9)
        Sigmoid outputs per test set.
    thresholds : numpy.ndarray, shape (9,)
    """
    thresholds, _ = f1_optimal_thresholds(val.y, predict_scores(model, val, batch_size, device))
    frames, scores = [], {}
    for name, samples in tests.items():
        scores[name] = predict_scores(model, samples, batch_size, device)
        table = per_class_metrics(samples.y, scores[name], thresholds)
        frames.append(to_long(table).assign(test_set=name))
    long = pd.concat(frames, ignore_index=True)[["test_set", "class", "metric", "value"]]
    return long, scores, thresholds


def to_long(table: pd.DataFrame) -> pd.DataFrame:
    """A per-class table (classes x metrics) in long form: ``class, metric, value``."""
    return table.reset_index().melt(id_vars="class", var_name="metric", value_name="value")


def table_with_ci(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-class metrics with 95% percentile bootstrap intervals (records resampled).

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n_records, 9), {0, 1}
    scores : numpy.ndarray, shape (n_records, 9), float in [0, 1]
    thresholds : numpy.ndarray, shape (9,)
        Held fixed while the test records are resampled.
    n_boot : int
        Resamples (1,000 in the book).
    seed : int

    Returns
    -------
    pandas.DataFrame
        Long form ``class, metric, value, ci_low, ci_high`` (class includes AVG).
    """
    point = to_long(per_class_metrics(y_true, scores, thresholds))
    ci = bootstrap_ci(y_true, scores, thresholds, n_boot=n_boot, seed=seed)
    return point.merge(ci, on=["class", "metric"], how="left")


def attach_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Add the paper's value to each of our cells and flag it when outside our interval.

    Parameters
    ----------
    ours : pandas.DataFrame
        Long form with ``model, test_set, class, metric, value, ci_low, ci_high``.
    paper : pandas.DataFrame
        Long form ``model, test_set, class, metric, value`` (:mod:`ecgrepro.paper`).

    Returns
    -------
    pandas.DataFrame
        ``ours`` plus ``paper_value`` (NaN where the paper has none) and
        ``paper_outside_ci`` (bool; False where either is undefined).
    """
    keys = ["model", "test_set", "class", "metric"]
    out = ours.merge(
        paper[keys + ["value"]].rename(columns={"value": "paper_value"}), on=keys, how="left"
    )
    out["paper_outside_ci"] = (out.paper_value < out.ci_low) | (out.paper_value > out.ci_high)
    return out


def threshold_flags(y_val: np.ndarray, thresholds: np.ndarray, rare: int = 3) -> pd.DataFrame:
    """Which classes' thresholds rest on too few validation positives.

    Parameters
    ----------
    y_val : numpy.ndarray, shape (n_val, 9), {0, 1}
        Validation labels the thresholds were chosen on.
    thresholds : numpy.ndarray, shape (9,)
    rare : int
        Fewer validation positives than this flags the class ``rare``.

    Returns
    -------
    pandas.DataFrame
        Index :data:`CLASSES`; columns ``val_positives`` (int), ``threshold``
        and ``flag``: ``"no positives: threshold 0.0, every record called
        positive"``, ``"rare: n < 3 positives"`` or ``""``.
    """
    pos = np.asarray(y_val).sum(axis=0).astype(int)
    flags = [
        "no positives: threshold 0.0, every record called positive"
        if p == 0
        else f"rare: {p} < {rare} positives"
        if p < rare
        else ""
        for p in pos
    ]
    return pd.DataFrame(
        {"val_positives": pos, "threshold": np.asarray(thresholds, float), "flag": flags},
        index=pd.Index(CLASSES, name="class"),
    )


def seed_pooled_table(
    y_true: np.ndarray,
    runs: list[tuple[np.ndarray, np.ndarray]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per-class metrics over training replicates, with an interval that includes both variances.

    Each replicate is one model trained with its own seed, with its own
    validation-chosen thresholds. The value of a cell is the mean over
    replicates; the seed spread is their minimum and maximum. The interval is
    the percentile interval of a bootstrap pooled over replicates: resample
    ``b`` draws the test records with replacement and scores them with
    replicate ``b mod R``, so the pooled distribution mixes the test-sampling
    variance of each replicate with the spread between replicates (training
    seed and the thresholds it leads to). With one replicate it is the plain
    test-record bootstrap of :func:`table_with_ci`.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n_records, 9), {0, 1}
    runs : list of (scores, thresholds)
        Per replicate: scores shape (n_records, 9) on the same records, thresholds shape (9,).
    n_boot : int
        Resamples in all (split evenly over replicates, at least one each).
    seed : int
        Replicate ``r`` resamples with ``seed + r``.
    level : float
        Coverage of the interval.

    Returns
    -------
    pandas.DataFrame
        Long form ``class, metric, value, seed_min, seed_max, seed_sd, n_seeds,
        ci_low, ci_high`` (class includes AVG).

    Raises
    ------
    ValueError
        If ``runs`` is empty.
    """
    if not runs:
        raise ValueError("seed_pooled_table needs at least one replicate")
    points = np.stack([per_class_metrics(y_true, s, t).to_numpy() for s, t in runs])
    per_run = int(np.ceil(n_boot / len(runs)))
    boots = np.concatenate(
        [
            bootstrap_metrics(y_true, s, t, n_boot=per_run, seed=seed + r)
            for r, (s, t) in enumerate(runs)
        ]
    )
    lo, hi = percentile_interval(boots, level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (no AUC)
        mean, vmin, vmax = np.nanmean(points, 0), np.nanmin(points, 0), np.nanmax(points, 0)
        sd = np.nanstd(points, 0, ddof=1) if len(runs) > 1 else np.full(mean.shape, np.nan)
    names = list(CLASSES) + ["AVG"]
    rows = [
        (c, m, mean[i, j], vmin[i, j], vmax[i, j], sd[i, j], len(runs), lo[i, j], hi[i, j])
        for i, c in enumerate(names)
        for j, m in enumerate(METRICS)
    ]
    cols = ["class", "metric", "value", "seed_min", "seed_max", "seed_sd", "n_seeds"]
    return pd.DataFrame(rows, columns=cols + ["ci_low", "ci_high"])


def difference_ci(
    first: tuple[np.ndarray, np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    paired: bool = False,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every metric of ``first`` minus ``second``, with a percentile bootstrap interval.

    Used for the generalisation gap (CPSC AVG minus PTB-XL AVG, two test sets:
    unpaired) and for comparing two models or two label mappings on the same
    records (paired).

    Parameters
    ----------
    first, second : tuple (y_true, scores, thresholds)
        As :func:`ecgrepro.metrics.per_class_metrics`: shapes (n, 9), (n, 9), (9,).
    n_boot : int
        Resamples.
    seed : int
        ``first`` is resampled with ``seed``; ``second`` with ``seed + 1``
        (unpaired) or with the same draws (paired).
    paired : bool
        True when both hold the same records in the same order: each resample
        then draws the same records for both, so the interval reflects only
        how the two differ on them.
    level : float
        Coverage of the interval.

    Returns
    -------
    pandas.DataFrame
        Long form ``class, metric, value, ci_low, ci_high`` (class includes
        ``AVG``); NaN where a metric is undefined in every resample.

    Raises
    ------
    ValueError
        If ``paired`` and the two hold different numbers of records.
    """
    if paired and len(first[0]) != len(second[0]):
        raise ValueError(f"paired sets differ in size: {len(first[0])} vs {len(second[0])}")
    point = per_class_metrics(*first) - per_class_metrics(*second)
    diff = bootstrap_metrics(*first, n_boot=n_boot, seed=seed) - bootstrap_metrics(
        *second, n_boot=n_boot, seed=seed if paired else seed + 1
    )
    lo, hi = percentile_interval(diff, level)
    rows = [
        (c, m, point.at[c, m], lo[i, j], hi[i, j])
        for i, c in enumerate(point.index)
        for j, m in enumerate(METRICS)
    ]
    return pd.DataFrame(rows, columns=["class", "metric", "value", "ci_low", "ci_high"])


def confusion_counts(
    y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray
) -> pd.DataFrame:
    """True/false positives and negatives per class at the given thresholds.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n_records, 9), {0, 1}
    scores : numpy.ndarray, shape (n_records, 9), float
    thresholds : numpy.ndarray, shape (9,)
        Prediction = score >= threshold, as :func:`ecgrepro.metrics.per_class_metrics`.

    Returns
    -------
    pandas.DataFrame
        Index: :data:`CLASSES`; columns ``tp, fp, fn, tn`` (int), from
        :func:`sklearn.metrics.multilabel_confusion_matrix`.
    """
    pred = np.asarray(scores) >= np.asarray(thresholds)[None, :]
    m = multilabel_confusion_matrix(np.asarray(y_true).astype(int), pred.astype(int))
    out = pd.DataFrame(
        {"tp": m[:, 1, 1], "fp": m[:, 0, 1], "fn": m[:, 1, 0], "tn": m[:, 0, 0]},
        index=pd.Index(CLASSES, name="class"),
    )
    return out
