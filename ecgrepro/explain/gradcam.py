"""Grad-CAM for 1-D convolutional ECG models, as the paper describes it and as its code pooled it.

The paper (Section 4.6, after Selvaraju et al. 2019): the weight of feature map
k for class c is the global average of the gradients of the class score y^c
(before the sigmoid) with respect to that map, alpha_k^c = (1/Z) sum_t
dy^c/dA_k(t); the map is ReLU(sum_k alpha_k^c A_k(t)), computed at the end of
the 4th residual block and thresholded at the 95th percentile. For a 1-D model
"global average" means over time, and the map is a function of time.

The published code (METHODS.md, "Grad-CAM") pooled the gradients over the
batch and channel axes instead of over time: its weights are one per time step
of the layer, its map one value per channel (512), stretched across the input
length and drawn identically under all 12 leads. METHODS.md gives the pooling
axes and the 512-long result; the rest of ``variant="published"`` is our
reconstruction: the weights applied along time and averaged over it, the ReLU
(as in the paper's definition) and a linear stretch. :func:`grad_cam` computes both:
``variant="time"`` (the correct map) and ``variant="published"``.

Even the correct map is one map per record, not per lead: the first convolution
mixes the 12 leads, so every later layer's time axis is shared by all of them.

The quantitative companion measures how much of a map lies inside QRS
complexes, delineated by neurokit2 (:func:`ecgrepro.beats.qrs_mask`: ``ecg_peaks``
+ ``ecg_delineate`` in every lead, then a vote over the leads), against a null
of the map's own circular shifts. The choice of the case records lives in
:mod:`ecgrepro.explain.cases`.

Padding. A record shorter than the window is zero-padded at the front; it
occupies the last ``n_valid`` samples. The maps are computed on the whole
input (the model sees the padding), but every statistic here (the display
percentile, the QRS time and mass shares, the shift null, which shifts the
map only within the valid part) counts the valid samples alone.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ecgrepro.beats import delineate_records, valid_lengths, valid_mask

#: Grad-CAM variants: the paper's definition over time, and the published code's pooling.
GRADCAM_VARIANTS: dict[str, str] = {
    "time": "Grad-CAM as defined (gradients averaged over time; a map over time)",
    "published": "published code (gradients averaged over batch and channels; a map over "
    "the 512 channels, stretched; the same for all leads)",
}


def grad_cam(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    target: int | np.ndarray,
    layer: str = "layer4",
    variant: str = "time",
    batch_size: int = 32,
) -> np.ndarray:
    """Class-specific Grad-CAM maps, upsampled to the input length.

    Parameters
    ----------
    model : torch.nn.Module
        (batch, 12, n_samples) float32 mV -> (batch, n_classes) logits, in eval
        mode, on the CPU or a GPU (``x`` is moved to the model's device).
    x : numpy.ndarray or torch.Tensor, shape (n, 12, n_samples), float32, mV
    target : int or numpy.ndarray of int, shape (n,)
        Class index per record (:data:`ecgrepro.config.CLASSES` order); its
        logit is the score y^c.
    layer : str
        Name of the module whose output is the feature map A (``model.get_submodule``);
        default the 4th residual block, as the paper.
    variant : {"time", "published"}
        ``"time"``: alpha_k = mean over time of dy/dA_k, map(t) = ReLU(sum_k
        alpha_k A_k(t)) (paper Section 4.6; Selvaraju et al.), as captum's
        ``LayerGradCam(..., relu_attributions=True)``. ``"published"``: the
        published code's pooling (METHODS.md): w(t) = mean over the records
        of this call and over channels of dy/dA_k(t), map(k) = ReLU(mean_t w(t)
        A_k(t)) for the channels k; pass one record per call for a
        per-record map.
    batch_size : int
        Records per forward/backward pass.

    Returns
    -------
    numpy.ndarray, shape (n, n_samples), float32
        Non-negative maps in logit units (class-logit gradient times
        activation), linearly interpolated to the input length (``torch``
        ``interpolate(mode="linear", align_corners=False)``, as captum's
        ``LayerAttribution.interpolate``). For ``"published"`` the
        interpolation stretches the channel axis (length 512) instead of time.

    Raises
    ------
    ValueError
        If ``variant`` is unknown, the model is in training mode, ``x`` is not
        (n, leads, samples), or a target is outside the model's classes.
    AttributeError
        If the model has no module named ``layer``.
    """
    if variant not in GRADCAM_VARIANTS:
        raise ValueError(
            f"unknown Grad-CAM variant {variant!r}; expected one of {list(GRADCAM_VARIANTS)}"
        )
    if any(m.training for m in model.modules()):
        raise ValueError(
            "put the model in eval mode: dropout and batch statistics make Grad-CAM random"
        )
    x = torch.as_tensor(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (n, leads, samples), got shape {tuple(x.shape)}")
    n, n_samples = x.shape[0], x.shape[-1]
    raw = np.asarray(target)
    if raw.dtype.kind not in "iu" or raw.ndim > 1 or raw.size not in (1, n) or (raw < 0).any():
        raise ValueError(
            f"targets must be non-negative class indices, one or one per record, got {target!r}"
        )
    targets = np.broadcast_to(raw.astype(int).reshape(-1), (n,))
    module = model.get_submodule(layer)
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    acts, grads = [], []
    try:
        for start in range(0, n, batch_size):
            xb = x[start : start + batch_size].to(device=device, dtype=torch.float32)
            tb = torch.as_tensor(targets[start : start + batch_size].copy(), device=device)
            captured.clear()
            with torch.enable_grad():
                logits = model(xb.requires_grad_(True))
                if tb.max() >= logits.shape[1]:  # negatives were refused above
                    raise ValueError(
                        f"targets must be class indices in [0, {logits.shape[1]}), got {targets}"
                    )
                (grad,) = torch.autograd.grad(logits.gather(1, tb[:, None]).sum(), captured[0])
            acts.append(captured[0].detach())
            grads.append(grad.detach())
    finally:
        hook.remove()
    a, g = torch.cat(acts), torch.cat(grads)  # (n, channels, time)
    if variant == "time":
        cam = (g.mean(dim=2, keepdim=True) * a).sum(dim=1)  # (n, time)
    else:
        w = g.mean(dim=(0, 1))  # (time,): pooled over the batch and the channels
        cam = (w * a).mean(dim=2)  # (n, channels)
    cam = F.relu(cam)
    up = F.interpolate(cam[:, None, :], size=n_samples, mode="linear", align_corners=False)
    return up[:, 0].cpu().numpy().astype(np.float32)


def captum_grad_cam(
    model: nn.Module, x: np.ndarray | torch.Tensor, target: int | np.ndarray, layer: str = "layer4"
) -> np.ndarray:
    """The same map from captum: ``LayerGradCam`` (ReLU on) + ``LayerAttribution.interpolate``.

    The trusted reference for :func:`grad_cam` with ``variant="time"``.

    Parameters
    ----------
    model, x, target, layer
        As :func:`grad_cam` (all records in one batch).

    Returns
    -------
    numpy.ndarray, shape (n, n_samples), float32
    """
    with warnings.catch_warnings():
        # captum imports tqdm.auto, which warns in a notebook without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        from captum.attr import LayerAttribution, LayerGradCam

    x = torch.as_tensor(x).to(next(model.parameters()).device)
    targets = [int(t) for t in np.broadcast_to(np.asarray(target, dtype=int), (len(x),))]
    cam = LayerGradCam(model, model.get_submodule(layer)).attribute(
        x, target=targets, relu_attributions=True
    )
    cam = LayerAttribution.interpolate(cam, (x.shape[-1],), interpolate_mode="linear")
    return cam[:, 0].detach().cpu().numpy().astype(np.float32)


def threshold_percentile(
    maps: np.ndarray, q: float = 95.0, n_valid: int | np.ndarray | None = None
) -> np.ndarray:
    """Keep each map's values at or above its ``q``-th percentile; zero the rest.

    The paper's display rule ("threshold ... at the 95th percentile", Section
    4.6): with ``q=95`` about 5% of the valid samples of each map remain (ties
    at the threshold may keep a few more). Zeros (where ReLU cut the map) are
    never kept; nor is the padding, which neither enters the percentile nor is kept.

    Parameters
    ----------
    maps : numpy.ndarray, shape (..., n_samples)
        Grad-CAM maps (:func:`grad_cam`); the percentile is taken along the last axis.
    q : float
        Percentile in [0, 100].
    n_valid : int or numpy.ndarray of int, shape ``maps.shape[:-1]``, optional
        Valid samples (the last ``n_valid``) of each map's record. None: all.

    Returns
    -------
    numpy.ndarray, same shape and dtype as ``maps``

    Raises
    ------
    ValueError
        If ``q`` is outside [0, 100], ``n_valid`` outside [1, n_samples], or a map holds NaN.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    maps = np.asarray(maps)
    if np.isnan(maps).any():
        raise ValueError("Grad-CAM map holds NaN")
    if n_valid is None:
        cut = np.percentile(maps, q, axis=-1, keepdims=True)
        return np.where((maps >= cut) & (maps > 0), maps, 0).astype(maps.dtype)
    n = maps.shape[-1]
    lengths = valid_lengths(n_valid, maps.shape[:-1], n).reshape(-1)
    flat = maps.reshape(-1, n)
    out = np.zeros_like(flat)
    for i, (m, nv) in enumerate(zip(flat, lengths, strict=True)):
        seg = m[n - nv :]
        cut = np.percentile(seg, q)
        out[i, n - nv :] = np.where((seg >= cut) & (seg > 0), seg, 0)
    return out.reshape(maps.shape)


