"""Attributions per lead: SHAP's GradientExplainer as the published code, and exact
lead-level Shapley values as the ground truth it approximates.

Published code (METHODS.md, "SHAP per lead"): ``shap.GradientExplainer(model,
background)``; background = the first 100 records of the label table; explained =
the first 200 (they overlap); target = each record's argmax class; the signed SHAP
values are summed over time and over the records predicted as each class, per
lead, then normalised to sum to 1 across the 12 leads, and an AVG row is added.

Exact lead Shapley values treat the 12 leads as players: the value of a
coalition S is the class logit of the record with the leads outside S replaced
by a baseline (zeros, or the training-set mean signal). Evaluating all 2^12 =
4,096 coalitions gives the values exactly (Shapley 1953; the paper's Eq. in
Section 4.5 with leads as features).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import nn

from ecgrepro.config import CLASSES

with warnings.catch_warnings():
    # shap imports tqdm.auto, which warns in a notebook without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    import shap


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

    Returns
    -------
    numpy.ndarray, shape (n_explained, 12), float64
        Signed SHAP values summed over time, per lead (logit units).

    Notes
    -----
    Records are grouped by target and each group is explained against the
    same background for that class's logit alone; this equals the published
    ``ranked_outputs=1`` call when the targets are the argmax classes.
    """
    model = model.eval()
    bg = torch.from_numpy(np.ascontiguousarray(background, dtype=np.float32))
    out = np.zeros((len(explained), explained.shape[1]))
    for c in np.unique(targets):
        rows = np.flatnonzero(targets == c)
        explainer = shap.GradientExplainer(_ClassLogit(model, int(c)), bg)
        x = torch.from_numpy(np.ascontiguousarray(explained[rows], dtype=np.float32))
        values = explainer.shap_values(x, nsamples=nsamples, rseed=seed + int(c))
        values = np.asarray(values[0] if isinstance(values, list) else values)
        out[rows] = values.reshape(len(rows), explained.shape[1], -1).sum(axis=2)
    return out


def aggregate_per_lead(
    values: np.ndarray, targets: np.ndarray, n_classes: int = len(CLASSES)
) -> np.ndarray:
    """The published class x lead matrix: sum per class, normalise over leads, add AVG.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_records, n_leads)
        Per-record, per-lead attributions (summed over time).
    targets : numpy.ndarray of int, shape (n_records,)
        Class each record's values explain.
    n_classes : int

    Returns
    -------
    numpy.ndarray, shape (n_classes + 1, n_leads), float64
        Row c: the sum over records with target c, divided by its sum over
        leads (so the row sums to 1; signed entries may exceed 1 or be
        negative); NaN for a class with no record. Last row (AVG): the mean
        of the class rows that exist.
    """
    out = np.full((n_classes + 1, values.shape[1]), np.nan)
    for c in range(n_classes):
        rows = targets == c
        if rows.any():
            total = values[rows].sum(axis=0)
            out[c] = total / total.sum()
    if np.isfinite(out[:n_classes]).any():
        out[n_classes] = np.nanmean(out[:n_classes], axis=0)
    return out


def coalition_masks(n_players: int) -> np.ndarray:
    """All 2^n coalitions as a boolean array of shape (2^n, n); row k has bit i = (k >> i) & 1."""
    k = np.arange(2**n_players)
    return ((k[:, None] >> np.arange(n_players)) & 1).astype(bool)


def shapley_from_values(v: np.ndarray, n_players: int) -> np.ndarray:
    """Exact Shapley values from the value of every coalition.

    Parameters
    ----------
    v : numpy.ndarray, shape (2^n, ...)
        ``v[k]``: value of the coalition whose bit i is player i's presence.
    n_players : int

    Returns
    -------
    numpy.ndarray, shape (n, ...)
        phi_i = sum over S not containing i of |S|! (n - |S| - 1)! / n! [v(S + i) - v(S)].
    """
    k = np.arange(2**n_players)
    size = np.array([bin(i).count("1") for i in k])
    weight = np.array(
        [
            math.factorial(s) * math.factorial(n_players - s - 1) / math.factorial(n_players)
            for s in range(n_players)
        ]
    )
    phi = np.zeros((n_players,) + v.shape[1:])
    for i in range(n_players):
        without = k[(k >> i) & 1 == 0]
        w = weight[size[without]].reshape((-1,) + (1,) * (v.ndim - 1))
        phi[i] = (w * (v[without | (1 << i)] - v[without])).sum(axis=0)
    return phi


