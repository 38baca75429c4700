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
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.signal
from filelock import FileLock
from tqdm import tqdm

from ecgrepro.data.errors import CorruptCacheWarning, RecordError, SkipReport
from ecgrepro.data.records import Record

#: Bump when :func:`prepare_signal` or the cache layout changes, so old caches are rebuilt.
#: 2: per-record valid length (``n_valid``) stored; key on file sizes and mtimes.
#: 3: key on the records' contents (SHA-256) and paths relative to the data root; a checked
#: ``records.json`` (shape, SHA-256 and stamp of ``signals.f32``, its own digest).
CACHE_VERSION = 3


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


def _record_files(path: str, listings: dict[Path, dict[str, list[os.DirEntry]]]) -> list[Path]:
    """:func:`source_files`, with one scan per folder (files grouped by the name before their
    first dot), so a folder of 1,000 records is listed once, not once per record."""
    p = Path(path)
    if p.is_file():
        return [p]
    if "." in p.name:
        return source_files(path)
    if p.parent not in listings:
        groups: dict[str, list[os.DirEntry]] = {}
        if p.parent.is_dir():
            with os.scandir(p.parent) as it:
                for entry in it:
                    if "." in entry.name and entry.is_file():
                        groups.setdefault(entry.name.split(".", 1)[0], []).append(entry)
        listings[p.parent] = groups
    entries = sorted(listings[p.parent].get(p.name, []), key=lambda e: e.name)
    return [Path(e.path) for e in entries if not e.name.endswith((".part", ".tmp"))]


def _stamp(st: os.stat_result) -> list[int]:
    """What identifies one version of a file without reading it: size, mtime, ctime, inode.

    ``st_ctime_ns`` changes on every write and cannot be set back (unlike
    ``st_mtime_ns``), so a file replaced in place by one of the same size and
    modification time still gets a new stamp.
    """
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes.

    Parameters
    ----------
    path : pathlib.Path
    chunk : int
        Bytes per read.

    Returns
    -------
    str
        64 lower-case hexadecimal digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class SourceDigests:
    """SHA-256 of record files, remembered against each file's stamp (:func:`_stamp`).

    The memory is ``<cache_dir>/source-digests.json`` (absolute path -> stamp
    and digest), so a rebuild hashes no record again; a file whose size,
    modification time, change time or inode differs is hashed again. Updates
    are merged into the file under a lock, so concurrent loads keep each
    other's entries; entries of files that no longer exist are dropped then.

    Parameters
    ----------
    cache_dir : pathlib.Path
        The signal cache folder.
    """

    def __init__(self, cache_dir: Path):
        self.path = Path(cache_dir) / "source-digests.json"
        self.memo: dict[str, list] = self._read()
        self.new: dict[str, list] = {}

    def _read(self) -> dict[str, list]:
        try:
            memo = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return memo if isinstance(memo, dict) else {}

    def digest(self, path: Path) -> str:
        """The file's SHA-256, read from memory when its stamp is unchanged."""
        full = str(Path(path).absolute())
        stamp = _stamp(os.stat(full))
        known = self.memo.get(full)
        if isinstance(known, list) and len(known) == 2 and known[0] == stamp:
            return known[1]
        entry = [stamp, file_sha256(Path(full))]
        self.memo[full] = self.new[full] = entry
        return entry[1]

    def save(self) -> None:
        """Merge the digests computed since the last save into the file (atomically)."""
        if not self.new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with lock_for(self.path):
            memo = self._read()
            memo.update(self.new)
            memo = {p: e for p, e in memo.items() if os.path.exists(p)}  # files gone: forgotten
            _write_atomic(self.path, json.dumps(memo).encode())
        self.new = {}


def lock_for(path: Path) -> FileLock:
    """The inter-process lock of a cache entry: ``<parent>/.locks/<name>.lock``.

    Lock files stay (removing one while another process waits on it would
    break the lock); they live in ``.locks/`` so that listings of the cache,
    artifact and explanation folders hold only entries.

    Parameters
    ----------
    path : pathlib.Path
        The entry (folder or file) the lock guards.

    Returns
    -------
    filelock.FileLock
    """
    locks = Path(path).parent / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / f"{Path(path).name}.lock"))


