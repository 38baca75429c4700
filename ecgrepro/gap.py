"""The generalisation gap under two label mappings (the labels page).

The paper reads its Table 2 (the Original, trained on CPSC 2018, drops from a
mean F1 of 0.832 on CPSC to 0.345 on PTB-XL) as a failure to generalise. Part
of that drop may come from PTB-XL's labels under the published mapping, which
ignores rhythm statements recorded with likelihood 0
(:mod:`ecgrepro.data.labels`). This module scores the same trained models
under both mappings and measures the gap with bootstrap intervals
(:func:`ecgrepro.evaluate.difference_ci`).

Definitions
-----------
- **Gap** of a model M: the Original's AVG metric on the CPSC test fold minus
  M's AVG metric on a PTB-XL test set (M = the Original gives the paper's
  Table 2 gap). The two test sets share no record, so the interval resamples
  each independently.
- **Improvement** of a retrained model M on PTB-XL: M's AVG minus the
  Original's AVG on the same PTB-XL test records (a paired interval).
- **Share of the gap closed** by M: improvement / gap(Original), that is
  1 - gap(M) / gap(Original), with an interval from the same resamples.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ecgrepro.data import ECGDataset
from ecgrepro.evaluate import confusion_counts, difference_ci, table_with_ci
from ecgrepro.metrics import METRICS, bootstrap_metrics, per_class_metrics, percentile_interval
from ecgrepro.pipeline import TrainedModel, split_scores, validation_thresholds

#: PTB-XL test sets of the labels page: the official test fold, and every record present
#: (for a model that never saw PTB-XL).
PTBXL_TEST_SETS = {"ptbxl_fold10": "test", "ptbxl_all": "all"}

#: Columns of ``table2_labels.csv``.
TABLE2_LABELS_COLUMNS = [
    "model",
    "test_set",
    "label_mapping",
    "class",
    "metric",
    "value",
    "seed_min",
    "seed_max",
    "n_seeds",
    "ci_low",
    "ci_high",
]


def scored(
    m: TrainedModel,
    datasets: dict[str, ECGDataset],
    sets: dict[str, tuple[str, str]],
    device="cpu",
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A model's labels, scores and validation thresholds on named test sets.

    Parameters
    ----------
    m : TrainedModel
    datasets : dict of str -> ECGDataset
        Must hold the datasets of ``m.spec.train_on`` and of ``sets``.
    sets : dict of str -> (dataset, split)
        E.g. ``{"cpsc": ("cpsc", "test"), "ptbxl_all": ("ptbxl", "all")}``.
    device : str or torch.device

    Returns
    -------
    dict of str -> (y_true, scores, thresholds)
        Shapes (n, 9), (n, 9) float32 and (9,); the thresholds maximise F1 on
        the validation folds of ``m``'s own training data
        (:func:`ecgrepro.pipeline.validation_thresholds`) and are the same for
        every set.
    """
    thresholds = validation_thresholds(m, datasets, device)
    out = {}
    for name, (ds, split) in sets.items():
        samples, scores = split_scores(m, datasets, ds, split, device)
        out[name] = (samples.y, scores, thresholds)
    return out


def combined(*parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple:
    """Concatenate scored sets of one model (same thresholds) into one, e.g. CPSC + PTB-XL."""
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        parts[0][2],
    )


