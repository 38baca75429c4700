"""The page helper: shared parameters from the profile, setup by keyword, furniture."""

from __future__ import annotations

import ast
import json
from types import SimpleNamespace

import pytest

from ecgrepro.book import page as page_mod
from ecgrepro.book.page import Page
from ecgrepro.config import REPO_ROOT, load_profiles
from ecgrepro.parameters import PAGE_SHARED

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
#: Issue #24: the notebooks' code, all of it, in non-blank lines.
NOTEBOOK_CODE_BUDGET = 1000


def test_a_page_run_by_hand_gets_the_papers_shared_values():
    ns = {"profile": "custom", "data_root": "", "build_dir": "", "n_steps": 50}
    p = Page("companion_a_relevance", ns)
    paper = load_profiles()["paper"]["companion_a_relevance"]
    for name in PAGE_SHARED["companion_a_relevance"]:
        assert ns[name] == paper[name] and p[name] == paper[name]
    assert ns["n_steps"] == 50 and p.profile == "custom"


def test_what_the_book_injected_wins_over_the_defaults():
    ns = {"profile": "quick", "fs_hz": 100, "window_s": 10}
    Page("fig6-8_gradcam", ns)
    assert (ns["fs_hz"], ns["window_s"], ns["epochs"]) == (100, 10, 30)


def test_an_unknown_page_is_an_error_naming_the_known_ones():
    with pytest.raises(KeyError, match="unknown page 'nope'.*table1_dataset"):
        Page("nope", {})


def test_the_pipeline_is_opened_by_keyword_with_the_pages_parameters(monkeypatch, tmp_path):
    seen = {}

    def fake_setup(data_root, build_dir, **kw):
        seen.update(kw, data_root=data_root, build_dir=build_dir)
        return SimpleNamespace(
            build=tmp_path, device="cpu", run_facts=lambda: {"device": "cpu"}, datasets={}
        )

    monkeypatch.setattr("ecgrepro.pipeline.setup", fake_setup)
    ns = {"profile": "quick", "data_root": "/d", "build_dir": "", "lstm_lead": "II"}
    p = Page("companion_b_deletion_mask", ns)
    pipe = p.pipeline(extra=("lstm_lead",))
    assert p.pipe is pipe and p.build == tmp_path
    assert seen["data_root"] == "/d" and seen["extra"] == {"lstm_lead": "II"}
    assert seen["fs_hz"] == 500 and seen["label_mapping"] == "published"
    assert seen["amp"] == "off" and seen["deterministic"] is True  # the speed options reach it
    p.pipeline(label_mapping="rhythm-aware")
    assert seen["label_mapping"] == "rhythm-aware" and len(p.pipes) == 2


def test_furniture_needs_a_pipeline_first():
    p = Page("table1_dataset", {"profile": "quick"})
    with pytest.raises(RuntimeError, match="pipeline"):
        p.build  # noqa: B018


def test_finish_glues_the_run_cost(monkeypatch):
    glued = {}
    monkeypatch.setattr(page_mod.Page, "glue", lambda self, **kw: glued.update(kw))
    p = Page("table1_dataset", {"profile": "quick"})
    p.parameters()  # starts the clock, as the first code cell does
    p.finish()
    assert " s with the quick profile on no model" in glued["run_cost"]


def _code_lines(nb_path) -> list[str]:
    cells = json.loads(nb_path.read_text())["cells"]
    return [
        line
        for c in cells
        if c["cell_type"] == "code"
        for line in "".join(c["source"]).splitlines()
        if line.strip()
    ]


def test_the_notebooks_hold_at_most_the_budgets_lines_of_code():
    counts = {nb.stem: len(_code_lines(nb)) for nb in NOTEBOOKS}
    assert sum(counts.values()) <= NOTEBOOK_CODE_BUDGET, counts


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_lambda_spans_more_than_one_line(nb):
    cells = json.loads(nb.read_text())["cells"]
    for c in cells:
        if c["cell_type"] != "code":
            continue
        source = "".join(c["source"])
        tree = ast.parse("\n".join(
            line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
        ))
        for node in ast.walk(tree):
            if isinstance(node, ast.Lambda):
                assert node.end_lineno == node.lineno, (nb.stem, ast.unparse(node)[:80])
