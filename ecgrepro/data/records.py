"""Reading single 12-lead records: WFDB (PTB-XL, CPSC in the Challenge forms)
and the original CPSC 2018 MATLAB release.

Every reader returns the signal in physical units (mV) as an array of shape
``(n_samples, 12)`` in the standard lead order :data:`ecgrepro.config.LEADS`,
and raises :class:`~ecgrepro.data.errors.RecordError` naming the record when it
is missing, truncated, unreadable, has another lead set, or holds NaN samples.

The reader contract: before a record is used, its header is checked against its
data and against what its dataset promises (:class:`RecordContract`):

- the signal file's size (WFDB ``.dat``) or its MATLAB v4 header (WFDB-form
  ``.mat``: variable ``val``, integer type, 12 x ``sig_len``) agrees with the
  WFDB header's number of samples, format and byte offset;
- the header's sampling frequency, record length, gain and units are those of
  the dataset (PTB-XL: 100 or 500 Hz by release, 10 s, 1000 adu/mV; CPSC 2018:
  500 Hz, 1000 adu/mV; all in mV);
- the original CPSC release's ``ECG.data`` is stored as floating point (mV);
- a record lasts at least :data:`MIN_DURATION_S`.

Each disagreement raises a :class:`RecordError` that says what was expected and
what was found; batch loaders skip the record and list it in their skip report.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import wfdb

from ecgrepro.config import LEADS
from ecgrepro.data.errors import RecordError

_LEAD_LOOKUP = {lead.upper(): lead for lead in LEADS}

#: Shortest record a reader accepts, s. Every PTB-XL record lasts 10 s and CPSC 2018's shortest
#: 6 s (Liu et al. 2018); a shorter record would be mostly zero padding in the 10 s (quick) or
#: 30 s (paper) window, so it is skipped with its duration named instead of used.
MIN_DURATION_S = 5.0

#: Bits per sample of the WFDB storage formats whose file size is checked against the header
#: (wfdb's ``signal format`` field; others are read without that check).
_FORMAT_BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12}

#: MATLAB v4 precision code (``P`` of the ``MOPT`` header field) -> (numpy name, bytes),
#: and the precision a WFDB format implies for the ``val`` matrix of a WFDB-form ``.mat``.
_MAT4_PRECISION = {
    0: ("float64", 8),
    1: ("float32", 4),
    2: ("int32", 4),
    3: ("int16", 2),
    4: ("uint16", 2),
    5: ("uint8", 1),
}
_FORMAT_MAT4 = {"16": 3, "32": 2, "80": 5}


@dataclass(frozen=True)
class RecordContract:
    """What every record of a dataset must hold; checked by :func:`read_wfdb`.

    Attributes
    ----------
    source : str
        The dataset as named in messages, e.g. ``PTB-XL records100/``.
    fs_hz : float
        Sampling frequency every record has, Hz.
    duration_s : float, optional
        Length every record has, s (PTB-XL: 10); None: any length of at
        least :data:`MIN_DURATION_S` (CPSC 2018: 6-60 s).
    adc_gain : float, optional
        Gain every lead is stored with, analogue-to-digital units per mV
        (1000 in both datasets); None: not checked.
    units : str
        Physical unit of every lead (``mV``).
    """

    source: str
    fs_hz: float
    duration_s: float | None = None
    adc_gain: float | None = 1000.0
    units: str = "mV"


@dataclass
class Record:
    """One 12-lead ECG record.

    Attributes
    ----------
    record : str
        Identifier (PTB-XL ``ecg_id`` as text, or a CPSC name such as ``A0001``).
    signal : numpy.ndarray, shape (n_samples, 12), float64, mV
        Leads in the order I, II, III, aVR, aVL, aVF, V1-V6.
    fs : float
        Sampling frequency in Hz.
    comments : list of str
        Header comment lines (WFDB) such as ``Dx: RBBB``; empty for ``.mat`` files.
    """

    record: str
    signal: np.ndarray
    fs: float
    comments: list[str]


def standard_lead_order(record: str, names: list[str]) -> np.ndarray:
    """Column indices that put a record's leads in the standard order.

    Parameters
    ----------
    record : str
        Identifier used in the error message.
    names : list of str
        Lead names as stored (case-insensitive: PTB-XL writes ``AVR``).

    Returns
    -------
    numpy.ndarray, shape (12,), int
        ``signal[:, idx]`` is in the order of :data:`ecgrepro.config.LEADS`.

    Raises
    ------
    RecordError
        If the leads are not exactly the 12 standard leads.
    """
    canon = [_LEAD_LOOKUP.get(str(n).strip().upper()) for n in names]
    if sorted(c for c in canon if c) != sorted(LEADS) or None in canon:
        raise RecordError(
            record, f"wrong lead set {list(names)}; expected the 12 leads {list(LEADS)}"
        )
    return np.array([canon.index(lead) for lead in LEADS])


def check_signal(record: str, signal: np.ndarray, expected_len: int | None = None) -> np.ndarray:
    """Validate a decoded signal.

    Parameters
    ----------
    record : str
        Identifier used in the error message.
    signal : numpy.ndarray, shape (n_samples, 12), mV
    expected_len : int, optional
        Number of samples the header promises.

    Returns
    -------
    numpy.ndarray
        ``signal`` unchanged, as float64.

    Raises
    ------
    RecordError
        If the signal is shorter than the header says (truncated), empty, or
        holds NaN or infinite samples.
    """
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 2 or signal.shape[1] != len(LEADS):
        raise RecordError(record, f"signal has shape {signal.shape}; expected (n_samples, 12)")
    if signal.shape[0] == 0:
        raise RecordError(record, "signal is empty")
    if expected_len is not None and signal.shape[0] < expected_len:
        raise RecordError(
            record, f"truncated signal: {signal.shape[0]} of {expected_len} samples present"
        )
    bad = ~np.isfinite(signal)
    if bad.any():
        leads = [LEADS[i] for i in np.flatnonzero(bad.any(axis=0))]
        raise RecordError(record, f"{int(bad.sum())} NaN/infinite samples in leads {leads}")
    return signal


def _seconds(n: int, fs: float) -> str:
    """``n`` samples as a duration, e.g. ``10 s at 100 Hz``."""
    return f"{n / fs:.3g} s at {fs:g} Hz"


def check_duration(record: str, n_samples: int, fs: float) -> None:
    """Refuse a record shorter than :data:`MIN_DURATION_S`.

    Parameters
    ----------
    record : str
        Identifier used in the error message.
    n_samples : int
        Samples per lead.
    fs : float
        Sampling frequency, Hz.

    Raises
    ------
    RecordError
        If ``n_samples / fs < MIN_DURATION_S``.
    """
    if fs > 0 and n_samples / fs < MIN_DURATION_S:
        raise RecordError(
            record,
            f"only {n_samples:,} samples ({_seconds(n_samples, fs)}); records shorter than "
            f"{MIN_DURATION_S:g} s are not used (the window would be mostly zero padding)",
        )


def _mat4_header(path: Path) -> tuple[int, int, int, str, int] | None:
    """``(precision code, rows, columns, variable name, data offset)`` of a MATLAB v4 file's
    first variable, or None when the file does not start with a little-endian v4 header."""
    with open(path, "rb") as fh:
        head = fh.read(20)
        if len(head) < 20:
            return None
        mopt, rows, cols, imagf, namlen = struct.unpack("<5i", head)
        m, o, p, t = mopt // 1000, (mopt // 100) % 10, (mopt // 10) % 10, mopt % 10
        if not (0 <= mopt < 5000 and m == 0 and o == 0 and t == 0 and imagf == 0):
            return None
        if not (0 < namlen < 256 and rows >= 0 and cols >= 0):
            return None
        name = fh.read(namlen).split(b"\0", 1)[0].decode("latin-1")
    return p, rows, cols, name, 20 + namlen


def check_signal_files(record: str, path: Path, hdr) -> None:
    """Check that each signal file holds what the WFDB header says it holds.

    Parameters
    ----------
    record : str
        Identifier used in the error message.
    path : pathlib.Path
        Record path without extension.
    hdr : wfdb.Record
        The header (:func:`wfdb.rdheader`).

    Raises
    ------
    RecordError
        A ``.dat`` file shorter (truncated) or longer than ``sig_len`` samples
        of its signals in the header's format and byte offset; a ``.mat`` file
        that is not MATLAB v4, whose variable is not ``val``, whose type is
        not the one the header's format implies (``int16`` for format 16), or
        whose shape or data offset differ from the header's. Formats without
        a fixed sample size, and multi-frequency records, are not checked.
    """
    fmts, offsets = list(hdr.fmt or []), list(hdr.byte_offset or [])
    frames = list(hdr.samps_per_frame or [])
    n_len = int(hdr.sig_len or 0)
    fs = float(hdr.fs or 0)
    said = f"header says {n_len:,} samples" + (f" ({_seconds(n_len, fs)})" if fs > 0 else "")
    for name in sorted(set(hdr.file_name or [])):
        idx = [i for i, f in enumerate(hdr.file_name) if f == name]
        fmt = {str(fmts[i]) for i in idx if i < len(fmts)}
        if len(fmt) != 1 or any(i < len(frames) and (frames[i] or 1) != 1 for i in idx):
            continue
        fmt = fmt.pop()
        offset = int(offsets[idx[0]] or 0) if idx[0] < len(offsets) else 0
        file = path.parent / name
        size = file.stat().st_size
        if name.lower().endswith(".mat"):
            mat = _mat4_header(file)
            if mat is None:
                raise RecordError(
                    record,
                    f"{file} is not a MATLAB v4 file; the WFDB form stores its samples as the "
                    f"v4 matrix 'val' at byte offset {offset} (was it re-saved?)",
                )
            p, rows, cols, var, data_offset = mat
            if var != "val":
                raise RecordError(
                    record, f"{file} holds the variable {var!r}; the WFDB form names it 'val'"
                )
            want = _FORMAT_MAT4.get(fmt)
            if want is not None and p != want:
                raise RecordError(
                    record,
                    f"{file} stores 'val' as {_MAT4_PRECISION.get(p, ('?',))[0]}; the header's "
                    f"format {fmt} means {_MAT4_PRECISION[want][0]} (was it re-saved in another "
                    "type?)",
                )
            if (rows, cols) != (len(idx), n_len):
                raise RecordError(
                    record,
                    f"{said} of {len(idx)} leads, but {file} holds a {rows} x {cols:,} matrix"
                    + (" (truncated signal)" if cols < n_len else ""),
                )
            if data_offset != offset:
                raise RecordError(
                    record,
                    f"{file}'s samples start at byte {data_offset}; the header says {offset}",
                )
            bytes_per = _MAT4_PRECISION.get(p, (None, 0))[1]
            expected = data_offset + rows * cols * bytes_per
            if bytes_per and size < expected:
                raise RecordError(
                    record,
                    f"truncated signal: {file} holds {size:,} bytes, its matrix needs {expected:,}",
                )
            continue
        bits = _FORMAT_BITS.get(fmt)
        if bits is None:
            continue
        expected = offset + math.ceil(n_len * len(idx) * bits / 8)
        if size != expected:
            held = max(size - offset, 0) * 8 // (bits * len(idx))
            kind = "truncated signal: " if size < expected else ""
            raise RecordError(
                record,
                f"{kind}{said}, but {file} holds {held:,} samples per lead "
                f"({size:,} bytes in format {fmt}, {len(idx)} leads)",
            )


def check_header(record: str, hdr, contract: RecordContract) -> None:
    """Check a WFDB header against what its dataset promises.

    Parameters
    ----------
    record : str
        Identifier used in the error message.
    hdr : wfdb.Record
        The header (:func:`wfdb.rdheader`).
    contract : RecordContract

    Raises
    ------
    RecordError
        Another sampling frequency, length, gain or unit than the contract's.
    """
    fs, n = float(hdr.fs or 0), int(hdr.sig_len or 0)
    if fs != contract.fs_hz:
        raise RecordError(
            record,
            f"header says {fs:g} Hz, but {contract.source} records are {contract.fs_hz:g} Hz "
            f"(its {n:,} samples would be {_seconds(n, contract.fs_hz)}, not "
            f"{n / fs if fs else float('nan'):.3g} s)",
        )
    if contract.duration_s is not None and n != round(contract.duration_s * fs):
        raise RecordError(
            record,
            f"header says {n:,} samples ({_seconds(n, fs)}); {contract.source} records last "
            f"{contract.duration_s:g} s ({round(contract.duration_s * fs):,} samples)",
        )
    names = [str(x) for x in (hdr.sig_name or [])]
    units = list(hdr.units or [])
    bad = sorted({str(u) for u in units if str(u).strip().lower() != contract.units.lower()})
    if bad:
        raise RecordError(
            record, f"header gives units {bad}; {contract.source} records are in {contract.units}"
        )
    if contract.adc_gain is not None:
        gains = list(hdr.adc_gain or [])
        off = [
            (names[i] if i < len(names) else str(i), g)
            for i, g in enumerate(gains)
            if not math.isclose(float(g), contract.adc_gain)
        ]
        if off:
            lead, g = off[0]
            raise RecordError(
                record,
                f"header gives lead {lead} a gain of {float(g):g} adu/{contract.units} "
                f"({len(off)} of {len(gains)} leads differ); {contract.source} records are "
                f"stored at {contract.adc_gain:g} adu/{contract.units}, so its amplitudes "
                f"would be {contract.adc_gain / float(g):.3g}x the true ones",
            )


def read_wfdb(
    path: str | Path, record: str | None = None, contract: RecordContract | None = None
) -> Record:
    """Read a WFDB record (``.hea`` + ``.dat`` or ``.mat``) in mV.

    Parameters
    ----------
    path : str or pathlib.Path
        Record path without extension, e.g. ``.../records100/00000/00001_lr``.
    record : str, optional
        Identifier for messages; defaults to the file name.
    contract : RecordContract, optional
        What the dataset promises (sampling frequency, length, gain, units);
        None: only the checks every record gets (header against data,
        lead set, NaN, :data:`MIN_DURATION_S`).

    Returns
    -------
    Record
        Signal of shape (n_samples, 12) in mV, standard lead order.

    Raises
    ------
    RecordError
        Missing header or signal file, unreadable header, signal files that
        disagree with the header (:func:`check_signal_files`), a header that
        breaks the contract (:func:`check_header`), a record shorter than
        :data:`MIN_DURATION_S`, unreadable signal, wrong lead set, NaN samples.
    """
    path = Path(path)
    record = record or path.name
    header = path.with_suffix(".hea")
    if not header.is_file():
        raise RecordError(record, f"missing file {header} (the WFDB header is missing)")
    try:
        hdr = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises many types for a bad header
        raise RecordError(record, f"unreadable header {header}: {exc}") from exc
    for name in sorted(set(hdr.file_name or [])):
        if not (path.parent / name).is_file():
            raise RecordError(
                record, f"missing file {path.parent / name} (the signal file named in {header})"
            )
    check_signal_files(record, path, hdr)
    if contract is not None:
        check_header(record, hdr, contract)
    check_duration(record, int(hdr.sig_len or 0), float(hdr.fs or 0))
    try:
        rec = wfdb.rdrecord(str(path), physical=True)
    except Exception as exc:
        raise RecordError(record, f"unreadable signal ({type(exc).__name__}: {exc})") from exc
    if rec.p_signal is None:
        raise RecordError(record, "no signal in record")
    idx = standard_lead_order(record, rec.sig_name)
    signal = check_signal(record, rec.p_signal, expected_len=hdr.sig_len)[:, idx]
    return Record(record=record, signal=signal, fs=float(rec.fs), comments=list(rec.comments))


def wfdb_header_missing(mat_path: str | Path) -> str:
    """The problem text for a WFDB-form ``.mat`` (variable ``val``) without its ``.hea``.

    Parameters
    ----------
    mat_path : str or pathlib.Path
        The signal file, e.g. ``wfdb-2020/A0005.mat``.

    Returns
    -------
    str
        A sentence naming the missing header file.
    """
    mat_path = Path(mat_path)
    return (
        f"missing file {mat_path.with_suffix('.hea')} (the WFDB header is missing): "
        f"{mat_path.name} is a WFDB-form signal (variable 'val', PhysioNet/CinC Challenge "
        "layout), which cannot be read without its header"
    )


def is_wfdb_signal_mat(mat_path: str | Path) -> bool:
    """Whether a ``.mat`` file holds a WFDB-form signal (a ``val`` variable, no ``ECG`` struct).

    Parameters
    ----------
    mat_path : str or pathlib.Path

    Returns
    -------
    bool
        True for the PhysioNet/CinC Challenge form (``val``, 12 x n, digital
        units), False for the original CPSC 2018 form (struct ``ECG``) and for
        a file :func:`scipy.io.whosmat` cannot read (the reader then reports it).
    """
    try:
        names = {name for name, _, _ in scipy.io.whosmat(str(mat_path))}
    except Exception:
        return False
    return "val" in names and "ECG" not in names


def read_cpsc_original(path: str | Path, record: str | None = None, fs: float = 500.0) -> Record:
    """Read a record of the original CPSC 2018 release (MATLAB struct ``ECG``).

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.mat`` file, e.g. ``TrainingSet1/A0001.mat``.
    record : str, optional
        Identifier for messages; defaults to the file stem.
    fs : float
        Sampling frequency in Hz; the release does not store it (500 Hz).

    Returns
    -------
    Record
        Signal of shape (n_samples, 12) in mV; the release stores ``data`` as
        12 x n_samples in the standard lead order, already in mV.

    Raises
    ------
    RecordError
        Missing or unreadable file, no ``ECG.data`` field, ``ECG.data`` not
        floating point (re-saved in another type), wrong number of leads,
        shorter than :data:`MIN_DURATION_S`, NaN samples; a WFDB-form signal
        file (variable ``val``) whose ``.hea`` header is missing is named as such.
    """
    path = Path(path)
    record = record or path.stem
    if not path.is_file():
        raise RecordError(record, f"missing file {path}")
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=False)
    except Exception as exc:
        raise RecordError(
            record, f"unreadable .mat file {path} ({type(exc).__name__}: {exc})"
        ) from exc
    if "ECG" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        if "val" in mat:
            raise RecordError(record, wfdb_header_missing(path))
        raise RecordError(
            record,
            f"{path} is not an original CPSC 2018 record: no MATLAB struct 'ECG' "
            f"(variables found: {found})",
        )
    try:
        data = mat["ECG"]["data"][0, 0]
    except Exception as exc:
        raise RecordError(
            record, f"unreadable .mat file {path}: no field ECG.data ({type(exc).__name__}: {exc})"
        ) from exc
    if not np.issubdtype(np.asarray(data).dtype, np.floating):
        raise RecordError(
            record,
            f"{path}: ECG.data is stored as {np.asarray(data).dtype}; the original release "
            "stores floating-point values in mV (was it re-saved in another type?)",
        )
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != len(LEADS):
        raise RecordError(record, f"ECG.data has shape {data.shape}; expected (12, n_samples)")
    check_duration(record, data.shape[1], fs)
    return Record(record=record, signal=check_signal(record, data.T), fs=fs, comments=[])