def metric_table(
    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per-class metrics with 95% bootstrap intervals on each scored set.

    Returns
    -------
    pandas.DataFrame
        Long form ``test_set, class, metric, value, ci_low, ci_high``.
    """
    return pd.concat(
        [table_with_ci(*s, n_boot=n_boot, seed=seed).assign(test_set=k) for k, s in sets.items()],
        ignore_index=True,
    )


def gap_rows(
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    other: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    metrics: tuple[str, ...] = ("f1", "auc"),
) -> pd.DataFrame:
    """The generalisation gap: AVG on ``reference`` minus AVG on ``other``, with its interval.

    Parameters
    ----------
    reference : (y_true, scores, thresholds)
        The Original on the CPSC test fold.
    other : (y_true, scores, thresholds)
        A model on a PTB-XL test set (no record in common with ``reference``).
    n_boot, seed
        As :func:`ecgrepro.evaluate.difference_ci` (unpaired).
    metrics : tuple of str

    Returns
    -------
    pandas.DataFrame
        Rows with ``class = "GAP"``: ``class, metric, value, ci_low, ci_high``.
    """
    d = difference_ci(reference, other, n_boot=n_boot, seed=seed)
    d = d[(d["class"] == "AVG") & d.metric.isin(metrics)].copy()
    d["class"] = "GAP"
    return d.reset_index(drop=True)


def _nan(fn, values: np.ndarray) -> float:
    """``fn`` (a NaN-ignoring reduction) of ``values``; NaN, silently, where all are NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(fn(values))


def pooled_difference_rows(
    firsts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    seconds: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    paired: bool,
    n_boot: int = 1000,
    seed: int = 0,
    metrics: tuple[str, ...] = ("f1", "auc"),
    level: float = 0.95,
    label: str = "GAP",
) -> pd.DataFrame:
    """AVG of ``firsts`` minus AVG of ``seconds`` over training replicates, pooled bootstrap.

    Replicate ``r`` gives the difference of the AVG rows of ``firsts[r]`` and ``seconds[r]``;
    the value is the mean over replicates, the seed spread their minimum and maximum. The
    interval pools the bootstrap over replicates as :func:`ecgrepro.evaluate.seed_pooled_table`
    does: resample ``b`` is drawn for replicate ``b mod R``.

    Parameters
    ----------
    firsts, seconds : list of (y_true, scores, thresholds)
        Per replicate: shapes (n, 9), (n, 9), (9,). Replicate ``r`` of each is paired.
    paired : bool
        True where ``firsts[r]`` and ``seconds[r]`` hold the same records in the same order
        (two models on one test set): each resample then draws the same records for both.
        False for two test sets with no record in common (the gap): each is drawn alone.
    n_boot : int
        Resamples in all (split evenly over replicates, at least one each).
    seed : int
        Replicate ``r`` resamples ``firsts[r]`` with ``seed + 2 r`` and ``seconds[r]`` with
        ``seed + 2 r + 1`` (unpaired) or ``seed + 2 r`` (paired).
    metrics : tuple of str
        Among :data:`ecgrepro.metrics.METRICS`.
    level : float
        Coverage of the interval.
    label : str
        The rows' ``class``.

    Returns
    -------
    pandas.DataFrame
        ``class, metric, value, seed_min, seed_max, n_seeds, ci_low, ci_high``.

    Raises
    ------
    ValueError
        If there is no replicate, the two lists differ in length, or a paired replicate's
        two sets differ in records.
    """
    if not firsts or len(firsts) != len(seconds):
        raise ValueError(
            f"one second set per first set is needed, at least one: {len(firsts)} and "
            f"{len(seconds)}"
        )
    per_run = int(np.ceil(n_boot / len(firsts)))
    points, boots = [], []
    for r, (one, two) in enumerate(zip(firsts, seconds, strict=True)):
        if paired and len(one[0]) != len(two[0]):
            raise ValueError(f"replicate {r}: paired sets differ in records: {len(one[0])}, "
                             f"{len(two[0])}")
        points.append(
            per_class_metrics(*one).loc["AVG"].to_numpy()
            - per_class_metrics(*two).loc["AVG"].to_numpy()
        )
        s2 = seed + 2 * r if paired else seed + 2 * r + 1
        boots.append(
            bootstrap_metrics(*one, n_boot=per_run, seed=seed + 2 * r)[:, -1]
            - bootstrap_metrics(*two, n_boot=per_run, seed=s2)[:, -1]
        )
    points, boots = np.stack(points), np.concatenate(boots)
    lo, hi = percentile_interval(boots, level)
    rows = []
    for metric in metrics:
        j = METRICS.index(metric)
        rows.append(
            {
                "class": label,
                "metric": metric,
                "value": _nan(np.nanmean, points[:, j]),
                "seed_min": _nan(np.nanmin, points[:, j]),
                "seed_max": _nan(np.nanmax, points[:, j]),
                "n_seeds": len(firsts),
                "ci_low": float(lo[j]),
                "ci_high": float(hi[j]),
            }
        )
    return pd.DataFrame(rows)


def pooled_gap_rows(
    references: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    others: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_boot: int = 1000,
    seed: int = 0,
    metrics: tuple[str, ...] = ("f1", "auc"),
    level: float = 0.95,
) -> pd.DataFrame:
    """The generalisation gap over training replicates, with an interval that holds both variances.

    The book's one definition of the paper's Table 2 gap: replicate ``r`` (the Original
    trained with seed ``r``, its own validation thresholds) gives the gap AVG on the CPSC test
    fold minus AVG on a PTB-XL test set; the value is the mean over replicates (so it equals
    the difference of Table 2's two AVG rows), the seed spread their minimum and maximum, and
    the interval a bootstrap pooled over replicates with each test set resampled on its own
    (they share no record): :func:`pooled_difference_rows` with ``paired=False``.

    Parameters
    ----------
    references : list of (y_true, scores, thresholds)
        Per replicate, the Original on the CPSC test fold: shapes (n, 9), (n, 9), (9,).
    others : list of (y_true, scores, thresholds)
        Per replicate, in the same order, the Original on a PTB-XL test set.
    n_boot, seed, metrics, level
        As :func:`pooled_difference_rows`.

    Returns
    -------
    pandas.DataFrame
        Rows with ``class = "GAP"``: ``class, metric, value, seed_min, seed_max, n_seeds,
        ci_low, ci_high``.

    Raises
    ------
    ValueError
        If there is no replicate, or ``references`` and ``others`` differ in length.
    """
    if not references or len(references) != len(others):
        raise ValueError(
            f"pooled_gap_rows needs one PTB-XL set per CPSC set, at least one: "
            f"{len(references)} and {len(others)}"
        )
    return pooled_difference_rows(
        references, others, paired=False, n_boot=n_boot, seed=seed, metrics=metrics,
        level=level,
    )


def af_confusion(
    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], label_mapping: str
) -> pd.DataFrame:
    """AF's true/false positives and negatives on each scored set.

    Returns
    -------
    pandas.DataFrame
        Columns ``test_set, label_mapping, tp, fp, fn, tn, records``.
    """
    rows = []
    for name, s in sets.items():
        c = confusion_counts(*s).loc["AF"]
        rows.append({"test_set": name, "label_mapping": label_mapping, **c.to_dict()})
    out = pd.DataFrame(rows)
    out["records"] = out[["tp", "fp", "fn", "tn"]].sum(axis=1)
    return out


