"""SHAP's GradientExplainer per lead, as the published code and as the principled
variant, and the class x lead matrices made of its values.

Published code (METHODS.md, "SHAP per lead"): ``shap.GradientExplainer(model,
background)``; background = the first 100 records of the label table; explained =
the first 200 (they overlap); target = each record's argmax class; the signed SHAP
values are summed over time and over the records predicted as each class, per
lead, then normalised to sum to 1 across the 12 leads, and an AVG row is added.

Normalisation. Dividing by the signed sum (the published rule, kept for the
faithful figure) breaks when that sum is negative (every share flips sign and
the rank order inverts) or near zero (the shares blow up). The variants
(principled selection, exact lead games), which explain the true class, are
divided by the sum of the absolute values instead (``normalise="abs"``), and
:func:`sum_flags` marks the rows whose signed sum is <= 0 or small
(|sum| < :data:`SMALL_SUM_SHARE` of the sum of absolute values).

Padding. A record shorter than the window is zero-padded at the front and
occupies the last ``n_valid`` samples. GradientExplainer's values are summed
over the valid samples only.

The exact lead games are in :mod:`ecgrepro.explain.lead_games`; the panels of
Figures 2-5 in :mod:`ecgrepro.explain.shapley`, which re-exports every public
name here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecgrepro.beats import valid_lengths
from ecgrepro.config import CLASSES
from ecgrepro.runtime import model_device

with warnings.catch_warnings():
    # shap imports tqdm.auto, which warns in a notebook without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    import shap

#: A class row whose signed sum over leads is below this share of its sum of absolute
#: values (in absolute value) is flagged "small": its signed-sum shares would blow up.
SMALL_SUM_SHARE = 0.05

#: Normalisations of :func:`aggregate_per_lead`.
NORMALISATIONS: dict[str, str] = {
    "signed": "divided by the signed sum over leads (published; rows sum to 1)",
    "abs": "divided by the sum of absolute values over leads (absolute values sum to 1)",
}


def published_selection(
    n_records: int, n_background: int = 100, n_explained: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Rows the published code used: the first ``n_background`` and first ``n_explained``.

    Parameters
    ----------
    n_records : int
        Records in the label table, in its order.
    n_background, n_explained : int
        100 and 200 in the published code (fewer if the table is shorter).

    Returns
    -------
    background, explained : numpy.ndarray of int
        Row indices; ``explained`` contains ``background`` whenever
        ``n_explained >= n_background`` (the published sets overlap).
    """
    return np.arange(min(n_background, n_records)), np.arange(min(n_explained, n_records))


