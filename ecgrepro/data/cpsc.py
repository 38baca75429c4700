"""CPSC 2018: ``REFERENCE.csv`` labels and the records in their three public forms.

Forms (METHODS.md, "CPSC 2018"; the sample's README):

- ``wfdb``: a WFDB header plus ``.mat`` signal (PhysioNet/CinC Challenge 2020
  with ``#Dx:`` abbreviations, or 2021+ with SNOMED CT codes);
- ``original``: the original release's MATLAB struct ``ECG{sex, age, data}``.

Labels always come from ``REFERENCE.csv``; a header's own ``#Dx:`` is
cross-checked and any disagreement reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.data.errors import LabelFileError, RecordError, SkipReport, read_label_csv
from ecgrepro.data.labels import CPSC_CODES, header_dx_classes
from ecgrepro.data.records import (
    Record,
    RecordContract,
    is_wfdb_signal_mat,
    read_cpsc_original,
    read_wfdb,
    wfdb_header_missing,
)

#: Sampling frequency of every CPSC 2018 record, Hz.
CPSC_FS_HZ = 500

#: What every CPSC 2018 record in WFDB form holds: 500 Hz, 6-60 s, 1000 adu/mV, mV.
CONTRACT = RecordContract("CPSC 2018", fs_hz=CPSC_FS_HZ, duration_s=None, adc_gain=1000.0)


def cpsc_dir(root: Path) -> Path:
    """The CPSC folder under a data root (``<root>/cpsc2018``)."""
    return Path(root) / "cpsc2018"


def load_reference(root: Path) -> tuple[pd.DataFrame, SkipReport]:
    """Read ``REFERENCE.csv`` (multi-label, codes 1-9), checking every row.

    Parameters
    ----------
    root : pathlib.Path
        Data root holding ``cpsc2018/REFERENCE.csv``.

    Returns
    -------
    labels : pandas.DataFrame
        Indexed by record name (``A0001`` ...), columns ``classes`` (list of
        classes, first label first) and one 0/1 column per class.
    report : SkipReport
        Rows left out, each named with the file's line and column: an empty
        recording name, no label or an unknown label code, a recording listed
        more than once (every copy is left out: which is right cannot be told).

    Raises
    ------
    FileNotFoundError
        If ``REFERENCE.csv`` is missing.
    LabelFileError
        If the file cannot be read as CSV, is separated by another character
        than ``,``, or lacks its header line (``Recording,First_label,...``):
        without it the first record would be taken for the header.
    """
    path = cpsc_dir(root) / "REFERENCE.csv"
    if not path.is_file():
        raise FileNotFoundError(f"CPSC 2018 labels not found: {path}")
    ref = read_label_csv(path, "CSV", dtype=str, keep_default_na=False)
    ref.columns = [str(c).strip().lstrip("\ufeff") for c in ref.columns]
    header = ",".join(ref.columns)
    expected = "Recording,First_label,Second_label,Third_label"
    if len(ref.columns) == 1 and any(sep in header for sep in ";\t|"):
        sep = next(sep for sep in ";\t|" if sep in header)
        raise LabelFileError(
            path,
            f"its columns are separated by {sep!r}; REFERENCE.csv is comma-separated ({expected})",
        )
    if ref.columns[0].lower() != "recording":
        first = path.read_text(errors="replace").splitlines()[0].strip()
        what = (
            f"its first line {first!r} is a record, not the header line"
            if ref.columns[0][:1].upper() == "A" and ref.columns[0][1:].isdigit()
            else f"its first column is {ref.columns[0]!r}, not 'Recording'"
        )
        raise LabelFileError(path, f"{what}; CPSC 2018's REFERENCE.csv starts with {expected!r}")
    report = SkipReport("cpsc")
    names_col = ref.iloc[:, 0].str.strip()
    counts = names_col.value_counts()
    names, classes, seen_dup = [], [], set()
    for i, row in enumerate(ref.itertuples(index=False)):
        line = i + 2  # line 1 is the header
        name = str(row[0]).strip()
        codes = [(ref.columns[j + 1], str(v).strip()) for j, v in enumerate(row[1:])]
        codes = [(col, v) for col, v in codes if v]
        try:
            if not name:
                raise RecordError(f"line {line}", f"REFERENCE.csv line {line}: no recording name")
            if counts[name] > 1:
                if name in seen_dup:
                    continue
                seen_dup.add(name)
                lines = ", ".join(str(k + 2) for k in np.flatnonzero(names_col == name))
                raise RecordError(
                    name,
                    f"REFERENCE.csv column Recording: {name} is listed {counts[name]} times "
                    f"(lines {lines}); none of them is used",
                )
            bad = [(col, c) for col, c in codes if not c.isdigit() or int(c) not in CPSC_CODES]
            if bad or not codes:
                where = f"column {bad[0][0]}" if bad else "columns " + ", ".join(ref.columns[1:])
                found = [c for _, c in bad] or [c for _, c in codes]
                raise RecordError(
                    name,
                    f"REFERENCE.csv line {line}, {where}: unknown label code(s) {found} (codes 1-9)"
                    if found
                    else f"REFERENCE.csv line {line}, {where}: no label",
                )
            cl = []
            for _, c in codes:
                if CPSC_CODES[int(c)] not in cl:
                    cl.append(CPSC_CODES[int(c)])
            names.append(name)
            classes.append(cl)
        except RecordError as err:
            report.add(err)
    labels = pd.DataFrame({"classes": classes}, index=pd.Index(names, name="record"))
    for c in CLASSES:
        labels[c] = [int(c in cl) for cl in classes]
    return labels, report


def index_records(root: Path) -> pd.DataFrame:
    """Find every CPSC record file under ``<root>/cpsc2018`` in any form.

    A ``.mat`` with a ``.hea`` beside it is the WFDB form. A ``.mat`` alone is
    the original release, unless it holds a WFDB-form signal (variable ``val``,
    checked with :func:`scipy.io.whosmat`): then it is a WFDB record whose
    header is missing, listed as ``wfdb`` so that :func:`read_record` names the
    missing header instead of failing on the absent ``ECG`` struct. A record
    present in several forms is listed once per form.

    Returns
    -------
    pandas.DataFrame
        Columns ``record`` (name), ``form`` (``"wfdb"`` or ``"original"``),
        ``path`` (record path; without extension for WFDB), sorted by record
        then form (WFDB first).
    """
    rows = []
    for mat in sorted(cpsc_dir(root).rglob("*.mat")):
        hea = mat.with_suffix(".hea")
        if hea.is_file() or is_wfdb_signal_mat(mat):
            rows.append((mat.stem, "wfdb", str(mat.with_suffix(""))))
        else:
            rows.append((mat.stem, "original", str(mat)))
    for hea in sorted(cpsc_dir(root).rglob("*.hea")):
        if not hea.with_suffix(".mat").is_file():  # header whose signal file is missing
            rows.append((hea.stem, "wfdb", str(hea.with_suffix(""))))
    df = pd.DataFrame(rows, columns=["record", "form", "path"])
    df["form_rank"] = df.form.map({"wfdb": 0, "original": 1})
    df = df.sort_values(["record", "form_rank", "path"]).drop(columns="form_rank")
    return df.drop_duplicates(["record", "form", "path"]).reset_index(drop=True)


def read_record(record: str, form: str, path: str | Path) -> Record:
    """Read one CPSC record in mV at 500 Hz.

    Parameters
    ----------
    record : str
        Record name such as ``A0001``.
    form : {"wfdb", "original"}
    path : str or pathlib.Path
        From :func:`index_records`.

    Returns
    -------
    Record
        Signal of shape (n_samples, 12), mV; n_samples is 3,000-30,000.

    Raises
    ------
    RecordError
        Missing, truncated or unreadable record, a header that disagrees with
        its data or with CPSC 2018 (:data:`CONTRACT`), wrong lead set, NaN
        samples; a WFDB-form ``.mat`` whose ``.hea`` is missing ("the WFDB
        header is missing").
    ValueError
        For an unknown ``form``.
    """
    if form == "wfdb":
        mat = Path(path).with_suffix(".mat")
        if not Path(path).with_suffix(".hea").is_file() and mat.is_file():
            raise RecordError(record, wfdb_header_missing(mat))
        return read_wfdb(path, record=record, contract=CONTRACT)
    if form == "original":
        return read_cpsc_original(path, record=record, fs=CPSC_FS_HZ)
    raise ValueError(f"unknown CPSC record form {form!r}")


def check_header_labels(record: str, comments: list[str], classes: list[str]) -> str | None:
    """Compare a WFDB header's ``#Dx:`` with the ``REFERENCE.csv`` labels.

    Parameters
    ----------
    record : str
        Record name.
    comments : list of str
        The header's comment lines (``wfdb.rdheader(path).comments``).
    classes : list of str
        The record's classes from ``REFERENCE.csv``.

    Returns
    -------
    str or None
        A description of the disagreement, or None when they agree or the
        header has no Dx line.
    """
    try:
        dx = header_dx_classes(record, comments)
    except RecordError as err:
        return err.problem
    if dx is None or set(dx) == set(classes):
        return None
    return f"header Dx {dx} but REFERENCE.csv {classes}"


def choose_forms(index: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One file per labelled record: the first form found (WFDB before original).

    Returns
    -------
    pandas.DataFrame
        ``index`` rows restricted to records in ``labels``, one per record,
        with a column ``n_forms`` counting the copies found.
    """
    counts = index.groupby("record").size().rename("n_forms")
    chosen = index.drop_duplicates("record").set_index("record").join(counts)
    return chosen.loc[chosen.index.isin(labels.index)].assign(
        n_forms=lambda d: d.n_forms.astype(np.int64)
    )
