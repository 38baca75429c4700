"""Attributions per lead: SHAP's GradientExplainer as the published code, and the
exact Shapley values of two lead games.

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

Exact lead games. These are *different games* from the one GradientExplainer
approximates, not its ground truth. GradientExplainer (expected gradients) has
the individual samples of every lead as players and averages over a background
distribution of records; summing its values over time gives a per-lead number,
but not the Shapley value of a game whose players are leads. The games here:

- ``leads12``: the 12 leads are the players; the value of a coalition S is the
  class logit of the record with the leads outside S replaced by one fixed
  baseline (zeros, or the training-set mean signal). All 2^12 = 4,096
  coalitions are evaluated, so the values are exact for this game (Shapley 1953).
- ``independent8``: only 8 leads are independent: III, aVR, aVL and aVF are
  computed from I and II (Einthoven and Goldberger: III = II - I,
  aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2; :data:`LIMB_FROM_I_II`).
  In the 12-player game the credit for one signal is split among redundant
  channels. Here the players are I, II and V1-V6 (:data:`INDEPENDENT_LEADS`;
  2^8 = 256 coalitions); in every coalition, including the full one, the four
  derived limb leads are recomputed from the coalition's I and II by those
  formulas, with an absent I or II replaced by the baseline (so with the zero
  baseline a coalition without I sees III = II, aVR = -II/2, aVL = -II/2,
  aVF = II). The full coalition is therefore the record with its derived leads
  recomputed, which differs from the recorded one by the recording's rounding
  and filtering (:func:`limb_residual`).

Efficiency (the values sum to v(all) - v(none)) holds for every value
function; checking it checks the arithmetic, it is not evidence that a game
or its values are right.

Padding. A record shorter than the window is zero-padded at the front and
occupies the last ``n_valid`` samples. GradientExplainer's values are summed
over the valid samples only; in the lead games an absent lead is replaced by
the baseline only on the valid samples (the padding stays zero, as in every
input); the mean baseline averages each sample over the records valid there.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import nn

from ecgrepro.beats import valid_mask
from ecgrepro.config import CLASSES, LEADS
from ecgrepro.explain.store import cached

with warnings.catch_warnings():
    # shap imports tqdm.auto, which warns in a notebook without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    import shap

#: The 8 independent leads of the standard 12-lead ECG, the players of the ``independent8`` game.
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

#: The derived limb leads as (coefficient of I, coefficient of II): III = II - I,
#: aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2 (Einthoven's law, Goldberger's leads).
LIMB_FROM_I_II: dict[str, tuple[float, float]] = {
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}

#: The lead games: name -> the leads that are players.
LEAD_GAMES: dict[str, tuple[str, ...]] = {"leads12": LEADS, "independent8": INDEPENDENT_LEADS}

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


def _valid_lengths(n_valid, n: int, n_samples: int) -> np.ndarray:
    if n_valid is None:
        return np.full(n, n_samples, dtype=np.int64)
    out = np.asarray(n_valid, dtype=np.int64).reshape(-1)
    if out.shape != (n,) or (out < 1).any() or (out > n_samples).any():
        raise ValueError(f"n_valid must hold {n} lengths in [1, {n_samples}], got {n_valid}")
    return out


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
    lengths = _valid_lengths(n_valid, len(explained), n_samples)
    bg = torch.from_numpy(np.ascontiguousarray(background, dtype=np.float32))
    out = np.zeros((len(explained), explained.shape[1]))
    for c in np.unique(targets):
        rows = np.flatnonzero(targets == c)
        explainer = shap.GradientExplainer(_ClassLogit(model, int(c)), bg)
        x = torch.from_numpy(np.ascontiguousarray(explained[rows], dtype=np.float32))
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


def recompute_limb_leads(x: np.ndarray | torch.Tensor):
    """The record with III, aVR, aVL and aVF recomputed from its I and II (:data:`LIMB_FROM_I_II`).

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor, shape (..., 12, n_samples), mV
        Leads in :data:`ecgrepro.config.LEADS` order.

    Returns
    -------
    Same type and shape as ``x`` (a copy).
    """
    out = x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)
    lead_i, lead_ii = x[..., LEADS.index("I"), :], x[..., LEADS.index("II"), :]
    for lead, (a, b) in LIMB_FROM_I_II.items():
        out[..., LEADS.index(lead), :] = a * lead_i + b * lead_ii
    return out


def limb_residual(x: np.ndarray) -> float:
    """Largest |recorded - recomputed| over the derived limb leads, mV (0: an ideal recording)."""
    x = np.asarray(x, dtype=float)
    return float(np.abs(recompute_limb_leads(x) - x).max())


def coalition_inputs(
    x: torch.Tensor, baseline: torch.Tensor, masks: torch.Tensor, game: str = "leads12"
) -> torch.Tensor:
    """The model inputs of a batch of coalitions of one lead game.

    Parameters
    ----------
    x, baseline : torch.Tensor, shape (12, n_samples), mV
        The record and what an absent player is replaced by (already equal to
        ``x`` on the padding, see :func:`exact_lead_shapley`).
    masks : torch.Tensor of bool, shape (k, n_players)
        Player presence, players in :data:`LEAD_GAMES` ``[game]`` order.
    game : {"leads12", "independent8"}

    Returns
    -------
    torch.Tensor, shape (k, 12, n_samples)
        ``leads12``: each lead from ``x`` where present, else from ``baseline``.
        ``independent8``: I, II, V1-V6 likewise; III, aVR, aVL and aVF
        recomputed from the coalition's I and II (:func:`recompute_limb_leads`).
    """
    if game == "leads12":
        return torch.where(masks[:, :, None], x, baseline)
    idx = torch.as_tensor([LEADS.index(lead) for lead in INDEPENDENT_LEADS], device=x.device)
    out = baseline.expand(len(masks), -1, -1).clone()
    out[:, idx] = torch.where(masks[:, :, None], x[idx], baseline[idx])
    return recompute_limb_leads(out)


@torch.no_grad()
def exact_lead_shapley(
    model: nn.Module,
    x: np.ndarray,
    baseline: np.ndarray,
    batch_size: int = 256,
    device="cpu",
    game: str = "leads12",
    n_valid: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Shapley values of every class logit in a lead game (see the module notes).

    Exact for the game it defines (leads as players, one fixed baseline), which
    is not the game GradientExplainer approximates.

    Parameters
    ----------
    model : torch.nn.Module
        (batch, 12, n_samples) -> (batch, n_outputs); put in eval mode.
    x : numpy.ndarray, shape (12, n_samples), float32, mV
        The record, leads in :data:`ecgrepro.config.LEADS` order (any number
        of leads for ``leads12``).
    baseline : numpy.ndarray, shape (12, n_samples), float32, mV
        What an absent player is replaced by (zeros, or the training-set mean
        signal), on the valid samples only.
    batch_size : int
        Coalitions per forward pass.
    device : str or torch.device
    game : {"leads12", "independent8"}
        Players: the 12 leads, or I, II, V1-V6 with the derived limb leads
        recomputed from the coalition's I and II (:func:`coalition_inputs`).
    n_valid : int, optional
        Valid samples (the last ``n_valid``); on the padding before them the
        input stays as it is (zero) in every coalition. None: all.

    Returns
    -------
    phi : numpy.ndarray, shape (n_players, n_outputs), float64
        Shapley value of each player for each output (logit units).
    v : numpy.ndarray, shape (2^n_players, n_outputs), float64
        The value of every coalition (``v[-1]``: all present; ``v[0]``: all
        baseline), so that efficiency, sum_i phi_i = v[-1] - v[0], can be
        checked (an arithmetic check: it holds for any value function).

    Raises
    ------
    ValueError
        For an unknown game, or ``independent8`` on a record without 12 leads.
    """
    if game not in LEAD_GAMES:
        raise ValueError(f"game must be one of {list(LEAD_GAMES)}, not {game!r}")
    if game == "independent8" and x.shape[0] != len(LEADS):
        raise ValueError(f"the independent8 game needs the 12 leads, got {x.shape[0]}")
    model = model.eval().to(device)
    n = x.shape[0] if game == "leads12" else len(INDEPENDENT_LEADS)
    masks = coalition_masks(n)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    bt = torch.as_tensor(baseline, dtype=torch.float32, device=device)
    valid = torch.as_tensor(valid_mask(x.shape[-1], n_valid), device=device)
    bt = torch.where(valid, bt, xt)  # the padding is part of every input, never of a player
    values = []
    for start in range(0, len(masks), batch_size):
        m = torch.as_tensor(masks[start : start + batch_size], device=device)
        values.append(model(coalition_inputs(xt, bt, m, game)).double().cpu().numpy())
    v = np.concatenate(values)
    return shapley_from_values(v, n), v


