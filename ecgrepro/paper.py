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

#: Published facts the pages quote, typed once (sources in the comments).
FACTS = {
    "cpsc_records": 6877,  # CPSC 2018 training set (Liu et al., 2018)
    "ptbxl_records": 21799,  # PTB-XL 1.0.3 (Wagner et al., 2020)
    "ptbxl_mapped": 21541,  # the paper's Table 1 total after its mapping
    "zhang_parameters": 16610185,  # Zhang et al.'s 1-D ResNet-34, as their code prints it
    "fs_hz": 500,
    "window_s": 30,
    "epochs": 30,
}


def glue_facts(glue, prefix: str = "paper_") -> None:
    """Glue every entry of :data:`FACTS` (``paper_<name>``, thousands separated) and the
    paper's AVG cells of Tables 2 and 3 (``paper_t2_<test_set>_<metric>``,
    ``paper_t3_<model>_<metric>``, 3 decimals), so that prose never types them.

    Parameters
    ----------
    glue : callable
        :func:`myst_nb.glue`.
    prefix : str
        Prefix of the glue keys.
    """
    for name, value in FACTS.items():
        glue(f"{prefix}{name}", f"{value:,}", display=False)
    for table, group in (("t2", table2()), ("t3", table3())):
        avg = group[group["class"] == "AVG"]
        for _, row in avg.iterrows():
            part = row.test_set if table == "t2" else row.model
            glue(f"{prefix}{table}_{part}_{row.metric}", f"{row.value:.3f}", display=False)


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
