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