def valid_mean(
    signals: np.ndarray, rows: np.ndarray, n_valid: np.ndarray | None = None, chunk: int = 256
) -> np.ndarray:
    """Mean signal of some records, each sample averaged over the records valid there.

    Parameters
    ----------
    signals : numpy.ndarray, shape (n_records, 12, n_samples), float32, mV
        Possibly memory-mapped.
    rows : numpy.ndarray of int
        Records averaged (the training folds for the ``mean`` baseline).
    n_valid : numpy.ndarray of int, shape (n_records,), optional
        Valid samples of every record of ``signals``. None: all.
    chunk : int
        Records read at a time.

    Returns
    -------
    numpy.ndarray, shape (12, n_samples), float32
        Zero where no record is valid.
    """
    n_samples = signals.shape[-1]
    lengths = _valid_lengths(n_valid, len(signals), n_samples) if n_valid is not None else None
    total = np.zeros(signals.shape[1:])
    count = np.zeros(n_samples)
    rows = np.sort(np.asarray(rows))
    for start in range(0, len(rows), chunk):
        r = rows[start : start + chunk]
        x = np.asarray(signals[r], dtype=np.float64)
        nv = np.full(len(r), n_samples) if lengths is None else lengths[r]
        keep = np.arange(n_samples)[None, :] >= (n_samples - nv)[:, None]
        total += (x * keep[:, None, :]).sum(axis=0)
        count += keep.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)


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
    matrices : dict of str -> numpy.ndarray, shape (10, n_players)
        Class (9 + AVG) x lead matrices per method: ``gradient_published``
        (signed-sum normalisation, as published), ``gradient_principled``,
        ``exact_<baseline>`` (12-lead game) and ``exact8_<baseline>``
        (independent-lead game, 8 columns: :data:`INDEPENDENT_LEADS`), these
        three normalised by the sum of absolute values.
    flags : pandas.DataFrame
        :func:`sum_flags` per method: ``method, class, records, signed_sum,
        abs_sum, signed_share, flag``.
    exact : pandas.DataFrame
        One row per record with exact values: ``record, class,
        spearman_exact_vs_gradient`` (12-lead game against GradientExplainer's
        per-lead sums), ``efficiency_error``, ``efficiency_error_8``
        (arithmetic checks), ``limb_residual_mv`` (recorded minus recomputed
        derived limb leads, :func:`limb_residual`), ``logit_change_8`` (target
        logit of the record with recomputed limb leads minus that of the
        record), ``seconds``, ``seconds_8``.
    costs : pandas.DataFrame
        ``method, records, model_evaluations_per_record, seconds_per_record``
        (the seconds of the computation, also when the result was re-read).
    values : dict of str -> numpy.ndarray, shape (n_records, n_players)
        Per-record values per method (target class only).
    targets : dict of str -> numpy.ndarray of int
        Class explained per record, per method.
    rows : dict of str -> numpy.ndarray of int
        The dataset rows of ``values[method]``'s records.
    reused : list of str
        Results re-read from the store instead of computed.
    """

    matrices: dict
    exact: pd.DataFrame
    costs: pd.DataFrame
    flags: pd.DataFrame = field(default_factory=pd.DataFrame)
    values: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)
    reused: list = field(default_factory=list)
    rows: dict = field(default_factory=dict)

    def row_marks(self, method: str) -> list[str]:
        """The flag of each row of ``matrices[method]`` (9 classes, then "" for AVG)."""
        flags = self.flags[self.flags.method == method].set_index("class").flag
        return [str(flags.get(c, "")) for c in CLASSES] + [""]


@torch.no_grad()
def _logits(model: nn.Module, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return (
        np.concatenate(
            [
                model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).numpy()
                for i in range(0, len(x), batch_size)
            ]
        )
        if len(x)
        else np.zeros((0, len(CLASSES)), np.float32)
    )


def spread_over_classes(targets: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` entries taking each class's first record, then each class's second, ..."""
    rank = np.array([np.sum(targets[:i] == targets[i]) for i in range(len(targets))])
    return np.lexsort((targets, rank))[:k]


