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

import numpy as np
import scipy.signal
from tqdm import tqdm

from ecgrepro.data.errors import RecordError, SkipReport
from ecgrepro.data.records import Record

#: Bump when :func:`prepare_signal` changes, so old caches are rebuilt.
CACHE_VERSION = 1


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
        Channels first, as the model takes them.

    Raises
    ------
    ValueError
        If ``fs_out / fs_in`` is not a ratio of small integers (denominator
        above 1000), or ``n_samples`` < 1.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    if fs_in != fs_out:
        ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
        if abs(float(ratio) - fs_out / fs_in) > 1e-9:
            raise ValueError(
                f"cannot resample {fs_in} Hz -> {fs_out} Hz by a small rational factor"
            )
        signal = scipy.signal.resample_poly(signal, ratio.numerator, ratio.denominator, axis=0)
    out = np.zeros((signal.shape[1], n_samples), dtype=np.float32)
    tail = signal[-n_samples:]
    out[:, n_samples - tail.shape[0] :] = tail.T
    return out


def _source_size(path: str) -> int:
    """Bytes on disk of a record: the file itself, or every ``path.*`` file of a WFDB record."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.parent.glob(p.name + ".*"))


def _cache_key(dataset: str, fs_hz: float, n_samples: int, sources: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, dataset, fs_hz, n_samples]).encode())
    for record, path in sources:
        h.update(f"{record}\0{path}\0{_source_size(path)}\n".encode())
    return h.hexdigest()[:16]


def cached_signals(
    dataset: str,
    sources: list[tuple[str, str]],
    read: Callable[[str, str], Record],
    fs_hz: float,
    n_samples: int,
    cache_dir: Path,
) -> tuple[np.ndarray, list[str], SkipReport, str]:
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
    signals : numpy.memmap, shape (n_ok, 12, n_samples), float32, mV, read-only
    records : list of str
        Records in ``signals`` order (bad records left out).
    skipped : SkipReport
        Records that raised RecordError, with the problem.
    key : str
        Hash of everything that determines the array (records, their file
        sizes, fs, length, :data:`CACHE_VERSION`).

    Notes
    -----
    A cache is reused only when the record list, the files' sizes, fs,
    length and :data:`CACHE_VERSION` all match; it is written under a
    temporary name and renamed, so an interrupted build leaves nothing stale.
    """
    key = _cache_key(dataset, fs_hz, n_samples, sources)
    folder = Path(cache_dir) / f"{dataset}_{fs_hz:g}hz_{n_samples}_{key}"
    meta_file = folder / "records.json"
    if not meta_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "signals.f32.tmp"
        ok, skipped = [], SkipReport(dataset)
        with open(tmp, "wb") as fh:
            for record, path in tqdm(sources, desc=f"decode {dataset}", disable=None):
                try:
                    rec = read(record, path)
                    x = prepare_signal(rec.signal, rec.fs, fs_hz, n_samples)
                except RecordError as err:
                    skipped.add(err)
                    continue
                fh.write(np.ascontiguousarray(x, dtype="<f4").tobytes())
                ok.append(record)
        os.replace(tmp, folder / "signals.f32")
        tmp_meta = meta_file.with_suffix(".tmp")
        tmp_meta.write_text(json.dumps({"records": ok, "skipped": skipped.skipped}))
        os.replace(tmp_meta, meta_file)
    meta = json.loads(meta_file.read_text())
    skipped = SkipReport(dataset, [tuple(s) for s in meta["skipped"]])
    n = len(meta["records"])
    if n == 0:
        return np.zeros((0, 12, n_samples), np.float32), [], skipped, key
    signals = np.memmap(folder / "signals.f32", dtype="<f4", mode="r", shape=(n, 12, n_samples))
    return signals, list(meta["records"]), skipped, key
