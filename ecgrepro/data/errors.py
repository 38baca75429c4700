"""Errors raised for bad records and a container for the ones a batch skipped."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


class RecordError(ValueError):
    """A record cannot be used; the message names the record and the problem.

    Parameters
    ----------
    record : str
        The record's identifier (PTB-XL ``ecg_id`` or CPSC name such as ``A0001``).
    problem : str
        What is wrong: missing file, truncated signal, wrong lead set, NaN
        samples, unknown label code, unreadable file.
    """

    def __init__(self, record: str, problem: str):
        self.record = str(record)
        self.problem = problem
        super().__init__(f"record {self.record}: {problem}")


class LabelFileError(ValueError):
    """A label or metadata file cannot be read as its format at all; one line names it.

    Raised by :func:`ecgrepro.data.ptbxl.load_metadata` and
    :func:`ecgrepro.data.cpsc.load_reference` for a file that is not CSV, lacks
    a required column or its header line, or uses another separator. A single
    bad row is not this error: it is skipped and listed in the skip report.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    problem : str
        What is wrong, and what was expected.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def read_label_csv(path, what: str, **kwargs) -> pd.DataFrame:
    """:func:`pandas.read_csv`, with one :class:`LabelFileError` line for a file that is not CSV.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    what : str
        Its format in words, for the message (``PTB-XL's ptbxl_database.csv``).
    **kwargs
        Passed to :func:`pandas.read_csv`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    LabelFileError
        If pandas cannot parse it, it is empty, or it is not text in UTF-8.
    """
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LabelFileError(path, f"cannot be read as {what} ({first})") from exc


class CorruptCacheWarning(UserWarning):
    """A cached file (signals, a trained model, an explanation) failed its check on read.

    The folder or file is moved aside (renamed ``<name>.corrupt-<time>-<pid>``), the
    message says what was wrong, and the result is rebuilt.
    """


@dataclass
class SkipReport:
    """Records a batch job skipped, with the reason for each.

    Attributes
    ----------
    dataset : str
        ``"ptbxl"`` or ``"cpsc"``.
    skipped : list of (str, str)
        ``(record, problem)`` pairs, in the order met.
    """

    dataset: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, err: RecordError) -> None:
        """Remember one skipped record."""
        self.skipped.append((err.record, err.problem))

    def __len__(self) -> int:
        return len(self.skipped)

    def to_frame(self) -> pd.DataFrame:
        """Return the skipped records as a table with columns ``dataset, record, problem``."""
        return pd.DataFrame(
            [(self.dataset, r, p) for r, p in self.skipped],
            columns=["dataset", "record", "problem"],
        )


class EmptySplitError(ValueError):
    """A split of a dataset holds no record, so nothing can be trained or scored on it.

    Raised by :meth:`ecgrepro.data.ECGDataset.subset` (callers:
    :meth:`ecgrepro.train.Samples.from_dataset`), not when the dataset is
    loaded: a dataset may legitimately lack a split that is never used.

    Parameters
    ----------
    dataset : str
        ``"ptbxl"`` or ``"cpsc"``.
    split : str
        ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
    folder : str
        The folder the records were looked for in.
    expected : str
        Which records the split should hold (e.g. ``fold 10 of ptbxl_database.csv``).
    detail : str, optional
        Anything else that explains the emptiness (counts, a missing release).
    """

    def __init__(self, dataset: str, split: str, folder: str, expected: str, detail: str = ""):
        self.dataset = dataset
        self.split = split
        self.folder = folder
        self.expected = expected
        msg = f"{dataset}: no records in split {split!r} under {folder} (expected {expected})"
        super().__init__(f"{msg}. {detail}" if detail else msg)


class MissingRecordsWarning(UserWarning):
    """Many records listed in a dataset's label file are not on disk.

    Issued by :func:`ecgrepro.data.load_ptbxl` and :func:`ecgrepro.data.load_cpsc`
    when more than 1% of the listed records are missing from a data root that
    is not the shared sample (on the sample, missing records are expected).
    """
