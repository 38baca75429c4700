"""The exact Shapley values of two lead games, whose players are leads.

These are *different games* from the one GradientExplainer approximates
(:mod:`ecgrepro.explain.shap_leads`), not its ground truth. GradientExplainer
(expected gradients) has the individual samples of every lead as players and
averages over a background distribution of records; summing its values over time
gives a per-lead number, but not the Shapley value of a game whose players are
leads. The games here:

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
occupies the last ``n_valid`` samples. In the lead games an absent lead is
replaced by the baseline only on the valid samples (the padding stays zero, as
in every input); the mean baseline (:func:`valid_mean`) averages each sample
over the records valid there.

The panels of Figures 2-5 that use these games are in
:mod:`ecgrepro.explain.shapley`, which re-exports every public name here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ecgrepro.beats import valid_lengths, valid_mask
from ecgrepro.config import LEADS
from ecgrepro.runtime import model_device

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
    device=None,
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
    device : str or torch.device, optional
        Where the coalitions are evaluated; None: the model's device (it is not moved).
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
    if device is None:
        device = model_device(model)
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
    lengths = valid_lengths(n_valid, (len(signals),), n_samples) if n_valid is not None else None
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
