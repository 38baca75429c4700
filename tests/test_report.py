"""The run report, the page front matter's parameters, and the PDF check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecgrepro.book.report import (
    PAGE_ENV,
    check_pdf,
    clear_run_facts,
    figure_caption,
    page_parameters,
    parameter_names,
    run_report,
    run_report_markdown,
    run_report_summary,
    write_run_facts,
    write_run_report,
)
from ecgrepro.book.runner import hide_injected_parameters


def _notebook(params: dict, duration: float | None, injected: bool = True) -> dict:
    cells = [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "fs_hz = 500\n"},
    ]
    if injected:
        cells.append(
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": ""}
        )
    meta = {"papermill": {"parameters": params, "start_time": "2026-11-22T00:00:00"}}
    if duration is not None:
        meta["papermill"]["duration"] = duration
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def build(tmp_path):
    nbs = tmp_path / "src" / "notebooks"
    nbs.mkdir(parents=True)
    (nbs / "page_a.ipynb").write_text(
        json.dumps(_notebook({"profile": "quick", "fs_hz": 100, "ks": [2, 3]}, 12.34))
    )
    (nbs / "page_b.ipynb").write_text(
        json.dumps(_notebook({"profile": "quick", "fs_hz": 500}, 1.0))
    )
    return tmp_path


def test_run_facts_are_written_only_inside_a_book_build(tmp_path, monkeypatch):
    monkeypatch.delenv(PAGE_ENV, raising=False)
    assert write_run_facts(tmp_path, {"device": "cpu"}) is None
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv(PAGE_ENV, "page_a")
    write_run_facts(tmp_path, {"device": "cpu", "datasets": {"cpsc": {"used": 3}}})
    write_run_facts(tmp_path, {"device": "cpu", "datasets": {"ptbxl (published)": {"used": 5}}})
    facts = json.loads((tmp_path / "run" / "page_a.json").read_text())
    assert facts["datasets"] == {"cpsc": {"used": 3}, "ptbxl (published)": {"used": 5}}
    clear_run_facts(tmp_path, "page_a")
    assert not (tmp_path / "run" / "page_a.json").exists()


def test_run_report_lists_every_page_with_its_time_parameters_and_inventory(build, monkeypatch):
    monkeypatch.setenv(PAGE_ENV, "page_a")
    monkeypatch.delenv("ECGREPRO_DATA", raising=False)
    write_run_facts(
        build,
        {
            "device": "cpu",
            "data_root": "/data",
            "datasets": {"cpsc": {"used": 150, "skipped": 2}},
            "warnings": 3,
        },
    )
    report = run_report(build, ["page_a", "page_b", "page_c"])
    assert list(report.columns) == ["page", "profile", "parameter", "value"]
    a = report[report.page == "page_a"].set_index("parameter").value
    assert a["run.seconds"] == "12.3"
    assert a["fs_hz"] == "100" and a["ks"] == "[2, 3]"
    assert a["run.device"] == "cpu" and a["run.data_root"] == "data"  # shown, not absolute
    assert a["run.warnings"] == "3"
    assert a["run.records.cpsc.used"] == "150" and a["run.records.cpsc.skipped"] == "2"
    assert "version.torch" in a and "run.commit" in a
    b = report[report.page == "page_b"].set_index("parameter").value
    assert b["run.device"].startswith("no model")
    c = report[report.page == "page_c"]
    assert c.value.tolist() == ["not executed"]
    path = write_run_report(report, build / "tables")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, report.astype(str))
    summary = run_report_summary(report)
    assert "| `page_a` | quick | 12 | cpu | cpsc 150 (2) | 3 |" in summary
    assert "| metadata only | - |" in summary  # page_b: no model, no warnings recorded
    assert "**13**" in summary  # 12.3 + 1.0 s
    page = run_report_markdown(report)
    assert page.startswith("# Run report")
    assert "## Parameters shared by pages" in page
    assert "| parameter | value | pages |" in page  # folded: three columns fit any page
    assert "| `fs_hz` | 100 | page_a |" in page and "| `fs_hz` | 500 | page_b |" in page
    assert "| `page_a` | `ks` = [2, 3] |" in page
    for name in ("page_a", "page_b", "page_c"):
        assert f"| `{name}` |" in page  # a row of its own parameters, one of its run facts


def test_injected_parameters_are_hidden_but_kept(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_notebook({}, 1.0)))
    hide_injected_parameters(path)
    hide_injected_parameters(path)  # idempotent
    cells = json.loads(path.read_text())["cells"]
    assert cells[1]["metadata"]["tags"] == ["injected-parameters", "remove-cell"]
    assert cells[0]["metadata"]["tags"] == ["parameters"]


def test_page_parameters_show_the_values_in_force(tmp_path):
    nb = _notebook({}, None, injected=False)
    source = 'profile = "custom"\nfs_hz = 500\nwindow_s = 30  # s\ndata_root = ""\n'
    nb["cells"][0]["source"] = source
    (tmp_path / "page.ipynb").write_text(json.dumps(nb))
    # profile, data_root, build_dir first; a page outside PAGE_SHARED shares nothing
    assert parameter_names("page", tmp_path) == ["profile", "data_root", "fs_hz", "window_s"]
    with pytest.raises(FileNotFoundError):
        parameter_names("absent", tmp_path)
    (tmp_path / "bare.ipynb").write_text(json.dumps({"cells": []}))
    with pytest.raises(ValueError, match="no cell tagged"):
        parameter_names("bare", tmp_path)


def test_page_parameters_of_a_real_page():
    ns = {"profile": "quick", "fs_hz": 100, "window_s": 10, "data_root": "/x", "epochs": 30}
    text = page_parameters("table2_generalisation", ns)
    assert "profile *quick*" in text and "`fs_hz = 100`" in text and "`epochs = 30`" in text
    assert "data_root" not in text


def test_figure_caption_names_model_data_and_profile():
    text = figure_caption("2.1", "Loss (BCE).", models="Ours_2", data="PTB-XL", profile="quick")
    assert text.startswith("**Book figure 2.1.** Loss (BCE).")
    assert "Ours_2" in text and "PTB-XL" in text and "quick" in text


def _pdf(path, n_pages, with_images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        for k in range(n_pages):
            fig, ax = plt.subplots(figsize=(4, 3))
            if with_images:
                ax.imshow(np.random.default_rng(k).random((20, 30)))
            else:
                ax.text(0.5, 0.5, f"page {k}")
            pdf.savefig(fig)
            plt.close(fig)


def test_check_pdf_counts_pages_and_images(tmp_path):
    good, blank = tmp_path / "good.pdf", tmp_path / "blank.pdf"
    _pdf(good, 4, True)
    _pdf(blank, 4, False)
    pages, images = check_pdf(good, min_pages=4, min_images=4)
    assert pages == 4 and images >= 4
    with pytest.raises(ValueError, match="images"):
        check_pdf(blank, min_pages=4, min_images=1)
    with pytest.raises(ValueError, match="pages"):
        check_pdf(good, min_pages=5, min_images=0)
    with pytest.raises(FileNotFoundError):
        check_pdf(tmp_path / "absent.pdf", 1, 0)


def test_run_cost_is_measured_from_the_first_cell(monkeypatch):
    from types import SimpleNamespace

    from ecgrepro.book import report

    with pytest.raises(RuntimeError, match="never_started"):
        report.run_cost("never_started", {})
    monkeypatch.setattr(report, "parameter_names", lambda page: ["profile"])
    page_parameters("some_page", {"profile": "quick"})
    report._PAGE_STARTED["some_page"] -= 120.0  # as if the page had run for two minutes
    text = report.run_cost("some_page", {"profile": "quick", "pipe": SimpleNamespace(device="cpu")})
    seconds = float(text.split(" s ")[0])
    assert 120.0 <= seconds < 180.0
    assert "(2.0 min)" in text or "(2.1 min)" in text
    assert "quick profile on cpu" in text and "commit " in text
    assert "no model" in report.run_cost("some_page", {"profile": "quick"})
    two = {"a": SimpleNamespace(device="cpu"), "b": SimpleNamespace(device="cpu")}
    assert "on cpu in float32," in report.run_cost("some_page", {"profile": "quick", "pipes": two})
    fast = {"profile": "paper-fast", "pipe": SimpleNamespace(device="cuda:0"), "amp": "bf16",
            "compile": True, "deterministic": False}
    assert "on cuda:0 in bf16 autocast, torch.compile, cuDNN autotuned" in report.run_cost(
        "some_page", fast)
