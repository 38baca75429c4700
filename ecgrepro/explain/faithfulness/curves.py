"""Deletion and insertion curves (Samek et al. 2017, IEEE TNNLS; Petsiuk et al. 2018, RISE):
units of lead x 40 ms removed most- or least-relevant first, or whole leads, and the
areas under the class probability's curve.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecgrepro.beats import valid_lengths, valid_mask
from ecgrepro.explain.deletion_mask import bin_grid, lowpass
from ecgrepro.explain.faithfulness.maps import lead_scores, unit_ranks, unit_scores
from ecgrepro.explain.lead_games import LEAD_GAMES, coalition_inputs
from ecgrepro.explain.methods import batch_slices

#: What replaces a removed unit (:func:`perturb`).
REPLACEMENTS: tuple[str, ...] = ("interpolate", "zero", "blur")


def interpolate_removed(x: np.ndarray, removed: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace removed samples by linear interpolation between the nearest kept ones, per lead.

    Parameters
    ----------
    x : numpy.ndarray, shape (..., n_samples), mV
    removed : numpy.ndarray of bool, same shape
    valid : numpy.ndarray of bool, broadcastable to ``x``
        The record's own samples: padding is neither an anchor nor replaced.

    Returns
    -------
    numpy.ndarray, same shape and dtype as ``x``
        Removed samples between two kept ones lie on the line joining them;
        before the first (after the last) kept sample they take its value; a
        lead with no kept sample becomes 0 mV.
    """
    x = np.asarray(x)
    valid = np.broadcast_to(valid, x.shape)
    removed = removed & valid
    kept = valid & ~removed
    t = np.broadcast_to(np.arange(x.shape[-1]), x.shape)
    prev = np.maximum.accumulate(np.where(kept, t, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(kept, t, x.shape[-1]), -1), axis=-1), -1)
    has_prev, has_next = prev >= 0, nxt < x.shape[-1]
    xp = np.take_along_axis(x, np.clip(prev, 0, None), -1)
    xn = np.take_along_axis(x, np.clip(nxt, None, x.shape[-1] - 1), -1)
    both = has_prev & has_next
    with np.errstate(invalid="ignore", divide="ignore"):  # kept samples (prev = next) are not used
        w = (t - prev) / np.where(both, nxt - prev, 1)
    line = np.where(
        both,
        xp + w * (xn - xp),
        np.where(has_prev, xp, np.where(has_next, xn, 0.0)),
    )
    return np.where(removed, line, x).astype(x.dtype)


def perturb(
    x: np.ndarray,
    removed_units: np.ndarray,
    bin_len: int,
    valid: np.ndarray,
    replacement: str = "interpolate",
    blurred: np.ndarray | None = None,
) -> np.ndarray:
    """Inputs with some units removed.

    Parameters
    ----------
    x : numpy.ndarray, shape (12, n_samples), float32, mV
        One record.
    removed_units : numpy.ndarray of bool, shape (k, 12, n_units)
        Which units each of the ``k`` inputs has removed.
    bin_len : int
        Samples per unit (units aligned to the end of the input).
    valid : numpy.ndarray of bool, shape (n_samples,)
        The record's own samples; the padding is never changed.
    replacement : {"interpolate", "zero", "blur"}
        Linear interpolation across each removed stretch (per lead), 0 mV, or
        ``blurred``.
    blurred : numpy.ndarray, shape (12, n_samples), optional
        The low-passed record (:func:`ecgrepro.explain.deletion_mask.lowpass`);
        required for ``blur``.

    Returns
    -------
    numpy.ndarray, shape (k, 12, n_samples), float32

    Raises
    ------
    ValueError
        For an unknown replacement, or ``blur`` without ``blurred``.
    """
    if replacement not in REPLACEMENTS:
        raise ValueError(f"replacement must be one of {REPLACEMENTS}, not {replacement!r}")
    n_samples = x.shape[-1]
    samples = np.repeat(removed_units, bin_len, axis=-1)[..., -n_samples:] & valid
    xs = np.broadcast_to(x, samples.shape)
    if replacement == "zero":
        return np.where(samples, np.float32(0), xs).astype(np.float32)
    if replacement == "blur":
        if blurred is None:
            raise ValueError("the blur replacement needs the blurred record")
        return np.where(samples, blurred, xs).astype(np.float32)
    return interpolate_removed(xs.astype(np.float32), samples, valid)


@torch.no_grad()
def _probabilities(
    model: nn.Module, inputs: np.ndarray, target: int, batch_size: int
) -> np.ndarray:
    device = next(model.parameters(), torch.empty(0)).device
    out = []
    for sl in batch_slices(len(inputs), batch_size):
        logits = model(torch.as_tensor(inputs[sl], device=device))
        out.append(torch.sigmoid(logits[:, target]).double().cpu().numpy())
    return np.concatenate(out)


