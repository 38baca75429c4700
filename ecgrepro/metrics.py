"""Per-class metrics and F1-optimal thresholds, as the published code computes them.

A leaf module (numpy and scikit-learn only) shared by :mod:`ecgrepro.train`
(validation F1 per epoch) and :mod:`ecgrepro.evaluate` (the tables).

Published code (METHODS.md, "Thresholds and metrics"): per class, the decision
threshold is the argmax of F1 over ``linspace(0, 1, 100)`` on the validation
fold; prediction = score >= threshold; precision, recall, F1 and accuracy on
those predictions, ROC AUC on the scores; the AVG row is the unweighted mean
over the 9 classes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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
        First argmax of F1 (score >= threshold counts as positive).
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
        f1s = [f1_score(y_true[:, k], scores[:, k] >= t, zero_division=0) for t in grid]
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
