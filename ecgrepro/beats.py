"""Beats: R peaks and QRS complexes of 12-lead records, by neurokit2, ignoring the padding.

Shared by the analyses that need to know where the beats are: the share of
Grad-CAM mass inside QRS complexes (:mod:`ecgrepro.explain.gradcam`), and the
average-beat and wave-overlap analyses (R-peak aligned windows).

Each lead is cleaned (``neurokit2.ecg_clean``), its R peaks found
(``ecg_peaks``) and its QRS onsets and offsets (``ECG_R_Onsets``,
``ECG_R_Offsets``) delineated (``ecg_delineate``); a vote over the leads
gives the record's QRS complexes (:func:`qrs_mask`).

Padding. A record shorter than the model's window is zero-padded at the front
(METHODS.md, "Input and training"): it occupies the last ``n_valid`` samples
of the input. Every function here takes ``n_valid`` and works on those
samples only: the flat padding is never delineated, never holds a beat, and
indices are returned in the input's coordinates (padding included).
"""

from __future__ import annotations

import warnings

import numpy as np


def valid_mask(n_samples: int, n_valid: int | None = None) -> np.ndarray:
    """Samples of an input that belong to the record (not to the front padding).

    Parameters
    ----------
    n_samples : int
        Input length.
    n_valid : int, optional
        Samples of signal: the last ``n_valid`` of the input. None: all.

    Returns
    -------
    numpy.ndarray of bool, shape (n_samples,)

    Raises
    ------
    ValueError
        If ``n_valid`` is not in [1, n_samples].
    """
    if n_valid is None:
        return np.ones(n_samples, dtype=bool)
    n_valid = int(n_valid)
    if not 1 <= n_valid <= n_samples:
        raise ValueError(f"n_valid must be in [1, {n_samples}], got {n_valid}")
    return np.arange(n_samples) >= n_samples - n_valid


def valid_masks(n_valid, n_samples: int) -> np.ndarray:
    """Which samples of each input belong to its record (not to the front padding).

    Parameters
    ----------
    n_valid : array-like of int, shape (n,)
        Samples of signal at the end of each input, each in [1, n_samples].
    n_samples : int
        Input length.

    Returns
    -------
    numpy.ndarray of bool, shape (n, n_samples)

    Raises
    ------
    ValueError
        If a length is outside [1, n_samples].
    """
    return np.stack([valid_mask(n_samples, int(v)) for v in np.asarray(n_valid)])


def valid_lengths(n_valid, shape: tuple[int, ...], n_samples: int) -> np.ndarray:
    """Valid samples per record, broadcast to ``shape`` and checked.

    Parameters
    ----------
    n_valid : int, array-like of int, or None
        Samples of signal at the end of each input (the rest is front padding).
        None: the whole input.
    shape : tuple of int
        Shape of the result (``(n_records,)``, or a map's leading shape).
    n_samples : int
        Input length.

    Returns
    -------
    numpy.ndarray of int64, shape ``shape``

    Raises
    ------
    ValueError
        If a length is outside [1, n_samples] (or ``n_valid`` does not broadcast to ``shape``).
    """
    if n_valid is None:
        return np.full(shape, n_samples, dtype=np.int64)
    try:
        out = np.broadcast_to(np.asarray(n_valid, dtype=np.int64), shape)
    except ValueError:
        raise ValueError(
            f"n_valid must hold {shape[0] if shape else 1} lengths (shape {shape}), "
            f"got shape {np.shape(n_valid)}"
        ) from None
    if (out < 1).any() or (out > n_samples).any():
        raise ValueError(f"n_valid must be in [1, {n_samples}], got {n_valid}")
    return out


def _delineate(lead: np.ndarray, fs_hz: float, method: str) -> tuple[np.ndarray, dict]:
    """R peaks and neurokit2's ``ecg_delineate`` waves of one lead; ValueError on a failure."""
    import neurokit2 as nk  # imported here: it takes a second and only the delineation needs it

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
        except Exception as err:  # neurokit2 raises bare ValueError/IndexError on odd leads
            raise ValueError(str(err)) from err
    return peaks, waves