def qrs_mass_share(cam: np.ndarray, mask: np.ndarray, n_valid: int | None = None) -> float:
    """Share of a map's mass (sum of its values over the valid samples) inside the masked samples.

    Parameters
    ----------
    cam : numpy.ndarray, shape (n_samples,), non-negative
    mask : numpy.ndarray of bool, shape (n_samples,)
        QRS samples (:func:`ecgrepro.beats.qrs_mask`).
    n_valid : int, optional
        Valid samples at the end of the input; the padding before them is
        ignored (its mass counts neither inside nor outside). None: all.

    Returns
    -------
    float
        In [0, 1]; NaN for a map that is zero on the valid samples. A map
        spread evenly gives the share of valid time inside QRS complexes.

    Raises
    ------
    ValueError
        If the shapes differ, the map has negative values or ``n_valid`` is out of range.
    """
    cam, mask = np.asarray(cam, dtype=float), np.asarray(mask, dtype=bool)
    if cam.shape != mask.shape:
        raise ValueError(f"map {cam.shape} and mask {mask.shape} differ in shape")
    if (cam < 0).any():
        raise ValueError("Grad-CAM mass needs a non-negative map")
    valid = valid_mask(len(cam), n_valid)
    cam, mask = cam[valid], mask[valid]
    total = cam.sum()
    return float(cam[mask].sum() / total) if total > 0 else float("nan")


