"""How the pages show tables (#25 item 4): ecgrepro.book.display and ecgrepro.tables."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from IPython.core.formatters import DisplayFormatter

from ecgrepro.book import display as D
from ecgrepro.config import CLASSES
from ecgrepro.tables import PARTS, paper_table_view


def _body(html: str) -> str:
    return re.search(r"<tbody>(.*)</tbody>", html, re.S).group(1)


def _cells(html: str) -> list[str]:
    """Every shown cell's text (tags stripped), header and body."""
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", html)]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.767677, "0.77"),
        (12.3, "12.30"),
        (0.0031, "0.0031"),
        (2.1e-5, "2.1e-05"),
        (-0.004, "-0.004"),
        (0.0, "0.00"),
        (-0.0, "0.00"),
        (3, "3"),
        (np.int64(1497), "1497"),
        (np.float32(0.5), "0.50"),
        (float("nan"), "-"),
        (None, "-"),
        (pd.NA, "-"),
        (np.nan, "-"),
        ("a_b", "a_b"),
    ],
)
def test_format_number(value, shown):
    assert D.format_number(value) == shown


def test_interval_text():
    assert D.interval_text(0.6102, 1.0) == "0.61\u20131.00"
    assert D.interval_text(9.5e-5, 0.03) == "0.00\u20130.03"  # 2 decimals when one end is not tiny
    assert D.interval_text(0.001, 0.004) == "0.001\u20130.004"  # both tiny: 2 significant digits
    assert D.interval_text(np.nan, np.nan) == "-"


def test_floats_two_decimals_missing_as_dash_integers_kept():
    df = pd.DataFrame(
        {
            "threshold": [0.767677, np.nan, 0.5],
            "records": [12.0, np.nan, 3.0],  # counts made float by a missing value
            "share": [1.0, 0.0, np.nan],  # whole but never above 1: stays a share
            "n": [1, 2, 3],
            "note": ["x_y", None, "NaN-free"],
        }
    )
    html = D.table_html(df)
    cells = _cells(_body(html))
    assert cells == [
        "0.77",
        "12",
        "1.00",
        "1",
        "x_y",
        "-",
        "-",
        "0.00",
        "2",
        "-",
        "0.50",
        "3",
        "-",
        "3",
        "NaN-free",
    ]
    assert "0.767677" not in html
    assert not re.search(r">\s*(nan|NaN|None|&lt;NA&gt;)\s*<", html)


def test_range_index_hidden_named_index_kept():
    df = pd.DataFrame({"class": ["SNR", "AF", "STD_"], "f1": [0.5, 0.25, 0.125]})
    plain = D.table_html(df)
    assert '<th scope="row">' not in plain
    assert _cells(plain)[:2] == ["class", "F1"]
    # what is left of a RangeIndex after filtering or sorting is hidden too
    filtered = D.table_html(df.iloc[[2, 0]])
    assert 'scope="row"' not in filtered and ">2<" not in filtered
    named = D.table_html(df.set_index("class"))
    assert re.findall(r'<th scope="row">(.*?)</th>', named) == ["SNR", "AF", "STD_"]
    assert _cells(named)[:2] == ["class", "F1"]
    named_int = D.table_html(pd.DataFrame({"BIC": [1.5, 2.5]}, index=pd.Index([4, 6], name="K")))
    assert re.findall(r'<th scope="row">(.*?)</th>', named_int) == ["4", "6"]


def test_multiindex_rows_shown_once_and_columns_grouped():
    idx = pd.MultiIndex.from_tuples(
        [("cpsc", "AF"), ("cpsc", "SNR"), ("ptbxl_all", "AF")], names=["test_set", "class"]
    )
    cols = pd.MultiIndex.from_product(
        [["f1", "auc"], ["published", "rhythm-aware"]], names=["metric", "label_mapping"]
    )
    frame = pd.DataFrame(np.full((3, 4), 0.5), index=idx, columns=cols)
    html = D.table_html(frame, max_width_px=10_000)
    rows = re.findall(r'<th scope="row">(.*?)</th>', html)
    assert rows == ["CPSC 2018", "AF", "", "SNR", "PTB-XL, all records present", "AF"]
    assert '<th colspan="2">F1</th>' in html and '<th colspan="2" class="group">AUC</th>' in html
    assert "<th>test set</th>" in html


