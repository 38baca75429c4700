"""PTB-XL v1.0.3: metadata, the 9-class labels and the records present on disk.

Source: Wagner et al. (2020), PhysioNet PTB-XL v1.0.3 layout
(``ptbxl_database.csv``, ``scp_statements.csv``, ``records100/``,
``records500/``); label derivation as METHODS.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.data.errors import LabelFileError, RecordError, SkipReport, read_label_csv
from ecgrepro.data.labels import DEFAULT_MAPPING, parse_scp_codes, ptbxl_classes
from ecgrepro.data.records import Record, RecordContract, read_wfdb

#: Sampling frequencies of the two PTB-XL releases and their filename columns.
FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}

#: What every record of each release holds (Wagner et al. 2020): 10 s, 1000 adu/mV, mV.
CONTRACTS = {
    fs: RecordContract(f"PTB-XL records{fs}/", fs_hz=fs, duration_s=10.0, adc_gain=1000.0)
    for fs in FILENAME_COLUMN
}


def ptbxl_dir(root: Path) -> Path:
    """The PTB-XL folder under a data root (``<root>/ptb-xl``)."""
    return Path(root) / "ptb-xl"


#: Columns of ``ptbxl_database.csv`` the loaders read; a file without one of them stops the load.
REQUIRED_COLUMNS = ("ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr", "age", "sex")


def _cell(value) -> str:
    """A CSV cell as a reader would write it: ``11`` (not ``11.0``), ``(empty)``, ``'x'``."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return "(empty)"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer, float, np.floating)):
        return str(value)
    return repr(str(value))


def check_metadata_rows(meta: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[RecordError]]:
    """Rows of ``ptbxl_database.csv`` that can be used, and a named error for each other row.

    Parameters
    ----------
    meta : pandas.DataFrame
        The file as read, with its columns (``ecg_id`` not yet the index).
    path : pathlib.Path
        The file, for the messages.

    Returns
    -------
    kept : pandas.DataFrame
        Rows with a unique integer ``ecg_id`` and a ``strat_fold`` in 1-10,
        indexed by ``ecg_id`` (int64), ``strat_fold`` as int64.
    errors : list of RecordError
        One per row (one per duplicated id) left out, naming the file, its line and column: an
        ``ecg_id`` that is missing, not an integer or listed more than once
        (every copy is left out: which is right cannot be told), a
        ``strat_fold`` that is empty or outside 1-10.
    """
    line = pd.Series(np.arange(len(meta)) + 2, index=meta.index)  # line 1 is the header
    ids = pd.to_numeric(meta["ecg_id"], errors="coerce")
    folds = pd.to_numeric(meta["strat_fold"], errors="coerce")
    errors: list[RecordError] = []
    bad = pd.Series(False, index=meta.index)
    for i in meta.index[ids.isna() | (ids % 1 != 0)]:
        errors.append(
            RecordError(
                f"line {line[i]}",
                f"{path.name} line {line[i]}, column ecg_id: "
                f"{_cell(meta.at[i, 'ecg_id'])} is not an integer id",
            )
        )
        bad[i] = True
    dup = ids.duplicated(keep=False) & ~bad
    for ecg_id, rows in ids[dup].groupby(ids[dup]).groups.items():
        lines = ", ".join(str(line[r]) for r in rows)
        errors.append(
            RecordError(
                str(int(ecg_id)),
                f"{path.name} column ecg_id: {int(ecg_id)} is listed {len(rows)} times "
                f"(lines {lines}); none of them is used",
            )
        )
        bad[rows] = True
    off = ~bad & (folds.isna() | ~folds.isin(range(1, 11)))
    for i in meta.index[off]:
        errors.append(
            RecordError(
                str(int(ids[i])),
                f"{path.name} line {line[i]}, column strat_fold: "
                f"{_cell(meta.at[i, 'strat_fold'])} is not a fold 1-10",
            )
        )
    bad |= off
    kept = meta.loc[~bad].copy()
    kept["ecg_id"] = ids[~bad].astype(np.int64)
    kept["strat_fold"] = folds[~bad].astype(np.int64)
    kept = kept.set_index("ecg_id")
    kept.attrs["line"] = line[~bad].set_axis(kept.index).to_dict()
    return kept, errors


def load_metadata(
    root: Path, label_mapping: str = DEFAULT_MAPPING
) -> tuple[pd.DataFrame, SkipReport]:
    """Read ``ptbxl_database.csv``, check every row, and attach the 9-class labels.

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
        One row per usable listed record (21,799 in v1.0.3), indexed by ``ecg_id``,
        with the official columns plus ``scp`` (dict code -> likelihood),
        ``classes`` (list of CPSC classes, empty for dropped records),
        ``dropped`` (bool) and one 0/1 column per class.
    report : SkipReport
        Rows left out, each named with the file's line and column
        (:func:`check_metadata_rows`; ``scp_codes`` that do not parse, with a
        likelihood that is not a number in 0-100, or with an unknown code).

    Raises
    ------
    FileNotFoundError
        If ``ptbxl_database.csv`` is missing.
    LabelFileError
        If it cannot be read as CSV or lacks a column of :data:`REQUIRED_COLUMNS`.
    """
    path = ptbxl_dir(root) / "ptbxl_database.csv"
    if not path.is_file():
        raise FileNotFoundError(f"PTB-XL metadata not found: {path}")
    meta = read_label_csv(path, "PTB-XL's ptbxl_database.csv")
    missing = [c for c in REQUIRED_COLUMNS if c not in meta.columns]
    if missing:
        raise LabelFileError(
            path,
            f"no column {', '.join(missing)}; PTB-XL v1.0.3's ptbxl_database.csv has "
            f"{', '.join(REQUIRED_COLUMNS)} (found: {', '.join(map(str, meta.columns[:8]))}"
            f"{', ...' if len(meta.columns) > 8 else ''})",
        )
    meta, row_errors = check_metadata_rows(meta, path)
    report = SkipReport("ptbxl")
    for err in row_errors:
        report.add(err)
    lines = meta.attrs.pop("line")
    scp, classes, keep = [], [], []
    for ecg_id, text in meta["scp_codes"].items():
        try:
            codes = parse_scp_codes(str(ecg_id), text)
            classes.append(ptbxl_classes(str(ecg_id), codes, label_mapping))
            scp.append(codes)
            keep.append(ecg_id)
        except RecordError as err:
            report.add(
                RecordError(
                    err.record, f"{path.name} line {lines[ecg_id]}, column scp_codes: {err.problem}"
                )
            )
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
        Missing, truncated or unreadable record, a header that disagrees with
        its data or with the release (:data:`CONTRACTS`), wrong lead set, NaN samples.
    """
    return read_wfdb(
        record_path(root, meta, ecg_id, fs_hz), record=f"ptbxl:{ecg_id}", contract=CONTRACTS[fs_hz]
    )


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