def dataset_valid_lengths(ds, rows: np.ndarray) -> np.ndarray:
    """Valid samples of some records of a dataset (``ds.records["n_valid"]``; else all)."""
    rows = np.asarray(rows, dtype=int)
    if "n_valid" in ds.records:
        return ds.records["n_valid"].to_numpy(dtype=np.int64)[rows]
    return np.full(len(rows), ds.n_samples, dtype=np.int64)


def _store(store_dir, name: str, payload: dict, compute, log, reused: list) -> dict:
    """``compute()``, through the store when there is one; notes what was re-read."""
    if store_dir is None:
        return compute()
    hit = []
    out = cached(store_dir, name, payload, compute, log=lambda line: hit.append(line))
    if hit and "reusing" in hit[0]:
        reused.append(name)
    if log:
        for line in hit:
            log(line)
    return out


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
    model_key: str = "",
    store_dir: Path | str | None = None,
    log=None,
) -> PanelResult:
    """Published SHAP, the principled variant and the two exact lead games for one panel.

    Parameters
    ----------
    model : torch.nn.Module
        A trained model (CPU), (batch, 12, n) -> (batch, 9) logits.
    ds : ecgrepro.data.ECGDataset
        Its record order is the label table's order; ``records["n_valid"]``,
        where present, gives each record's valid samples.
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
    model_key : str
        The model's artifact key (:attr:`ecgrepro.pipeline.TrainedModel.key`);
        required with ``store_dir``.
    store_dir : pathlib.Path or str, optional
        Where results are stored (``pipe.artifacts / "explain"``), keyed by the
        model, the records and the parameters (:func:`ecgrepro.explain.store.cached`);
        None: compute everything, store nothing.
    log : callable, optional
        Receives one line per stored result (reused or computed).

    Returns
    -------
    PanelResult

    Raises
    ------
    ValueError
        For an unknown ``exact_baseline``, or a store without a model key.
    """
    if exact_baseline not in ("zeros", "mean"):
        raise ValueError(f"exact_baseline must be 'zeros' or 'mean', not {exact_baseline!r}")
    if store_dir is not None and not model_key:
        raise ValueError("storing explanations needs the model's artifact key (model_key)")
    model = model.eval().cpu()
    x_all = ds.signals
    names = ds.records.record.astype(str).to_numpy()
    reused: list[str] = []
    common = {
        "model": model_key,
        "dataset": ds.name,
        "data": ds.data_key,
        "fs_hz": ds.fs_hz,
        "n_samples": ds.n_samples,
        "nsamples": nsamples,
        "seed": seed,
    }
    tag = f"{model_key or 'model'}-{ds.name}"

    # published selection: the first rows; target = the predicted class
    bg_idx, ex_idx = published_selection(len(ds.records), n_background, n_explained)
    nv_ex = dataset_valid_lengths(ds, ex_idx)

    def published():
        x_ex = np.asarray(x_all[ex_idx])
        targets = _logits(model, x_ex).argmax(axis=1)
        values, sec = timed(
            gradient_shap_per_lead,
            model,
            np.asarray(x_all[bg_idx]),
            x_ex,
            targets,
            nsamples,
            seed,
            nv_ex,
        )
        return {"targets": targets, "values": values, "seconds": sec}

    pub = _store(
        store_dir,
        f"shap-published-{tag}",
        {**common, "background": names[bg_idx], "explained": names[ex_idx], "n_valid": nv_ex},
        published,
        log,
        reused,
    )

    # principled selection: background from the training folds, test records by true class
    train_rows, _ = ds.subset("train")
    test_rows, test_y = ds.subset("test")
    bg2, ex2, t2 = stratified_selection(
        train_rows, test_rows, test_y, n_background, n_per_class, seed
    )
    nv_ex2 = dataset_valid_lengths(ds, ex2)

    def principled():
        values, sec = timed(
            gradient_shap_per_lead,
            model,
            np.asarray(x_all[bg2]),
            np.asarray(x_all[ex2]),
            t2,
            nsamples,
            seed,
            nv_ex2,
        )
        return {"values": values, "seconds": sec}

    pri = _store(
        store_dir,
        f"shap-principled-{tag}",
        {
            **common,
            "background": names[bg2],
            "explained": names[ex2],
            "targets": t2,
            "n_valid": nv_ex2,
        },
        principled,
        log,
        reused,
    )

    # exact lead games on some principled records
    chosen = spread_over_classes(t2, exact_per_panel)
    rows_c, t_c, nv_c = ex2[chosen], t2[chosen], nv_ex2[chosen]

    @functools.cache
    def baseline():
        if exact_baseline == "zeros":
            return np.zeros(x_all.shape[1:], np.float32)
        all_valid = dataset_valid_lengths(ds, np.arange(len(ds.records)))
        return valid_mean(x_all, train_rows, all_valid)

    def exact(game):
        def compute():
            x = np.asarray(x_all[rows_c])
            n_players = len(LEAD_GAMES[game])
            out = {
                "phi": np.zeros((len(x), n_players, len(CLASSES))),
                "v_none": np.zeros((len(x), len(CLASSES))),
                "v_all": np.zeros((len(x), len(CLASSES))),
                "f_x": _logits(model, x).astype(np.float64),
                "seconds": np.zeros(len(x)),
            }
            for j in range(len(x)):
                (phi, v), sec = timed(
                    exact_lead_shapley, model, x[j], baseline(), game=game, n_valid=int(nv_c[j])
                )
                out["phi"][j], out["v_none"][j], out["v_all"][j] = phi, v[0], v[-1]
                out["seconds"][j] = sec
            out["limb_residual_mv"] = np.array([limb_residual(r) for r in x])
            return out

        payload = {
            **common,
            "game": game,
            "baseline": exact_baseline,
            "records": names[rows_c],
            "targets": t_c,
            "n_valid": nv_c,
        }
        payload.pop("nsamples")
        return _store(store_dir, f"lead-shapley-{game}-{tag}", payload, compute, log, reused)

    games = {"leads12": exact("leads12"), "independent8": exact("independent8")}

    j = np.arange(len(chosen))
    values = {
        "gradient_published": pub["values"],
        "gradient_principled": pri["values"],
        f"exact_{exact_baseline}": games["leads12"]["phi"][j, :, t_c],
        f"exact8_{exact_baseline}": games["independent8"]["phi"][j, :, t_c],
    }
    targets = {
        "gradient_published": np.asarray(pub["targets"], dtype=int),
        "gradient_principled": t2,
        f"exact_{exact_baseline}": t_c,
        f"exact8_{exact_baseline}": t_c,
    }
    matrices, flags = {}, []
    for method, vals in values.items():
        rule = "signed" if method == "gradient_published" else "abs"
        # (records, leads * ...); explicit so that a panel without exact records (0 rows) works
        vals = vals.reshape(len(targets[method]), int(np.prod(vals.shape[1:])))
        matrices[method] = aggregate_per_lead(vals, targets[method], normalise=rule)
        flags.append(sum_flags(vals, targets[method]).assign(method=method))
    flags = pd.concat(flags, ignore_index=True)[
        ["method", "class", "records", "signed_sum", "abs_sum", "signed_share", "flag"]
    ]

    g12, g8 = games["leads12"], games["independent8"]
    exact_rows = []
    for k in j:
        gradient = pri["values"][chosen[k]]
        phi12 = values[f"exact_{exact_baseline}"][k]
        exact_rows.append(
            {
                "record": names[rows_c[k]],
                "class": CLASSES[t_c[k]],
                "spearman_exact_vs_gradient": spearmanr(phi12, gradient).statistic
                if np.ptp(phi12) > 0 and np.ptp(gradient) > 0
                else np.nan,
                "efficiency_error": float(
                    np.abs(g12["phi"][k].sum(axis=0) - (g12["v_all"][k] - g12["v_none"][k])).max()
                ),
                "efficiency_error_8": float(
                    np.abs(g8["phi"][k].sum(axis=0) - (g8["v_all"][k] - g8["v_none"][k])).max()
                ),
                "limb_residual_mv": float(g8["limb_residual_mv"][k]),
                "logit_change_8": float(g8["v_all"][k, t_c[k]] - g8["f_x"][k, t_c[k]]),
                "seconds": float(g12["seconds"][k]),
                "seconds_8": float(g8["seconds"][k]),
            }
        )
    columns = [
        "record",
        "class",
        "spearman_exact_vs_gradient",
        "efficiency_error",
        "efficiency_error_8",
        "limb_residual_mv",
        "logit_change_8",
        "seconds",
        "seconds_8",
    ]
    exact_df = pd.DataFrame(exact_rows, columns=columns)
    n_pub, n_pri = len(pub["values"]), len(pri["values"])
    costs = pd.DataFrame(
        [
            (
                "GradientExplainer, published selection",
                n_pub,
                nsamples,
                float(pub["seconds"]) / max(n_pub, 1),
            ),
            (
                "GradientExplainer, principled selection",
                n_pri,
                nsamples,
                float(pri["seconds"]) / max(n_pri, 1),
            ),
            (
                f"exact 12-lead game, {exact_baseline} baseline",
                len(chosen),
                2**12,
                exact_df.seconds.mean() if len(exact_df) else np.nan,
            ),
            (
                f"exact 8-lead game, {exact_baseline} baseline",
                len(chosen),
                2**8,
                exact_df.seconds_8.mean() if len(exact_df) else np.nan,
            ),
        ],
        columns=["method", "records", "model_evaluations_per_record", "seconds_per_record"],
    )
    rows = {
        "gradient_published": np.asarray(ex_idx, dtype=int),
        "gradient_principled": np.asarray(ex2, dtype=int),
        f"exact_{exact_baseline}": np.asarray(rows_c, dtype=int),
        f"exact8_{exact_baseline}": np.asarray(rows_c, dtype=int),
    }
    return PanelResult(matrices, exact_df, costs, flags, values, targets, reused, rows)


