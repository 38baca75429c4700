"""Labels: the PTB-XL SCP statement -> CPSC 2018 class mappings, and CPSC label codes.

Two mappings, each data (a CSV beside this file, one row per SCP statement):

- ``published`` (``ptbxl_to_cpsc.csv``, the default): inferred from the
  authors' published per-record codes (METHODS.md, "PTB-XL -> 9 classes"):
  codes with likelihood > 0 are kept, 11 codes are dropped, and records left
  with no code are dropped (258 records of PTB-XL v1.0.3). It reproduces the
  paper's Table 1 in every cell.
- ``rhythm-aware`` (``ptbxl_to_cpsc_rhythm_aware.csv``): every one of PTB-XL's
  71 statements decided, with its reason in the file. Diagnostic statements
  keep their published class and rule; rhythm and form statements, which
  PTB-XL records with likelihood 0, count at any likelihood (column
  ``likelihood`` = ``any``), as the PhysioNet/CinC Challenge 2021 did; and SNR
  requires sinus rhythm (the ``SINUS`` row, SR), no other class and no
  statement that rules it out (``NOT_SNR``: other rhythms, ectopy of unknown
  origin).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.data.errors import RecordError

MAPPING_FILE = Path(__file__).with_name("ptbxl_to_cpsc.csv")
#: The label mappings by name; ``published`` is the paper's and the default.
MAPPING_FILES: dict[str, Path] = {
    "published": MAPPING_FILE,
    "rhythm-aware": Path(__file__).with_name("ptbxl_to_cpsc_rhythm_aware.csv"),
}
DEFAULT_MAPPING = "published"
#: A statement that gives no class.
DROP = "DROP"
#: A statement that gives no class but establishes sinus rhythm, which SNR then requires.
SINUS = "SINUS"
#: A statement that gives no class but rules SNR out (a rhythm other than normal sinus rhythm,
#: ectopy of unknown origin).
NOT_SNR = "NOT_SNR"
#: Values of a mapping file's ``likelihood`` column: counted above 0 only, or at any likelihood.
LIKELIHOOD_RULES = (">0", "any")

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


@dataclass(frozen=True)
class LabelMapping:
    """One PTB-XL -> CPSC mapping, read from its CSV.

    Attributes
    ----------
    name : str
        ``published`` or ``rhythm-aware`` (a key of :data:`MAPPING_FILES`).
    path : pathlib.Path
        The CSV it was read from.
    table : pandas.DataFrame
        Indexed by ``scp_code``; columns ``cpsc_class`` (a class of
        :data:`CLASSES`, ``DROP``, ``SINUS`` or ``NOT_SNR``), ``likelihood`` (``>0`` or
        ``any``; ``>0`` where the file has no such column) and ``reason``
        (empty where the file has none).
    """

    name: str
    path: Path
    table: pd.DataFrame

    @property
    def classes(self) -> pd.Series:
        """SCP statement -> ``cpsc_class``."""
        return self.table["cpsc_class"]

    @property
    def any_likelihood(self) -> frozenset[str]:
        """Statements counted at any likelihood (0 included)."""
        return frozenset(self.table.index[self.table["likelihood"] == "any"])

    @property
    def snr_requires_sinus(self) -> bool:
        """True when the mapping has a ``SINUS`` statement: SNR then needs it, no other class
        and no ``NOT_SNR`` statement."""
        return bool((self.classes == SINUS).any())


@cache
def label_mapping(name: str = DEFAULT_MAPPING) -> LabelMapping:
    """Read a label mapping by name.

    Parameters
    ----------
    name : {"published", "rhythm-aware"}

    Returns
    -------
    LabelMapping

    Raises
    ------
    ValueError
        For an unknown name, or a file with an unknown class, an unknown
        likelihood rule or a statement listed twice.
    """
    if name not in MAPPING_FILES:
        raise ValueError(f"unknown label mapping {name!r}; known: {sorted(MAPPING_FILES)}")
    path = MAPPING_FILES[name]
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "likelihood" not in table:
        table["likelihood"] = ">0"
    if "reason" not in table:
        table["reason"] = ""
    unknown = set(table.cpsc_class) - set(CLASSES) - {DROP, SINUS, NOT_SNR}
    if unknown:
        raise ValueError(f"{path}: unknown classes {sorted(unknown)}")
    rules = set(table.likelihood) - set(LIKELIHOOD_RULES)
    if rules:
        raise ValueError(
            f"{path}: unknown likelihood rules {sorted(rules)}; use {LIKELIHOOD_RULES}"
        )
    twice = sorted(table.scp_code[table.scp_code.duplicated()])
    if twice:
        raise ValueError(f"{path}: statements listed twice {twice}")
    return LabelMapping(name, path, table.set_index("scp_code"))


def scp_mapping(name: str = DEFAULT_MAPPING) -> pd.Series:
    """A PTB-XL -> CPSC mapping table as a Series.

    Parameters
    ----------
    name : {"published", "rhythm-aware"}

    Returns
    -------
    pandas.Series
        Index: SCP statement code (e.g. ``"CLBBB"``); value: a class of
        :data:`ecgrepro.config.CLASSES`, ``"DROP"`` (the published mapping's
        11 dropped codes), ``"SINUS"`` or ``"NOT_SNR"``.
    """
    return label_mapping(name).classes


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
        If the text is not such a dict, or a likelihood is not a number in 0-100.
    """
    try:
        codes = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise RecordError(record, f"unparseable scp_codes {text!r}") from exc
    if not isinstance(codes, dict):
        raise RecordError(record, f"scp_codes is not a dict: {text!r}")
    out = {}
    for k, v in codes.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise RecordError(
                record, f"scp_codes gives {k!r} the likelihood {v!r}, not a number (%)"
            ) from None
        if not 0 <= out[str(k)] <= 100:
            raise RecordError(
                record, f"scp_codes gives {k!r} the likelihood {v!r}, outside 0-100 (%)"
            )
    return out


