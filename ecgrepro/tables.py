"""Table views for the book pages: the paper's layout with ours, its spread and interval beside."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.metrics import METRICS

#: Rows of the paper's per-class tables.
ROW_ORDER = list(CLASSES) + ["AVG"]


def _fmt(v) -> str:
    return "-" if pd.isna(v) else f"{v:.3f}"


def cell_text(row) -> str:
    """One cell: ``paper | ours (seeds min-max) [low, high]``.

    The seed spread is shown when the row has ``seed_min``/``seed_max`` from
    more than one replicate (``n_seeds > 1``).
    """
    text = f"{_fmt(row.get('paper_value'))} | {_fmt(row['value'])}"
    if row.get("n_seeds", 1) > 1 and pd.notna(row.get("seed_min")):
        text += f" (seeds {_fmt(row['seed_min'])}-{_fmt(row['seed_max'])})"
    return text + f" [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"


def paper_table_view(long: pd.DataFrame, columns: tuple[str, ...] = ("metric",)):
    """The paper's layout with, in each cell, the paper's value, ours, its seed spread and interval.

    Parameters
    ----------
    long : pandas.DataFrame
        Columns ``class, metric, value, ci_low, ci_high``, optionally
        ``paper_value, paper_outside_ci`` and ``seed_min, seed_max, n_seeds``
        (:func:`ecgrepro.evaluate.seed_pooled_table`), and any columns named
        in ``columns``.
    columns : tuple of str
        What spreads across the columns (``("metric",)`` for one model and test
        set; ``("metric", "model")`` for Table 3).

    Returns
    -------
    pandas.io.formats.style.Styler
        Rows: the 9 classes and AVG. Cell text: ``paper | ours (seeds min-max)
        [low, high]``; bold where the paper's value lies outside our 95%
        interval.
    """
    df = long.copy()
    if "paper_value" not in df:
        df["paper_value"] = np.nan
    if "paper_outside_ci" not in df:
        df["paper_outside_ci"] = False
    df["cell"] = [cell_text(r) for _, r in df.iterrows()]
    cols = list(columns)
    text = df.pivot_table(index="class", columns=cols, values="cell", aggfunc="first")
    flag = df.pivot_table(index="class", columns=cols, values="paper_outside_ci", aggfunc="first")
    order = [m for m in METRICS if m in text.columns.get_level_values(0)]
    text = text.reindex(ROW_ORDER).reindex(columns=order, level=0)
    flag = flag.reindex(index=text.index, columns=text.columns).fillna(False).astype(bool)
    seeds = int(df["n_seeds"].max()) if "n_seeds" in df else 1
    caption = "paper | ours" + (f" (range over {seeds} training seeds)" if seeds > 1 else "")
    caption += " [95% interval" + (", bootstrap pooled over seeds]" if seeds > 1 else "]")
    return text.style.apply(
        lambda _: np.where(flag, "font-weight: bold", ""), axis=None
    ).set_caption(caption)