def publish(tmp: str | Path, path: Path) -> None:
    """Give a temporary file the permissions of a normal new file, then rename it into place.

    :func:`tempfile.mkstemp` creates files readable by their owner only; a cache or
    artifact shared by the users of one machine must be readable as ``open()`` makes
    files (``0o666`` less the umask).

    Parameters
    ----------
    tmp : str or pathlib.Path
        The written temporary file, in the folder of ``path``.
    path : pathlib.Path
        Its final name (replaced atomically, :func:`os.replace`).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _relative(path: Path, root: Path | None) -> str:
    """``path`` relative to the data root (POSIX form), or as given without a root."""
    if root is not None:
        try:
            return Path(path).absolute().relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def _cache_key(
    dataset: str,
    fs_hz: float,
    n_samples: int,
    sources: list[tuple[str, str]],
    root: Path | None,
    digests: SourceDigests,
) -> str:
    """Hash of the records' contents, their paths relative to the data root, fs and length."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, dataset, fs_hz, n_samples]).encode())
    listings: dict[Path, dict[str, list[os.DirEntry]]] = {}
    for record, path in sources:
        files = _record_files(path, listings)
        parts = ";".join(f"{_relative(f, root)}:{digests.digest(f)}" for f in files)
        h.update(f"{record}\0{_relative(Path(path), root)}\0{parts}\n".encode())
    digests.save()
    return h.hexdigest()[:16]


class CachedSignals(NamedTuple):
    """What :func:`cached_signals` returns (a tuple; fields in this order)."""

    signals: np.ndarray
    records: list[str]
    skipped: SkipReport
    key: str
    n_valid: np.ndarray


def _meta_digest(meta: dict) -> str:
    """Hash of a cache's ``records.json`` without its own ``digest`` field."""
    body = {k: v for k, v in meta.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_cache(
    folder: Path, key: str, sources: list[tuple[str, str]], n_samples: int
) -> tuple[dict | None, str]:
    """Read and check one signal cache folder.

    Parameters
    ----------
    folder : pathlib.Path
        ``<cache_dir>/<dataset>_<fs>hz_<n_samples>_<key>``.
    key : str
        The key the folder must have been built for.
    sources : list of (record, path)
        The records it must account for.
    n_samples : int
        Samples per record.

    Returns
    -------
    meta : dict or None
        ``records.json``'s content when every check passes, else None.
    problem : str
        Empty when the cache is good; otherwise what is wrong with it (a
        missing folder gives ``"missing"``).

    Notes
    -----
    Checked on every read: ``records.json`` parses and its own digest matches
    (an edited file is caught), its key is ``key``, its records and skipped
    records are the records of ``sources``, ``signals.f32`` has the size of
    ``(n_records, 12, n_samples)`` float32. The SHA-256 of ``signals.f32`` is
    compared only when the file's stamp (size, mtime, ctime, inode) differs
    from the one recorded when it was written, so an untouched cache is not
    re-read in full; when it matches, the new stamp is recorded (call under
    the cache's lock).
    """
    meta_file, data = folder / "records.json", folder / "signals.f32"
    if not meta_file.is_file():
        return None, "missing"
    try:
        meta = json.loads(meta_file.read_text())
        if _meta_digest(meta) != meta.get("digest"):
            return None, "records.json was changed after it was written (its digest differs)"
        if meta.get("key") != key:
            return None, f"records.json names key {meta.get('key')!r}, not {key!r}"
        names = list(meta["records"]) + list(meta["skipped_sources"])
        if sorted(names) != sorted(r for r, _ in sources) or len(meta["n_valid"]) != len(
            meta["records"]
        ):
            return None, (
                f"records.json accounts for {len(names):,} records ({len(meta['records']):,} "
                f"decoded, {len(meta['skipped']):,} skipped); the sources are {len(sources):,}"
            )
        expected = len(meta["records"]) * 12 * n_samples * 4
        if not data.is_file():
            return None, "signals.f32 is missing"
        st = data.stat()
        if st.st_size != expected:
            return None, (
                f"signals.f32 holds {st.st_size:,} bytes; {len(meta['records']):,} records x 12 "
                f"leads x {n_samples:,} float32 samples are {expected:,} (truncated or overwritten)"
            )
        if _stamp(st) != meta["stamp"]:
            if file_sha256(data) != meta["sha256"]:
                return None, "signals.f32 differs from what was written (its SHA-256 differs)"
            meta["stamp"] = _stamp(data.stat())  # copied or restored, but intact: remember it
            meta["digest"] = _meta_digest(meta)
            _write_atomic(meta_file, json.dumps(meta).encode())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"records.json cannot be read ({type(exc).__name__}: {exc})"
    return meta, ""


def move_aside(path: Path, problem: str, log=None) -> Path:
    """Rename a corrupt cache entry to ``<name>.corrupt-<time>-<pid>`` and warn.

    Parameters
    ----------
    path : pathlib.Path
        The folder or file.
    problem : str
        What is wrong with it, for the message.
    log : callable, optional
        Also receives the message.

    Returns
    -------
    pathlib.Path
        Where it now is.

    Warns
    -----
    CorruptCacheWarning
        Naming the entry, the problem and where it was moved.
    """
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    msg = f"{path}: {problem}; moved aside to {aside.name} and rebuilt"
    warnings.warn(msg, CorruptCacheWarning, stacklevel=3)
    if log:
        log(msg)
    return aside


def _build_cache(folder, key, dataset, sources, read, fs_hz, n_samples) -> None:
    """Decode every record into ``folder`` (signals first, ``records.json`` last)."""
    folder.mkdir(parents=True, exist_ok=True)
    ok, n_valid, skipped, skipped_sources = [], [], SkipReport(dataset), []
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".signals.f32.", suffix=".tmp")
    sha = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh:
            for record, path in tqdm(sources, desc=f"decode {dataset}", disable=None):
                try:
                    rec = read(record, path)
                    resampled = resample(rec.signal, rec.fs, fs_hz)
                    x = prepare_signal(resampled, fs_hz, fs_hz, n_samples)
                except RecordError as err:
                    skipped.add(err)
                    skipped_sources.append(record)
                    continue
                block = np.ascontiguousarray(x, dtype="<f4").tobytes()
                fh.write(block)
                sha.update(block)
                ok.append(record)
                n_valid.append(min(int(resampled.shape[0]), int(n_samples)))
        data = folder / "signals.f32"
        publish(tmp, data)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "records": ok,
        "n_valid": n_valid,
        "skipped": skipped.skipped,
        "skipped_sources": skipped_sources,
        "shape": [len(ok), 12, int(n_samples)],
        "dtype": "<f4",
        "sha256": sha.hexdigest(),
        "stamp": _stamp(data.stat()),
    }
    meta["digest"] = _meta_digest(meta)
    _write_atomic(folder / "records.json", json.dumps(meta).encode())


