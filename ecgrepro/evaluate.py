"""Thresholds from the validation fold and the paper's per-class tables.

Follows the published code (METHODS.md, "Thresholds and metrics"); the metric
primitives live in :mod:`ecgrepro.metrics`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgrepro.metrics import METRICS, f1_optimal_thresholds, per_class_metrics
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


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, test_sets: list[str]) -> pd.DataFrame:
    """The paper's layout: rows = classes + AVG, columns = (metric, test set, source).

    Parameters
    ----------
    ours, paper : pandas.DataFrame
        Long form with columns ``test_set, class, metric, value``.
    test_sets : list of str
        Test sets in column order.

    Returns
    -------
    pandas.DataFrame
        Columns a MultiIndex (metric, test_set, {"paper", "ours"}).
    """
    both = pd.concat([ours.assign(source="ours"), paper.assign(source="paper")])
    wide = both.pivot_table(
        index="class",
        columns=["metric", "test_set", "source"],
        values="value",
        aggfunc="first",
        dropna=False,
    )
    cols = [(m, t, s) for m in METRICS for t in test_sets for s in ("paper", "ours")]
    order = [c for c in paper["class"].drop_duplicates()]
    return wide.reindex(columns=pd.MultiIndex.from_tuples(cols)).reindex(order)