def _lead_qrs(lead: np.ndarray, fs_hz: float, method: str) -> tuple[np.ndarray, list]:
    """R peaks and (onset, offset) pairs of one lead; raises ValueError on a failure."""
    peaks, waves = _delineate(lead, fs_hz, method)
    return peaks, list(zip(waves["ECG_R_Onsets"], waves["ECG_R_Offsets"], strict=True))


def _as_leads(signal: np.ndarray, record: str) -> np.ndarray:
    signal = np.asarray(signal, dtype=float)
    if signal.ndim == 1:
        signal = signal[None]
    if signal.ndim != 2:
        raise ValueError(f"{record}: expected (n_leads, n_samples), got shape {signal.shape}")
    if np.isnan(signal).any():
        raise ValueError(f"{record}: signal holds NaN")
    return signal


def _valid_segment(lead: np.ndarray, n_valid: int | None, record: str) -> tuple[np.ndarray, int]:
    """One lead's valid samples and where they start; ValueError naming the record if flat."""
    lead = _as_leads(lead, record)[0]
    start = len(lead) - int(valid_mask(len(lead), n_valid).sum())
    seg = lead[start:]
    if np.ptp(seg) == 0:
        raise ValueError(f"{record}: the lead is flat")
    return seg, start


def r_peaks(
    lead: np.ndarray, fs_hz: float, n_valid: int | None = None, record: str = "record"
) -> np.ndarray:
    """R peaks of one lead (neurokit2 ``ecg_clean`` + ``ecg_peaks``), in the valid part only.

    Parameters
    ----------
    lead : numpy.ndarray, shape (n_samples,), mV
    fs_hz : float
        Sampling frequency, Hz.
    n_valid : int, optional
        Samples of signal at the end of the input (the rest is padding). None: all.
    record : str
        Record name, for error messages.

    Returns
    -------
    numpy.ndarray of int
        Sample indices of the R peaks in the input (padding included), ascending.

    Raises
    ------
    ValueError
        If the lead holds NaN, is flat, or has no R peak; the message names the record.
    """
    import neurokit2 as nk

    seg, start = _valid_segment(lead, n_valid, record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clean = nk.ecg_clean(seg, sampling_rate=fs_hz)
            _, info = nk.ecg_peaks(clean, sampling_rate=fs_hz)
        except Exception as err:
            raise ValueError(f"{record}: {err}") from err
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
    if not len(peaks):
        raise ValueError(f"{record}: no R peak found")
    return peaks + start


def qrs_mask(
    signal: np.ndarray,
    fs_hz: float,
    record: str = "record",
    method: str = "prominence",
    min_lead_share: float = 0.5,
    n_valid: int | None = None,
) -> tuple[np.ndarray, int, int]:
    """Samples inside QRS complexes, by neurokit2's delineation of each lead and a vote.

    A sample is inside a QRS complex when at least ``min_lead_share`` of the
    leads that were delineated put it there. The vote keeps one lead's
    misplaced R peak (a small deflection before a deep S wave, common in
    bundle branch blocks) from moving the bounds; with one half it is narrower
    than the global QRS (earliest onset to latest offset over the leads): on
    the sample's LBBB record at 100 Hz about 80 ms per complex, where LBBB
    means 120 ms or more. A beat whose onset or offset a lead does not find
    counts in that lead as outside the QRS (not guessed). Only the last
    ``n_valid`` samples are delineated; the padding is never inside a QRS.

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
    n_valid : int, optional
        Samples of signal at the end of the input (the rest is zero-padding).
        None: all.

    Returns
    -------
    mask : numpy.ndarray of bool, shape (n_samples,)
        False throughout the padding.
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
    if not 0 < min_lead_share <= 1:
        raise ValueError(f"min_lead_share must be in (0, 1], got {min_lead_share}")
    signal = _as_leads(signal, record)
    n_samples = signal.shape[1]
    start = n_samples - int(valid_mask(n_samples, n_valid).sum())
    votes = np.zeros(n_samples, dtype=int)
    problems = []
    for i, lead in enumerate(signal[:, start:]):
        if np.ptp(lead) == 0:
            problems.append(f"lead {i + 1} is flat")
            continue
        try:
            _, bounds = _lead_qrs(lead, fs_hz, method)
        except ValueError as err:
            problems.append(f"lead {i + 1}: {err}")
            continue
        inside = np.zeros(n_samples, dtype=bool)
        for on, off in bounds:
            if np.isfinite(on) and np.isfinite(off) and off > on:
                inside[start + int(on) : start + int(off) + 1] = True
        votes += inside
    n_leads = len(signal) - len(problems)
    if n_leads == 0:
        raise ValueError(f"{record}: QRS delineation failed in every lead ({'; '.join(problems)})")
    mask = votes >= min_lead_share * n_leads
    n_qrs = int(np.sum(np.diff(mask.astype(int), prepend=0) == 1))
    return mask, n_leads, n_qrs


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """Lengths (samples) of the runs of True in a boolean mask, in order."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def delineate_records(
    signals: np.ndarray,
    fs_hz: float,
    records: list[str] | None = None,
    method: str = "prominence",
    n_valid: np.ndarray | None = None,
    min_lead_share: float = 0.5,
) -> dict[str, np.ndarray]:
    """:func:`qrs_mask` of several records, as arrays (storable, see :mod:`ecgrepro.explain.store`).

    A record that cannot be delineated is reported in ``problem``, not raised.

    Parameters
    ----------
    signals : numpy.ndarray, shape (n_records, 12, n_samples), float32, mV
    fs_hz : float
        Sampling frequency, Hz.
    records : list of str, optional
        Names, for the problem messages.
    method, min_lead_share
        As :func:`qrs_mask`.
    n_valid : numpy.ndarray of int, shape (n_records,), optional
        Valid samples per record (the rest is front padding). None: all.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``mask`` (n_records, n_samples) bool (all False where delineation
        failed); ``leads_delineated`` and ``qrs_complexes`` (n_records,) int;
        ``qrs_ms`` (n_records,) float, the median duration of the complexes in
        ms (NaN where none); ``problem`` (n_records,) str, empty when delineated.
    """
    signals = np.asarray(signals)
    n = len(signals)
    records = [str(r) for r in records] if records is not None else [str(i) for i in range(n)]
    out = {
        "mask": np.zeros((n, signals.shape[-1]), dtype=bool),
        "leads_delineated": np.zeros(n, dtype=np.int64),
        "qrs_complexes": np.zeros(n, dtype=np.int64),
        "qrs_ms": np.full(n, np.nan),
        "problem": np.array([""] * n, dtype=object),
    }
    for i in range(n):
        nv = None if n_valid is None else int(n_valid[i])
        try:
            mask, leads, count = qrs_mask(
                signals[i], fs_hz, records[i], method, min_lead_share, n_valid=nv
            )
        except ValueError as err:
            out["problem"][i] = str(err)
            continue
        runs = run_lengths(mask)
        out["mask"][i], out["leads_delineated"][i], out["qrs_complexes"][i] = mask, leads, count
        out["qrs_ms"][i] = float(np.median(runs) * 1000 / fs_hz) if len(runs) else np.nan
    out["problem"] = out["problem"].astype(str)
    return out