def shifted_mass_shares(
    cam: np.ndarray, mask: np.ndarray, n_valid: int | None = None
) -> np.ndarray:
    """:func:`qrs_mass_share` of the map circularly shifted by every lag: a null distribution.

    A map that ignores where the QRS complexes are has a mass share typical of
    its own shifts; one that follows them stands out. The shifts are circular
    within the valid part of the record (the last ``n_valid`` samples): the
    padding is neither shifted in nor counted. Computed for all lags at once by
    FFT (circular cross-correlation).

    Parameters
    ----------
    cam : numpy.ndarray, shape (n_samples,), non-negative
    mask : numpy.ndarray of bool, shape (n_samples,)
    n_valid : int, optional
        Valid samples at the end of the input. None: all.

    Returns
    -------
    numpy.ndarray, shape (n_valid,), float
        Share for lag 0 (the observed one), 1, ..., n_valid - 1; all NaN for a
        map that is zero on the valid samples.
    """
    cam, mask = np.asarray(cam, dtype=float), np.asarray(mask, dtype=float)
    valid = valid_mask(len(cam), n_valid)
    cam, mask = cam[valid], mask[valid]
    total = cam.sum()
    if total <= 0:
        return np.full(len(cam), np.nan)
    inside = np.fft.irfft(np.conj(np.fft.rfft(cam)) * np.fft.rfft(mask), n=len(cam))
    return np.clip(inside / total, 0.0, 1.0)


