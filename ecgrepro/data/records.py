"""Reading single 12-lead records: WFDB (PTB-XL, CPSC in the Challenge forms)
and the original CPSC 2018 MATLAB release.

Every reader returns the signal in physical units (mV) as an array of shape
``(n_samples, 12)`` in the standard lead order :data:`ecgrepro.config.LEADS`,
and raises :class:`~ecgrepro.data.errors.RecordError` naming the record when it
is missing, truncated, unreadable, has another lead set, or holds NaN samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import wfdb

from ecgrepro.config import LEADS
from ecgrepro.data.errors import RecordError

_LEAD_LOOKUP = {lead.upper(): lead for lead in LEADS}


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


def read_wfdb(path: str | Path, record: str | None = None) -> Record:
    """Read a WFDB record (``.hea`` + ``.dat`` or ``.mat``) in mV.

    Parameters
    ----------
    path : str or pathlib.Path
        Record path without extension, e.g. ``.../records100/00000/00001_lr``.
    record : str, optional
        Identifier for messages; defaults to the file name.

    Returns
    -------
    Record
        Signal of shape (n_samples, 12) in mV, standard lead order.

    Raises
    ------
    RecordError
        Missing header or signal file, unreadable or truncated signal, wrong
        lead set, NaN samples.
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
        Missing or unreadable file, no ``ECG.data`` field, wrong number of
        leads, NaN samples; a WFDB-form signal file (variable ``val``) whose
        ``.hea`` header is missing is named as such.
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
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != len(LEADS):
        raise RecordError(record, f"ECG.data has shape {data.shape}; expected (12, n_samples)")
    return Record(record=record, signal=check_signal(record, data.T), fs=fs, comments=[])
