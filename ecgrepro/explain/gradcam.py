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
complexes, delineated by neurokit2 (``ecg_peaks`` + ``ecg_delineate`` in
every lead, then a vote over the leads).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ecgrepro.config import CLASSES

#: Grad-CAM variants: the paper's definition over time, and the published code's pooling.
GRADCAM_VARIANTS: dict[str, str] = {
    "time": "Grad-CAM as defined (gradients averaged over time; a map over time)",
    "published": "published code (gradients averaged over batch and channels; a map over "
    "the 512 channels, stretched; the same for all leads)",
}

#: The case studies of Figures 6-8: the class whose Grad-CAM is drawn, and the rule.
CASE_RULES: dict[str, tuple[str, str]] = {
    "lbbb": ("LBBB", "the most confident correct LBBB prediction"),
    "rbbb": ("RBBB", "the most confident correct RBBB prediction"),
    "snr_as_af": ("AF", "the most confident AF prediction on a record labelled SNR (and not AF)"),
}

#: What a case's record must carry for its raw statements to support the figure's reading:
#: PTB-XL SCP statements required or excluded (at any likelihood), and the class a CPSC record
#: must hold in its own labels. The mapped labels alone do not suffice: the published mapping
#: maps LAFB to LBBB, and labels SNR on records whose rhythm statements (at likelihood 0) say
#: atrial fibrillation, flutter or sinus arrhythmia. Fig. 8's record must be in sinus rhythm
#: (SR) with no atrial or supraventricular arrhythmia, where an AF call would not be plainly wrong.
CASE_STATEMENTS: dict[str, dict] = {
    "lbbb": {"requires": ("CLBBB",), "excludes": (), "cpsc": "LBBB"},
    "rbbb": {"requires": ("CRBBB",), "excludes": (), "cpsc": "RBBB"},
    "snr_as_af": {
        "requires": ("SR",),
        "excludes": ("AFIB", "AFLT", "SARRH", "SVARR", "SVTAC", "PSVT"),
        "cpsc": "SNR",
    },
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


def threshold_percentile(maps: np.ndarray, q: float = 95.0) -> np.ndarray:
    """Keep each map's values at or above its ``q``-th percentile; zero the rest.

    The paper's display rule ("threshold ... at the 95th percentile", Section
    4.6): with ``q=95`` about 5% of the samples of each map remain (ties at the
    threshold may keep a few more). Zeros (where ReLU cut the map) are never kept.

    Parameters
    ----------
    maps : numpy.ndarray, shape (..., n_samples)
        Grad-CAM maps (:func:`grad_cam`); the percentile is taken along the last axis.
    q : float
        Percentile in [0, 100].

    Returns
    -------
    numpy.ndarray, same shape and dtype as ``maps``

    Raises
    ------
    ValueError
        If ``q`` is outside [0, 100] or a map holds NaN.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    maps = np.asarray(maps)
    if np.isnan(maps).any():
        raise ValueError("Grad-CAM map holds NaN")
    cut = np.percentile(maps, q, axis=-1, keepdims=True)
    return np.where((maps >= cut) & (maps > 0), maps, 0).astype(maps.dtype)


def qrs_mask(
    signal: np.ndarray,
    fs_hz: float,
    record: str = "record",
    method: str = "prominence",
    min_lead_share: float = 0.5,
) -> tuple[np.ndarray, int, int]:
    """Samples inside QRS complexes, by neurokit2's delineation of each lead and a vote.

    Each lead is cleaned (``neurokit2.ecg_clean``), its R peaks found
    (``ecg_peaks``) and its QRS onsets and offsets (``ECG_R_Onsets``,
    ``ECG_R_Offsets``) delineated (``ecg_delineate``). A sample is inside a QRS
    complex when at least ``min_lead_share`` of the leads that were delineated
    put it there. The vote keeps one lead's misplaced R peak (a small
    deflection before a deep S wave, common in bundle branch blocks) from
    moving the bounds; with one half it is narrower than the global QRS
    (earliest onset to latest offset over the leads): on the sample's LBBB
    record at 100 Hz about 80 ms per complex, where LBBB means 120 ms or more.
    A beat whose onset or offset a lead does not find counts in that lead as
    outside the QRS (not guessed).

    Parameters
    ----------
    signal : numpy.ndarray, shape (n_leads, n_samples) or (n_samples,), mV
        The record's leads (all 12 in the book), or one lead.
    fs_hz : float
        Sampling frequency, Hz.
    record : str
        Record name, for error messages.
    method : str
        ``ecg_delineate`` method. ``"prominence"`` (default) bounded every beat
        of the sample records checked at 100 Hz; ``"dwt"`` left many beats out.
    min_lead_share : float
        Share of the delineated leads that must agree, in (0, 1].

    Returns
    -------
    mask : numpy.ndarray of bool, shape (n_samples,)
    n_leads : int
        Leads delineated (the others failed, e.g. flat or without R peaks).
    n_qrs : int
        QRS complexes in ``mask`` (its runs of True).

    Raises
    ------
    ValueError
        If the signal holds NaN, has the wrong shape, or no lead could be
        delineated; the message names the record (and each lead's problem).
    """
    import neurokit2 as nk  # imported here: it takes a second and only this function needs it

    if not 0 < min_lead_share <= 1:
        raise ValueError(f"min_lead_share must be in (0, 1], got {min_lead_share}")
    signal = np.asarray(signal, dtype=float)
    if signal.ndim == 1:
        signal = signal[None]
    if signal.ndim != 2:
        raise ValueError(f"{record}: expected (n_leads, n_samples), got shape {signal.shape}")
    if np.isnan(signal).any():
        raise ValueError(f"{record}: signal holds NaN")
    votes = np.zeros(signal.shape[1], dtype=int)
    problems = []
    for i, lead in enumerate(signal):
        if np.ptp(lead) == 0:
            problems.append(f"lead {i + 1} is flat")
            continue
        with warnings.catch_warnings():
            # neurokit2 0.2.12 warns of its own no-op inplace replace (epochs_create)
            # and of short records
            warnings.simplefilter("ignore")
            try:
                clean = nk.ecg_clean(lead, sampling_rate=fs_hz)
                _, info = nk.ecg_peaks(clean, sampling_rate=fs_hz)
                peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
                if len(peaks) < 2:
                    raise ValueError("fewer than 2 R peaks")
                _, waves = nk.ecg_delineate(clean, peaks, sampling_rate=fs_hz, method=method)
                bounds = list(zip(waves["ECG_R_Onsets"], waves["ECG_R_Offsets"], strict=True))
            except Exception as err:  # neurokit2 raises bare ValueError/IndexError on odd leads
                problems.append(f"lead {i + 1}: {err}")
                continue
        inside = np.zeros(signal.shape[1], dtype=bool)
        for on, off in bounds:
            if np.isfinite(on) and np.isfinite(off) and off > on:
                inside[int(on) : int(off) + 1] = True
        votes += inside
    n_leads = len(signal) - len(problems)
    if n_leads == 0:
        raise ValueError(f"{record}: QRS delineation failed in every lead ({'; '.join(problems)})")
    mask = votes >= min_lead_share * n_leads
    n_qrs = int(np.sum(np.diff(mask.astype(int), prepend=0) == 1))
    return mask, n_leads, n_qrs


def qrs_mass_share(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of a map's mass (sum of its values) inside the masked samples.

    Parameters
    ----------
    cam : numpy.ndarray, shape (n_samples,), non-negative
    mask : numpy.ndarray of bool, shape (n_samples,)
        QRS samples (:func:`qrs_mask`).

    Returns
    -------
    float
        In [0, 1]; NaN for an all-zero map. A map spread evenly gives
        ``mask.mean()``, the share of time inside QRS complexes.

    Raises
    ------
    ValueError
        If the shapes differ or the map has negative values.
    """
    cam, mask = np.asarray(cam, dtype=float), np.asarray(mask, dtype=bool)
    if cam.shape != mask.shape:
        raise ValueError(f"map {cam.shape} and mask {mask.shape} differ in shape")
    if (cam < 0).any():
        raise ValueError("Grad-CAM mass needs a non-negative map")
    total = cam.sum()
    return float(cam[mask].sum() / total) if total > 0 else float("nan")


def shifted_mass_shares(cam: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`qrs_mass_share` of the map circularly shifted by every lag: a null distribution.

    A map that ignores where the QRS complexes are has a mass share typical of
    its own shifts; one that follows them stands out. Computed for all
    ``n_samples`` lags at once by FFT (circular cross-correlation).

    Parameters
    ----------
    cam : numpy.ndarray, shape (n_samples,), non-negative
    mask : numpy.ndarray of bool, shape (n_samples,)

    Returns
    -------
    numpy.ndarray, shape (n_samples,), float
        Share for lag 0 (the observed one), 1, ..., n_samples - 1; all NaN for
        an all-zero map.
    """
    cam, mask = np.asarray(cam, dtype=float), np.asarray(mask, dtype=float)
    total = cam.sum()
    if total <= 0:
        return np.full(len(cam), np.nan)
    inside = np.fft.irfft(np.conj(np.fft.rfft(cam)) * np.fft.rfft(mask), n=len(cam))
    return np.clip(inside / total, 0.0, 1.0)


def _most_confident(
    candidates: np.ndarray, score: np.ndarray, tie_rank: np.ndarray, n_predicted: np.ndarray
) -> int | None:
    """Fewest predicted classes first, then the highest score, then the seeded tie rank."""
    idx = np.flatnonzero(candidates)
    if not len(idx):
        return None
    return int(idx[np.lexsort((tie_rank[idx], -score[idx], n_predicted[idx]))[0]])


def case_eligibility(
    scp_codes: list[dict[str, float] | None], own_labels: list[list[str]]
) -> dict[str, np.ndarray]:
    """Which records' raw statements support each case's reading (:data:`CASE_STATEMENTS`).

    Parameters
    ----------
    scp_codes : list of (dict of str -> float, or None)
        Per record, its PTB-XL SCP statements (code -> likelihood %); None
        for a CPSC record.
    own_labels : list of list of str
        Per record, the CPSC classes of a CPSC record (its own annotators');
        ignored for PTB-XL records.

    Returns
    -------
    dict of str -> numpy.ndarray of bool, shape (n_records,)
        One entry per case of :data:`CASE_RULES`.

    Raises
    ------
    ValueError
        If the two lists differ in length.
    """
    if len(scp_codes) != len(own_labels):
        raise ValueError(f"{len(scp_codes)} statement sets but {len(own_labels)} label lists")
    out = {}
    for case, rule in CASE_STATEMENTS.items():
        out[case] = np.array(
            [
                rule["cpsc"] in labels
                if codes is None
                else all(c in codes for c in rule["requires"])
                and not any(c in codes for c in rule["excludes"])
                for codes, labels in zip(scp_codes, own_labels, strict=True)
            ],
            dtype=bool,
        )
    return out


def raw_statements_text(codes: dict[str, float] | None, own_labels: list[str]) -> str:
    """A record's raw statements as printed under its figure.

    Parameters
    ----------
    codes : dict of str -> float, or None
        PTB-XL SCP statements (code -> likelihood %), or None for a CPSC record.
    own_labels : list of str
        The CPSC record's own classes (used when ``codes`` is None).

    Returns
    -------
    str
        ``"SCP: CLBBB 100, SR 0"`` or ``"CPSC label: LBBB"``.
    """
    if codes is None:
        return "CPSC label: " + ("+".join(own_labels) or "none")
    return "SCP: " + ", ".join(f"{k} {v:g}" for k, v in codes.items())


def select_cases(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    records: list[str] | None = None,
    seed: int = 0,
    eligible: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Choose the records of Figures 6-8 from test predictions, automatically.

    Rules (:data:`CASE_RULES`). Among the candidates of a rule, the record
    with the fewest predicted classes wins (a figure of a record called
    five classes at once explains little), then the one with the highest
    score of the case's class (a fallback, below, goes by score alone);
    equal scores (saturated sigmoids) are broken by a permutation seeded
    with ``seed``. Where ``eligible`` is given, the
    rule's tiers first keep only records whose raw statements support the
    reading (:func:`case_eligibility`); without such a record, the same tiers
    are tried on every record and the choice is flagged a fallback.

    - ``lbbb`` / ``rbbb``: labelled and predicted LBBB / RBBB, preferring
      records not labelled with the other bundle branch block. Fallback: the
      labelled record with the highest score (a missed one);
    - ``snr_as_af``: labelled SNR, not AF, predicted AF, preferring records
      labelled SNR alone, then records the model does not also call SNR.
      Fallbacks: any record not labelled AF but predicted AF; then the SNR
      record with the highest AF score (not a misclassification: the closest
      to one).

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n, 9)
        Multi-hot labels, :data:`ecgrepro.config.CLASSES` order.
    scores : numpy.ndarray, shape (n, 9)
        Sigmoid outputs.
    thresholds : numpy.ndarray, shape (9,)
        Decision thresholds (a class is predicted where score >= threshold).
    records : list of str, optional
        Record names, copied into the result.
    seed : int
    eligible : dict of str -> numpy.ndarray of bool, shape (n,), optional
        Per case, the records whose raw statements support it
        (:func:`case_eligibility`).

    Returns
    -------
    pandas.DataFrame
        Index: the case names. Columns ``row`` (int, -1 where no record
        qualifies), ``record``, ``target`` (class drawn), ``score`` (its
        sigmoid output), ``threshold``, ``labels``, ``predicted``, ``rule``
        (the rule that chose it) and ``fallback`` (bool).

    Raises
    ------
    ValueError
        If the shapes disagree.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    thresholds = np.asarray(thresholds)
    if y_true.shape != scores.shape or y_true.ndim != 2 or thresholds.shape != (scores.shape[1],):
        raise ValueError(
            f"y_true {y_true.shape}, scores {scores.shape} and thresholds "
            f"{thresholds.shape} disagree"
        )
    n = len(scores)
    records = list(records) if records is not None else [str(i) for i in range(n)]
    tie_rank = np.argsort(np.random.default_rng(seed).permutation(n))
    labelled = y_true > 0
    predicted = scores >= thresholds
    n_predicted = predicted.sum(axis=1)
    snr, af = CLASSES.index("SNR"), CLASSES.index("AF")
    rows = {}
    for case, (cls, rule) in CASE_RULES.items():
        k = CLASSES.index(cls)
        # (candidates, rule text, meets the case's rule): the first tier with a record wins
        if case == "snr_as_af":
            snr_only = labelled[:, snr] & ~labelled[:, af]
            pure = snr_only & (labelled.sum(axis=1) == 1)
            tries = [
                (
                    pure & predicted[:, af] & ~predicted[:, snr],
                    rule + ", SNR alone, not predicted",
                    True,
                ),
                (pure & predicted[:, af], rule + ", SNR alone (predicted SNR too)", True),
                (snr_only & predicted[:, af], rule + " (every one has other labels too)", True),
                (
                    ~labelled[:, af] & predicted[:, af],
                    "no SNR record was predicted AF: the most confident "
                    "AF prediction on a record not labelled AF",
                    False,
                ),
                (
                    snr_only,
                    "no record was wrongly predicted AF: the SNR record with "
                    "the highest AF score (below the threshold)",
                    False,
                ),
            ]
        else:
            other = CLASSES.index("RBBB" if cls == "LBBB" else "LBBB")
            tries = [
                (
                    labelled[:, k] & ~labelled[:, other] & predicted[:, k],
                    f"{rule}, on a record not labelled {CLASSES[other]}",
                    True,
                ),
                (
                    labelled[:, k] & predicted[:, k],
                    f"{rule} (every one is also labelled {CLASSES[other]})",
                    True,
                ),
                (
                    labelled[:, k],
                    f"no correct {cls} prediction: the {cls} record with the highest {cls} score",
                    False,
                ),
            ]
        # (candidates, text, meets the rule, fewest predicted classes first): the rule's own
        # tiers prefer records called few classes; the fallbacks pick by score, as they say
        tries = [(c, text, meets, meets) for c, text, meets in tries]
        if eligible is not None:
            ok = np.asarray(eligible[case], dtype=bool)
            if ok.shape != (n,):
                raise ValueError(f"eligible[{case!r}] has shape {ok.shape}, expected ({n},)")
            supported = [
                (c & ok, f"{text}; raw statements support it", m, f) for c, text, m, f in tries
            ]
            unsupported = [
                (c, f"{text}; no such record has raw statements that support it", False, True)
                for c, text, meets, _ in tries
                if meets
            ]
            tries = supported + unsupported + [x for x in tries if not x[2]]
        row, chosen_rule, fallback = None, f"no record labelled for this case ({rule})", True
        for candidates, text, meets, few in tries:
            order = n_predicted if few else np.zeros(n, dtype=int)
            row = _most_confident(candidates, scores[:, k], tie_rank, order)
            if row is not None:
                chosen_rule, fallback = text, not meets
                break
        rows[case] = {
            "row": -1 if row is None else row,
            "record": None if row is None else records[row],
            "target": cls,
            "score": np.nan if row is None else float(scores[row, k]),
            "threshold": float(thresholds[k]),
            "labels": None if row is None else "+".join(np.array(CLASSES)[labelled[row]]),
            "predicted": None
            if row is None
            else "+".join(np.array(CLASSES)[predicted[row]]) or "none",
            "rule": chosen_rule,
            "fallback": fallback,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def case_qrs(
    cases: pd.DataFrame, signals: np.ndarray, fs_hz: float, method: str = "prominence"
) -> pd.DataFrame:
    """QRS complexes of each drawn case, delineated once for its figure and its mass table.

    Parameters
    ----------
    cases : pandas.DataFrame
        :func:`select_cases`'s result, restricted to the drawn cases (one row per
        record of ``signals``, same order).
    signals : numpy.ndarray, shape (n_cases, 12, n_samples), float32, mV
    fs_hz : float
        Sampling frequency, Hz.
    method : str
        Delineation method (:func:`qrs_mask`).

    Returns
    -------
    pandas.DataFrame
        Index: the cases. Columns ``record``, ``mask`` (bool array of shape
        (n_samples,), or None where delineation failed), ``leads_delineated``,
        ``qrs_complexes``, ``qrs_ms`` (median duration of the complexes, ms) and
        ``problem`` (the error naming the record; empty when delineated). A
        record that cannot be delineated is reported here, not raised.
    """
    rows = {}
    for i, (case, info) in enumerate(cases.iterrows()):
        row = {"record": info["record"], "mask": None, "leads_delineated": 0, "qrs_complexes": 0}
        try:
            mask, row["leads_delineated"], row["qrs_complexes"] = qrs_mask(
                signals[i], fs_hz, str(info["record"]), method
            )
        except ValueError as err:
            rows[case] = {**row, "qrs_ms": np.nan, "problem": str(err)}
            continue
        edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        qrs_ms = float(np.median(runs) * 1000 / fs_hz) if len(runs) else np.nan
        rows[case] = {**row, "mask": mask, "qrs_ms": qrs_ms, "problem": ""}
    columns = ["record", "mask", "leads_delineated", "qrs_complexes", "qrs_ms", "problem"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def qrs_mass_table(qrs: pd.DataFrame, maps: dict[str, np.ndarray], q: float = 95.0) -> pd.DataFrame:
    """Share of each case's Grad-CAM mass inside QRS complexes, raw and thresholded.

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
        ms), ``shift_p`` (share of the map's circular shifts,
        :func:`shifted_mass_shares`, with at least the observed mass share: small
        where the map follows the QRS complexes), ``qrs_complexes``,
        ``leads_delineated`` and ``note`` (why a value is missing: a failed
        delineation, an all-zero map; the case is kept, not dropped).
    """
    out = []
    for i, (case, info) in enumerate(qrs.iterrows()):
        mask = info["mask"]
        time_share = float(mask.mean()) if mask is not None else np.nan
        for variant, m in maps.items():
            for kind, cam in (("raw", m[i]), ("thresholded", threshold_percentile(m[i], q))):
                share = qrs_mass_share(cam, mask) if mask is not None else np.nan
                null = shifted_mass_shares(cam, mask) if mask is not None else np.array([np.nan])
                note = info["problem"] or ("the map is zero everywhere" if not cam.any() else "")
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
                        "note": note,
                    }
                )
    columns = ["case", "record", "variant", "map", "qrs_time_share", "qrs_ms", "qrs_mass_share"]
    columns += ["enrichment", "shift_p", "qrs_complexes", "leads_delineated", "note"]
    return pd.DataFrame(out, columns=columns)
