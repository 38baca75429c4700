"""Which explanation maps are faithful to the model: deletion curves, sanity checks, planted truth.

Every attribution method of the book is scored on the same model and records
by three kinds of evidence:

1. **Deletion and insertion curves** (Samek et al. 2017, "Evaluating the
   visualization of what a deep neural network has learned", IEEE TNNLS;
   Petsiuk et al. 2018, RISE, BMVC). The units are lead x 40 ms windows of the
   record's own samples (the front padding is never a unit); they are removed
   most-relevant-first (MoRF) or least-relevant-first (LeRF), or inserted
   most-relevant-first into a blank (0 mV) signal, and the class probability
   is traced. Removed samples are replaced by per-lead linear interpolation
   across the removed stretch (main), 0 mV, or the 2 Hz low-passed record.
   The lead-level methods (SHAP per lead, exact lead Shapley) are scored on
   whole-lead curves in the two lead games of :mod:`ecgrepro.explain.shapley`.
2. **Sanity checks** (Adebayo et al. 2018, "Sanity checks for saliency maps",
   NeurIPS): cascading re-initialisation of the layers from the top, with the
   Spearman rank correlation and SSIM of each map against the trained model's.
3. **Planted ground truth** (Arras, Osman & Samek 2022, CLEVR-XAI, Information
   Fusion): a 40 ms notch before one QRS at a known lead and time; relevance
   mass accuracy and relevance rank accuracy on the marker's lead x time box.

Rankings use Friedman's test with records as blocks, mean ranks with
bootstrap intervals, and pairwise Wilcoxon signed-rank tests with Holm's
correction.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from scipy.stats import ConstantInputWarning, friedmanchisquare, spearmanr, wilcoxon
from torch import nn

from ecgrepro.beats import r_peaks, valid_lengths, valid_mask
from ecgrepro.config import LEADS
from ecgrepro.explain.deletion_mask import bin_grid, deletion_mask, lowpass, valid_bins
from ecgrepro.explain.gradcam import grad_cam
from ecgrepro.explain.relevance import integrated_gradients, lrp, valid_masks
from ecgrepro.explain.shapley import (
    LEAD_GAMES,
    coalition_inputs,
    exact_lead_shapley,
    gradient_shap_per_lead,
)
from ecgrepro.metrics import percentile_interval

#: Time-resolved methods: name -> label. Each gives a (n, 12, n_samples) map.
TIME_METHODS: dict[str, str] = {
    "random": "Random (baseline)",
    "amplitude": "|x| (baseline)",
    "saliency": "Saliency |gradient|",
    "input_x_gradient": "Input x gradient",
    "ig": "Integrated Gradients",
    "lrp_epsilon_plus_flat": "LRP EpsilonPlusFlat",
    "lrp_epsilon_gamma_box": "LRP EpsilonGammaBox",
    "gradcam": "Grad-CAM (correct)",
    "gradcam_published": "Grad-CAM (published)",
    "guided_gradcam": "Guided Grad-CAM",
    "deletion_mask": "Deletion mask",
}
#: Lead-level methods: name -> label. Each gives one value per player of a lead game.
LEAD_METHODS: dict[str, str] = {
    "shap_published": "SHAP per lead (published)",
    "shap_principled": "SHAP per lead (principled)",
    "shapley12": "Exact Shapley, 12 leads",
    "shapley8": "Exact Shapley, 8 leads",
}
#: Every method's label.
METHOD_LABELS: dict[str, str] = {**TIME_METHODS, **LEAD_METHODS}
#: The two methods any real method must beat.
BASELINE_METHODS: tuple[str, ...] = ("random", "amplitude")
#: What replaces a removed unit (:func:`perturb`).
REPLACEMENTS: tuple[str, ...] = ("interpolate", "zero", "blur")
#: Cascading randomisation stages, from the top (Adebayo et al. 2018, Section 3).
STAGES: dict[str, tuple[str, ...]] = {
    "fc": ("fc",),
    "layer4": ("layer4",),
    "layer3": ("layer3",),
    "layer2": ("layer2",),
    "layer1": ("layer1",),
    "conv1": ("conv1", "bn1"),
}
#: Planted markers: class name -> the leads the notch is added to.
MARKERS: dict[str, tuple[str, ...]] = {"notch_V2": ("V2",), "notch_V5_V6": ("V5", "V6")}
#: Tests and metrics where a larger value is better (the others: smaller is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "morf_auc": False,
    "lerf_auc": True,
    "insertion_auc": True,
    "lerf_minus_morf": True,
    "spearman": False,
    "ssim": False,
    "mass_accuracy": True,
    "rank_accuracy": True,
}


# --------------------------------------------------------------------------- the maps


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _captum(cls, model: nn.Module, x: np.ndarray, targets: np.ndarray, batch_size: int, **kw):
    """One captum attribution, batched; returns (n, 12, n_samples) float32."""
    device = next(model.parameters()).device
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum's notes on hooks and requires_grad
        for sl in _batches(len(x), batch_size):
            xb = torch.as_tensor(x[sl], device=device).requires_grad_(True)
            tb = torch.as_tensor(targets[sl], device=device)
            a = cls.attribute(xb, target=tb, **kw)
            out.append(a.detach().cpu().numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros_like(x)


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
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3 or not np.isfinite(x).all():
        raise ValueError(f"x must be a finite (n, leads, samples) array, got shape {x.shape}")
    n, n_leads, n_samples = x.shape
    targets = np.broadcast_to(np.asarray(target, dtype=int), (n,)).copy()
    lengths = valid_lengths(n_valid, (n,), n_samples)
    valid = valid_masks(lengths, n_samples)  # (n, n_samples)
    model = model.eval()
    maps, seconds = {}, {}
    for name in methods:
        t0 = time.perf_counter()
        if name == "random":
            a = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
        elif name == "amplitude":
            a = np.abs(x)
        elif name in ("saliency", "input_x_gradient", "guided_gradcam"):
            from captum.attr import GuidedGradCam, InputXGradient, Saliency

            if name == "saliency":
                a = _captum(Saliency(model), model, x, targets, batch_size, abs=True)
            elif name == "input_x_gradient":
                a = _captum(InputXGradient(model), model, x, targets, batch_size)
            else:
                cls = GuidedGradCam(model, model.get_submodule(layer))
                a = _captum(cls, model, x, targets, batch_size)
        elif name == "ig":
            a, _ = integrated_gradients(model, x, targets, ig_steps, max(1, batch_size // 2))
        elif name.startswith("lrp_"):
            a, _ = lrp(model, x, targets, composite=name[4:], batch_size=batch_size)
        elif name == "gradcam":
            cam = grad_cam(model, x, targets, layer, "time", batch_size)
            a = np.repeat(cam[:, None, :], n_leads, axis=1)
        elif name == "gradcam_published":
            # the published pooling averages over the records of a call: one record per call
            cam = np.concatenate(
                [
                    grad_cam(model, x[i : i + 1], targets[i : i + 1], layer, "published")
                    for i in range(n)
                ]
            )
            a = np.repeat(cam[:, None, :], n_leads, axis=1)
        else:  # deletion_mask
            kw = {"seed": seed, **(mask_kw or {})}
            a = deletion_mask(model, x, targets, fs_hz, lengths, **kw)["saliency"]
        maps[name] = np.where(valid[:, None, :], a, 0).astype(np.float32)
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
        computed on the CPU; the model is back on its device afterwards.
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
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, _, n_samples = x.shape
    targets = np.broadcast_to(np.asarray(target, dtype=int), (n,)).copy()
    lengths = valid_lengths(n_valid, (n,), n_samples)
    device = next(model.parameters()).device
    model = model.eval().cpu()  # GradientExplainer and the lead games run on the CPU
    base = np.zeros(x.shape[1:], np.float32) if exact_baseline is None else exact_baseline
    values, seconds = {}, {}
    try:
        for name in methods:
            t0 = time.perf_counter()
            if name.startswith("shap_"):
                if not backgrounds or name not in backgrounds:
                    raise ValueError(f"{name} needs its GradientExplainer background (backgrounds)")
                values[name] = gradient_shap_per_lead(
                    model, backgrounds[name], x, targets, nsamples, seed, lengths
                )
            else:
                game = "leads12" if name == "shapley12" else "independent8"
                phi = [
                    exact_lead_shapley(model, x[i], base, game=game, n_valid=int(lengths[i]))[0][
                        :, targets[i]
                    ]
                    for i in range(n)
                ]
                values[name] = np.array(phi, dtype=np.float64).reshape(n, len(LEAD_GAMES[game]))
            seconds[name] = time.perf_counter() - t0
    finally:
        model.to(device)
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


# --------------------------------------------------------------------------- units and curves


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
    for sl in _batches(len(inputs), batch_size):
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


# --------------------------------------------------------------------------- sanity checks


def randomised_models(
    model: nn.Module, stages: tuple[str, ...] = tuple(STAGES), seed: int = 0
) -> Iterator[tuple[str, nn.Module]]:
    """Cascading parameter randomisation: copies with the layers re-initialised from the top.

    Stage ``k`` re-initialises the modules of ``stages[:k + 1]`` (their
    ``reset_parameters``, and BatchNorm running statistics), as Adebayo et al.
    (2018), Section 3.1. The model passed in is not changed.

    Parameters
    ----------
    model : torch.nn.Module
        :class:`ecgrepro.models.ResNet1d`.
    stages : tuple of str
        Keys of :data:`STAGES`, top first.
    seed : int
        Seeds each stage's new weights (``seed + k``).

    Yields
    ------
    stage : str
    model : torch.nn.Module
        In eval mode; each yield is a new copy.

    Raises
    ------
    KeyError
        For an unknown stage.
    """
    current = copy.deepcopy(model).eval()
    for k, stage in enumerate(stages):
        torch.manual_seed(seed + k)
        for name in STAGES[stage]:
            for module in current.get_submodule(name).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
        yield stage, copy.deepcopy(current).eval()


def map_similarity(
    a: np.ndarray, b: np.ndarray, n_valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation and SSIM of two maps of each record (Adebayo et al. 2018).

    Both on absolute values over the record's own samples. SSIM
    (``skimage.metrics.structural_similarity``) compares the lead x time images
    after each is divided by its maximum (data range 1); it needs a lead axis
    and at least 7 samples, else NaN (lead-level values: Spearman only).

    Parameters
    ----------
    a, b : numpy.ndarray, shape (n, 12, n_samples) or (n, n_players)
    n_valid : numpy.ndarray of int, shape (n,), optional
        For 3-D maps.

    Returns
    -------
    spearman, ssim : numpy.ndarray, shape (n,), float64
        NaN where a map is constant.
    """
    from skimage.metrics import structural_similarity

    a, b = np.abs(np.asarray(a, dtype=np.float64)), np.abs(np.asarray(b, dtype=np.float64))
    n = len(a)
    rho, ssim = np.full(n, np.nan), np.full(n, np.nan)
    lengths = valid_lengths(n_valid, (n,), a.shape[-1]) if a.ndim == 3 else None
    for i in range(n):
        ai, bi = a[i], b[i]
        if a.ndim == 3:
            ai, bi = ai[:, a.shape[-1] - lengths[i] :], bi[:, a.shape[-1] - lengths[i] :]
        if np.ptp(ai) > 0 and np.ptp(bi) > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConstantInputWarning)
                rho[i] = spearmanr(ai.ravel(), bi.ravel()).statistic
            if ai.ndim == 2 and min(ai.shape) >= 7:
                ssim[i] = structural_similarity(ai / ai.max(), bi / bi.max(), data_range=1.0)
    return rho, ssim


