"""PTB-XL v1.0.3: metadata, the 9-class labels and the records present on disk.

Source: Wagner et al. (2020), PhysioNet PTB-XL v1.0.3 layout
(``ptbxl_database.csv``, ``scp_statements.csv``, ``records100/``,
``records500/``); label derivation as METHODS.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.data.errors import RecordError, SkipReport
from ecgrepro.data.labels import DEFAULT_MAPPING, parse_scp_codes, ptbxl_classes
from ecgrepro.data.records import Record, read_wfdb

#: Sampling frequencies of the two PTB-XL releases and their filename columns.
FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}


def ptbxl_dir(root: Path) -> Path:
    """The PTB-XL folder under a data root (``<root>/ptb-xl``)."""
    return Path(root) / "ptb-xl"


def load_metadata(
    root: Path, label_mapping: str = DEFAULT_MAPPING
) -> tuple[pd.DataFrame, SkipReport]:
    """Read ``ptbxl_database.csv`` and attach the 9-class labels.

    Parameters
    ----------
    root : pathlib.Path
        Data root holding ``ptb-xl/``.
    label_mapping : {"published", "rhythm-aware"}
        The SCP -> CPSC mapping (:func:`ecgrepro.data.labels.ptbxl_classes`);
        ``published`` (the paper's) by default.

    Returns
    -------
    meta : pandas.DataFrame
        One row per listed record (21,799 in v1.0.3), indexed by ``ecg_id``,
        with the official columns plus ``scp`` (dict code -> likelihood),
        ``classes`` (list of CPSC classes, empty for dropped records),
        ``dropped`` (bool) and one 0/1 column per class.
    report : SkipReport
        Records whose labels could not be read (unparseable ``scp_codes`` or an
        unknown code); they are left out of ``meta``.

    Raises
    ------
    FileNotFoundError
        If ``ptbxl_database.csv`` is missing.
    """
    path = ptbxl_dir(root) / "ptbxl_database.csv"
    if not path.is_file():
        raise FileNotFoundError(f"PTB-XL metadata not found: {path}")
    meta = pd.read_csv(path, index_col="ecg_id")
    report = SkipReport("ptbxl")
    scp, classes, keep = [], [], []
    for ecg_id, text in meta["scp_codes"].items():
        try:
            codes = parse_scp_codes(str(ecg_id), text)
            classes.append(ptbxl_classes(str(ecg_id), codes, label_mapping))
            scp.append(codes)
            keep.append(ecg_id)
        except RecordError as err:
            report.add(err)
    meta = meta.loc[keep].copy()
    meta["scp"] = scp
    meta["classes"] = classes
    meta["dropped"] = [len(c) == 0 for c in classes]
    for c in CLASSES:
        meta[c] = [int(c in cl) for cl in classes]
    return meta, report


def load_statements(root: Path) -> pd.DataFrame:
    """Read PTB-XL's ``scp_statements.csv`` (the 71 SCP statements).

    Parameters
    ----------
    root : pathlib.Path
        Data root holding ``ptb-xl/``.

    Returns
    -------
    pandas.DataFrame
        Indexed by SCP code, with the official columns plus ``category``:
        ``diagnostic``, ``form``, ``rhythm`` or ``diagnostic+form`` (the four
        statements that are both), from the 0/1 columns of the same names.

    Raises
    ------
    FileNotFoundError
        If ``scp_statements.csv`` is missing.
    """
    path = ptbxl_dir(root) / "scp_statements.csv"
    if not path.is_file():
        raise FileNotFoundError(f"PTB-XL statement table not found: {path}")
    table = pd.read_csv(path, index_col=0)
    kinds = ("diagnostic", "form", "rhythm")
    table["category"] = [
        "+".join(k for k in kinds if row.get(k) == 1) or "none" for _, row in table.iterrows()
    ]
    return table


def record_path(root: Path, meta: pd.DataFrame, ecg_id: int, fs_hz: int) -> Path:
    """Path (without extension) of one record at 100 or 500 Hz.

    Raises
    ------
    ValueError
        If ``fs_hz`` is not 100 or 500.
    """
    if fs_hz not in FILENAME_COLUMN:
        raise ValueError(f"PTB-XL has records at 100 or 500 Hz, not {fs_hz}")
    return ptbxl_dir(root) / meta.at[ecg_id, FILENAME_COLUMN[fs_hz]]


def present(root: Path, meta: pd.DataFrame, fs_hz: int) -> pd.Series:
    """Which listed records have their header file on disk at ``fs_hz``.

    Returns
    -------
    pandas.Series of bool, indexed by ``ecg_id``.
    """
    base = ptbxl_dir(root)
    col = FILENAME_COLUMN[fs_hz]
    return pd.Series(
        [(base / f"{name}.hea").is_file() for name in meta[col]], index=meta.index, name="present"
    )


def read_record(root: Path, meta: pd.DataFrame, ecg_id: int, fs_hz: int) -> Record:
    """Read one PTB-XL record in mV.

    Parameters
    ----------
    root : pathlib.Path
        Data root.
    meta : pandas.DataFrame
        From :func:`load_metadata`.
    ecg_id : int
    fs_hz : int
        100 (``records100``) or 500 (``records500``).

    Returns
    -------
    Record
        Signal of shape (1000 or 5000, 12), mV.

    Raises
    ------
    RecordError
        Missing, truncated or unreadable record, wrong lead set, NaN samples.
    """
    return read_wfdb(record_path(root, meta, ecg_id, fs_hz), record=f"ptbxl:{ecg_id}")


def release_dir(root: Path, fs_hz: int) -> Path:
    """Folder of one PTB-XL release: ``<root>/ptb-xl/records100`` or ``records500``."""
    if fs_hz not in FILENAME_COLUMN:
        raise ValueError(f"PTB-XL has records at 100 or 500 Hz, not {fs_hz}")
    return ptbxl_dir(root) / f"records{fs_hz}"


def choose_release(
    n_present: dict[int, int], fs_hz: float, source_fs_hz: int | None = None
) -> tuple[int, str | None]:
    """Which PTB-XL release to read for a model at ``fs_hz``, and why, when it is not the usual.

    Parameters
    ----------
    n_present : dict {100: int, 500: int}
        Records (kept by the label mapping) on disk in each release.
    fs_hz : float
        Model input sampling frequency, Hz.
    source_fs_hz : {100, 500}, optional
        A release asked for explicitly; it is always read (a note says when it
        holds no record but the other release does).

    Returns
    -------
    fs : int
        The release to read (100 or 500).
    note : str or None
        A sentence for :attr:`ECGDataset.notes` when the choice differs from
        the usual one (100 Hz for ``fs_hz <= 100``, else 500 Hz) or when the
        other release holds markedly more records.

    Notes
    -----
    Without ``source_fs_hz``: the usual release is read unless it holds none
    of the records while the other does, or it is the 100 Hz release and holds
    fewer than half as many as the 500 Hz one (500 -> 100 Hz loses nothing a
    100 Hz model sees). The 100 Hz release is not chosen for a model above
    100 Hz just because it holds more records (upsampled 100 Hz records lack
    the content above 50 Hz), but a note says so. Records read at another rate
    are resampled with :func:`scipy.signal.resample_poly`
    (:func:`ecgrepro.data.signals.prepare_signal`).
    """
    usual = 100 if fs_hz <= 100 else 500
    wanted = source_fs_hz or usual
    other = 500 if wanted == 100 else 100
    n_w, n_o = n_present.get(wanted, 0), n_present.get(other, 0)

    def resampled(fs: int) -> str:
        if fs == fs_hz:
            return f"no resampling ({fs} Hz is the model's rate)"
        return f"resampled {fs} -> {fs_hz:g} Hz with scipy.signal.resample_poly"

    if source_fs_hz:
        if n_w == 0 and n_o > 0:
            return wanted, (
                f"PTB-XL: source_fs_hz={wanted} was asked, but records{wanted}/ holds none of "
                f"the records (records{other}/ holds {n_o:,}); leave source_fs_hz unset to "
                f"read records{other}/"
            )
        return wanted, None
    if n_w == 0 and n_o > 0:
        return other, (
            f"PTB-XL: no records in records{wanted}/; read records{other}/ ({n_o:,} records) "
            f"and {resampled(other)}"
        )
    if other > wanted and n_w < n_o / 2:
        return other, (
            f"PTB-XL: records{wanted}/ holds only {n_w:,} records, records{other}/ {n_o:,}; "
            f"read records{other}/ and {resampled(other)}"
        )
    if n_o > 2 * n_w:
        return wanted, (
            f"PTB-XL: read records{wanted}/ ({n_w:,} records) although records{other}/ holds "
            f"{n_o:,}: {other} Hz records upsampled to {fs_hz:g} Hz would lack the content "
            f"above {other / 2:g} Hz (pass source_fs_hz={other} to read them anyway)"
        )
    return wanted, None
