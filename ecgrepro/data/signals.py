"""Signal preparation as the published code, and the on-disk signal cache.

Published code (Zhang et al. 2020; METHODS.md, "Input and training"): signals
in mV, no filtering or normalisation, the LAST ``n_samples`` samples kept and
shorter records zero-padded at the front. When a profile asks for another fs
than the record's, the whole record is first resampled with
:func:`scipy.signal.resample_poly`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.signal
from tqdm import tqdm

from ecgrepro.data.errors import RecordError, SkipReport
from ecgrepro.data.records import Record

#: Bump when :func:`prepare_signal` or the cache layout changes, so old caches are rebuilt.
#: 2: per-record valid length (``n_valid``) stored; key on file sizes and mtimes.
CACHE_VERSION = 2


def _ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """``(up, down)`` with ``up / down == fs_out / fs_in``; ValueError if not small integers."""
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    if abs(float(ratio) - fs_out / fs_in) > 1e-9:
        raise ValueError(f"cannot resample {fs_in} Hz -> {fs_out} Hz by a small rational factor")
    return ratio.numerator, ratio.denominator


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample a whole record with :func:`scipy.signal.resample_poly`.

    Parameters
    ----------
    signal : numpy.ndarray, shape (n_in, 12), mV
    fs_in : float
        The record's sampling frequency, Hz.
    fs_out : float
        The wanted sampling frequency, Hz.

    Returns
    -------
    numpy.ndarray, shape (ceil(n_in * fs_out / fs_in), 12), mV
        ``signal`` itself when ``fs_in == fs_out``.

    Raises
    ------
    ValueError
        If ``fs_out / fs_in`` is not a ratio of small integers (denominator above 1000).
    """
    if fs_in == fs_out:
        return signal
    up, down = _ratio(fs_in, fs_out)
    return scipy.signal.resample_poly(signal, up, down, axis=0)


def prepare_signal(signal: np.ndarray, fs_in: float, fs_out: float, n_samples: int) -> np.ndarray:
    """Resample, keep the last ``n_samples`` samples, zero-pad at the front.

    Parameters
    ----------
    signal : numpy.ndarray, shape (n_in, 12), mV
        A record as read (:class:`~ecgrepro.data.records.Record`).
    fs_in : float
        The record's sampling frequency, Hz.
    fs_out : float
        The model's input sampling frequency, Hz.
    n_samples : int
        Input length in samples at ``fs_out`` (15,000 in the paper: 30 s at 500 Hz).

    Returns
    -------
    numpy.ndarray, shape (12, n_samples), float32, mV
        Channels first, as the model takes them. The last
        ``min(n_resampled, n_samples)`` samples are the record (see
        :func:`valid_length`); the ones before are exactly 0.

    Raises
    ------
    ValueError
        If ``fs_out / fs_in`` is not a ratio of small integers (denominator
        above 1000), or ``n_samples`` < 1.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    signal = resample(signal, fs_in, fs_out)
    out = np.zeros((signal.shape[1], n_samples), dtype=np.float32)
    tail = signal[-n_samples:]
    out[:, n_samples - tail.shape[0] :] = tail.T
    return out


def valid_length(n_in: int, fs_in: float, fs_out: float, n_samples: int) -> int:
    """Number of non-padding samples :func:`prepare_signal` leaves in a window.

    Parameters
    ----------
    n_in : int
        Samples of the record as read, at ``fs_in``.
    fs_in, fs_out : float
        The record's and the model's sampling frequencies, Hz.
    n_samples : int
        Input length in samples at ``fs_out``.

    Returns
    -------
    int
        ``min(n_resampled, n_samples)``, where ``n_resampled`` is the length
        :func:`scipy.signal.resample_poly` returns (``ceil(n_in * up / down)``).
        The valid part of a prepared window ``x`` is ``x[:, n_samples - n_valid:]``.

    Raises
    ------
    ValueError
        As :func:`resample` for a ratio that is not of small integers.
    """
    if fs_in == fs_out:
        return min(int(n_in), int(n_samples))
    up, down = _ratio(fs_in, fs_out)
    return min(-(-int(n_in) * up // down), int(n_samples))


def source_files(path: str) -> list[Path]:
    """Every file of a record: the file itself, or every ``path.*`` file of a WFDB record.

    Parameters
    ----------
    path : str
        A file (original CPSC ``.mat``) or a WFDB record path without extension.

    Returns
    -------
    list of pathlib.Path
        Sorted; empty when nothing of the record is on disk.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    return sorted(p.parent.glob(p.name + ".*"))


