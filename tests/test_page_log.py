"""No noise on the pages (#25, item 5): log lines and warnings go to the page's log file,
folders are shown relative to the project, never as a machine's absolute path."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ecgrepro.book import page as page_mod
from ecgrepro.book.page import Page
from ecgrepro.book.report import PAGE_ENV, run_report, run_report_markdown, shown_path
from ecgrepro.config import DATA_ENV, REPO_ROOT
from ecgrepro.data import ECGDataset, SkipReport
from ecgrepro.pipeline import Pipeline, paper_specs

#: The paper models' parameters, as small as a model trains in a second.
TINY = {"epochs": 1, "epochs_ours": 1, "batch_size": 4, "lr": 1e-4, "seed": 0,
        "augment_cpsc_in_ours2": False, "amp": "off", "compile": False}


def _dataset(name: str, notes=(), n: int = 12, length: int = 128, seed: int = 0) -> ECGDataset:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.1, (n, 12, length)).astype(np.float32)
    split = np.array(["train"] * (n - 4) + ["val"] * 2 + ["test"] * 2)
    records = pd.DataFrame({"record": [f"{name}{i}" for i in range(n)], "split": split})
    return ECGDataset(name, x, y, records, 100, length, SkipReport(name), cache_key=name,
                      notes=list(notes))


def _pipeline(build, root, log=print, notes=()) -> Pipeline:
    datasets = {"cpsc": _dataset("cpsc", notes), "ptbxl": _dataset("ptbxl", seed=1)}
    return Pipeline(root, build, torch.device("cpu"), 100, 1.28, 128, datasets,
                    paper_specs(**{k: v for k, v in TINY.items() if k != "augment_cpsc_in_ours2"}),
                    params=dict(TINY), log=log)


@pytest.fixture
def page_setup(monkeypatch, tmp_path):
    """``page.pipeline()`` opens a small real pipeline with the log setup() is given."""

    def fake_setup(data_root, build_dir, log=print, **kw):
        return _pipeline(tmp_path / "build", tmp_path / "data", log=log)

    monkeypatch.setattr("ecgrepro.pipeline.setup", fake_setup)
    monkeypatch.delenv(PAGE_ENV, raising=False)
    return tmp_path / "build"


def test_a_pages_pipeline_writes_its_lines_to_the_log_file_and_prints_nothing(
    page_setup, capsys
):
    page = Page("table3_retraining", {"profile": "quick", "build_dir": str(page_setup)})
    page.pipeline().model("original")  # trained: the training line and one line per epoch
    assert capsys.readouterr() == ("", "")
    text = page.log_path.read_text()
    assert page.log_path == page_setup / "logs" / "table3_retraining.log"
    assert "original: training on 8 records (cpsc)" in text and "epoch   1  train loss" in text
    assert "table3_retraining: run with the quick profile" in text.splitlines()[0]
    assert text.splitlines()[1][:4].isdigit()  # each line starts with its timestamp
    again = Page("table3_retraining", {"profile": "quick", "build_dir": str(page_setup)})
    again.pipeline().model("original")
    assert capsys.readouterr() == ("", "")
    lines = again.log_path.read_text().splitlines()
    assert len(lines) > len(text.splitlines()) and "original: reusing artifact" in lines[-1]
    assert len(page.log) == 0  # the pipeline's lines are not the store's (page.reused())
    again.close(), page.close()


def test_at_a_console_the_pipeline_still_prints(tmp_path, capsys):
    pipe = _pipeline(tmp_path / "build", tmp_path / "data")
    pipe.model("original")
    assert "original: training on 8 records" in capsys.readouterr().out
    pipe._models.clear()
    pipe.model("original", log=None)  # named: silent, as ecgrepro train's other ranks
    assert capsys.readouterr().out == ""


def test_the_stores_lines_go_to_the_log_file_and_keep_their_count(tmp_path, capsys):
    page = Page("companion_a_relevance", {"profile": "quick", "build_dir": str(tmp_path)})
    page.pipes.append(SimpleNamespace(artifacts=tmp_path / "artifacts"))
    for _ in range(2):
        page.cached("demo", {"k": 1}, lambda: {"v": np.arange(3)})
    assert capsys.readouterr() == ("", "")
    assert len(page.log) == 2 and page.reused() == 1  # what the page glues, as before
    text = page.log_path.read_text()
    assert "demo: computed and stored demo-" in text and "demo: reusing demo-" in text
    page.log.append("a line through log=page.log.append")  # the faithfulness page's logger
    assert page.log_path.read_text().endswith("a line through log=page.log.append\n")
    page.close()


def test_a_warning_goes_to_the_log_file_counted_and_not_to_the_page(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        page = Page("companion_a_relevance", {"profile": "quick", "build_dir": str(tmp_path)})
        np.nanmean(np.array([np.nan, np.nan]))  # numpy's "Mean of empty slice"
        warnings.warn("a second one", UserWarning, stacklevel=1)
        assert capsys.readouterr() == ("", "")
        assert page.warnings == 2
        text = page.log_path.read_text()
        assert "warning: RuntimeWarning: Mean of empty slice" in text
        assert "warning: UserWarning: a second one" in text
        assert page.warnings_text() == "2 warnings, in the page's log `companion_a_relevance.log`"
        page.close()
        with pytest.warns(UserWarning, match="after the page"):  # shown as usual again
            warnings.warn("after the page", UserWarning, stacklevel=1)
        assert page.warnings == 2


def test_finish_records_the_warnings_for_the_run_report(tmp_path, monkeypatch):
    glued = {}
    monkeypatch.setattr(page_mod.Page, "glue", lambda self, **kw: glued.update(kw))
    monkeypatch.setenv(PAGE_ENV, "page_a")
    build = tmp_path / "build"
    page = Page("table1_dataset", {"profile": "quick", "build_dir": str(build)})
    page.parameters()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("kept in the log", UserWarning, stacklevel=1)
    page.finish()
    assert glued["run_warnings"].startswith("1 warning, in the page's log")
    facts = json.loads((build / "run" / "page_a.json").read_text())
    assert facts["warnings"] == 1 and facts["log"] == str(page.log_path)
    nbs = build / "src" / "notebooks"
    nbs.mkdir(parents=True)
    params = {"profile": "quick", "data_root": str(tmp_path / "ecg-data"), "build_dir": str(build)}
    meta = {"papermill": {"parameters": params, "duration": 1.0}}
    (nbs / "page_a.ipynb").write_text(json.dumps({"cells": [], "metadata": meta}))
    report = run_report(build, ["page_a"]).set_index("parameter").value
    assert report["run.warnings"] == "1" and report["run.log"] == "logs/table1_dataset.log"


def test_shown_folders_are_never_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert shown_path(REPO_ROOT / "_build") == "_build"
    assert shown_path(REPO_ROOT / "_build" / "logs" / "x.log") == "_build/logs/x.log"
    assert shown_path(REPO_ROOT.parent / "shared" / "ecg-data") == "../shared/ecg-data"
    assert shown_path(tmp_path / "ecg-data") == "ecg-data"  # elsewhere: the folder's name
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    assert shown_path(tmp_path / "data") == "$ECGREPRO_DATA"
    assert shown_path(tmp_path / "data" / "ptb-xl") == "$ECGREPRO_DATA/ptb-xl"
    assert shown_path("") == ""


def test_the_run_report_shows_no_absolute_path(tmp_path, monkeypatch):
    monkeypatch.setenv(PAGE_ENV, "page_a")
    monkeypatch.delenv(DATA_ENV, raising=False)
    build, data = REPO_ROOT / "_build", tmp_path / "ecg-data"  # the book's build, data elsewhere
    from ecgrepro.book.report import write_run_facts

    write_run_facts(tmp_path, {"device": "cpu", "data_root": str(data)})
    nbs = tmp_path / "src" / "notebooks"
    nbs.mkdir(parents=True)
    params = {"profile": "quick", "data_root": str(data), "build_dir": str(build)}
    (nbs / "page_a.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {"papermill": {"parameters": params, "duration": 2.0}}}))
    report = run_report(tmp_path, ["page_a"])
    values = report.set_index("parameter").value
    assert values["build_dir"] == "_build" and values["data_root"] == "ecg-data"
    assert values["run.data_root"] == "ecg-data"
    page = run_report_markdown(report)
    assert str(tmp_path) not in page and str(REPO_ROOT) not in page


def test_the_data_notes_show_the_data_root_relative(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(page_mod, "_show", shown.append)
    monkeypatch.delenv(DATA_ENV, raising=False)
    root = REPO_ROOT.parent / "shared" / "ecg-data"
    note = (f"cpsc: 9 of the 100 records listed in {root}/cpsc2018/REFERENCE.csv (9.0%) are "
            f"missing under {root}/cpsc2018; only the 91 present are used.")
    pipe = _pipeline(tmp_path, root, notes=[note, "cpsc: an unrelated note"])
    assert pipe.data_notes() == [note]  # a missing-records warning's sentence, kept for the page
    page = Page("companion_a_relevance", {"profile": "quick", "build_dir": str(tmp_path)})
    page.pipes.append(pipe)
    page.show_data_notes()
    page.close()
    assert len(shown) == 1 and str(root) not in shown[0]
    assert "missing under ../shared/ecg-data/cpsc2018;" in shown[0]


def test_a_note_is_shown_as_markdown_not_printed(tmp_path, monkeypatch, capsys):
    shown = []
    monkeypatch.setattr(page_mod, "_show", shown.append)
    page = Page("fig6-8_gradcam", {"profile": "quick", "build_dir": str(tmp_path)})
    page.note("no LBBB record in the test set")
    page.close()
    assert shown == ["**Note:** no LBBB record in the test set"]
    assert capsys.readouterr() == ("", "")