def ptbxl_classes(
    record: str, scp_codes: dict[str, float], mapping: str = DEFAULT_MAPPING
) -> list[str]:
    """The CPSC classes of one PTB-XL record under a label mapping.

    Parameters
    ----------
    record : str
        ``ecg_id``, for the error message.
    scp_codes : dict of str -> float
        SCP code -> likelihood (%), from :func:`parse_scp_codes`.
    mapping : {"published", "rhythm-aware"}
        ``published`` (the paper's, default): statements with likelihood > 0
        give their class. ``rhythm-aware``: statements marked ``any`` count
        at any likelihood, and SNR is kept only when the record carries sinus
        rhythm (SR), no other class and no statement that rules SNR out.

    Returns
    -------
    list of str
        Classes in :data:`ecgrepro.config.CLASSES` order; empty if no
        counted statement gives a class (the record is then dropped).

    Raises
    ------
    RecordError
        If a counted statement is neither mapped nor dropped (an unknown label
        code). Under a mapping with ``any`` rules every statement is counted
        for this check, whatever its likelihood.
    """
    m = label_mapping(mapping)
    table = m.classes
    any_rule = m.any_likelihood
    counted = [c for c, p in scp_codes.items() if p > 0 or c in any_rule]
    checked = list(scp_codes) if any_rule else counted
    unknown = [c for c in checked if c not in table.index]
    if unknown:
        raise RecordError(record, f"unknown SCP code(s) {unknown} (not in {m.path.name})")
    given = {table[c] for c in counted}
    found = given - {DROP, SINUS, NOT_SNR}
    if m.snr_requires_sinus and "SNR" in found:
        if SINUS not in given or NOT_SNR in given or len(found) > 1:
            found.discard("SNR")
    return [c for c in CLASSES if c in found]


def multi_hot(class_lists: list[list[str]], classes: tuple[str, ...] = CLASSES) -> np.ndarray:
    """Encode class lists as the model's target matrix.

    Parameters
    ----------
    class_lists : list of list of str
        Classes per record.
    classes : tuple of str
        Column order (:data:`CLASSES` by default; :data:`SUPERCLASSES` for PTB-XL's superclasses).

    Returns
    -------
    numpy.ndarray, shape (n_records, len(classes)), float32
        1.0 where the record has the class.
    """
    y = np.zeros((len(class_lists), len(classes)), dtype=np.float32)
    index = {c: i for i, c in enumerate(classes)}
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


#: PTB-XL's five diagnostic superclasses (``scp_statements.csv``, ``diagnostic_class``), in the
#: order of Strodthoff et al.'s benchmark and Companion C.
SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")


def ptbxl_superclasses(codes: dict[str, float], statements: pd.DataFrame) -> list[str]:
    """A record's diagnostic superclasses, as PTB-XL's benchmark aggregates them.

    Every statement of the record that ``scp_statements.csv`` marks diagnostic
    contributes its ``diagnostic_class``, whatever its likelihood (Strodthoff
    et al. 2021, the benchmark Companion C reports on).

    Parameters
    ----------
    codes : dict of str -> float
        SCP code -> likelihood in % (:func:`parse_scp_codes`).
    statements : pandas.DataFrame
        ``scp_statements.csv`` indexed by code, with ``diagnostic`` and ``diagnostic_class``
        (:func:`ecgrepro.data.ptbxl.load_statements`).

    Returns
    -------
    list of str
        Superclasses in :data:`SUPERCLASSES` order; empty for a record with no
        diagnostic statement (the benchmark leaves such records out).
    """
    found = {
        statements.at[code, "diagnostic_class"]
        for code in codes
        if code in statements.index and statements.at[code, "diagnostic"] == 1
    }
    return [c for c in SUPERCLASSES if c in found]
