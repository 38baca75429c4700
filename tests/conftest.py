"""Shared fixtures: the real data sample and small corrupted copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecgrepro.config import find_data_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real sample (or $ECGREPRO_DATA); fails with the finder's message if absent."""
    return find_data_root()


@pytest.fixture()
def mini_root(tmp_path: Path, data_root: Path) -> Path:
    """A tiny data root: 3 PTB-XL records at 100 Hz, 4 CPSC records in two forms."""
    ptb = tmp_path / "ptb-xl"
    (ptb / "records100" / "00000").mkdir(parents=True)
    shutil.copy(data_root / "ptb-xl" / "ptbxl_database.csv", ptb)
    for i in (1, 2, 3):
        for ext in (".hea", ".dat"):
            name = f"{i:05d}_lr{ext}"
            shutil.copy(
                data_root / "ptb-xl" / "records100" / "00000" / name, ptb / "records100" / "00000"
            )
    cpsc = tmp_path / "cpsc2018"
    (cpsc / "wfdb").mkdir(parents=True)
    (cpsc / "original").mkdir()
    shutil.copy(data_root / "cpsc2018" / "REFERENCE.csv", cpsc)
    for rec in ("A0001", "A0002", "A0003"):
        for ext in (".hea", ".mat"):
            shutil.copy(data_root / "cpsc2018" / "wfdb-2020" / f"{rec}{ext}", cpsc / "wfdb")
    shutil.copy(data_root / "cpsc2018" / "original" / "A1980.mat", cpsc / "original")
    return tmp_path
