"""Dataset summaries: the paper's Table 1 and the sample's coverage.

Table 1 (Habeeb & Goyal, Section 4.1): per class, the number of PTB-XL records
(% of the 21,541 kept after the mapping), the number of male records (% of the
class) and the age mean (SD). METHODS.md: "Male" counts ``sex == 0``; ages are
the plain mean and SD of ``age``, where v1.0.3 stores every age above 89 as the
placeholder 300.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES

#: PTB-XL v1.0.3's placeholder age for patients older than 89 years.
AGE_PLACEHOLDER = 300

TABLE1_COLUMNS = ["count", "count_pct", "male", "male_pct", "age_mean", "age_sd"]


def table1(meta: pd.DataFrame, correct_ages: bool = False) -> pd.DataFrame:
    """Compute Table 1 from PTB-XL metadata with class columns.

    Parameters
    ----------
    meta : pandas.DataFrame
        From :func:`ecgrepro.data.ptbxl.load_metadata` (or a subset of it):
        columns ``age`` (years, float), ``sex`` (0 male, 1 female), ``dropped``
        and one 0/1 column per class.
    correct_ages : bool
        False (faithful): ages as stored, placeholder 300 included. True: the
        placeholder is treated as unknown and left out of the mean and SD.

    Returns
    -------
    pandas.DataFrame, indexed by class (CLASSES order)
        ``count`` (int), ``count_pct`` (% of non-dropped records), ``male``
        (int), ``male_pct`` (% of the class), ``age_mean`` and ``age_sd``
        (years; SD with ddof=1, as pandas), unrounded; with
        ``correct_ages=True`` also ``age_n`` and ``age_placeholders``.
    """
    kept = meta[~meta.dropped]
    total = len(kept)
    age = kept.age.where(kept.age != AGE_PLACEHOLDER) if correct_ages else kept.age
    rows = {}
    for c in CLASSES:
        members = kept[c] == 1
        n = int(members.sum())
        male = int((kept.sex[members] == 0).sum())
        a = age[members]
        row = {
            "count": n,
            "count_pct": 100.0 * n / total if total else np.nan,
            "male": male,
            "male_pct": 100.0 * male / n if n else np.nan,
            "age_mean": a.mean(),
            "age_sd": a.std(),
        }
        if correct_ages:
            row["age_n"] = int(a.notna().sum())
            row["age_placeholders"] = int((kept.age[members] == AGE_PLACEHOLDER).sum())
        rows[c] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "class"
    return out


def round_like_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Round percentages and ages to 2 decimals, as the paper prints them."""
    return table.round({c: 2 for c in ("count_pct", "male_pct", "age_mean", "age_sd")})


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Cell-by-cell comparison of a rounded Table 1 with the paper's.

    Returns
    -------
    pandas.DataFrame
        One row per (class, column): ``ours``, ``paper``, ``equal`` (bool,
        exact after rounding to 2 decimals).
    """
    ours = round_like_paper(ours)[TABLE1_COLUMNS]
    rows = []
    for c in paper.index:
        for col in TABLE1_COLUMNS:
            o, p = ours.at[c, col], paper.at[c, col]
            rows.append((c, col, o, p, bool(np.isclose(o, p, rtol=0, atol=1e-9))))
    return pd.DataFrame(rows, columns=["class", "column", "ours", "paper", "equal"])


#: Columns of ``label_audit.csv`` (the labels page).
AUDIT_COLUMNS = ["scp_code", "category", "records", "likelihood_zero", "published_classes"]


def class_counts_text(class_lists: pd.Series) -> str:
    """Count classes over records, as ``"SNR:365;STE:195"`` (most frequent first).

    Parameters
    ----------
    class_lists : pandas.Series of list of str
        The classes of each record; a record with none counts as ``dropped``.

    Returns
    -------
    str
        ``class:count`` pairs joined by ``;``, by count then class order
        (``dropped`` last among equals); empty for no records.
    """
    counts: dict[str, int] = {}
    for classes in class_lists:
        for c in classes or ["dropped"]:
            counts[c] = counts.get(c, 0) + 1
    order = list(CLASSES) + ["dropped"]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], order.index(kv[0])))
    return ";".join(f"{c}:{n}" for c, n in ranked)


def label_audit(meta: pd.DataFrame, statements: pd.DataFrame) -> pd.DataFrame:
    """Per SCP statement: its category, its records, those with likelihood 0 and their labels.

    Parameters
    ----------
    meta : pandas.DataFrame
        From :func:`ecgrepro.data.ptbxl.load_metadata` under the **published**
        mapping: ``scp`` (dict code -> likelihood %) and ``classes``.
    statements : pandas.DataFrame
        From :func:`ecgrepro.data.ptbxl.load_statements` (``category`` column).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`AUDIT_COLUMNS`, one row per statement of ``statements``
        (in its order) and then any statement found only in ``meta``:
        ``records`` carrying it, ``likelihood_zero`` of those with likelihood
        0, and ``published_classes``, how the published mapping labels those
        likelihood-0 records (:func:`class_counts_text`).
    """
    carriers: dict[str, list] = {}
    zero: dict[str, list] = {}
    for codes, classes in zip(meta["scp"], meta["classes"], strict=True):
        for code, likelihood in codes.items():
            carriers.setdefault(code, []).append(classes)
            if likelihood == 0:
                zero.setdefault(code, []).append(classes)
    codes = list(statements.index) + sorted(set(carriers) - set(statements.index))
    rows = [
        {
            "scp_code": code,
            "category": statements["category"].get(code, "unlisted"),
            "records": len(carriers.get(code, [])),
            "likelihood_zero": len(zero.get(code, [])),
            "published_classes": class_counts_text(pd.Series(zero.get(code, []), dtype=object)),
        }
        for code in codes
    ]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)
