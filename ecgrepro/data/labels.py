"""Labels: the PTB-XL SCP statement -> CPSC 2018 class mapping, and CPSC label codes.

The mapping is data (``ptbxl_to_cpsc.csv`` beside this file), inferred from the
authors' published per-record codes (METHODS.md, "PTB-XL -> 9 classes"): codes
with likelihood > 0 are kept, 11 codes are dropped, and records left with no
code are dropped (258 records of PTB-XL v1.0.3).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.data.errors import RecordError

MAPPING_FILE = Path(__file__).with_name("ptbxl_to_cpsc.csv")
DROP = "DROP"

#: CPSC 2018 ``REFERENCE.csv`` codes 1..9 in class order.
CPSC_CODES: dict[int, str] = {i + 1: c for i, c in enumerate(CLASSES)}

#: ``#Dx:`` values in the CinC 2020 (abbreviations) and 2021+ (SNOMED CT) header forms.
DX_TO_CLASS: dict[str, str] = {
    "Normal": "SNR",
    "AF": "AF",
    "I-AVB": "IAVB",
    "LBBB": "LBBB",
    "RBBB": "RBBB",
    "PAC": "PAC",
    "PVC": "PVC",
    "STD": "STD",
    "STE": "STE",
    "426783006": "SNR",
    "164889003": "AF",
    "270492004": "IAVB",
    "164909002": "LBBB",
    "59118001": "RBBB",
    "713427006": "RBBB",
    "284470004": "PAC",
    "63593006": "PAC",
    "164884008": "PVC",
    "429622005": "STD",
    "164931005": "STE",
}


@lru_cache(maxsize=1)
def scp_mapping() -> pd.Series:
    """The PTB-XL -> CPSC mapping table.

    Returns
    -------
    pandas.Series
        Index: SCP statement code (e.g. ``"CLBBB"``); value: a class of
        :data:`ecgrepro.config.CLASSES` or ``"DROP"`` for the 11 dropped codes.
    """
    table = pd.read_csv(MAPPING_FILE, dtype=str, keep_default_na=False)
    unknown = set(table.cpsc_class) - set(CLASSES) - {DROP}
    if unknown:
        raise ValueError(f"{MAPPING_FILE}: unknown classes {sorted(unknown)}")
    return table.set_index("scp_code")["cpsc_class"]


def parse_scp_codes(record: str, text: str) -> dict[str, float]:
    """Parse PTB-XL's ``scp_codes`` column.

    Parameters
    ----------
    record : str
        ``ecg_id``, for the error message.
    text : str
        A Python dict literal such as ``"{'NORM': 100.0, 'SR': 0.0}"``.

    Returns
    -------
    dict of str -> float
        SCP code -> likelihood in percent.

    Raises
    ------
    RecordError
        If the text is not such a dict.
    """
    try:
        codes = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise RecordError(record, f"unparseable scp_codes {text!r}") from exc
    if not isinstance(codes, dict):
        raise RecordError(record, f"scp_codes is not a dict: {text!r}")
    return {str(k): float(v) for k, v in codes.items()}


def ptbxl_classes(record: str, scp_codes: dict[str, float]) -> list[str]:
    """The CPSC classes of one PTB-XL record, as the published code derived them.

    Parameters
    ----------
    record : str
        ``ecg_id``, for the error message.
    scp_codes : dict of str -> float
        SCP code -> likelihood (%), from :func:`parse_scp_codes`.

    Returns
    -------
    list of str
        Classes in :data:`ecgrepro.config.CLASSES` order; empty if every code
        with likelihood > 0 is a dropped code (the record is then dropped).

    Raises
    ------
    RecordError
        If a code with likelihood > 0 is neither mapped nor dropped (an
        unknown label code).
    """
    mapping = scp_mapping()
    kept = [c for c, p in scp_codes.items() if p > 0]
    unknown = [c for c in kept if c not in mapping.index]
    if unknown:
        raise RecordError(record, f"unknown SCP code(s) {unknown} (not in {MAPPING_FILE.name})")
    found = {mapping[c] for c in kept} - {DROP}
    return [c for c in CLASSES if c in found]


def multi_hot(class_lists: list[list[str]]) -> np.ndarray:
    """Encode class lists as the model's target matrix.

    Parameters
    ----------
    class_lists : list of list of str
        Classes per record.

    Returns
    -------
    numpy.ndarray, shape (n_records, 9), float32
        1.0 where the record has the class, columns in :data:`CLASSES` order.
    """
    y = np.zeros((len(class_lists), len(CLASSES)), dtype=np.float32)
    index = {c: i for i, c in enumerate(CLASSES)}
    for row, classes in enumerate(class_lists):
        for c in classes:
            y[row, index[c]] = 1.0
    return y


def header_dx_classes(record: str, comments: list[str]) -> list[str] | None:
    """Classes named by a WFDB header's ``#Dx:`` line (either Challenge form).

    Parameters
    ----------
    record : str
        CPSC record name, for the error message.
    comments : list of str
        Header comment lines, as :attr:`Record.comments`.

    Returns
    -------
    list of str or None
        Classes in :data:`CLASSES` order, or None when the header has no Dx line.

    Raises
    ------
    RecordError
        If the Dx line holds a code that is neither a CPSC abbreviation nor one
        of the SNOMED CT codes of the 9 classes.
    """
    for line in comments:
        key, _, value = line.partition(":")
        if key.strip().lower() == "dx":
            codes = [v.strip() for v in value.split(",") if v.strip()]
            unknown = [c for c in codes if c not in DX_TO_CLASS]
            if unknown:
                raise RecordError(record, f"unknown Dx code(s) {unknown} in header")
            found = {DX_TO_CLASS[c] for c in codes}
            return [c for c in CLASSES if c in found]
    return None
