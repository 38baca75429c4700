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