def test_wide_frames_split_between_columns_repeating_the_row_labels():
    wide = pd.DataFrame(
        np.full((10, 12), 0.123456), columns=[f"metric number {i}" for i in range(12)]
    )
    named = wide.set_index(pd.Index([*CLASSES, "AVG"], name="class"))
    parts = D.column_parts(named)
    assert len(parts) == 2 and sorted(sum(parts, [])) == list(range(12))
    html = D.table_html(named, caption="cap")
    assert html.count("<table") == 2 and html.count("<caption>cap</caption>") == 1
    assert html.count('<th scope="row">AVG</th>') == 2
    assert D.column_parts(named, max_width_px=10_000) == [list(range(12))]
    # index hidden: the leading text columns are repeated in each table
    ids = wide.assign(model="ours2", dataset="cpsc")[["model", "dataset", *wide.columns]]
    parts = D.column_parts(ids)
    assert len(parts) > 1 and all(p[:2] == [0, 1] for p in parts)
    assert D.table_html(ids).count(">ours2<") == 10 * len(parts)
    # more than MAX_PARTS tables would be needed: left whole, to its page
    many = pd.DataFrame(0.5, index=named.index, columns=[f"metric number {i}" for i in range(40)])
    assert D.column_parts(many) == [list(range(40))]
    # no row labels to repeat: one table, which scrolls in its box
    assert D.column_parts(wide) == [list(range(12))]
    # MultiIndex groups stay together
    cols = pd.MultiIndex.from_product([["m1", "m2", "m3", "m4"], ["paper", "ours", "95% CI"]])
    grouped = pd.DataFrame("0.00\u20131.00", index=named.index, columns=cols)
    assert [len(p) for p in D.column_parts(grouped)] == [6, 6]


def test_labels_apply_to_names_not_to_cell_values():
    df = pd.DataFrame(
        {
            "test_set": ["ptbxl_all"],
            "count_pct": [66.7],
            "ci_low": [0.1],
            "ci_high": [0.9],
            "label_mapping": ["published"],
            "STD_": [1],
            "max_efficiency_error": [0.5],
        }
    )
    head = _cells(re.search(r"<thead>(.*)</thead>", D.table_html(df)).group(1))
    assert head == [
        "test set",
        "share (%)",
        "95% CI low",
        "95% CI high",
        "label mapping",
        "STD_",
        "max efficiency error",
    ]
    assert "ptbxl_all" in _cells(_body(D.table_html(df)))  # a value, left alone
    assert D.label("ptbxl_all") == D.LABELS["ptbxl_all"] != "ptbxl all"
    assert D.label(None) == "" and D.label(0.5) == "0.5" and D.label("Fig. 2") == "Fig. 2"


def test_wrapper_class_caption_and_escaping():
    html = D.table_html(pd.DataFrame({"a<b": ["<i>"]}), caption="x & y")
    assert html.startswith(f'<div class="{D.WRAP_CLASS}">') and html.endswith("</div>")
    assert f'<table class="{D.TABLE_CLASS}">' in html
    assert "<caption>x &amp; y</caption>" in html and "&lt;i&gt;" in html and "<i>" not in html


def test_long_frames_show_first_and_last_rows():
    df = pd.DataFrame({"v": np.arange(100) / 3})
    with pd.option_context("display.max_rows", 60, "display.min_rows", 10):
        html = D.table_html(df)
    assert len(re.findall("<tr>", _body(html))) == 10
    assert "100 rows; the first 5 and the last 5 are shown." in html
    assert _cells(_body(html))[-1] == f"{99 / 3:.2f}"


def test_bold_mask_and_its_shape():
    df = pd.DataFrame({"a": [0.1, 0.2]})
    html = D.table_html(df, bold=np.array([[False], [True]]))
    assert _cells(_body(html)) == ["0.10", "0.20"] and "<strong>0.20</strong>" in html
    with pytest.raises(ValueError, match="shape"):
        D.table_html(df, bold=np.array([True]))


def test_table_text_for_the_pdf():
    text = D.table_text(pd.DataFrame({"count_pct": [0.767677, np.nan]}))
    assert "share (%)" in text and "0.77" in text and "-" in text
    assert "NaN" not in text and "0.767677" not in text and not re.search(r"^\s*0\s", text, re.M)