def case_maps(
    model: nn.Module,
    x: np.ndarray,
    targets: np.ndarray,
    layer: str = "layer4",
    check_captum: bool = True,
) -> dict[str, np.ndarray]:
    """Both Grad-CAM variants of the case records, with the captum check and the cost.

    The result is a dict of arrays, so that it can be stored
    (:func:`ecgrepro.explain.store.cached`) and re-read on a rebuild.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode.
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    targets : numpy.ndarray of int, shape (n,)
    layer : str
    check_captum : bool
        Also compute captum's map and store the largest difference.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``time`` and ``published``: (n, n_samples) float32 maps (the published
        pooling mixes the records of a batch, so it runs one record per call);
        ``seconds_per_record``: the time map's cost; ``captum_max_diff``: the
        largest absolute difference to captum's map (NaN when unchecked or n = 0).
    """
    n, n_samples = len(x), np.shape(x)[-1]
    if n == 0:
        empty = np.zeros((0, n_samples), np.float32)
        return {
            "time": empty,
            "published": empty,
            "seconds_per_record": np.nan,
            "captum_max_diff": np.nan,
        }
    t0 = time.perf_counter()
    maps = {"time": grad_cam(model, x, targets, layer=layer)}
    seconds = (time.perf_counter() - t0) / n
    maps["published"] = np.concatenate(
        [
            grad_cam(model, x[i : i + 1], int(targets[i]), layer=layer, variant="published")
            for i in range(n)
        ]
    )
    diff = (
        float(np.abs(captum_grad_cam(model, x, targets, layer) - maps["time"]).max())
        if check_captum
        else np.nan
    )
    return {**maps, "seconds_per_record": seconds, "captum_max_diff": diff}


def qrs_frame(
    cases: pd.DataFrame, delineation: dict[str, np.ndarray], n_valid: np.ndarray | None = None
) -> pd.DataFrame:
    """:func:`ecgrepro.beats.delineate_records`'s arrays as one row per case.

    Parameters
    ----------
    cases : pandas.DataFrame
        The drawn cases (:func:`ecgrepro.explain.select_cases`), in the order
        of the delineated records.
    delineation : dict of str -> numpy.ndarray
        :func:`ecgrepro.beats.delineate_records`'s result (possibly re-read from the store).
    n_valid : numpy.ndarray of int, shape (n_cases,), optional
        Valid samples per record. None: the whole input.

    Returns
    -------
    pandas.DataFrame
        See :func:`case_qrs`.
    """
    n_samples = delineation["mask"].shape[-1]
    lengths = valid_lengths(n_valid, (len(cases),), n_samples)
    rows = {}
    for i, (case, info) in enumerate(cases.iterrows()):
        problem = str(delineation["problem"][i])
        rows[case] = {
            "record": info["record"],
            "mask": None if problem else np.asarray(delineation["mask"][i], dtype=bool),
            "n_valid": int(lengths[i]),
            "leads_delineated": int(delineation["leads_delineated"][i]),
            "qrs_complexes": int(delineation["qrs_complexes"][i]),
            "qrs_ms": float(delineation["qrs_ms"][i]),
            "problem": problem,
        }
    columns = ["record", "mask", "n_valid", "leads_delineated", "qrs_complexes", "qrs_ms"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns + ["problem"])