# --------------------------------------------------------------------------- planted truth


def notch(fs_hz: float, width_ms: float = 40.0, depth_mv: float = 0.5) -> np.ndarray:
    """The planted marker's shape: a negative Hann dip of ``width_ms``.

    Returns
    -------
    numpy.ndarray, shape (round(width_ms * fs_hz / 1000),), float32, mV
        Every sample negative, the deepest ``-depth_mv``.
    """
    n = max(1, int(round(width_ms * fs_hz / 1000)))
    shape = np.hanning(n + 2)[1:-1]
    return (-depth_mv * shape / shape.max()).astype(np.float32)


def plant_markers(
    x: np.ndarray,
    marker: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray | None = None,
    records: list[str] | None = None,
    width_ms: float = 40.0,
    depth_mv: float = 0.5,
    before_r_ms: float = 120.0,
    beats: str = "all",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Add a notch before QRS complexes of each marked record, at the marker's leads.

    The R peaks are found on lead II (:func:`ecgrepro.beats.r_peaks`,
    neurokit2); the notch ends ``before_r_ms`` before an R peak (in the PR
    segment), before every beat with room for it (``beats="all"``) or before
    one drawn at random (``"one"``). A record whose R peaks cannot be found is
    reported and left unmarked.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    marker : numpy.ndarray of int, shape (n,)
        Index into :data:`MARKERS` per record; -1: no marker.
    fs_hz : float
    n_valid : numpy.ndarray of int, shape (n,), optional
    records : list of str, optional
        Record names, for the report.
    width_ms, depth_mv, before_r_ms : float
        The notch (:func:`notch`) and where it ends before the R peak.
    beats : {"all", "one"}
    seed : int

    Returns
    -------
    x_planted : numpy.ndarray, shape (n, 12, n_samples), float32
        A copy.
    marker : numpy.ndarray of int, shape (n,)
        As given, with -1 for the records that could not be marked.
    window : numpy.ndarray of bool, shape (n, n_samples)
        The samples the notch covers (on the marker's leads).
    problems : list of str
        One line per record left unmarked.

    Raises
    ------
    ValueError
        For an unknown ``beats``.
    """
    if beats not in ("all", "one"):
        raise ValueError(f"beats must be 'all' or 'one', not {beats!r}")
    x = np.array(x, dtype=np.float32, copy=True)
    n, _, n_samples = x.shape
    marker = np.asarray(marker, dtype=int).copy()
    lengths = valid_lengths(n_valid, (n,), n_samples)
    names = records or [f"record {i}" for i in range(n)]
    shape = notch(fs_hz, width_ms, depth_mv)
    gap = int(round(before_r_ms * fs_hz / 1000))
    rng = np.random.default_rng(seed)
    window = np.zeros((n, n_samples), dtype=bool)
    problems = []
    leads = [[LEADS.index(lead) for lead in leads] for leads in MARKERS.values()]
    for i in np.flatnonzero(marker >= 0):
        first = n_samples - lengths[i]
        try:
            peaks = r_peaks(x[i, LEADS.index("II")], fs_hz, int(lengths[i]), names[i])
        except ValueError as err:
            problems.append(f"{names[i]}: not marked ({err})")
            marker[i] = -1
            continue
        starts = peaks - gap - len(shape)
        starts = starts[starts >= first]
        if not len(starts):
            problems.append(f"{names[i]}: not marked (no R peak with room before it)")
            marker[i] = -1
            continue
        if beats == "one":
            starts = rng.choice(starts, 1)
        for s in starts:
            x[i][np.ix_(leads[marker[i]], np.arange(s, s + len(shape)))] += shape
            window[i, s : s + len(shape)] = True
    return x, marker, window, problems


def marker_boxes(marker: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The planted notch's lead x time box per record.

    Parameters
    ----------
    marker : numpy.ndarray of int, shape (n,)
        Index into :data:`MARKERS`; -1: none.
    window : numpy.ndarray of bool, shape (n, n_samples)
        From :func:`plant_markers`.

    Returns
    -------
    numpy.ndarray of bool, shape (n, 12, n_samples)
        All False for a record without a marker.
    """
    window = np.asarray(window, dtype=bool)
    box = np.zeros((len(marker), len(LEADS), window.shape[-1]), dtype=bool)
    leads = [[LEADS.index(lead) for lead in leads] for leads in MARKERS.values()]
    for i in np.flatnonzero(np.asarray(marker) >= 0):
        box[i, leads[marker[i]]] = window[i]
    return box


def mass_accuracy(maps: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Relevance mass accuracy: the share of positive relevance inside the box (Arras et al. 2022).

    Parameters
    ----------
    maps : numpy.ndarray, shape (n, ...)
        Relevance (samples or players).
    box : numpy.ndarray of bool, same shape

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        In [0, 1]; NaN for a record without positive relevance.
    """
    pos = np.clip(np.asarray(maps, dtype=np.float64), 0, None).reshape(len(maps), -1)
    inside = (pos * box.reshape(len(box), -1)).sum(axis=1)
    total = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def rank_accuracy(maps: np.ndarray, box: np.ndarray, seed: int = 0) -> np.ndarray:
    """Relevance rank accuracy: the share of the K most relevant elements in the box, K = its size.

    Ties are broken at random (Arras et al. 2022, CLEVR-XAI).

    Parameters
    ----------
    maps, box : numpy.ndarray, shape (n, ...)
    seed : int

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        NaN for a record with an empty box.
    """
    m = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    b = box.reshape(len(box), -1)
    tie = np.random.default_rng(seed).random(m.shape)
    out = np.full(len(m), np.nan)
    for i in range(len(m)):
        k = int(b[i].sum())
        if k:
            top = np.lexsort((tie[i], -m[i]))[:k]
            out[i] = b[i, top].mean()
    return out


# --------------------------------------------------------------------------- statistics


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), NaN left as NaN.

    Parameters
    ----------
    p : numpy.ndarray, shape (m,)

    Returns
    -------
    numpy.ndarray, shape (m,)
        ``min(1, max_{j <= i} (m - j + 1) p_(j))`` for the i-th smallest.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok])]
    m = len(order)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else np.array([])
    out[order] = np.minimum(adj, 1.0)
    return out


def rank_methods(
    values: pd.DataFrame, higher_is_better: bool, n_boot: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """Mean ranks of the methods over records, with bootstrap intervals, and Friedman's test.

    Parameters
    ----------
    values : pandas.DataFrame
        One row per record (block), one column per method; records missing a
        method's value are dropped.
    higher_is_better : bool
        Rank 1 goes to the best value.
    n_boot : int
        Resamples of the records for the intervals.
    seed : int

    Returns
    -------
    ranks : pandas.DataFrame
        ``method, mean_rank, ci_low, ci_high, mean, mean_ci_low, mean_ci_high,
        records``, best first.
    friedman : dict
        ``statistic``, ``p`` and ``records``; NaN with fewer than 2 records or methods.
    """
    v = values.dropna()
    n, k = v.shape
    sign = -1.0 if higher_is_better else 1.0
    r = (sign * v).rank(axis=1, method="average").to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, n)) if n else np.zeros((n_boot, 0), int)
    boot_r = r[idx].mean(axis=1) if n else np.full((n_boot, k), np.nan)
    boot_m = v.to_numpy()[idx].mean(axis=1) if n else np.full((n_boot, k), np.nan)
    lo, hi = percentile_interval(boot_r)
    mlo, mhi = percentile_interval(boot_m)
    ranks = pd.DataFrame(
        {
            "method": v.columns,
            "mean_rank": r.mean(axis=0) if n else np.nan,
            "ci_low": lo,
            "ci_high": hi,
            "mean": v.mean().to_numpy(),
            "mean_ci_low": mlo,
            "mean_ci_high": mhi,
            "records": n,
        }
    ).sort_values("mean_rank", kind="stable")
    stat = p = np.nan
    if n >= 2 and k >= 3 and np.ptp(r, axis=1).any():
        stat, p = friedmanchisquare(*[v[c].to_numpy() for c in v.columns])
    return ranks.reset_index(drop=True), {"statistic": stat, "p": p, "records": n}


def pairwise_wilcoxon(values: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of every pair of methods, Holm-corrected.

    Parameters
    ----------
    values : pandas.DataFrame
        Records x methods, as :func:`rank_methods`.
    higher_is_better : bool

    Returns
    -------
    pandas.DataFrame
        ``a, b, median_difference (a - b), p, p_holm, better`` (the better
        method where ``p_holm < 0.05``, else "").
    """
    v = values.dropna()
    cols = list(v.columns)
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            d = (v[a] - v[b]).to_numpy()
            p = np.nan
            if len(d) >= 2 and np.any(d != 0):
                p = float(wilcoxon(v[a], v[b], zero_method="zsplit").pvalue)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "median_difference": float(np.median(d)) if len(d) else np.nan,
                    "p": p,
                }
            )
    out = pd.DataFrame(rows, columns=["a", "b", "median_difference", "p"])
    out["p_holm"] = holm(out["p"].to_numpy()) if len(out) else []
    better = (
        np.where((out.median_difference > 0) == higher_is_better, out.a, out.b) if len(out) else []
    )
    out["better"] = np.where(out.p_holm < 0.05, better, "") if len(out) else []
    return out


def planted_dataset(
    ds,
    n_records: int = 0,
    width_ms: float = 40.0,
    depth_mv: float = 0.5,
    before_r_ms: float = 120.0,
    beats: str = "all",
    seed: int = 0,
):
    """A copy of a dataset whose labels are the planted markers (:func:`plant_markers`).

    Each record draws, with equal odds, no marker or one of :data:`MARKERS`;
    the labels are the markers (multi-hot, 2 columns in :data:`MARKERS`
    order), so a model trained on it must find the notch. Splits are kept.

    Parameters
    ----------
    ds : ecgrepro.data.ECGDataset
        Source records (PTB-XL in the book).
    n_records : int
        At most this many records, drawn at random (``seed``); 0: all. The
        planted signals are held in memory (n x 12 x n_samples float32).
    width_ms, depth_mv, before_r_ms : float
        The notch (:func:`notch`, :func:`plant_markers`).
    beats : {"all", "one"}
        Before every beat, or one (:func:`plant_markers`).
    seed : int

    Returns
    -------
    planted : ecgrepro.data.ECGDataset
        Named ``<name>_planted``; its ``cache_key`` hashes the source's and
        the planting parameters, so its trained model gets its own artifact.
        ``records`` gains ``marker`` (-1, 0, 1).
    window : numpy.ndarray of bool, shape (n, n_samples)
        The notch's samples per record (:func:`plant_markers`).
    problems : list of str
        Records left unmarked (no R peak found), labelled as no marker.
    """
    import dataclasses
    import hashlib
    import json

    rng = np.random.default_rng(seed)
    rows = np.arange(len(ds.records))
    if n_records and n_records < len(rows):
        rows = np.sort(rng.choice(rows, n_records, replace=False))
    marker = rng.integers(-1, len(MARKERS), len(rows))
    records = ds.records.iloc[rows].reset_index(drop=True)
    x, marker, window, problems = plant_markers(
        np.asarray(ds.signals[rows]),
        marker,
        ds.fs_hz,
        records["n_valid"].to_numpy(),
        records["record"].astype(str).tolist(),
        width_ms,
        depth_mv,
        before_r_ms,
        beats,
        seed,
    )
    y = np.zeros((len(rows), len(MARKERS)), np.float32)
    y[marker >= 0, marker[marker >= 0]] = 1.0
    records = records.assign(
        classes=[list(MARKERS)[m] if m >= 0 else "" for m in marker],
        marker=marker,
    )
    params = [ds.cache_key, n_records, width_ms, depth_mv, before_r_ms, beats, seed, "planted-v1"]
    key = hashlib.sha256(json.dumps(params).encode()).hexdigest()[:16]
    planted = dataclasses.replace(
        ds,
        name=f"{ds.name}_planted",
        signals=x,
        y=y,
        records=records,
        cache_key=key,
        notes=list(ds.notes),
        skipped=ds.skipped,
    )
    return planted, window, problems


# --------------------------------------------------------------------------- the page's batches


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


def randomisation_similarity(
    model: nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    methods: tuple[str, ...],
    lead_methods: tuple[str, ...] = (),
    map_kw: dict | None = None,
    lead_kw: dict | None = None,
    stages: tuple[str, ...] = tuple(STAGES),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each method's map after each cascading randomisation stage, against the trained model's.

    Parameters
    ----------
    model, x, target, fs_hz, n_valid
        As :func:`time_maps`.
    methods : tuple of str
        Time-resolved methods (:data:`TIME_METHODS`).
    lead_methods : tuple of str
        Lead-level methods (:data:`LEAD_METHODS`), compared on their lead values.
    map_kw, lead_kw : dict, optional
        Extra arguments of :func:`time_maps` and :func:`lead_values`.
    stages : tuple of str
        :data:`STAGES`, top first.
    seed : int

    Returns
    -------
    dict of str -> numpy.ndarray
        ``<method>|spearman`` and ``<method>|ssim``: (n_stages, n) similarity
        of the stage's map with the trained model's (:func:`map_similarity`);
        ``<method>|seconds`` (n_stages + 1,); ``stages``.
    """
    map_kw, lead_kw = map_kw or {}, lead_kw or {}

    def all_maps(m):
        maps, sec = time_maps(m, x, target, fs_hz, n_valid, methods, seed=seed, **map_kw)
        if lead_methods:
            vals, sec2 = lead_values(m, x, target, n_valid, lead_methods, seed=seed, **lead_kw)
            maps.update(vals)
            sec.update(sec2)
        return maps, sec

    base, sec = all_maps(model)
    names = list(base)
    out = {f"{k}|{s}": np.zeros((len(stages), len(x))) for k in names for s in ("spearman", "ssim")}
    seconds = {k: [sec[k]] for k in names}
    for j, (_, m) in enumerate(randomised_models(model, stages, seed)):
        maps, sec = all_maps(m)
        for k in names:
            nv = n_valid if base[k].ndim == 3 else None
            out[f"{k}|spearman"][j], out[f"{k}|ssim"][j] = map_similarity(base[k], maps[k], nv)
            seconds[k].append(sec[k])
    out.update({f"{k}|seconds": np.array(v) for k, v in seconds.items()})
    out["stages"] = np.array(stages)
    return out


def panel_benchmark(
    model: nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    given: dict[str, np.ndarray],
    shapley8: np.ndarray,
    published_background: np.ndarray,
    nsamples: int = 200,
    ig_steps: int = 50,
    mask_kw: dict | None = None,
    n_steps: int = 20,
    replacements: tuple[str, ...] = REPLACEMENTS,
    lerf_replacements: tuple[str, ...] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One model on one dataset's records: every map, the published SHAP values, every curve.

    Parameters
    ----------
    model, x, target, fs_hz, n_valid
        As :func:`time_maps`; ``target`` per record.
    given : dict of str -> numpy.ndarray, shape (k, 12)
        Lead values already computed (the SHAP page's ``shapley12`` and
        ``shap_principled``) for the first ``k`` records.
    shapley8 : numpy.ndarray, shape (k, 8)
        The 8-lead game's exact values for the same records.
    published_background : numpy.ndarray, shape (n_background, 12, n_samples)
        GradientExplainer's published background (``shap_published`` is computed here).
    nsamples, ig_steps, mask_kw, n_steps, replacements, lerf_replacements, seed
        As :func:`time_maps` and :func:`deletion_curves`.

    Returns
    -------
    dict of str -> numpy.ndarray
        :func:`benchmark_curves`'s keys (Grad-CAM, without a lead axis, has
        time-resolved curves only), and ``seconds|map|<method>``.
    """
    k = len(next(iter(given.values()))) if given else 0
    maps, sec = time_maps(
        model, x, target, fs_hz, n_valid, tuple(TIME_METHODS), ig_steps, mask_kw, seed=seed
    )
    published, sec_pub = lead_values(
        model,
        x[:k],
        target[:k],
        n_valid[:k],
        ("shap_published",),
        {"shap_published": published_background},
        nsamples,
        seed=seed,
    )
    given = {**given, **published}
    sec.update(sec_pub)
    idx8 = [LEADS.index(lead) for lead in LEAD_GAMES["independent8"]]
    lead_sets = {
        "leads12": given,
        "independent8": {**{m: v[:, idx8] for m, v in given.items()}, "shapley8": shapley8},
    }
    with_leads = {m: v for m, v in maps.items() if not m.startswith("gradcam")}
    out = benchmark_curves(
        model,
        x,
        target,
        fs_hz,
        n_valid,
        with_leads,
        lead_sets,
        np.arange(k),
        n_steps,
        replacements,
        lerf_replacements,
        seed,
    )
    cams = {m: v for m, v in maps.items() if m.startswith("gradcam")}
    out.update(
        benchmark_curves(
            model,
            x,
            target,
            fs_hz,
            n_valid,
            cams,
            None,
            None,
            n_steps,
            replacements,
            lerf_replacements,
            seed,
        )
    )
    out.update({f"seconds|map|{m}": np.array(v) for m, v in sec.items()})
    return out


def model_similarity(
    model_a: nn.Module,
    model_b: nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    methods: tuple[str, ...] = tuple(TIME_METHODS),
    map_kw: dict | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each method's maps of two models on the same records, compared (data randomisation).

    Adebayo et al. (2018), Section 4: a model trained on shuffled labels
    against one trained on the true labels.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``<method>|spearman`` and ``<method>|ssim``, shape (n,) (:func:`map_similarity`).
    """
    a, _ = time_maps(model_a, x, target, fs_hz, n_valid, methods, seed=seed, **(map_kw or {}))
    b, _ = time_maps(model_b, x, target, fs_hz, n_valid, methods, seed=seed, **(map_kw or {}))
    out = {}
    for m in methods:
        out[f"{m}|spearman"], out[f"{m}|ssim"] = map_similarity(a[m], b[m], n_valid)
    return out


def planted_scores(
    model: nn.Module,
    x: np.ndarray,
    marker: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    box: np.ndarray,
    backgrounds: dict[str, np.ndarray],
    nsamples: int = 200,
    n_exact12: int | None = None,
    map_kw: dict | None = None,
    seed: int = 0,
    n_exact8: int | None = None,
) -> dict[str, np.ndarray]:
    """Every method's relevance mass and rank accuracy on the planted markers' boxes.

    Parameters
    ----------
    model : torch.nn.Module
        The marker detector (one output per :data:`MARKERS` entry).
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
        Marked records.
    marker : numpy.ndarray of int, shape (n,)
        Each record's marker: the output explained.
    fs_hz, n_valid
    box : numpy.ndarray of bool, shape (n, 12, n_samples)
        :func:`marker_boxes`.
    backgrounds : dict
        GradientExplainer backgrounds of ``shap_published`` and ``shap_principled``.
    nsamples : int
    n_exact12 : int, optional
        12-lead exact Shapley values for the first ``n_exact12`` records only; None: all; 0: none.
    map_kw : dict, optional
        Extra arguments of :func:`time_maps`.
    seed : int
    n_exact8 : int, optional
        8-lead exact Shapley values (256 evaluations per record) for the first ``n_exact8``
        records only; None: all; 0: none.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``<method>|mass_accuracy`` and ``<method>|rank_accuracy`` per record
        (lead-level methods: on their lead values, the box being the
        marker's leads), ``<method>|seconds``, and ``example`` (4, 12,
        n_samples): the first record's input x gradient, IG, Grad-CAM and
        deletion-mask maps.
    """
    n12 = len(x) if n_exact12 is None else min(n_exact12, len(x))
    n8 = len(x) if n_exact8 is None else min(n_exact8, len(x))
    maps, sec = time_maps(model, x, marker, fs_hz, n_valid, seed=seed, **(map_kw or {}))
    vals, sec2 = lead_values(
        model,
        x,
        marker,
        n_valid,
        ("shap_published", "shap_principled"),
        backgrounds,
        nsamples,
        seed=seed,
    )
    exact, sec3 = {}, {}  # the exact games on their first records (the smoke run: fewer or none)
    for method, n in (("shapley8", n8), ("shapley12", n12)):
        if n > 0:
            v, t = lead_values(model, x[:n], marker[:n], n_valid[:n], (method,), seed=seed)
            exact.update(v)
            sec3.update(t)
    out = {}
    for m, mp in maps.items():
        out[f"{m}|mass_accuracy"] = mass_accuracy(mp, box)
        out[f"{m}|rank_accuracy"] = rank_accuracy(mp, box, seed)
    names = list(MARKERS)
    for m, v in {**vals, **exact}.items():
        players = LEAD_GAMES["independent8" if m == "shapley8" else "leads12"]
        lead_box = np.array(
            [[lead in MARKERS[names[t]] for lead in players] for t in marker[: len(v)]]
        ).reshape(len(v), len(players))
        out[f"{m}|mass_accuracy"] = mass_accuracy(v, lead_box)
        out[f"{m}|rank_accuracy"] = rank_accuracy(v, lead_box, seed)
    out.update({f"{k}|seconds": np.array(v) for k, v in {**sec, **sec2, **sec3}.items()})
    shown = ("input_x_gradient", "ig", "gradcam", "deletion_mask")
    out["example"] = np.stack([maps[k][0] for k in shown if k in maps])
    return out


def verdicts(
    per_record: pd.DataFrame, pairs: pd.DataFrame, methods: list[str], last_stage: str
) -> pd.DataFrame:
    """Which of the three tests each method passes, with the numbers behind it.

    A method passes **deletion** when it beats both baselines with a
    Holm-corrected Wilcoxon p below 0.05 (MoRF AUC with interpolation for
    time-resolved maps; LeRF minus MoRF on the 12-lead curves for lead-level
    methods); **randomisation** when its median Spearman rho with the trained
    model's map is below 0.5 once every layer is random; **planted** when its
    median relevance mass accuracy is at least twice the random map's. The
    thresholds are the book's, stated on the page.

    Parameters
    ----------
    per_record : pandas.DataFrame
        ``method, test, metric, value`` per record (the page's table).
    pairs : pandas.DataFrame
        :func:`pairwise_wilcoxon` output with ``test`` and ``metric`` columns.
    methods : list of str
    last_stage : str
        The last randomisation stage (``spearman:<last_stage>``).

    Returns
    -------
    pandas.DataFrame
        ``method, deletion, randomisation, planted, passed, text``.
    """

    def beats(test, metric, method, baseline):
        p = pairs[
            (pairs.test == test)
            & (pairs.metric == metric)
            & (
                ((pairs.a == method) & (pairs.b == baseline))
                | ((pairs.a == baseline) & (pairs.b == method))
            )
        ]
        return bool(len(p)) and p.better.iloc[0] == method

    def median_of(test, metric, method):
        sel = (per_record.test == test) & (per_record.metric == metric)
        v = per_record[sel & (per_record.method == method)].value.to_numpy(dtype=float)
        return float(np.nanmedian(v)) if np.isfinite(v).any() else np.nan

    rows = []
    for m in methods:
        test, metric, where = (
            ("time", "morf_auc:interpolate", "MoRF")
            if m in TIME_METHODS
            else ("leads12", "lerf_minus_morf", "the 12-lead curves")
        )
        dele = all(beats(test, metric, m, b) for b in BASELINE_METHODS)
        rho = median_of("randomisation", f"spearman:{last_stage}", m)
        rnd = bool(np.isfinite(rho) and rho < 0.5)
        mass = median_of("planted", "mass_accuracy", m)
        base = median_of("planted", "mass_accuracy", "random")
        plok = bool(np.isfinite(mass) and mass >= 2 * base)
        rnd_txt = (
            "not randomised on this build"
            if not np.isfinite(rho)
            else f"its map {'changes with' if rnd else 'survives'} random weights "
            f"(median rho {rho:.2f} once every layer is random)"
        )
        text = (
            f"{'beats' if dele else 'does not beat'} both random and |x| on {where}; {rnd_txt}; "
            f"{'finds' if plok else 'misses'} the planted marker "
            f"(median mass accuracy {mass:.2f}; random {base:.2f})"
        )
        rows.append((m, dele, rnd, plok, int(dele) + int(rnd) + int(plok), text))
    return pd.DataFrame(
        rows, columns=["method", "deletion", "randomisation", "planted", "passed", "text"]
    )