def deletion_curves(
    model: nn.Module,
    x: np.ndarray,
    maps: np.ndarray,
    target: int | np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray | None = None,
    n_steps: int = 20,
    replacements: tuple[str, ...] = REPLACEMENTS,
    lerf_replacements: tuple[str, ...] | None = None,
    unit_ms: float = 40.0,
    blur_hz: float = 2.0,
    batch_size: int = 128,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """MoRF and LeRF deletion curves and the MoRF insertion curve of one map per record.

    For each record, ``n_steps + 1`` fractions f = 0 ... 1 of its units; at
    each, ``round(f * units)`` units are removed (MoRF, LeRF) or inserted into
    a blank 0 mV signal (insertion), and the class probability is recorded.
    All perturbed inputs of a record go through the model in batches: no
    Python loop over units.

    Parameters
    ----------
    model : torch.nn.Module
        (batch, 12, n_samples) -> logits, in eval mode.
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    maps : numpy.ndarray, shape (n, 12, n_samples)
        Relevance per sample (:func:`time_maps`).
    target : int or numpy.ndarray of int, shape (n,)
    fs_hz : float
    n_valid : numpy.ndarray of int, shape (n,), optional
    n_steps : int
        Points of each curve minus one. ``n_steps`` equal to the number of
        units gives one unit per step (the classic curve).
    replacements : tuple of str
        :data:`REPLACEMENTS` used for MoRF.
    lerf_replacements : tuple of str, optional
        Those used for LeRF; None: ``replacements``.
    unit_ms : float
    blur_hz : float
        Cut-off of the ``blur`` replacement.
    batch_size : int
    seed : int
        Ties between equal units are broken at random (:func:`unit_ranks`).

    Returns
    -------
    dict of str -> numpy.ndarray
        ``fractions`` (n_steps + 1,); ``morf_<replacement>``,
        ``lerf_<replacement>`` and ``insertion``: (n, n_steps + 1) class
        probabilities; ``units`` (n,): units per record.

    Notes
    -----
    Removing the LeRF units of fraction 1 - f keeps the MoRF units of fraction
    f, so with the 0 mV replacement, insertion into 0 mV is the LeRF curve read
    backwards; with interpolation it is not.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, n_leads, n_samples = x.shape
    targets = np.broadcast_to(np.asarray(target, dtype=int), (n,))
    lengths = valid_lengths(n_valid, (n,), n_samples)
    bin_len, n_bins = bin_grid(n_samples, fs_hz, unit_ms)
    scores = unit_scores(maps, fs_hz, lengths, unit_ms)
    units = np.isfinite(scores).reshape(n, -1).sum(axis=1)
    fractions = np.linspace(0.0, 1.0, n_steps + 1)
    ranks = {o: unit_ranks(scores, o, seed) for o in ("morf", "lerf")}
    lerf_replacements = replacements if lerf_replacements is None else lerf_replacements
    names = [f"morf_{r}" for r in replacements] + [f"lerf_{r}" for r in lerf_replacements]
    names.append("insertion")
    blur = "blur" in (*replacements, *lerf_replacements)
    blurred = lowpass(x, fs_hz, blur_hz, lengths) if blur else None
    out = {k: np.zeros((n, n_steps + 1)) for k in names}
    for i in range(n):
        valid = valid_mask(n_samples, lengths[i])
        k = np.round(fractions * units[i]).astype(int)  # units removed (inserted) per step
        for name in names:
            order = "lerf" if name.startswith("lerf") else "morf"
            chosen = (ranks[order][i][None, :] < k[:, None]).reshape(-1, n_leads, n_bins)
            if name == "insertion":
                inputs = perturb(x[i], ~chosen, bin_len, valid, "zero")
            else:
                rep = name.split("_", 1)[1]
                b = blurred[i] if blurred is not None else None
                inputs = perturb(x[i], chosen, bin_len, valid, rep, b)
            out[name][i] = _probabilities(model, inputs, int(targets[i]), batch_size)
    return {"fractions": fractions, "units": units, **out}


def lead_curves(
    model: nn.Module,
    x: np.ndarray,
    values: np.ndarray,
    target: int | np.ndarray,
    n_valid: np.ndarray | None = None,
    game: str = "leads12",
    baseline: np.ndarray | None = None,
    batch_size: int = 128,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Whole-lead MoRF, LeRF and insertion curves in a lead game, one lead per step.

    A removed player is replaced by ``baseline`` on the record's own samples
    (the lead games of :func:`ecgrepro.explain.shapley.exact_lead_shapley`);
    in ``independent8`` the derived limb leads follow the coalition's I and II.

    Parameters
    ----------
    model : torch.nn.Module
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    values : numpy.ndarray, shape (n, n_players)
        Relevance per player (:func:`lead_values`, :func:`lead_scores`).
    target : int or numpy.ndarray of int, shape (n,)
    n_valid : numpy.ndarray of int, shape (n,), optional
    game : {"leads12", "independent8"}
    baseline : numpy.ndarray, shape (12, n_samples), optional
        None: 0 mV.
    batch_size : int
    seed : int
        Ties are broken at random.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``fractions`` (n_players + 1,); ``morf``, ``lerf``, ``insertion``:
        (n, n_players + 1) class probabilities.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, _, n_samples = x.shape
    players = LEAD_GAMES[game]
    values = np.asarray(values, dtype=np.float64).reshape(n, len(players))
    targets = np.broadcast_to(np.asarray(target, dtype=int), (n,))
    lengths = valid_lengths(n_valid, (n,), n_samples)
    base = np.zeros(x.shape[1:], np.float32) if baseline is None else baseline
    p = len(players)
    steps = np.arange(p + 1)
    ranks = {o: unit_ranks(values, o, seed) for o in ("morf", "lerf")}
    out = {k: np.zeros((n, p + 1)) for k in ("morf", "lerf", "insertion")}
    for i in range(n):
        valid = torch.as_tensor(valid_mask(n_samples, lengths[i]))
        xt = torch.as_tensor(x[i])
        bt = torch.where(valid, torch.as_tensor(base), xt)
        for name in out:
            order = "lerf" if name == "lerf" else "morf"
            chosen = ranks[order][i][None, :] < steps[:, None]  # (p + 1, p)
            present = chosen if name == "insertion" else ~chosen
            inputs = coalition_inputs(xt, bt, torch.as_tensor(present), game).numpy()
            out[name][i] = _probabilities(model, inputs, int(targets[i]), batch_size)
    return {"fractions": steps / p, **out}


def curve_scores(curves: dict[str, np.ndarray]) -> pd.DataFrame:
    """Areas under each curve and LeRF minus MoRF, per record.

    Parameters
    ----------
    curves : dict
        :func:`deletion_curves` or :func:`lead_curves` output.

    Returns
    -------
    pandas.DataFrame
        ``record`` (position), ``metric`` (``morf_auc``, ``lerf_auc``,
        ``lerf_minus_morf``, with the replacement after a colon where there is
        one, and ``insertion_auc``), ``value`` (probability x fraction of units).
    """
    f = curves["fractions"]
    rows = []
    for name, c in curves.items():
        if name in ("fractions", "units"):
            continue
        auc = np.trapezoid(c, f, axis=1)
        order, _, rep = name.partition("_")
        metric = f"{order}_auc" + (f":{rep}" if rep else "")
        rows += [(i, metric, v) for i, v in enumerate(auc)]
        if order == "lerf":
            morf = np.trapezoid(curves["morf" + (f"_{rep}" if rep else "")], f, axis=1)
            metric = "lerf_minus_morf" + (f":{rep}" if rep else "")
            rows += [(i, metric, v) for i, v in enumerate(auc - morf)]
    return pd.DataFrame(rows, columns=["record", "metric", "value"])


def benchmark_curves(
    model: nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    maps: dict[str, np.ndarray],
    lead_sets: dict[str, dict[str, np.ndarray]] | None = None,
    lead_rows: np.ndarray | None = None,
    n_steps: int = 20,
    replacements: tuple[str, ...] = REPLACEMENTS,
    lerf_replacements: tuple[str, ...] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Deletion curves of every time-resolved map, and lead curves of every method, as one dict.

    Parameters
    ----------
    model, x, target, fs_hz, n_valid
        As :func:`deletion_curves`.
    maps : dict of str -> numpy.ndarray, shape (n, 12, n_samples)
        :func:`time_maps`.
    lead_sets : dict of str -> dict of str -> numpy.ndarray, optional
        Per lead game (``leads12``, ``independent8``), each method's values on
        the records ``lead_rows`` (n_lead, n_players); the time-resolved maps
        enter through :func:`lead_scores` unless already given.
    lead_rows : numpy.ndarray of int, optional
        Positions in ``x`` of the records with lead-level values.
    n_steps, replacements, lerf_replacements, seed
        As :func:`deletion_curves`.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``time|<method>|<curve>`` (n, n_steps + 1), ``time|fractions``,
        ``<game>|<method>|<curve>`` (n_lead, n_players + 1),
        ``<game>|fractions``, and ``seconds|<kind>|<method>`` (curve time).
    """
    out: dict[str, np.ndarray] = {}
    for name, m in maps.items():
        t0 = time.perf_counter()
        c = deletion_curves(
            model, x, m, target, fs_hz, n_valid, n_steps, replacements, lerf_replacements, seed=seed
        )
        out["time|fractions"], out["time|units"] = c.pop("fractions"), c.pop("units")
        out.update({f"time|{name}|{k}": v for k, v in c.items()})
        out[f"seconds|time|{name}"] = np.array(time.perf_counter() - t0)
    if lead_sets and lead_rows is not None and len(lead_rows):
        rows = np.asarray(lead_rows, dtype=int)
        for game, given in lead_sets.items():
            values = {k: lead_scores(m[rows], game) for k, m in maps.items()}
            values.update(given)
            for name, v in values.items():
                t0 = time.perf_counter()
                c = lead_curves(model, x[rows], v, target[rows], n_valid[rows], game, seed=seed)
                out[f"{game}|fractions"] = c.pop("fractions")
                out.update({f"{game}|{name}|{k}": a for k, a in c.items()})
                out[f"seconds|{game}|{name}"] = np.array(time.perf_counter() - t0)
    return out