def lead_rank(row: np.ndarray, lead: str, leads: tuple[str, ...]) -> int | None:
    """Rank of ``lead`` in one class row (1 = largest value); None if absent or the row is NaN."""
    if lead not in leads or not np.isfinite(row).all():
        return None
    return int((row > row[leads.index(lead)]).sum() + 1)


def leads_of(matrix: np.ndarray) -> tuple[str, ...]:
    """The column leads of a class x lead matrix: 12 leads, or the 8 independent ones."""
    return INDEPENDENT_LEADS if matrix.shape[-1] == len(INDEPENDENT_LEADS) else LEADS


def claim_ranks(results: dict, claims: list[tuple[str, str]]) -> pd.DataFrame:
    """Each "lead X for class C" reading as X's rank in C's row, per panel and method.

    Parameters
    ----------
    results : dict of str -> PanelResult
        Panel name -> its result.
    claims : list of (class, lead)

    Returns
    -------
    pandas.DataFrame
        Rows: ``"<lead> for <class>"``; columns: (panel, method). Entries: the
        rank (1 = largest share), ``"-"`` where no record of the class was
        explained, ``"derived"`` where the lead is not a player of the game
        (aVF in the 8-lead game).
    """
    table = {}
    for cls, lead in claims:
        row = {}
        for panel, r in results.items():
            for method, mat in r.matrices.items():
                values = mat[CLASSES.index(cls)]
                leads = leads_of(mat)
                rank = lead_rank(values, lead, leads)
                row[(panel, method)] = (
                    "derived" if lead not in leads else "-" if rank is None else rank
                )
        table[f"{lead} for {cls}"] = row
    return pd.DataFrame(table).T


