"""Every method's maps for the benchmark: time-resolved maps and lead-level values through the
method table (:mod:`ecgrepro.explain.methods`), and their scores per deletion unit.
"""

from __future__ import annotations

import time

import numpy as np
from torch import nn

from ecgrepro.beats import valid_lengths, valid_masks
from ecgrepro.config import LEADS
from ecgrepro.explain.deletion_mask import bin_grid, valid_bins
from ecgrepro.explain.lead_games import LEAD_GAMES
from ecgrepro.explain.methods import METHODS, explain, methods_of

#: Time-resolved methods (:data:`ecgrepro.explain.methods.METHODS`): name -> label.
TIME_METHODS: dict[str, str] = {k: METHODS[k].label for k in methods_of("time")}


#: Lead-level methods: name -> label. Each gives one value per player of a lead game.
LEAD_METHODS: dict[str, str] = {k: METHODS[k].label for k in methods_of(("leads12", "leads8"))}


#: Every method's label.
METHOD_LABELS: dict[str, str] = {**TIME_METHODS, **LEAD_METHODS}


#: The two methods any real method must beat.
BASELINE_METHODS: tuple[str, ...] = tuple(k for k, m in METHODS.items() if m.baseline)


def time_maps(
    model: nn.Module,
    x: np.ndarray,
    target: int | np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray | None = None,
    methods: tuple[str, ...] = tuple(TIME_METHODS),
    ig_steps: int = 50,
    mask_kw: dict | None = None,
    layer: str = "layer4",
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every time-resolved map of the book for the same records and classes.

    Parameters
    ----------
    model : torch.nn.Module
        (batch, 12, n_samples) float32 mV -> logits, in eval mode.
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    target : int or numpy.ndarray of int, shape (n,)
        Class (logit index) explained per record.
    fs_hz : float
        Sampling frequency, Hz.
    n_valid : numpy.ndarray of int, shape (n,), optional
        Valid samples per record (the last ``n_valid``; the rest is padding). None: all.
    methods : tuple of str
        Keys of :data:`TIME_METHODS`.
    ig_steps : int
        Integrated Gradients steps (:func:`ecgrepro.explain.relevance.integrated_gradients`).
    mask_kw : dict, optional
        Keyword arguments of :func:`ecgrepro.explain.deletion_mask.deletion_mask`
        (``n_iter``, ``l1``, ``tv``, ...).
    layer : str
        Grad-CAM's layer (the paper: ``layer4``).
    batch_size : int
    seed : int
        Seeds the random baseline and the deletion mask.

    Returns
    -------
    maps : dict of str -> numpy.ndarray, shape (n, 12, n_samples), float32
        Relevance per sample (larger: more relevant to the class); 0 in the
        padding. Grad-CAM's maps have no lead axis and are repeated over the
        12 leads. The deletion mask's map is ``1 - m`` (the deleted share).
    seconds : dict of str -> float
        Wall time per method for all records.

    Raises
    ------
    ValueError
        For an unknown method, or ``x`` not (n, leads, samples) or holding NaN.
    """
    unknown = [m for m in methods if m not in TIME_METHODS]
    if unknown:
        raise ValueError(f"unknown time-resolved methods {unknown}; known: {list(TIME_METHODS)}")
    params = {"fs_hz": fs_hz, "ig_steps": ig_steps, "mask_kw": mask_kw, "layer": layer}
    maps, seconds = {}, {}
    for name in methods:
        t0 = time.perf_counter()
        maps[name] = explain(
            name, model, x, target, n_valid=n_valid, seed=seed, batch_size=batch_size, **params
        )
        seconds[name] = time.perf_counter() - t0
    return maps, seconds


def lead_values(
    model: nn.Module,
    x: np.ndarray,
    target: int | np.ndarray,
    n_valid: np.ndarray | None = None,
    methods: tuple[str, ...] = tuple(LEAD_METHODS),
    backgrounds: dict[str, np.ndarray] | None = None,
    nsamples: int = 200,
    exact_baseline: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The lead-level methods' values for some records (SHAP per lead, exact lead Shapley).

    Parameters
    ----------
    model : torch.nn.Module
        (batch, 12, n_samples) -> logits; put in eval mode. The values are
        computed on the model's device; the model is not moved.
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    target : int or numpy.ndarray of int, shape (n,)
    n_valid : numpy.ndarray of int, shape (n,), optional
    methods : tuple of str
        Keys of :data:`LEAD_METHODS`.
    backgrounds : dict of str -> numpy.ndarray, shape (n_background, 12, n_samples)
        GradientExplainer's background per SHAP method (``shap_published``: the
        first rows of the label table, as published; ``shap_principled``: from
        the training folds). Required for those methods.
    nsamples : int
        GradientExplainer samples per record.
    exact_baseline : numpy.ndarray, shape (12, n_samples), optional
        What an absent lead is replaced by in the Shapley games; None: 0 mV.
    seed : int

    Returns
    -------
    values : dict of str -> numpy.ndarray, float64
        ``(n, 12)`` for the SHAP methods and ``shapley12``, ``(n, 8)`` for
        ``shapley8`` (players in :data:`ecgrepro.explain.shapley.LEAD_GAMES` order),
        logit units of the target class.
    seconds : dict of str -> float

    Raises
    ------
    ValueError
        For an unknown method, or a SHAP method without its background.
    """
    unknown = [m for m in methods if m not in LEAD_METHODS]
    if unknown:
        raise ValueError(f"unknown lead-level methods {unknown}; known: {list(LEAD_METHODS)}")
    values, seconds = {}, {}
    for name in methods:
        t0 = time.perf_counter()
        values[name] = explain(
            name,
            model,
            x,
            target,
            n_valid=n_valid,
            seed=seed,
            background=(backgrounds or {}).get(name),
            nsamples=nsamples,
            exact_baseline=exact_baseline,
        )
        seconds[name] = time.perf_counter() - t0
    return values, seconds


def lead_scores(maps: np.ndarray, game: str = "leads12") -> np.ndarray:
    """A time-resolved map's value per player of a lead game: its sum over each lead's samples.

    Parameters
    ----------
    maps : numpy.ndarray, shape (n, 12, n_samples)
        0 in the padding (as :func:`time_maps` returns them).
    game : {"leads12", "independent8"}
        ``independent8``: the sums of I, II, V1-V6 (relevance on III, aVR, aVL
        and aVF is not passed back to I and II).

    Returns
    -------
    numpy.ndarray, shape (n, n_players), float64
    """
    sums = np.asarray(maps, dtype=np.float64).sum(axis=-1)
    idx = [LEADS.index(lead) for lead in LEAD_GAMES[game]]
    return sums[:, idx]


def unit_scores(
    maps: np.ndarray, fs_hz: float, n_valid: np.ndarray | None = None, unit_ms: float = 40.0
) -> np.ndarray:
    """A map's relevance per deletion unit: each lead x ``unit_ms`` window, summed.

    Units are aligned to the end of the input, as the deletion mask's bins
    (:func:`ecgrepro.explain.deletion_mask.bin_grid`); a unit wholly in the
    front padding is not a unit (NaN), and samples of the padding inside the
    first unit do not count.

    Parameters
    ----------
    maps : numpy.ndarray, shape (n, 12, n_samples)
    fs_hz : float
        Sampling frequency, Hz.
    n_valid : numpy.ndarray of int, shape (n,), optional
    unit_ms : float
        Unit length, ms (40 ms: one small box of the ECG paper).

    Returns
    -------
    numpy.ndarray, shape (n, 12, n_units), float64
        NaN for the units in the padding.
    """
    maps = np.asarray(maps, dtype=np.float64)
    n, n_leads, n_samples = maps.shape
    lengths = valid_lengths(n_valid, (n,), n_samples)
    bin_len, n_bins = bin_grid(n_samples, fs_hz, unit_ms)
    valid = valid_masks(lengths, n_samples)
    padded = np.zeros((n, n_leads, n_bins * bin_len))
    padded[..., -n_samples:] = np.where(valid[:, None, :], maps, 0.0)
    sums = padded.reshape(n, n_leads, n_bins, bin_len).sum(axis=-1)
    ok = valid_bins(lengths, n_samples, bin_len)
    return np.where(ok[:, None, :], sums, np.nan)


def unit_ranks(scores: np.ndarray, order: str = "morf", seed: int = 0) -> np.ndarray:
    """Position of each unit in the removal order (0: removed first); padding units last.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n, n_units) or (n, 12, n_units)
        Relevance per unit; NaN: not a unit (padding).
    order : {"morf", "lerf"}
        Most relevant first, or least relevant first.
    seed : int
        Ties (equal relevance, e.g. Grad-CAM's maps repeated over the leads) are
        broken at random, per record.

    Returns
    -------
    numpy.ndarray of int64, shape (n, n_units_flat)
        ``ranks[i, u]``; the padding units get ranks at or after the record's
        number of units, so they are never removed.

    Raises
    ------
    ValueError
        For an unknown order.
    """
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', not {order!r}")
    s = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    key = -s if order == "morf" else s
    key = np.where(np.isnan(key), np.inf, key)
    tie = np.random.default_rng(seed).random(s.shape)
    order_idx = np.lexsort((tie, key), axis=-1)  # by key, then at random
    ranks = np.empty_like(order_idx)
    np.put_along_axis(ranks, order_idx, np.arange(s.shape[1])[None, :], axis=-1)
    return ranks