#: Waves whose bounds :func:`wave_windows_ms` delineates: (name, onset key, offset key) of
#: ``neurokit2.ecg_delineate``'s output.
WAVES = (
    ("P", "ECG_P_Onsets", "ECG_P_Offsets"),
    ("QRS", "ECG_R_Onsets", "ECG_R_Offsets"),
    ("T", "ECG_T_Onsets", "ECG_T_Offsets"),
)


def _delineate_record(
    lead: np.ndarray, fs_hz: float, n_valid: int | None, record: str, method: str
) -> tuple[np.ndarray, dict, int]:
    """:func:`_delineate` of a lead's valid samples: R peaks and waves in the segment, and its
    start in the input; a failure is a ValueError naming the record."""
    seg, start = _valid_segment(lead, n_valid, record)
    try:
        peaks, waves = _delineate(seg, fs_hz, method)
    except ValueError as err:
        raise ValueError(f"{record}: {err}") from err
    return peaks, waves, start


def wave_windows_ms(
    lead: np.ndarray,
    fs_hz: float,
    n_valid: int | None = None,
    record: str = "record",
    method: str = "prominence",
    min_share: float = 0.5,
) -> tuple[dict[str, tuple[float, float]], np.ndarray]:
    """The P, QRS and T windows of a record's average beat, in ms from the R peak.

    One lead (lead II in the book) is cleaned, its R peaks found and each beat
    delineated by neurokit2 (``ecg_delineate``, ``method``). A wave's window is
    the median, over the beats where both its onset and offset were found, of
    (onset - R) and (offset - R). A wave found in fewer than ``min_share`` of
    the beats has no window (NaN, NaN): on a record in atrial fibrillation the
    P wave is usually not found, and then it has none. Only the last
    ``n_valid`` samples (the signal, not the front padding) are read.

    Parameters
    ----------
    lead : numpy.ndarray, shape (n_samples,), mV
    fs_hz : float
        Sampling frequency, Hz.
    n_valid : int, optional
        Samples of signal at the end of the input. None: all.
    record : str
        Record name, for error messages.
    method : str
        ``ecg_delineate`` method.
    min_share : float
        Share of the beats in which a wave must be delineated, in (0, 1].

    Returns
    -------
    windows : dict of str -> (float, float)
        ``"P"``, ``"QRS"``, ``"T"`` -> (start, end) in ms relative to the R peak.
    r_peaks : numpy.ndarray of int
        The R peaks, sample indices in the input (padding included).

    Raises
    ------
    ValueError
        If the lead holds NaN, is flat or has fewer than 2 R peaks; the message
        names the record.
    """
    peaks, waves, start = _delineate_record(lead, fs_hz, n_valid, record, method)
    windows = {}
    for name, on_key, off_key in WAVES:
        on = np.asarray(waves[on_key], dtype=float)[: len(peaks)]
        off = np.asarray(waves[off_key], dtype=float)[: len(peaks)]
        ok = np.isfinite(on) & np.isfinite(off) & (off > on)
        if ok.sum() < min_share * len(peaks):
            windows[name] = (np.nan, np.nan)
            continue
        r = peaks[: len(on)][ok]
        windows[name] = (
            float(np.median(on[ok] - r) * 1000 / fs_hz),
            float(np.median(off[ok] - r) * 1000 / fs_hz),
        )
    return windows, peaks + start


