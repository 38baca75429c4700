"""Planted ground truth (Arras, Osman & Samek 2022, CLEVR-XAI): a 40 ms notch before one QRS
at known leads, the dataset and detector built from it, and relevance mass and rank accuracy.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ecgrepro.beats import r_peaks, valid_lengths
from ecgrepro.config import LEADS
from ecgrepro.explain.faithfulness.maps import lead_values, time_maps
from ecgrepro.explain.lead_games import LEAD_GAMES

#: Planted markers: class name -> the leads the notch is added to.
MARKERS: dict[str, tuple[str, ...]] = {"notch_V2": ("V2",), "notch_V5_V6": ("V5", "V6")}


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