def stratified_selection(
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    test_y: np.ndarray,
    n_background: int,
    n_per_class: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The principled variant: background from training records, explained records
    from the test fold stratified by true class.

    Parameters
    ----------
    train_rows : numpy.ndarray of int
        Candidate background rows (training folds).
    test_rows : numpy.ndarray of int
        Test-fold rows.
    test_y : numpy.ndarray, shape (len(test_rows), 9)
        Their multi-hot labels.
    n_background : int
        Background size, drawn without replacement.
    n_per_class : int
        Explained records per class (fewer where the test fold has fewer).
    seed : int

    Returns
    -------
    background : numpy.ndarray of int
    explained : numpy.ndarray of int
        Rows of the explained records (a record may appear for two classes).
    targets : numpy.ndarray of int
        The true class explained for each of them.
    """
    rng = np.random.default_rng(seed)
    background = rng.choice(train_rows, size=min(n_background, len(train_rows)), replace=False)
    explained, targets = [], []
    for c in range(test_y.shape[1]):
        members = np.flatnonzero(test_y[:, c] > 0)
        pick = rng.choice(members, size=min(n_per_class, len(members)), replace=False)
        explained += list(test_rows[np.sort(pick)])
        targets += [c] * len(pick)
    return np.sort(background), np.array(explained, dtype=int), np.array(targets, dtype=int)


class _ClassLogit(nn.Module):
    """The logit of one class, as a (batch, 1) output."""

    def __init__(self, model: nn.Module, target: int):
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x):
        return self.model(x)[:, self.target : self.target + 1]


def gradient_shap_per_lead(
    model: nn.Module,
    background: np.ndarray,
    explained: np.ndarray,
    targets: np.ndarray,
    nsamples: int = 200,
    seed: int = 0,
    n_valid: np.ndarray | None = None,
) -> np.ndarray:
    """SHAP GradientExplainer values of each record's target-class logit, summed over time.

    Parameters
    ----------
    model : torch.nn.Module
        (batch, 12, n_samples) float32 mV -> (batch, 9) logits; put in eval mode.
    background : numpy.ndarray, shape (n_background, 12, n_samples), float32, mV
    explained : numpy.ndarray, shape (n_explained, 12, n_samples), float32, mV
    targets : numpy.ndarray of int, shape (n_explained,)
        Class explained per record (argmax in the published code).
    nsamples : int
        GradientExplainer's samples per record (its default, 200, as the published code).
    seed : int
        ``rseed`` of the explainer.
    n_valid : numpy.ndarray of int, shape (n_explained,), optional
        Valid samples of each explained record (the last ``n_valid``; the rest
        is zero-padding). Only those are summed: on the padding, x - x' is
        minus the background record, which says nothing about the record
        explained. None: all samples.

    Returns
    -------
    numpy.ndarray, shape (n_explained, 12), float64
        Signed SHAP values summed over the valid samples, per lead (logit units).

    Notes
    -----
    Records are grouped by target and each group is explained against the
    same background for that class's logit alone; this equals the published
    ``ranked_outputs=1`` call when the targets are the argmax classes.
    """
    model = model.eval()
    n_samples = explained.shape[-1]
    lengths = valid_lengths(n_valid, (len(explained),), n_samples)
    device = model_device(model)  # explained on the model's device
    bg = torch.from_numpy(np.ascontiguousarray(background, dtype=np.float32)).to(device)
    out = np.zeros((len(explained), explained.shape[1]))
    for c in np.unique(targets):
        rows = np.flatnonzero(targets == c)
        explainer = shap.GradientExplainer(_ClassLogit(model, int(c)), bg)
        x = torch.from_numpy(np.ascontiguousarray(explained[rows], dtype=np.float32)).to(device)
        values = explainer.shap_values(x, nsamples=nsamples, rseed=seed + int(c))
        values = np.asarray(values[0] if isinstance(values, list) else values)
        values = values.reshape(len(rows), explained.shape[1], -1)
        keep = np.arange(n_samples)[None, :] >= (n_samples - lengths[rows])[:, None]
        out[rows] = (values * keep[:, None, :]).sum(axis=2)
    return out


def _class_totals(values: np.ndarray, targets: np.ndarray, n_classes: int):
    for c in range(n_classes):
        rows = targets == c
        yield c, int(rows.sum()), values[rows].sum(axis=0) if rows.any() else None


def aggregate_per_lead(
    values: np.ndarray,
    targets: np.ndarray,
    n_classes: int = len(CLASSES),
    normalise: str = "signed",
) -> np.ndarray:
    """The class x lead matrix: sum per class, normalise over leads, add AVG.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_records, n_leads)
        Per-record, per-lead attributions (summed over time).
    targets : numpy.ndarray of int, shape (n_records,)
        Class each record's values explain.
    n_classes : int
    normalise : {"signed", "abs"}
        ``"signed"`` (the published code): row / its sum over leads, so the row
        sums to 1; with a negative sum every share flips sign, near zero they
        blow up. ``"abs"``: row / the sum of its absolute values, so signs and
        ranks are kept and the absolute values sum to 1. See :func:`sum_flags`.

    Returns
    -------
    numpy.ndarray, shape (n_classes + 1, n_leads), float64
        Row c: the sum over records with target c, normalised; NaN for a class
        with no record (or an all-zero sum). Last row (AVG): the mean of the
        class rows that exist.

    Raises
    ------
    ValueError
        For an unknown ``normalise``.
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {list(NORMALISATIONS)}, not {normalise!r}")
    out = np.full((n_classes + 1, values.shape[1]), np.nan)
    for c, _, total in _class_totals(values, targets, n_classes):
        if total is None:
            continue
        denominator = total.sum() if normalise == "signed" else np.abs(total).sum()
        if denominator != 0:
            out[c] = total / denominator
    if np.isfinite(out[:n_classes]).any():
        out[n_classes] = np.nanmean(out[:n_classes], axis=0)
    return out


def sum_flags(
    values: np.ndarray,
    targets: np.ndarray,
    n_classes: int = len(CLASSES),
    small: float = SMALL_SUM_SHARE,
) -> pd.DataFrame:
    """Which class rows have a signed sum over leads that is <= 0 or small.

    For class c, T = the sum of its records' per-lead values (a vector over
    leads), S = sum over leads of T, A = sum over leads of |T|. The row is
    flagged ``"sum <= 0"`` when S <= 0 (the published shares T / S flip sign
    and their rank order inverts) and ``"small sum"`` when 0 < S < ``small`` * A
    (the published shares exceed 1 / ``small`` in absolute value somewhere and
    are dominated by cancellation).

    Parameters
    ----------
    values : numpy.ndarray, shape (n_records, n_leads)
    targets : numpy.ndarray of int, shape (n_records,)
    n_classes : int
    small : float
        Threshold on S / A (default :data:`SMALL_SUM_SHARE`, 5%).

    Returns
    -------
    pandas.DataFrame
        One row per class with records: ``class, records, signed_sum,
        abs_sum, signed_share`` (S / A, in [-1, 1]) and ``flag`` ("" when fine).
    """
    rows = []
    for c, n, total in _class_totals(values, targets, n_classes):
        if total is None:
            continue
        signed, absolute = float(total.sum()), float(np.abs(total).sum())
        share = signed / absolute if absolute > 0 else np.nan
        flag = "sum <= 0" if signed <= 0 else ("small sum" if share < small else "")
        label = CLASSES[c] if n_classes == len(CLASSES) else str(c)
        rows.append((label, n, signed, absolute, share, flag))
    return pd.DataFrame(
        rows, columns=["class", "records", "signed_sum", "abs_sum", "signed_share", "flag"]
    )