def cached_signals(
    dataset: str,
    sources: list[tuple[str, str]],
    read: Callable[[str, str], Record],
    fs_hz: float,
    n_samples: int,
    cache_dir: Path,
    root: Path | None = None,
    log=None,
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
    root : pathlib.Path, optional
        The data root: record paths enter the key relative to it, so the same
        data moved, copied or mounted elsewhere reuses the cache (and every
        model trained on it). None: paths enter the key as given.
    log : callable, optional
        Receives a line when a corrupt cache is moved aside.

    Returns
    -------
    CachedSignals
        ``signals`` : numpy.memmap, shape (n_ok, 12, n_samples), float32, mV, read-only.
        ``records`` : list of str, records in ``signals`` order (bad records left out).
        ``skipped`` : SkipReport, records that raised RecordError, with the problem.
        ``key`` : str, hash of everything that determines the array: each
        record's name, its files' paths relative to ``root`` and their SHA-256,
        fs, length and :data:`CACHE_VERSION`.
        ``n_valid`` : numpy.ndarray, shape (n_ok,), int64: valid (non-padding)
        samples per record, ``min(resampled length, n_samples)``; the valid
        part of row ``i`` is ``signals[i, :, n_samples - n_valid[i]:]``.

    Warns
    -----
    CorruptCacheWarning
        When a stored cache fails :func:`check_cache` (truncated or edited
        files); it is moved aside (:func:`move_aside`, without its
        ``signals.f32``) and rebuilt. A folder without ``records.json`` (a
        build that was interrupted) is removed and rebuilt without a warning.

    Notes
    -----
    The key hashes the records' contents (:class:`SourceDigests` remembers
    each file's SHA-256 against its size, mtime, ctime and inode, so a rebuild
    does not hash a record again), so a record replaced in place is decoded again
    whatever its size and dates. The cache is filled under an inter-process
    lock (:func:`lock_for`), written to unique
    temporary names and renamed into place, ``records.json`` last: two
    processes filling the same cache produce one copy, and neither reads a
    half-written one.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(dataset, fs_hz, n_samples, sources, root, SourceDigests(cache_dir))
    folder = cache_dir / f"{dataset}_{fs_hz:g}hz_{n_samples}_{key}"
    with lock_for(folder):
        meta, problem = check_cache(folder, key, sources, n_samples)
        if meta is None:
            if problem == "missing" and folder.exists():
                shutil.rmtree(folder)  # an interrupted build: under the lock nobody uses it
            elif folder.exists():
                aside = move_aside(folder, problem, log)
                (aside / "signals.f32").unlink(missing_ok=True)  # keep the evidence, not 15 GB
            _build_cache(folder, key, dataset, sources, read, fs_hz, n_samples)
            meta, problem = check_cache(folder, key, sources, n_samples)
            if meta is None:
                raise RuntimeError(f"{folder}: the cache just written fails its check: {problem}")
        skipped = SkipReport(dataset, [tuple(s) for s in meta["skipped"]])
        n_valid = np.asarray(meta["n_valid"], dtype=np.int64)
        n = len(meta["records"])
        if n == 0:
            empty = np.zeros((0, 12, n_samples), np.float32)
            return CachedSignals(empty, [], skipped, key, n_valid)
        shape = (n, 12, n_samples)
        signals = np.memmap(folder / "signals.f32", dtype="<f4", mode="r", shape=shape)
    return CachedSignals(signals, list(meta["records"]), skipped, key, n_valid)
