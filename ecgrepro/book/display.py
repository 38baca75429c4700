"""How a page shows a table: numbers to 2 decimals, "-" for a missing value, no pandas index,
words for the raw column names, never wider than the page (#25, "What to build" item 4).

:func:`install` registers :func:`table_html` in the page's IPython kernel, so that every
:class:`pandas.DataFrame` a page shows as a cell's last expression (or through ``display``)
renders the same way; :func:`table_html` can also be called directly. Display only: the CSVs
under ``_build/tables`` keep full precision.

The rules, in one place:

- **Numbers.** A float shows with 2 decimals (0.767677 -> ``0.77``), except a nonzero value
  whose magnitude is below 0.005, which would show as ``0.00``: it keeps 2 significant digits
  (``0.0031``, ``2.1e-05``), so a p-value or a small share is never shown as 0. This is the
  rule per value, not per column, so that a column mixing 0.41 and 0.0012 shows both. A float
  column whose values are all whole numbers, one of them above 1 in magnitude (counts made float
  by a missing value), shows them as integers; an integer shows as an integer; a string is
  left as it is.
- **Missing.** NaN, None, ``pd.NA`` and ``NaT`` show as ``-`` (:data:`MISSING`).
- **Index.** An unnamed index of integers (a default ``RangeIndex`` 0..n-1, or what is left of
  one after filtering or sorting) carries no meaning for a reader and is not shown. Any other
  index (class names, a named index, a MultiIndex) is shown as the first column(s), under its
  name; repeated outer levels of a MultiIndex are shown once.
- **Labels.** Column labels, index names and index values read as words
  (:mod:`ecgrepro.book.labels`): :data:`LABELS` maps the raw names the pages show; a method
  name of :data:`ecgrepro.explain.methods.METHODS` reads as its label once that table is
  loaded; any other lower-case ``snake_case`` name has its underscores replaced by spaces.
  Other labels (``AF``, ``STD_``, ``Fig. 2``) stay as they are. Cell values are never
  relabelled.
- **Width.** A frame estimated wider than :data:`MAX_WIDTH_PX` is shown as up to
  :data:`MAX_PARTS` tables, split between its columns, each repeating the row labels
  (:func:`column_parts`). Each table (class :data:`TABLE_CLASS`) sits in a ``<div>`` of class
  :data:`WRAP_CLASS`, at most as wide as the content column, which scrolls sideways when a
  table cannot be narrowed further; header labels wrap at spaces, text cells longer than
  :data:`LONG_TEXT` characters anywhere, numbers never.
- **Length.** A frame longer than pandas' ``display.max_rows`` shows its first and last
  ``display.min_rows // 2`` rows, and its caption says how many there are.
"""

from __future__ import annotations

import html
import itertools
import math
import numbers
import re

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from ecgrepro.book.labels import LABELS as LABELS  # re-exported: the pages' words
from ecgrepro.book.labels import label

#: What a missing value shows as.
MISSING = "-"

#: The CSS class of every table :func:`table_html` writes, and of its wrapping ``<div>``.
TABLE_CLASS = "ecgrepro-table"
WRAP_CLASS = "ecgrepro-table-wrap"

#: A text cell longer than this (characters) may break anywhere (a long token such as
#: ``SNR:124;STE:66;...`` would otherwise set the table's width); shorter ones break at spaces.
LONG_TEXT = 30

#: The widest a table may be (px), and what one character and one cell's padding take at the
#: tables' font (0.875rem of the theme's 16 px: 14 px; DejaVu Sans digits are 0.64 em wide).
#: The estimate errs wide: Table 2's three metric groups estimate 681 px and render 641 px in
#: the built book (sphinx-book-theme, headless Chromium, 1280 px window, 740 px article).
MAX_WIDTH_PX = 700
CHAR_PX = 9.0
CELL_PAD_PX = 15.0
#: A frame that would need more tables than this is not split: it is left to its page
#: (transpose it, or show fewer columns), and scrolls in its box meanwhile.
MAX_PARTS = 4
#: A frame of at most this many rows that fits neither whole nor split is shown transposed.
TRANSPOSE_ROWS = 6
#: The least width (px) a split table must leave beside its repeated row labels.
MIN_RUN_PX = 200.0