@torch.no_grad()
def exact_lead_shapley(
    model: nn.Module, x: np.ndarray, baseline: np.ndarray, batch_size: int = 256, device="cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Shapley values of every class logit with the leads as players.

    Parameters
    ----------
    model : torch.nn.Module
        (batch, n_leads, n_samples) -> (batch, n_outputs); put in eval mode.
    x : numpy.ndarray, shape (n_leads, n_samples), float32, mV
        The record.
    baseline : numpy.ndarray, shape (n_leads, n_samples), float32, mV
        What an absent lead is replaced by (zeros, or the training-set mean signal).
    batch_size : int
        Coalitions per forward pass.
    device : str or torch.device

    Returns
    -------
    phi : numpy.ndarray, shape (n_leads, n_outputs), float64
        Shapley value of each lead for each output (logit units).
    v : numpy.ndarray, shape (2^n_leads, n_outputs), float64
        The value of every coalition (``v[-1]`` = f(x), ``v[0]`` = f(baseline)),
        so that the efficiency property sum_i phi_i = v[-1] - v[0] can be checked.
    """
    model = model.eval().to(device)
    n = x.shape[0]
    masks = coalition_masks(n)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    bt = torch.as_tensor(baseline, dtype=torch.float32, device=device)
    values = []
    for start in range(0, len(masks), batch_size):
        m = torch.as_tensor(masks[start : start + batch_size], device=device)[:, :, None]
        values.append(model(torch.where(m, xt, bt)).double().cpu().numpy())
    v = np.concatenate(values)
    return shapley_from_values(v, n), v


def timed(fn, *args, **kwargs):
    """``(result, seconds)`` of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


@dataclass
class PanelResult:
    """Attributions of one model on one dataset (one of Figures 2-5).

    Attributes
    ----------
    matrices : dict of str -> numpy.ndarray, shape (10, 12)
        Class (9 + AVG) x lead matrices per method: ``gradient_published``,
        ``gradient_principled`` and ``exact_<baseline>``.
    exact : pandas.DataFrame
        One row per record with exact values: ``record, class,
        spearman_exact_vs_gradient, efficiency_error, seconds``.
    costs : pandas.DataFrame
        ``method, records, model_evaluations_per_record, seconds_per_record``.
    """

    matrices: dict
    exact: pd.DataFrame
    costs: pd.DataFrame


@torch.no_grad()
def _logits(model: nn.Module, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return np.concatenate(
        [
            model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).numpy()
            for i in range(0, len(x), batch_size)
        ]
    )


def spread_over_classes(targets: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` entries taking each class's first record, then each class's second, ..."""
    rank = np.array([np.sum(targets[:i] == targets[i]) for i in range(len(targets))])
    return np.lexsort((targets, rank))[:k]


def shap_panel(
    model: nn.Module,
    ds,
    n_background: int = 100,
    n_explained: int = 200,
    nsamples: int = 200,
    n_per_class: int = 20,
    exact_per_panel: int = 20,
    exact_baseline: str = "zeros",
    seed: int = 0,
) -> PanelResult:
    """Published SHAP, the principled variant and exact lead Shapley values for one panel.

    Parameters
    ----------
    model : torch.nn.Module
        A trained model (CPU), (batch, 12, n) -> (batch, 9) logits.
    ds : ecgrepro.data.ECGDataset
        Its record order is the label table's order.
    n_background, n_explained : int
        Published selection: the first rows of the label table (100 and 200).
    nsamples : int
        GradientExplainer samples per record.
    n_per_class : int
        Principled variant: test records per true class (background drawn
        from the training folds, ``n_background`` of them).
    exact_per_panel : int
        Principled records (spread over classes) whose exact values are computed.
    exact_baseline : {"zeros", "mean"}
        What replaces an absent lead: zeros, or the training folds' mean signal.
    seed : int

    Returns
    -------
    PanelResult

    Raises
    ------
    ValueError
        For an unknown ``exact_baseline``.
    """
    if exact_baseline not in ("zeros", "mean"):
        raise ValueError(f"exact_baseline must be 'zeros' or 'mean', not {exact_baseline!r}")
    model = model.eval().cpu()
    x_all = ds.signals
    matrices, costs, exact = {}, [], []
    bg_idx, ex_idx = published_selection(len(ds.records), n_background, n_explained)
    x_ex = np.asarray(x_all[ex_idx])
    targets = _logits(model, x_ex).argmax(axis=1)
    values, sec = timed(
        gradient_shap_per_lead, model, np.asarray(x_all[bg_idx]), x_ex, targets, nsamples, seed
    )
    matrices["gradient_published"] = aggregate_per_lead(values, targets)
    costs.append(
        ("GradientExplainer, published selection", len(x_ex), nsamples, sec / max(len(x_ex), 1))
    )
    train_rows, _ = ds.subset("train")
    test_rows, test_y = ds.subset("test")
    bg2, ex2, t2 = stratified_selection(
        train_rows, test_rows, test_y, n_background, n_per_class, seed
    )
    x_ex2 = np.asarray(x_all[ex2])
    values2, sec = timed(
        gradient_shap_per_lead, model, np.asarray(x_all[bg2]), x_ex2, t2, nsamples, seed
    )
    matrices["gradient_principled"] = aggregate_per_lead(values2, t2)
    costs.append(
        ("GradientExplainer, principled selection", len(x_ex2), nsamples, sec / max(len(x_ex2), 1))
    )
    baseline = (
        np.zeros(x_all.shape[1:], np.float32)
        if exact_baseline == "zeros"
        else np.asarray(x_all[train_rows]).mean(axis=0, dtype=np.float64).astype(np.float32)
    )
    chosen = spread_over_classes(t2, exact_per_panel)
    phis = np.zeros((len(chosen), x_all.shape[1]))
    for j, k in enumerate(chosen):
        (phi, v), sec = timed(exact_lead_shapley, model, x_ex2[k], baseline)
        phis[j] = phi[:, t2[k]]
        exact.append(
            {
                "record": ds.records.record.iloc[ex2[k]],
                "class": CLASSES[t2[k]],
                "spearman_exact_vs_gradient": spearmanr(phis[j], values2[k]).statistic,
                "efficiency_error": float(np.abs(phi.sum(axis=0) - (v[-1] - v[0])).max()),
                "seconds": sec,
            }
        )
    matrices[f"exact_{exact_baseline}"] = aggregate_per_lead(phis, t2[chosen])
    exact = pd.DataFrame(
        exact,
        columns=["record", "class", "spearman_exact_vs_gradient", "efficiency_error", "seconds"],
    )
    costs.append(
        (
            f"exact, {exact_baseline} baseline",
            len(chosen),
            2 ** x_all.shape[1],
            exact.seconds.mean() if len(exact) else np.nan,
        )
    )
    return PanelResult(
        matrices,
        exact,
        pd.DataFrame(
            costs,
            columns=["method", "records", "model_evaluations_per_record", "seconds_per_record"],
        ),
    )