def case_qrs(
    cases: pd.DataFrame,
    signals: np.ndarray,
    fs_hz: float,
    method: str = "prominence",
    n_valid: np.ndarray | None = None,
) -> pd.DataFrame:
    """QRS complexes of each drawn case, delineated once for its figure and its mass table.

    Parameters
    ----------
    cases : pandas.DataFrame
        :func:`ecgrepro.explain.select_cases`'s result, restricted to the drawn
        cases (one row per record of ``signals``, same order).
    signals : numpy.ndarray, shape (n_cases, 12, n_samples), float32, mV
    fs_hz : float
        Sampling frequency, Hz.
    method : str
        Delineation method (:func:`ecgrepro.beats.qrs_mask`).
    n_valid : numpy.ndarray of int, shape (n_cases,), optional
        Valid samples per record (the rest is front padding, never delineated).

    Returns
    -------
    pandas.DataFrame
        Index: the cases. Columns ``record``, ``mask`` (bool array of shape
        (n_samples,), False in the padding, or None where delineation failed),
        ``n_valid``, ``leads_delineated``, ``qrs_complexes``, ``qrs_ms`` (median
        duration of the complexes, ms) and ``problem`` (the error naming the
        record; empty when delineated). A record that cannot be delineated is
        reported here, not raised.
    """
    records = [str(r) for r in cases["record"]]
    return qrs_frame(
        cases, delineate_records(signals, fs_hz, records, method, n_valid=n_valid), n_valid
    )


def qrs_mass_table(qrs: pd.DataFrame, maps: dict[str, np.ndarray], q: float = 95.0) -> pd.DataFrame:
    """Share of each case's Grad-CAM mass inside QRS complexes, raw and thresholded.

    Only the valid part of each record counts (``qrs["n_valid"]`` where
    present): the time share, the mass share, the display percentile and the
    shift null all ignore the front padding.

    Parameters
    ----------
    qrs : pandas.DataFrame
        :func:`case_qrs`'s result (one row per case, in the order of the maps).
    maps : dict of str -> numpy.ndarray, shape (n_cases, n_samples)
        Grad-CAM maps per variant (:func:`grad_cam`).
    q : float
        Percentile of the thresholded maps.

    Returns
    -------
    pandas.DataFrame
        One row per case, variant and map (``raw``, ``thresholded``):
        ``case, record, variant, map, qrs_time_share, qrs_mass_share,
        enrichment`` (mass share / time share: 1 for a map that ignores QRS
        complexes), ``qrs_ms`` (median duration of the delineated complexes,
        ms), ``shift_p`` (share of the map's circular shifts within the valid
        part, :func:`shifted_mass_shares`, with at least the observed mass
        share: small where the map follows the QRS complexes), ``qrs_complexes``,
        ``leads_delineated``, ``n_valid`` and ``note`` (why a value is missing:
        a failed delineation, an all-zero map; the case is kept, not dropped).
    """
    out = []
    for i, (case, info) in enumerate(qrs.iterrows()):
        mask = info["mask"]
        n_samples = next(iter(maps.values())).shape[-1] if maps else 0
        nv = int(info["n_valid"]) if "n_valid" in info and pd.notna(info["n_valid"]) else n_samples
        valid = valid_mask(n_samples, nv) if n_samples else None
        time_share = float(mask[valid].mean()) if mask is not None else np.nan
        for variant, m in maps.items():
            thresholded = threshold_percentile(m[i], q, n_valid=nv)
            for kind, cam in (("raw", m[i]), ("thresholded", thresholded)):
                share = qrs_mass_share(cam, mask, nv) if mask is not None else np.nan
                null = (
                    shifted_mass_shares(cam, mask, nv) if mask is not None else np.array([np.nan])
                )
                zero = not np.asarray(cam)[valid].any()
                note = info["problem"] or ("the map is zero everywhere" if zero else "")
                if variant == "published" and not note:
                    note = "a map over channels, drawn over time: any fit to QRS is chance"
                out.append(
                    {
                        "case": case,
                        "record": info["record"],
                        "variant": variant,
                        "map": kind,
                        "qrs_time_share": time_share,
                        "qrs_ms": info["qrs_ms"],
                        "qrs_mass_share": share,
                        "enrichment": share / time_share if time_share else np.nan,
                        "shift_p": float(np.mean(null >= share - 1e-12))
                        if np.isfinite(share)
                        else np.nan,
                        "qrs_complexes": info["qrs_complexes"],
                        "leads_delineated": info["leads_delineated"],
                        "n_valid": nv,
                        "note": note,
                    }
                )
    columns = ["case", "record", "variant", "map", "qrs_time_share", "qrs_ms", "qrs_mass_share"]
    columns += ["enrichment", "shift_p", "qrs_complexes", "leads_delineated", "n_valid", "note"]
    return pd.DataFrame(out, columns=columns)