def beat_windows(
    signal: np.ndarray,
    r_peaks: np.ndarray,
    fs_hz: float,
    before_ms: float = 250.0,
    after_ms: float = 450.0,
    n_valid: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed R-peak-aligned windows of a signal: the beats of an average beat.

    The window runs from ``before_ms`` before to ``after_ms`` after each R
    peak, whatever the heart rate. A beat whose window reaches outside the
    record's valid samples (into the front padding or past the end) is left out.

    Parameters
    ----------
    signal : numpy.ndarray, shape (n_channels, n_samples)
        ECG leads (mV) or any per-sample map of the same shape (relevance).
    r_peaks : numpy.ndarray of int
        R peaks, sample indices in the input.
    fs_hz : float
        Sampling frequency, Hz.
    before_ms, after_ms : float
        Window bounds, ms (-250 to +450 in the book, after Bender et al.).
    n_valid : int, optional
        Samples of signal at the end of the input. None: all.

    Returns
    -------
    beats : numpy.ndarray, shape (n_beats, n_channels, n_window)
        ``n_window = round(before_ms * fs / 1000) + round(after_ms * fs / 1000) + 1``.
    offsets_ms : numpy.ndarray, shape (n_window,), float
        Time of each window sample relative to the R peak, ms.
    """
    signal = np.asarray(signal)
    n_samples = signal.shape[-1]
    first = n_samples - int(valid_mask(n_samples, n_valid).sum())
    pre, post = round(before_ms * fs_hz / 1000), round(after_ms * fs_hz / 1000)
    keep = [int(r) for r in np.asarray(r_peaks) if r - pre >= first and r + post < n_samples]
    beats = (
        np.stack([signal[..., r - pre : r + post + 1] for r in keep])
        if keep
        else (np.zeros((0, *signal.shape[:-1], pre + post + 1), dtype=signal.dtype))
    )
    return beats, np.arange(-pre, post + 1) * 1000.0 / fs_hz


#: Codes of :func:`wave_labels`: each valid sample is in a P wave, a QRS complex, a T wave, or
#: none of them ("other": the TP, PR and ST segments, and beats whose waves were not found).
WAVE_CODES = {"P": 0, "QRS": 1, "T": 2, "other": 3}


def wave_labels(
    lead: np.ndarray,
    fs_hz: float,
    n_valid: int | None = None,
    record: str = "record",
    method: str = "prominence",
) -> np.ndarray:
    """Which wave each sample of one lead is in, from neurokit2's delineation of every beat.

    Parameters
    ----------
    lead : numpy.ndarray, shape (n_samples,), mV
        One lead (lead II in the book).
    fs_hz : float
        Sampling frequency, Hz.
    n_valid : int, optional
        Samples of signal at the end of the input. None: all.
    record : str
        Record name, for error messages.
    method : str
        ``ecg_delineate`` method.

    Returns
    -------
    numpy.ndarray of int8, shape (n_samples,)
        :data:`WAVE_CODES` per sample; -1 in the front padding.

    Raises
    ------
    ValueError
        If the lead holds NaN, is flat or has fewer than 2 R peaks; the message
        names the record.
    """
    _, waves, start = _delineate_record(lead, fs_hz, n_valid, record, method)
    out = np.full(len(lead), -1, dtype=np.int8)
    out[start:] = WAVE_CODES["other"]
    for name, on_key, off_key in WAVES:
        on = np.asarray(waves[on_key], dtype=float)
        off = np.asarray(waves[off_key], dtype=float)
        for a, b in zip(on, off, strict=False):
            if np.isfinite(a) and np.isfinite(b) and b > a:
                out[start + int(a) : start + int(b) + 1] = WAVE_CODES[name]
    return out


def wave_label_records(
    signals: np.ndarray,
    fs_hz: float,
    records: list[str] | None = None,
    n_valid: np.ndarray | None = None,
    lead: int = 1,
    method: str = "prominence",
) -> dict[str, np.ndarray]:
    """:func:`wave_labels` of one lead of several records; a failed record is reported, not raised.

    Parameters
    ----------
    signals : numpy.ndarray, shape (n_records, 12, n_samples), float32, mV
    fs_hz : float
        Sampling frequency, Hz.
    records : list of str, optional
        Names, for the problem messages.
    n_valid : numpy.ndarray of int, shape (n_records,), optional
        Valid samples per record. None: all.
    lead : int
        Lead index (1: lead II).
    method : str
        ``ecg_delineate`` method.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``labels`` (n_records, n_samples) int8 (all -1 where delineation
        failed) and ``problem`` (n_records,) str, empty when delineated.
    """
    signals = np.asarray(signals)
    n = len(signals)
    records = [str(r) for r in records] if records is not None else [str(i) for i in range(n)]
    labels = np.full((n, signals.shape[-1]), -1, dtype=np.int8)
    problem = [""] * n
    for i in range(n):
        nv = None if n_valid is None else int(n_valid[i])
        try:
            labels[i] = wave_labels(signals[i, lead], fs_hz, nv, records[i], method)
        except ValueError as err:
            problem[i] = str(err)
    return {"labels": labels, "problem": np.array(problem, dtype=str)}