def _source_stamp(path: str, listings: dict[Path, dict[str, list[os.DirEntry]]]) -> str:
    """Name, size (bytes) and modification time (ns) of every file of a record.

    ``listings`` caches one scan per folder (files grouped by the name before
    their first dot), so a folder of 1,000 records is listed once, not once per record.
    """
    p = Path(path)
    if p.is_file():
        files = [(p.name, p.stat())]
    elif "." in p.name:
        files = [(f.name, f.stat()) for f in source_files(path)]
    else:
        if p.parent not in listings:
            groups: dict[str, list[os.DirEntry]] = {}
            if p.parent.is_dir():
                with os.scandir(p.parent) as it:
                    for entry in it:
                        if "." in entry.name and entry.is_file():
                            groups.setdefault(entry.name.split(".", 1)[0], []).append(entry)
            listings[p.parent] = groups
        entries = sorted(listings[p.parent].get(p.name, []), key=lambda e: e.name)
        files = [(e.name, e.stat()) for e in entries]
    return ";".join(f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in files)


def _cache_key(dataset: str, fs_hz: float, n_samples: int, sources: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, dataset, fs_hz, n_samples]).encode())
    listings: dict[Path, dict[str, list[os.DirEntry]]] = {}
    for record, path in sources:
        h.update(f"{record}\0{path}\0{_source_stamp(path, listings)}\n".encode())
    return h.hexdigest()[:16]


class CachedSignals(NamedTuple):
    """What :func:`cached_signals` returns (a tuple; fields in this order)."""

    signals: np.ndarray
    records: list[str]
    skipped: SkipReport
    key: str
    n_valid: np.ndarray


def cached_signals(
    dataset: str,
    sources: list[tuple[str, str]],
    read: Callable[[str, str], Record],
    fs_hz: float,
    n_samples: int,
    cache_dir: Path,
) -> CachedSignals:
    """Decode every record once into a memory-mapped float32 array on disk.

    Parameters
    ----------
    dataset : str
        ``"ptbxl"`` or ``"cpsc"`` (part of the cache's name).
    sources : list of (record, path)
        Records to decode, in order.
    read : callable
        ``read(record, path) -> Record``; raises RecordError for a bad record.
    fs_hz : float
        Model input sampling frequency, Hz.
    n_samples : int
        Model input length in samples.
    cache_dir : pathlib.Path
        Folder for the cache; one subfolder per (dataset, fs, length, sources).

    Returns
    -------
    CachedSignals
        ``signals`` : numpy.memmap, shape (n_ok, 12, n_samples), float32, mV, read-only.
        ``records`` : list of str, records in ``signals`` order (bad records left out).
        ``skipped`` : SkipReport, records that raised RecordError, with the problem.
        ``key`` : str, hash of everything that determines the array (records,
        the size and modification time of each of their files, fs, length,
        :data:`CACHE_VERSION`).
        ``n_valid`` : numpy.ndarray, shape (n_ok,), int64: valid (non-padding)
        samples per record, ``min(resampled length, n_samples)``; the valid
        part of row ``i`` is ``signals[i, :, n_samples - n_valid[i]:]``.

    Notes
    -----
    A cache (``signals.f32`` and ``records.json`` holding the record names,
    ``n_valid`` and the skipped records) is reused only when the record list,
    the size and ``st_mtime_ns`` of every file of every record, fs, length and
    :data:`CACHE_VERSION` all match, so a file replaced by another of the same
    size is decoded again. It is written under a temporary name and renamed,
    so an interrupted build leaves nothing stale.
    """
    key = _cache_key(dataset, fs_hz, n_samples, sources)
    folder = Path(cache_dir) / f"{dataset}_{fs_hz:g}hz_{n_samples}_{key}"
    meta_file = folder / "records.json"
    if not meta_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "signals.f32.tmp"
        ok, n_valid, skipped = [], [], SkipReport(dataset)
        with open(tmp, "wb") as fh:
            for record, path in tqdm(sources, desc=f"decode {dataset}", disable=None):
                try:
                    rec = read(record, path)
                    resampled = resample(rec.signal, rec.fs, fs_hz)
                    x = prepare_signal(resampled, fs_hz, fs_hz, n_samples)
                except RecordError as err:
                    skipped.add(err)
                    continue
                fh.write(np.ascontiguousarray(x, dtype="<f4").tobytes())
                ok.append(record)
                n_valid.append(min(int(resampled.shape[0]), int(n_samples)))
        os.replace(tmp, folder / "signals.f32")
        tmp_meta = meta_file.with_suffix(".tmp")
        tmp_meta.write_text(
            json.dumps({"records": ok, "n_valid": n_valid, "skipped": skipped.skipped})
        )
        os.replace(tmp_meta, meta_file)
    meta = json.loads(meta_file.read_text())
    skipped = SkipReport(dataset, [tuple(s) for s in meta["skipped"]])
    n_valid = np.asarray(meta["n_valid"], dtype=np.int64)
    n = len(meta["records"])
    if n == 0:
        return CachedSignals(np.zeros((0, 12, n_samples), np.float32), [], skipped, key, n_valid)
    signals = np.memmap(folder / "signals.f32", dtype="<f4", mode="r", shape=(n, 12, n_samples))
    return CachedSignals(signals, list(meta["records"]), skipped, key, n_valid)
