"""The values the paper prints, typed once as data (``paper_data/*.csv``).

Habeeb & Goyal, Tables 1-3. Table 3 reports every model on the combined test set
(``test_set = combined``), but its "Original Model" column repeats Table 2's CPSC
column value for value: the paper most likely evaluated the Original on the CPSC
test fold only. The book says so beside Table 3.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_DATA = Path(__file__).with_name("paper_data")


def table1() -> pd.DataFrame:
    """Paper Table 1 (PTB-XL after mapping), indexed by class.

    Returns
    -------
    pandas.DataFrame
        Columns ``count, count_pct, male, male_pct, age_mean, age_sd``, as printed
        (percentages and ages to 2 decimals).
    """
    return pd.read_csv(PAPER_DATA / "table1.csv", index_col="class")


def table2() -> pd.DataFrame:
    """Paper Table 2 in long form: ``model, test_set, class, metric, value``."""
    return pd.read_csv(PAPER_DATA / "table2.csv")


def table3() -> pd.DataFrame:
    """Paper Table 3 in long form: ``model, test_set, class, metric, value``."""
    return pd.read_csv(PAPER_DATA / "table3.csv")