def relabelled_af(published: ECGDataset, rhythm_aware: ECGDataset) -> pd.DataFrame:
    """How the records labelled AF under the rhythm-aware mapping are labelled under the published.

    Parameters
    ----------
    published, rhythm_aware : ECGDataset
        The same PTB-XL data root under the two mappings.

    Returns
    -------
    pandas.DataFrame
        One row per published class set (``+``-joined, ``dropped`` for records
        the published mapping drops) with ``records`` and ``split`` counts,
        most frequent first.
    """
    ra = rhythm_aware.records.set_index("record")
    af = ra[[("AF" in c) for c in ra.classes]]
    pub = published.records.set_index("record").classes
    labels = ["+".join(pub[r]) if r in pub.index else "dropped" for r in af.index]
    out = (
        pd.DataFrame({"published_labels": labels, "split": af.split.to_numpy()})
        .value_counts()
        .unstack("split", fill_value=0)
    )
    out["records"] = out.sum(axis=1)
    return out.sort_values("records", ascending=False)


def share_closed(
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    original: tuple[np.ndarray, np.ndarray, np.ndarray],
    model: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    metrics: tuple[str, ...] = ("f1", "auc"),
    level: float = 0.95,
) -> pd.DataFrame:
    """How much of the Original's gap a retrained model closes, with bootstrap intervals.

    Parameters
    ----------
    reference : (y_true, scores, thresholds)
        The Original on the CPSC test fold.
    original, model : (y_true, scores, thresholds)
        The Original and the retrained model on the same PTB-XL test records
        (same labels, same order; each with its own thresholds).
    n_boot, seed
        ``reference`` is resampled with ``seed``; ``original`` and ``model``
        with ``seed + 1``, the same draws for both (paired).
    metrics : tuple of str
    level : float

    Returns
    -------
    pandas.DataFrame
        One row per metric: ``metric``, ``improvement`` (model minus
        Original on PTB-XL, AVG) with ``improvement_ci_low/high``, and
        ``share`` (improvement / the Original's gap) with
        ``share_ci_low/high``. ``share`` is NaN where the Original's gap is
        not positive; resamples whose gap is not positive are left out of
        its interval (their count is ``share_undefined``).

    Raises
    ------
    ValueError
        If ``original`` and ``model`` hold different numbers of records.
    """
    if len(original[0]) != len(model[0]):
        raise ValueError(
            f"original and model differ in records: {len(original[0])}, {len(model[0])}"
        )
    boot = {
        "ref": bootstrap_metrics(*reference, n_boot=n_boot, seed=seed)[:, -1],
        "orig": bootstrap_metrics(*original, n_boot=n_boot, seed=seed + 1)[:, -1],
        "model": bootstrap_metrics(*model, n_boot=n_boot, seed=seed + 1)[:, -1],
    }
    point = {
        k: per_class_metrics(*s).loc["AVG"]
        for k, s in (("ref", reference), ("orig", original), ("model", model))
    }
    rows = []
    for metric in metrics:
        j = METRICS.index(metric)
        improvement = boot["model"][:, j] - boot["orig"][:, j]
        denominator = boot["ref"][:, j] - boot["orig"][:, j]
        share = np.where(
            denominator > 0, improvement / np.where(denominator > 0, denominator, 1), np.nan
        )
        gap0 = point["ref"][metric] - point["orig"][metric]
        imp0 = point["model"][metric] - point["orig"][metric]
        lo_i, hi_i = percentile_interval(improvement, level, axis=None)
        lo_s, hi_s = percentile_interval(share, level, axis=None)  # NaN: no gap in that resample
        rows.append(
            {
                "metric": metric,
                "improvement": imp0,
                "improvement_ci_low": lo_i,
                "improvement_ci_high": hi_i,
                "share": imp0 / gap0 if gap0 > 0 else np.nan,
                "share_ci_low": lo_s,
                "share_ci_high": hi_s,
                "share_undefined": int(np.isnan(share).sum()),
            }
        )
    return pd.DataFrame(rows)
