"""Per-class metrics and F1-optimal thresholds, as the published code computes them.

A leaf module (numpy and scikit-learn only) shared by :mod:`ecgrepro.train`
(validation F1 per epoch) and :mod:`ecgrepro.evaluate` (the tables).

Published code (METHODS.md, "Thresholds and metrics"): per class, the decision
threshold is the argmax of F1 over ``linspace(0, 1, 100)`` on the validation
fold, where the search counts ``score > t`` as positive (Zhang et al.'s
``find_optimal_threshold`` and ``cal_f1``); on the test fold, prediction =
score >= threshold; precision, recall, F1 and accuracy on those predictions,
ROC AUC on the scores; the AVG row is the unweighted mean over the 9 classes.

A class with no validation positive has F1 0 at every candidate, so the
argmax is the first, 0.0, and on the test fold every record is called
positive; :func:`ecgrepro.evaluate.threshold_flags` flags it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from ecgrepro.config import CLASSES

#: Candidate thresholds of the published code.
THRESHOLD_GRID = np.linspace(0, 1, 100)
METRICS = ("precision", "recall", "f1", "auc", "accuracy")


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(
            f"y_true {y_true.shape} and scores {scores.shape} must be equal 2-D shapes"
        )
    return y_true.astype(int), scores


def f1_optimal_thresholds(
    y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray = THRESHOLD_GRID
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the threshold on ``grid`` with the highest F1.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n_records, n_classes), {0, 1}
    scores : numpy.ndarray, shape (n_records, n_classes), float in [0, 1]
        Sigmoid outputs.
    grid : numpy.ndarray, shape (n_thresholds,)
        Candidates; ``linspace(0, 1, 100)`` in the published code.

    Returns
    -------
    thresholds : numpy.ndarray, shape (n_classes,), float64
        First argmax of F1, where ``score > t`` counts as positive, as the
        published search (0.0 for a class without positives).
    best_f1 : numpy.ndarray, shape (n_classes,), float64
        F1 at that threshold (0 for a class without positives).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    y_true, scores = _check(y_true, scores)
    thresholds = np.empty(y_true.shape[1])
    best = np.empty(y_true.shape[1])
    for k in range(y_true.shape[1]):
        f1s = [f1_score(y_true[:, k], scores[:, k] > t, zero_division=0) for t in grid]
        i = int(np.argmax(f1s))
        thresholds[k], best[k] = grid[i], f1s[i]
    return thresholds, best


def per_class_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    classes: tuple[str, ...] = CLASSES,
) -> pd.DataFrame:
    """Precision, recall, F1, ROC AUC and accuracy per class, plus the AVG row.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n_records, n_classes), {0, 1}
    scores : numpy.ndarray, shape (n_records, n_classes), float
    thresholds : numpy.ndarray, shape (n_classes,)
        Decision thresholds (prediction = score >= threshold).
    classes : tuple of str
        Row names.

    Returns
    -------
    pandas.DataFrame
        Index: classes then ``AVG``; columns :data:`METRICS`. Zero division
        gives 0 (scikit-learn's ``zero_division=0``); AUC is NaN for a class
        whose test labels are all one value, and AVG then averages the classes
        that have one (``nanmean``).

    Raises
    ------
    ValueError
        If the shapes disagree.
    """
    y_true, scores = _check(y_true, scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (y_true.shape[1],) or len(classes) != y_true.shape[1]:
        raise ValueError("thresholds and classes must have one entry per column")
    rows = {}
    for k, name in enumerate(classes):
        t, s = y_true[:, k], scores[:, k]
        pred = s >= thresholds[k]
        rows[name] = {
            "precision": precision_score(t, pred, zero_division=0),
            "recall": recall_score(t, pred, zero_division=0),
            "f1": f1_score(t, pred, zero_division=0),
            "auc": roc_auc_score(t, s) if 0 < t.sum() < len(t) else np.nan,
            "accuracy": accuracy_score(t, pred),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")[list(METRICS)]
    table.loc["AVG"] = table.apply(
        lambda col: np.nanmean(col.to_numpy()) if col.notna().any() else np.nan
    )
    table.index.name = "class"
    return table


def _auc_rows(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (Mann-Whitney U with average ranks for ties; NaN if one class).

    t, s : arrays of shape (n_rows, n); returns shape (n_rows,).
    """
    ranks = scipy.stats.rankdata(s, axis=1)
    n_pos = t.sum(axis=1)
    n_neg = t.shape[1] - n_pos
    u = (ranks * t).sum(axis=1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def bootstrap_metrics(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    batch: int = 100,
) -> np.ndarray:
    """Every metric of :func:`per_class_metrics` on records resampled with replacement.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n_records, n_classes), {0, 1}
    scores : numpy.ndarray, shape (n_records, n_classes), float
    thresholds : numpy.ndarray, shape (n_classes,)
    n_boot : int
        Number of resamples (1,000 in the book).
    seed : int
        Seed of the resampling: the same seed draws the same resamples.
    batch : int
        Resamples computed at once (memory: ``batch * n_records`` per class).

    Returns
    -------
    numpy.ndarray, shape (n_boot, n_classes + 1, 5), float64
        Per resample, per class (then the AVG row), the metrics in
        :data:`METRICS` order. Resample ``b`` uses the records
        ``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))[b]``.
        Zero division gives 0 and a one-class resample gives NaN AUC, as in
        :func:`per_class_metrics`, with one exception: a class that has
        positive records in ``y_true`` but none in a resample gets NaN recall
        and F1 there, and one that has predicted positives but none in a
        resample gets NaN precision there. Such a resample says nothing about
        how the class is detected; scoring it 0 (what a plain resample of the
        zero-division convention does) biased the intervals of rare classes,
        and of the AVG row, downwards, on the sample often below the point
        estimate itself. AVG is the NaN-ignoring mean over classes.
    """
    y_true, scores = _check(y_true, scores)
    n, k = y_true.shape
    idx_all = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    pred = scores >= np.asarray(thresholds)[None, :]
    has_pos, has_pred = y_true.any(axis=0), pred.any(axis=0)
    out = np.empty((n_boot, k + 1, len(METRICS)))
    for start in range(0, n_boot, batch):
        idx = idx_all[start : start + batch]
        for c in range(k):
            t, p, s = y_true[idx, c], pred[idx, c], scores[idx, c]
            tp = (t & p).sum(1).astype(float)
            fp = (~t.astype(bool) & p).sum(1)
            fn = (t.astype(bool) & ~p).sum(1)
            tn = n - tp - fp - fn
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
                recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
                f1 = np.where(precision + recall > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            if has_pos[c]:  # absent from this resample: undefined, not 0
                recall = np.where(tp + fn > 0, recall, np.nan)
                f1 = np.where(tp + fn > 0, f1, np.nan)
            if has_pred[c]:
                precision = np.where(tp + fp > 0, precision, np.nan)
            out[start : start + batch, c] = np.stack(
                [precision, recall, f1, _auc_rows(t, s), (tp + tn) / n], axis=1
            )
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN AUC in a resample
        out[:, k] = np.nanmean(out[:, :k], axis=1)
    return out


def percentile_interval(
    samples: np.ndarray, level: float = 0.95, axis: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap samples, ignoring NaN (undefined) resamples.

    Parameters
    ----------
    samples : numpy.ndarray
        Bootstrap values, resamples along ``axis``.
    level : float
        Coverage (0.95: the 2.5th and 97.5th percentiles).
    axis : int or None
        Axis of the resamples.

    Returns
    -------
    low, high : numpy.ndarray (or float)
        NaN where no resample defines the value (numpy's warning is silenced).
    """
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(samples, q, axis=axis)
    return lo, hi


def bootstrap_ci(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    classes: tuple[str, ...] = CLASSES,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Percentile bootstrap intervals of every cell of :func:`per_class_metrics`.

    Parameters
    ----------
    y_true, scores, thresholds
        As :func:`per_class_metrics`; thresholds are held fixed (chosen on
        the validation fold), only the test records are resampled.
    classes : tuple of str
    n_boot : int
        Resamples (1,000 in the book).
    seed : int
    level : float
        Coverage (0.95: the 2.5th and 97.5th percentiles).

    Returns
    -------
    pandas.DataFrame
        Long form: ``class, metric, ci_low, ci_high`` (class includes ``AVG``);
        NaN where no resample defines the metric.
    """
    boot = bootstrap_metrics(y_true, scores, thresholds, n_boot, seed)
    rows = []
    names = list(classes) + ["AVG"]
    lo, hi = percentile_interval(boot, level)
    for i, c in enumerate(names):
        for j, m in enumerate(METRICS):
            rows.append((c, m, lo[i, j], hi[i, j]))
    return pd.DataFrame(rows, columns=["class", "metric", "ci_low", "ci_high"])