def limb_credit(results: dict, classes: tuple[str, ...], baseline: str = "zeros") -> pd.DataFrame:
    """Where the limb leads' credit goes between the 12-lead and the 8-lead game.

    Parameters
    ----------
    results : dict of str -> PanelResult
    classes : tuple of str
        Classes to report (those of the paper's readings).
    baseline : str
        The exact games' baseline (method names ``exact_<baseline>``, ``exact8_<baseline>``).

    Returns
    -------
    pandas.DataFrame
        One row per panel and class with explained records: the 12-lead game's
        shares (|.|-normalised) of I, II, aVF and of the four derived limb leads
        together (``derived_12``), and the 8-lead game's shares of I and II.
    """
    out = []
    for panel, r in results.items():
        m12, m8 = r.matrices[f"exact_{baseline}"], r.matrices[f"exact8_{baseline}"]
        for cls in classes:
            c = CLASSES.index(cls)
            if not (np.isfinite(m12[c]).all() and np.isfinite(m8[c]).all()):
                continue
            derived = [LEADS.index(lead) for lead in LIMB_FROM_I_II]
            out.append(
                {
                    "panel": panel,
                    "class": cls,
                    "I_12": m12[c, LEADS.index("I")],
                    "II_12": m12[c, LEADS.index("II")],
                    "aVF_12": m12[c, LEADS.index("aVF")],
                    "derived_12": m12[c, derived].sum(),
                    "I_8": m8[c, INDEPENDENT_LEADS.index("I")],
                    "II_8": m8[c, INDEPENDENT_LEADS.index("II")],
                }
            )
    columns = ["panel", "class", "I_12", "II_12", "aVF_12", "derived_12", "I_8", "II_8"]
    return pd.DataFrame(out, columns=columns)
