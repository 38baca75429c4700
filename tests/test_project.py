"""The project's wiring: data-root discovery, profiles, notebooks, book configuration."""

import json
import re
from pathlib import Path

import pytest

from ecgrepro.book.runner import toc_notebooks
from ecgrepro.config import REPO_ROOT, DataNotFoundError, find_data_root, load_profiles


def test_missing_data_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGREPRO_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(
        DataNotFoundError, match=r"Looked in: .*nowhere.*Expected .*ptbxl_database.csv"
    ):
        find_data_root(tmp_path / "nowhere")


def test_env_variable_wins(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("ECGREPRO_DATA", str(data_root))
    assert find_data_root() == data_root.resolve()


def test_every_profile_gives_every_page_only_parameters_it_declares():
    from ecgrepro.parameters import page_declared

    profiles = load_profiles()
    assert {"quick", "paper"} <= set(profiles)
    stems = {name.split("/")[-1] for name in toc_notebooks(REPO_ROOT / "_toc.yml")}
    for profile, pages in profiles.items():
        assert set(pages) == stems, profile
        for stem, params in pages.items():
            declared = page_declared(stem)
            assert params["profile"] == profile
            for name in declared:
                if name in ("data_root", "build_dir", "profile"):
                    continue
                # every declared parameter is set by the profile (no silent notebook default)
                assert name in params, (profile, stem, name)


def test_the_paper_profile_equals_the_notebooks_defaults():
    from ecgrepro.parameters import page_declared

    for stem, params in load_profiles()["paper"].items():
        declared = page_declared(stem)
        for name, default in declared.items():
            if name in ("data_root", "build_dir", "profile"):
                continue
            assert params[name] == default, (stem, name, params[name], default)
            assert type(params[name]) is type(default), (stem, name)
        assert declared["profile"] == "custom", stem


def test_a_profile_lists_only_pages_the_defaults_know(tmp_path):
    bad = tmp_path / "p.yml"
    bad.write_text("defaults:\n  common: {seed: 0}\n  page_a: {}\nx:\n  page_b: {seed: 1}\n")
    with pytest.raises(KeyError, match="page_b"):
        load_profiles(bad)
    ok = tmp_path / "q.yml"
    ok.write_text(
        "defaults:\n  common: {seed: 0, n: 1}\n  page_a: {n: 2}\nx:\n  common: {seed: 5}\n"
    )
    assert load_profiles(ok) == {"x": {"page_a": {"seed": 5, "n": 2, "profile": "x"}}}


def test_a_page_names_the_overrides_it_ran_with():
    from ecgrepro.book.runner import profile_label

    assert profile_label("quick", {}) == "quick"
    assert (
        profile_label("quick", {"epochs_ours": 10, "seed": 2})
        == "quick, with epochs_ours=10, seed=2"
    )


@pytest.mark.parametrize("name", toc_notebooks(REPO_ROOT / "_toc.yml"))
def test_notebooks_are_clean_and_parameterised(name):
    nb = json.loads((REPO_ROOT / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), (
        "commit without outputs"
    )
    assert "parameters" in code[0]["metadata"].get("tags", []), "first code cell tagged parameters"
    lines = [line for c in code for line in "".join(c["source"]).splitlines()]
    assert not any(line.lstrip().startswith(("def ", "class ")) for line in lines), (
        "no def/class in notebooks"
    )
    # the run cost in "About this page" is this run's, measured, never typed
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "**Run cost:** this run took {glue:text}`run_cost`" in text
    assert "{glue:md}`verdict`" in text  # the verdict line, from the page's claims (#25)
    assert f'page = Page("{Path(name).name}", globals())' in lines
    assert "".join(code[-1]["source"]).startswith("page.finish()")
    assert not re.search(r"\bcommit [0-9a-f]{7}\b", text), "no typed commit in the prose"


def test_notebook_defaults_are_the_papers_settings():
    from ecgrepro.parameters import page_declared

    defaults = page_declared("table2_generalisation")
    assert (defaults["fs_hz"], defaults["window_s"], defaults["epochs"]) == (500, 30, 30)
    assert (defaults["batch_size"], defaults["lr"]) == (32, 0.0001)


def test_table3_defaults_are_the_papers_settings():
    from ecgrepro.parameters import page_declared

    defaults = page_declared("table3_retraining")
    assert (defaults["epochs"], defaults["epochs_ours"], defaults["fs_hz"]) == (30, 30, 500)
    assert defaults["augment_cpsc_in_ours2"] is False


def test_page_times_are_merged_and_tabulated(tmp_path):
    from ecgrepro.book.runner import page_times_markdown, read_page_times, record_page_time

    path = tmp_path / "tables" / "page_times.csv"
    record_page_time(path, "table1_dataset", 3.2)
    record_page_time(path, "table2_generalisation", 150.0)
    record_page_time(path, "table1_dataset", 4.0)  # a rerun replaces its own row only
    times = read_page_times(path)
    assert times == {"table1_dataset": 4.0, "table2_generalisation": 150.0}
    assert path.read_text().splitlines()[0] == "page,seconds"
    md = page_times_markdown(times, ["table1_dataset", "table2_generalisation", "fig6-8_gradcam"])
    assert "| `table2_generalisation` | 150 | 2.5 |" in md
    assert "| `fig6-8_gradcam` | not executed | |" in md
    assert "| **all pages** | **154** | **2.6** |" in md
    assert "No page" in page_times_markdown({}, ["x"])


def test_every_page_has_an_entry_in_every_profile_with_the_published_labels():
    from ecgrepro.parameters import page_declared

    stems = {name.split("/")[-1] for name in toc_notebooks(REPO_ROOT / "_toc.yml")}
    for profile, pages in load_profiles().items():
        assert set(pages) == stems, profile
        for stem, params in pages.items():
            declared = page_declared(stem)
            if "label_mapping" in declared:
                assert declared["label_mapping"] == "published", stem
                assert params["label_mapping"] == "published", (profile, stem)


#: A cross-page glue reference in a Markdown page: ``{glue:text}`../notebooks/x.ipynb::key:s```.
CROSS_GLUE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]*::[^`]*)`")


def test_cross_page_glue_names_a_notebook_file_a_glued_key_and_a_format():
    """myst-nb resolves ``path::key`` only with the file's extension, and splits a final
    ``:spec`` off as the format: without one, ``path::key`` is read as key ``path:`` and the
    build fails under ``-W`` (as CI did on 36aec39)."""
    refs = []
    for page in sorted((REPO_ROOT / "book").glob("*.md")):
        for ref in CROSS_GLUE.findall(page.read_text()):
            refs.append((page.name, ref))
    assert refs, "the book's Markdown pages glue numbers from the notebooks"
    for page, ref in refs:
        path, _, rest = ref.partition("::")
        key, sep, fmt = rest.rpartition(":")
        assert sep and key and fmt, f"{page}: {ref!r} needs a format spec, e.g. '::key:s'"
        target = (REPO_ROOT / "book" / path).resolve()
        assert target.suffix == ".ipynb" and target.is_file(), f"{page}: {path} is not a notebook"
        source = "".join(
            "".join(cell["source"]) for cell in json.loads(target.read_text())["cells"]
        )
        # glue("key", ...), page.glue(key=...), and glue texts returned as dicts by the page's
        # package module ({"key": ...}) or built in the notebook ({f"key_{x}": ...})
        modules = "".join(p.read_text() for p in (REPO_ROOT / "ecgrepro" / "pages").glob("*.py"))
        names = re.findall(r'glue\(f?"([^"]+)"', source)
        names += re.findall(r"page\.glue\((\w+)=", source)
        names += re.findall(r'(?:^|[{,])\s*f?"([\w{][^"]*)"\s*:', source + modules, re.M)
        glued = [
            re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(name))  # f-string keys as patterns
            for name in names
        ]
        assert any(re.fullmatch(g, key) for g in glued), f"{page}: {target.name} glues no {key!r}"


def test_every_citation_resolves_in_the_bibliography():
    """Every {footcite}/{cite} key of a page or prose file is an entry of book/references.bib."""
    bib = (REPO_ROOT / "book" / "references.bib").read_text()
    entries = set(re.findall(r"^@\w+\{([^,\s]+),", bib, flags=re.M))
    texts = [p.read_text() for p in (REPO_ROOT / "book").glob("*.md")]
    for nb in (REPO_ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        texts.append("".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"))
    cited = {
        key.strip()
        for text in texts
        for keys in re.findall(r"\{(?:foot)?cite(?::\w+)?\}`([^`]+)`", text)
        for key in keys.split(",")
    }
    assert cited, "no citation found: the pattern is wrong"
    assert not cited - entries, f"cited but not in references.bib: {sorted(cited - entries)}"