#: The tables' style, written once per output (the theme's colours where it defines them).
CSS = (
    f".{WRAP_CLASS}{{max-width:100%;overflow-x:auto;margin:0 0 1rem 0}}"
    f"table.{TABLE_CLASS}{{border-collapse:collapse;font-size:.875rem;line-height:1.35;"
    "width:auto;max-width:100%;margin:0}"
    f"table.{TABLE_CLASS} caption{{caption-side:top;text-align:left;padding:0 0 .35rem 0;"
    "color:var(--pst-color-text-muted,#555)}"
    f"table.{TABLE_CLASS} th,table.{TABLE_CLASS} td{{padding:.2rem .45rem;border:0;"
    "vertical-align:top}"
    f"table.{TABLE_CLASS} thead th{{text-align:center;vertical-align:bottom;font-weight:600;"
    "border-bottom:1px solid var(--pst-color-border,#ccc)}"
    f"table.{TABLE_CLASS} thead th.level{{text-align:right;font-weight:400;font-style:italic}}"
    f"table.{TABLE_CLASS} tbody th{{text-align:left;font-weight:600;white-space:nowrap}}"
    f"table.{TABLE_CLASS} td{{text-align:left}}"
    f"table.{TABLE_CLASS} td.long{{overflow-wrap:anywhere;min-width:12em}}"
    f"table.{TABLE_CLASS} td.num{{text-align:right;white-space:nowrap;"
    "font-variant-numeric:tabular-nums}"
    f"table.{TABLE_CLASS} .group{{border-left:1px solid var(--pst-color-border,#ccc)}}"
    f"table.{TABLE_CLASS} tbody tr:nth-child(even){{background:rgba(127,127,127,.07)}}"
    f"table.{TABLE_CLASS} tbody tr:last-child{{border-bottom:1px solid "
    "var(--pst-color-border,#ccc)}"
)

#: Text that reads as a number or a range of numbers (aligned like one): "0.41", "0.2-0.9".
_NUMERIC_TEXT = re.compile(
    r"[-+\u2212]?[\d.,]*\d[\d.,]*(?:e[-+]?\d+)?%?"
    r"(?:\s*[\u2013,]\s*[-+\u2212]?[\d.,]*\d[\d.,]*(?:e[-+]?\d+)?%?)?"
)