def test_install_registers_idempotently_and_is_a_no_op_outside_ipython(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # no kernel (another test's shell)
    assert D.install() is False
    shell = type("Shell", (), {"display_formatter": DisplayFormatter()})()
    df = pd.DataFrame({"count_pct": [0.767677]})
    before = shell.display_formatter.format(df)[0]["text/html"]
    assert D.TABLE_CLASS not in before
    assert D.install(shell) and D.install(shell)
    data = shell.display_formatter.format(df)[0]
    assert data["text/html"] == D.table_html(df) and "share (%)" in data["text/plain"]
    styled = shell.display_formatter.format(df.style)[0]["text/html"]
    assert styled.startswith(f'<div class="{D.WRAP_CLASS}">') and D.TABLE_CLASS in styled


def _long(groups: dict[str, float | None]) -> pd.DataFrame:
    """A Table 3-like long frame: one row per class and group (column)."""
    rows = []
    for g, paper in groups.items():
        for i, c in enumerate([*CLASSES, "AVG"]):
            rows.append(
                {
                    "metric": "precision",
                    "column": g,
                    "class": c,
                    "value": 0.411 + i / 100,
                    "seed_min": 0.333,
                    "seed_max": 0.5,
                    "n_seeds": 3,
                    "ci_low": 0.2,
                    "ci_high": 0.6,
                    "paper_value": paper,
                }
            )
    return pd.DataFrame(rows)


def test_paper_view_columns_bold_and_no_seed_range():
    long = _long({"original (CPSC test)": 0.786, "original (combined)": None, "ours1": 0.7})
    long.loc[(long.column == "ours1") & (long["class"] == "AF"), "paper_value"] = 0.3
    long["paper_outside_ci"] = long.paper_value.notna() & (
        (long.paper_value < long.ci_low) | (long.paper_value > long.ci_high)
    )
    view = paper_table_view(long, columns=("metric", "column"), max_width_px=10_000)
    (t,), (bold,) = view.tables, view.bold
    assert list(t.index) == [*CLASSES, "AVG"] and t.index.name == "class"
    assert [c[1:] for c in t.columns] == [
        ("original (CPSC test)", "paper"),
        ("original (CPSC test)", "ours"),
        ("original (CPSC test)", "95% CI"),
        ("original (combined)", "ours"),
        ("original (combined)", "95% CI"),
        ("ours1", "paper"),
        ("ours1", "ours"),
        ("ours1", "95% CI"),
    ]
    assert t.loc["SNR", ("precision", "ours1", "95% CI")] == "0.20\u20130.60"
    # bold on ours where the paper lies outside our interval, nowhere else
    assert bold.loc["SNR", ("precision", "original (CPSC test)", "ours")]
    assert not bold.loc["AF", ("precision", "ours1", "ours")]
    assert bold.loc["SNR", ("precision", "ours1", "ours")]
    assert not bold.xs("paper", axis=1, level=-1).any().any()
    html = view._repr_html_()
    assert "<strong>0.41</strong>" in html and "seeds 0.33" not in html and "0.333" not in html
    assert "Bold: the paper's value lies outside our interval" in view.caption
    assert "3 training seeds" in view.caption and "-: no value" not in view.caption
    assert "Ours_1" in html and ">nan<" not in html.lower()
    assert "0.41*" in repr(view) and "*: the paper's value" in repr(view)  # the PDF's bold


def test_paper_view_computes_the_flag_and_splits_wide_tables():
    long = _long({f"m{i}": 0.9 for i in range(5)}).drop(columns=["n_seeds"])
    long.loc[0, "value"] = np.nan
    view = paper_table_view(long, columns=("metric", "column"))  # 5 groups > 700 px
    assert [len(t.columns) // len(PARTS) for t in view.tables] == [3, 2]
    # no paper_outside_ci column: computed, 0.9 lies above every interval (0.2-0.6)
    assert all(b.xs("ours", axis=1, level=-1).all().all() for b in view.bold)
    assert np.isnan(view.tables[0].loc["SNR", ("precision", "m0", "ours")])  # shown as "-"
    assert '<td class="num"><strong>-</strong></td>' in view._repr_html_()
    assert "-: no value" in view.caption and "training seeds" not in view.caption
    assert len(paper_table_view(long, ("metric", "column"), max_width_px=10_000).tables) == 1
    assert repr(view).count("95% CI") == 5 + 1  # a column per group, and the caption


def test_paper_view_metric_order_and_errors():
    a = _long({"x": 0.5}).assign(metric="auc")
    b = _long({"x": 0.5})
    view = paper_table_view(pd.concat([a, b]), max_width_px=10_000)
    assert [c[0] for c in view.tables[0].columns[::3]] == ["precision", "auc"]
    with pytest.raises(KeyError, match="ci_low"):
        paper_table_view(b.drop(columns="ci_low"))
    with pytest.raises(ValueError, match="no rows"):
        paper_table_view(b.iloc[:0])
