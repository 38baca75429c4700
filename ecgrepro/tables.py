"""Table views for the book pages: the paper's layout, with ours and its interval beside.

Each metric (or model) is a group of columns, paper / ours / 95% CI, numbers to 2 decimals,
``-`` where there is no value, ours in bold where the paper's value lies outside our interval;
groups that would make a table wider than the page's column go to a table of their own
(#25, "What to build" item 4). The seed range and full precision stay in the CSVs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecgrepro.book.display import (
    MAX_WIDTH_PX,
    MISSING,
    column_parts,
    format_number,
    interval_text,
    table_html,
    table_text,
)
from ecgrepro.config import CLASSES
from ecgrepro.metrics import METRICS

#: Rows of the paper's per-class tables.
ROW_ORDER = list(CLASSES) + ["AVG"]

#: The columns under each group: the paper's value, ours, our 95% interval.
PARTS = ("paper", "ours", "95% CI")


@dataclass(frozen=True, eq=False)
class PaperTableView:
    """One or more tables in the paper's layout; renders as HTML (``_repr_html_``) or text.

    Attributes
    ----------
    tables : tuple of pandas.DataFrame
        Index ``class`` (the 9 classes and AVG, those present); columns a MultiIndex
        ``(*group levels, part)`` with ``part`` in :data:`PARTS`: ``paper`` and ``ours`` float
        (NaN where missing), ``95% CI`` the interval's text. A group without any paper value
        has no ``paper`` column.
    bold : tuple of pandas.DataFrame
        Same shapes, bool: True on ``ours`` where the paper's value lies outside our interval.
    caption : str
        What the columns are; shown above the first table.
    """

    tables: tuple[pd.DataFrame, ...]
    bold: tuple[pd.DataFrame, ...]
    caption: str

    def _repr_html_(self) -> str:
        return "\n".join(
            table_html(t, self.caption if i == 0 else None, bold=b)
            for i, (t, b) in enumerate(zip(self.tables, self.bold, strict=True))
        )

    def __repr__(self) -> str:
        """The plain text (the PDF): ours marked ``*`` where the HTML shows it in bold."""
        caption = self.caption.replace("Bold:", "*:")
        parts = []
        for i, (table, bold) in enumerate(zip(self.tables, self.bold, strict=True)):
            marked = table.astype(object)
            for col in table.columns[table.columns.get_level_values(-1) == "ours"]:
                marked[col] = [
                    format_number(v) + ("*" if b else "")
                    for v, b in zip(table[col], bold[col], strict=True)
                ]
            parts.append(table_text(marked, caption if i == 0 else None))
        return "\n\n".join(parts)


def _groups(df: pd.DataFrame, cols: list[str]) -> list[tuple]:
    """The column groups in order: metrics as :data:`METRICS`, other levels as they come."""
    seen = list(dict.fromkeys(map(tuple, df[cols].itertuples(index=False, name=None))))
    if "metric" not in cols:
        return seen
    at = cols.index("metric")
    rank = {m: i for i, m in enumerate(METRICS)}
    return sorted(seen, key=lambda g: rank.get(g[at], len(rank)))


def _rows(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df["class"]))
    return [c for c in ROW_ORDER if c in present] + [c for c in present if c not in ROW_ORDER]


def _caption(df: pd.DataFrame, any_paper: bool, any_missing: bool) -> str:
    seeds = sorted({int(n) for n in df["n_seeds"].dropna()}) if "n_seeds" in df else []
    if seeds and max(seeds) > 1:
        ours = f"the mean over {' or '.join(str(n) for n in seeds)} training seeds"
        ci = "our 95% interval (a bootstrap pooled over the seeds)"
    else:
        ours, ci = "our value", "our 95% interval"
    if any_paper:
        text = (
            f"paper: the value the paper prints; ours: {ours}; 95% CI: {ci}. "
            "Bold: the paper's value lies outside our interval."
        )
    else:
        text = f"ours: {ours}; 95% CI: {ci}; the paper prints no value for these."
    return text + (" -: no value." if any_missing else "")


def paper_table_view(
    long: pd.DataFrame,
    columns: tuple[str, ...] = ("metric",),
    max_width_px: float = MAX_WIDTH_PX,
) -> PaperTableView:
    """The paper's per-class layout: per group, the paper's value, ours and our interval.

    Parameters
    ----------
    long : pandas.DataFrame
        Columns ``class, metric, value, ci_low, ci_high``, optionally ``paper_value``,
        ``paper_outside_ci`` and ``n_seeds`` (:func:`ecgrepro.evaluate.seed_pooled_table`;
        ``seed_min``/``seed_max`` are not shown: they stay in the CSVs), and every column
        named in ``columns``. One row per class and group (a repeated one: the first is shown).
    columns : tuple of str
        What makes a group of columns (``("metric",)`` for one model and test set, Table 2;
        ``("metric", "column")`` for Table 3, one group per model).
    max_width_px : float
        The widest one table may be, estimated from its texts
        (:func:`ecgrepro.book.display.column_parts`); groups beyond it go to further tables, as
        few and as even as fit, each repeating the classes.

    Returns
    -------
    PaperTableView
        Displays as the tables, the caption above the first: 2 decimals, ``-`` where missing,
        ours in bold where the paper's value lies outside our 95% interval (the row's
        ``paper_outside_ci``, else computed from ``paper_value``, ``ci_low``, ``ci_high``).

    Raises
    ------
    KeyError
        If a required column is missing.
    ValueError
        If ``long`` has no rows.
    """
    cols = list(columns)
    missing = [c for c in ["class", "value", "ci_low", "ci_high", *cols] if c not in long]
    if missing:
        raise KeyError(f"paper_table_view: columns {missing} missing")
    if long.empty:
        raise ValueError("paper_table_view: no rows")
    df = long.copy()
    if "paper_value" not in df:
        df["paper_value"] = np.nan
    if "paper_outside_ci" not in df:
        df["paper_outside_ci"] = df.paper_value.notna() & (
            (df.paper_value < df.ci_low) | (df.paper_value > df.ci_high)
        )
    rows = _rows(df)
    blocks, flags = [], []
    for g in _groups(df, cols):
        mask = np.logical_and.reduce([df[c] == v for c, v in zip(cols, g, strict=True)])
        sub = df[mask].drop_duplicates("class").set_index("class").reindex(rows)
        block = {}
        if sub.paper_value.notna().any():
            block["paper"] = sub.paper_value.astype(float)
        block["ours"] = sub.value.astype(float)
        block["95% CI"] = pd.Series(
            [interval_text(lo, hi) for lo, hi in zip(sub.ci_low, sub.ci_high, strict=True)],
            index=sub.index,
        )
        frame = pd.DataFrame(block)
        frame.columns = pd.MultiIndex.from_tuples([(*g, p) for p in frame.columns])
        flag = pd.DataFrame(False, index=frame.index, columns=frame.columns)
        flag[(*g, "ours")] = sub.paper_outside_ci.fillna(False).astype(bool).to_numpy()
        blocks.append(frame)
        flags.append(flag)
    table = pd.concat(blocks, axis=1).rename_axis("class")
    bold = pd.concat(flags, axis=1).set_axis(table.index)
    parts = column_parts(table, max_width_px)
    any_missing = (table.map(_shown) == MISSING).any().any()
    caption = _caption(df, bool(df.paper_value.notna().any()), bool(any_missing))
    return PaperTableView(
        tuple(table.iloc[:, p] for p in parts), tuple(bold.iloc[:, p] for p in parts), caption
    )


def _shown(v) -> str:
    """A cell's text as shown (for the width estimate and the caption)."""
    return v if isinstance(v, str) else format_number(v)