def is_missing(value) -> bool:
    """True for NaN, None, ``pd.NA`` and ``NaT`` (a scalar); False for anything else."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def format_number(value, integral: bool = False) -> str:
    """One value as a table shows it (the module's number rules).

    Parameters
    ----------
    value : object
        A number, a missing value, or anything else (shown as ``str(value)``).
    integral : bool
        Show a float as an integer (its column holds whole numbers only).

    Returns
    -------
    str
        ``"-"`` when missing; ``"0.77"`` for 0.767677; ``"0.0031"`` for 0.0031; ``"12"`` for
        an integer.
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return str(value)
    v = float(value)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if integral:
        return str(int(round(v)))
    if v == 0:
        return "0.00"
    return f"{v:.2g}" if abs(v) < 0.005 else f"{v:.2f}"


def interval_text(low, high) -> str:
    """An interval as ``"0.61\u20131.00"`` (en dash), ``"-"`` when both ends are missing.

    Both ends get 2 decimals, unless both are below 0.005 in magnitude (and not both 0): then
    both get :func:`format_number`'s 2 significant digits, so that an interval of small shares
    does not read ``0.00\u20130.00``.

    Parameters
    ----------
    low, high : float
        The interval's ends; a missing end shows as ``"-"``.

    Returns
    -------
    str
    """
    if is_missing(low) and is_missing(high):
        return MISSING
    ends = [v for v in (low, high) if not is_missing(v)]
    tiny = all(abs(float(v)) < 0.005 for v in ends) and any(float(v) != 0 for v in ends)
    lo, hi = (format_number(v) if tiny or is_missing(v) else _decimals(v) for v in (low, high))
    return f"{lo}\u2013{hi}"


def _decimals(v) -> str:
    """2 decimals, never ``-0.00``."""
    text = f"{float(v):.2f}"
    return "0.00" if text == "-0.00" else text


def _column_texts(col: pd.Series) -> tuple[list[str], bool]:
    """A column's cell texts, and whether it aligns as numbers."""
    values = col.tolist()
    if pd.api.types.is_bool_dtype(col.dtype):
        return [MISSING if is_missing(v) else str(v) for v in values], False
    if pd.api.types.is_numeric_dtype(col.dtype):
        integral = False
        if pd.api.types.is_float_dtype(col.dtype):
            x = col.to_numpy(dtype=float, na_value=np.nan)
            finite = x[np.isfinite(x)]
            integral = (
                bool(len(finite))
                and bool(np.all(finite == np.round(finite)))
                and bool(np.abs(finite).max() > 1)
            )
        return [format_number(v, integral) for v in values], True
    texts = [format_number(v) for v in values]
    shown = [(v, t) for v, t in zip(values, texts, strict=True) if t not in (MISSING, "")]
    numeric = bool(shown) and all(
        (isinstance(v, numbers.Number) and not isinstance(v, (bool, np.bool_)))
        or _NUMERIC_TEXT.fullmatch(t) is not None
        for v, t in shown
    )
    return texts, numeric


def _shows_index(index: pd.Index) -> bool:
    """False for an unnamed index of integers (a RangeIndex or what is left of one)."""
    if isinstance(index, pd.MultiIndex) or index.name is not None:
        return True
    return not (pd.api.types.is_integer_dtype(index.dtype) or len(index) == 0)


def _truncate(df: pd.DataFrame, bold: pd.DataFrame | None):
    """First and last rows of a frame longer than ``display.max_rows``, and the note."""
    max_rows = pd.get_option("display.max_rows")
    if max_rows is None or len(df) <= max_rows:
        return df, bold, ""
    half = max(1, (pd.get_option("display.min_rows") or 10) // 2)
    keep = np.r_[0:half, len(df) - half : len(df)]
    note = f"{len(df):,} rows; the first {half} and the last {half} are shown."
    return df.iloc[keep], None if bold is None else bold.iloc[keep], note


def _header_rows(columns: pd.Index, index_names: list, show_index: bool) -> list[str]:
    """The ``<tr>`` of the header, one per column level; group starts get class ``group``."""
    n_levels = columns.nlevels
    keys = [c if isinstance(c, tuple) else (c,) for c in columns]
    col_names = list(columns.names)
    rows = []
    for lev in range(n_levels):
        cells = []
        if show_index:
            n_idx = len(index_names)
            if lev == n_levels - 1 and any(n is not None for n in index_names):
                cells += [f"<th>{html.escape(label(n))}</th>" for n in index_names]
            else:
                span = f' colspan="{n_idx}"' if n_idx > 1 else ""
                cells.append(f'<th class="level"{span}>{html.escape(label(col_names[lev]))}</th>')
        j = 0
        while j < len(keys):
            k = j + 1
            if lev < n_levels - 1:
                while k < len(keys) and keys[k][: lev + 1] == keys[j][: lev + 1]:
                    k += 1
            span = f' colspan="{k - j}"' if k - j > 1 else ""
            group = ' class="group"' if _group_start(keys, j) else ""
            cells.append(f"<th{span}{group}>{html.escape(label(keys[j][lev]))}</th>")
            j = k
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return rows


def _group_start(keys: list[tuple], j: int) -> bool:
    """Whether column ``j`` starts a new group of a MultiIndex (not the first column)."""
    return len(keys[j]) > 1 and j > 0 and keys[j][:-1] != keys[j - 1][:-1]


def _row_heads(index: pd.Index) -> list[list[str]]:
    """The row labels' texts, outer levels of a MultiIndex shown once per run."""
    tuples = [t if isinstance(t, tuple) else (t,) for t in index]
    out = []
    for i, t in enumerate(tuples):
        texts = []
        for lev, v in enumerate(t):
            same = i > 0 and lev < len(t) - 1 and tuples[i - 1][: lev + 1] == t[: lev + 1]
            texts.append("" if same else label(v))
        out.append(texts)
    return out


def text_width_px(texts) -> float:
    """Estimated width (px) of a column holding ``texts``: the longest, plus the cell padding."""
    return max((len(t) for t in texts), default=0) * CHAR_PX + CELL_PAD_PX


def split_units(widths: list[float], budget: float) -> list[list[int]]:
    """Contiguous runs of units: as few as keep each within ``budget``, as even as can be.

    Parameters
    ----------
    widths : list of float
        Each unit's width (px): a column, or a group of columns kept together.
    budget : float
        The width one run may take (px).

    Returns
    -------
    list of list of int
        The units' positions, run by run; a unit wider than ``budget`` gets a run of its own.
    """
    n = len(widths)
    for k in range(1, n + 1):
        runs = [[int(i) for i in r] for r in np.array_split(np.arange(n), k)]
        if k == n or all(sum(widths[i] for i in run) <= budget for run in runs):
            return runs
    return []


def _column_width(header: str, texts: list[str], numeric: bool) -> float:
    """A column's comfortable width (px): numbers whole; the header wraps at spaces; a text cell
    wraps at spaces beyond 16 characters, and anywhere beyond :data:`LONG_TEXT` (at 12 em)."""
    chars = [len(w) for w in header.split(" ")]
    for t in texts:
        if numeric:
            chars.append(len(t))
        elif len(t) > LONG_TEXT:
            chars.append(18)
        else:
            chars.append(min(len(t), max([16, *map(len, t.split())])))
    return max(chars, default=0) * CHAR_PX + CELL_PAD_PX


def _layout(df: pd.DataFrame, texts, numeric, max_width_px: float) -> list[list[int]]:
    """The columns of each table ``df`` is shown as (see :func:`column_parts`)."""
    n = df.shape[1]
    keys = [c if isinstance(c, tuple) else (c,) for c in df.columns]
    widths = [_column_width(label(keys[j][-1]), texts[j], numeric[j]) for j in range(n)]
    if _shows_index(df.index):
        ids = []
        head = sum(
            text_width_px([label(name), *map(label, df.index.get_level_values(lev))])
            for lev, name in enumerate(df.index.names)
        )
    else:
        ids = list(itertools.takewhile(lambda j: not numeric[j], range(n)))
        head = sum(widths[j] for j in ids)
    rest = [j for j in range(n) if j not in ids]
    if (
        head + sum(widths[j] for j in rest) <= max_width_px
        or not (ids or _shows_index(df.index))
        or head > max_width_px - MIN_RUN_PX
        or not rest
    ):
        return [list(range(n))]
    units: list[list[int]] = []
    for j in rest:
        if units and len(keys[j]) > 1 and keys[j][:-1] == keys[units[-1][-1]][:-1]:
            units[-1].append(j)
        else:
            units.append([j])
    runs = split_units([sum(widths[j] for j in u) for u in units], max_width_px - head)
    if len(runs) > MAX_PARTS:
        return [list(range(n))]
    return [ids + [j for u in run for j in units[u]] for run in runs]


def column_parts(df: pd.DataFrame, max_width_px: float = MAX_WIDTH_PX) -> list[list[int]]:
    """How a frame too wide for the page is split: the column positions of each table.

    The width is estimated from the shown texts (:data:`CHAR_PX`, :data:`CELL_PAD_PX`; headers
    wrap at spaces, text cells longer than :data:`LONG_TEXT` anywhere). A frame wider than
    ``max_width_px`` is split between its columns (a MultiIndex's innermost groups stay
    together) into as few tables as fit, as even as can be, each repeating the row labels: the
    index where it is shown, else the leading text columns. It is not split (it scrolls in its
    box) where the row labels would take more than half the width or there are none, or where
    it would take more than :data:`MAX_PARTS` tables.

    Parameters
    ----------
    df : pandas.DataFrame
    max_width_px : float
        The widest one table may be (px).

    Returns
    -------
    list of list of int
        Column positions (``df.iloc[:, part]``), one list per table; one list of all the
        columns when the frame fits.
    """
    texts, numeric = _texts(df)
    return _layout(df, texts, numeric, max_width_px)


def _texts(df: pd.DataFrame) -> tuple[tuple[list[str], ...], tuple[bool, ...]]:
    if not df.shape[1]:
        return (), ()
    texts, numeric = zip(*(_column_texts(df.iloc[:, j]) for j in range(df.shape[1])), strict=True)
    return texts, numeric


def _too_wide(df: pd.DataFrame, texts, numeric, parts, max_width_px: float) -> bool:
    """One unsplittable table wider than the page, with few enough rows to turn on its side."""
    if len(parts) != 1 or not 0 < len(df) <= TRANSPOSE_ROWS or df.shape[1] <= len(df):
        return False
    keys = [c if isinstance(c, tuple) else (c,) for c in df.columns]
    width = sum(_column_width(label(k[-1]), texts[j], numeric[j]) for j, k in enumerate(keys))
    return width > max_width_px


def _transposed(df: pd.DataFrame, numeric) -> pd.DataFrame:
    """``df`` on its side: its row labels (the index, else its leading text columns) on top."""
    ids = [df.columns[j] for j in range(df.shape[1]) if not numeric[j]][:3]
    if not _shows_index(df.index) and ids and list(df.columns[: len(ids)]) == ids:
        df = df.set_index(ids)
    out = df.T.astype(object)
    out.columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in out.columns]
    out.index = [label(str(i)) for i in out.index]
    return out


def table_html(
    df: pd.DataFrame,
    caption: str | None = None,
    *,
    bold: pd.DataFrame | np.ndarray | None = None,
    max_width_px: float = MAX_WIDTH_PX,
) -> str:
    """A frame as the book shows it: the module's rules, in a page-wide box.

    Parameters
    ----------
    df : pandas.DataFrame
        Any frame; not modified.
    caption : str, optional
        Plain text above the (first) table, escaped.
    bold : pandas.DataFrame or numpy.ndarray of bool, optional
        Same shape as ``df``: the cells to show in bold (e.g. ours where the paper's value lies
        outside our interval, :func:`ecgrepro.tables.paper_table_view`).
    max_width_px : float
        A frame estimated wider is shown as several tables (:func:`column_parts`).

    Returns
    -------
    str
        One ``<div class="ecgrepro-table-wrap"><style>..</style><table class="ecgrepro-table">``
        ... ``</table></div>`` per table.

    Raises
    ------
    ValueError
        If ``bold`` is given with a shape other than ``df``'s.
    """
    if bold is not None:
        bold = _bold_frame(df, bold)
    df, bold, note = _truncate(df, bold)
    texts, numeric = _texts(df)
    parts = _layout(df, texts, numeric, max_width_px)
    if bold is None and _too_wide(df, texts, numeric, parts, max_width_px):
        df = _transposed(df, numeric)  # a short, wide frame: its rows become columns
        texts, numeric = _texts(df)
        parts = _layout(df, texts, numeric, max_width_px)
    title = " ".join(t for t in (caption or "", note) if t)
    return "".join(
        _one_table(df, cols, texts, numeric, bold, title if n == 0 else "")
        for n, cols in enumerate(parts)
    )


def _one_table(df, cols: list[int], texts, numeric, bold, title: str) -> str:
    """One ``<table>`` of the columns ``cols`` of ``df``, in its box."""
    show_index = _shows_index(df.index)
    keys = [c if isinstance(c, tuple) else (c,) for c in df.columns[cols]]
    heads = _row_heads(df.index) if show_index else [[] for _ in range(len(df))]
    body = []
    for i in range(len(df)):
        cells = [f'<th scope="row">{html.escape(t)}</th>' for t in heads[i]]
        for pos, j in enumerate(cols):
            cls = ["num"] if numeric[j] else ["long"] if len(texts[j][i]) > LONG_TEXT else []
            cls += ["group"] if _group_start(keys, pos) else []
            attr = f' class="{" ".join(cls)}"' if cls else ""
            text = html.escape(texts[j][i])
            if bold is not None and bold.iat[i, j]:
                text = f"<strong>{text}</strong>"
            cells.append(f"<td{attr}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = _header_rows(df.columns[cols], list(df.index.names), show_index)
    cap = f"<caption>{html.escape(title)}</caption>" if title else ""
    return (
        f'<div class="{WRAP_CLASS}"><style>{CSS}</style>'
        f'<table class="{TABLE_CLASS}">{cap}<thead>{"".join(head)}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _bold_frame(df: pd.DataFrame, bold) -> pd.DataFrame:
    if np.shape(bold) != df.shape:
        raise ValueError(f"bold has shape {np.shape(bold)}, the frame {df.shape}")
    return pd.DataFrame(np.asarray(bold, dtype=bool), index=df.index, columns=df.columns)


def formatted_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The texts :func:`table_html` shows, as a frame of strings under the readable labels.

    Parameters
    ----------
    df : pandas.DataFrame
        Any frame; not modified, not truncated.

    Returns
    -------
    frame : pandas.DataFrame
        Same shape, every cell a string; columns (and a shown index) relabelled by
        :func:`label`; a hidden index replaced by a default one.
    show_index : bool
        Whether the index is shown (the module's index rule).
    """
    show = _shows_index(df.index)
    data = {j: _column_texts(df.iloc[:, j])[0] for j in range(df.shape[1])}
    out = pd.DataFrame(data, index=pd.RangeIndex(len(df)), dtype=object)
    keys = [tuple(label(x) for x in (c if isinstance(c, tuple) else (c,))) for c in df.columns]
    out.columns = (
        pd.MultiIndex.from_tuples(keys, names=[label(n) or None for n in df.columns.names])
        if df.columns.nlevels > 1
        else pd.Index([k[0] for k in keys], dtype=object)
    )
    if show:
        tuples = [t if isinstance(t, tuple) else (t,) for t in df.index]
        names = [label(n) or None for n in df.index.names]
        out.index = (
            pd.MultiIndex.from_tuples([tuple(label(v) for v in t) for t in tuples], names=names)
            if df.index.nlevels > 1
            else pd.Index([label(t[0]) for t in tuples], name=names[0], dtype=object)
        )
    return out, show


def table_text(df: pd.DataFrame, caption: str | None = None) -> str:
    """The plain-text form of :func:`table_html` (the PDF build shows ``text/plain``).

    Parameters
    ----------
    df : pandas.DataFrame
    caption : str, optional
        A line above the table.

    Returns
    -------
    str
        The texts and labels of :func:`table_html`, split between the same columns
        (:func:`column_parts`), the parts separated by a blank line.
    """
    df, _, note = _truncate(df, None)
    frame, show = formatted_frame(df)
    text = "\n\n".join(frame.iloc[:, p].to_string(index=show) for p in column_parts(df))
    return "\n".join(t for t in (caption or "", text, note) if t)


def styler_html(styler: Styler) -> str:
    """A :class:`~pandas.io.formats.style.Styler`'s own HTML, given the book's class and box.

    The styler's formats and styles are its author's and are kept; only the table's class
    (:data:`TABLE_CLASS`) and the page-wide scrolling box (:data:`WRAP_CLASS`) are added.

    Parameters
    ----------
    styler : pandas.io.formats.style.Styler

    Returns
    -------
    str
    """
    inner = styler.to_html()
    tag = re.search(r"<table\b[^>]*>", inner)
    if tag is not None:
        t = tag.group(0)
        if 'class="' in t:
            new = t.replace('class="', f'class="{TABLE_CLASS} ', 1)
        else:
            new = t[:-1] + f' class="{TABLE_CLASS}">'
        inner = inner[: tag.start()] + new + inner[tag.end() :]
    return f'<div class="{WRAP_CLASS}"><style>{CSS}</style>{inner}</div>'


def _pretty(df: pd.DataFrame, p, cycle: bool) -> None:
    """IPython's plain-text printer protocol (``obj, p, cycle``)."""
    p.text(table_text(df))


def install(shell=None) -> bool:
    """Show every DataFrame (and Styler) of the running IPython kernel by the book's rules.

    Registers :func:`table_html` as the ``text/html`` formatter of :class:`pandas.DataFrame`,
    :func:`styler_html` as that of :class:`~pandas.io.formats.style.Styler`, and
    :func:`table_text` as the DataFrame's ``text/plain`` (what the PDF shows). Calling it again
    registers the same functions again (idempotent). Issue #25, "What to build" item 4.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell, optional
        The shell to register with; by default ``IPython.get_ipython()``.

    Returns
    -------
    bool
        True if registered; False (and nothing done) outside IPython.
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    formatter = getattr(shell, "display_formatter", None)
    if formatter is None:
        return False
    formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)
    formatter.formatters["text/html"].for_type(Styler, styler_html)
    formatter.formatters["text/plain"].for_type(pd.DataFrame, _pretty)
    return True
