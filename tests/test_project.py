"""The project's wiring: data-root discovery, profiles, notebooks, book configuration."""

import json

import pytest

from ecgrepro.cli import toc_notebooks
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


def test_profiles_are_complete():
    profiles = load_profiles()
    assert {"quick", "paper"} <= set(profiles)
    paper = profiles["paper"]["table2_generalisation"]
    assert (
        paper["fs_hz"],
        paper["window_s"],
        paper["epochs"],
        paper["batch_size"],
        paper["lr"],
    ) == (500, 30, 30, 32, 1e-4)


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


def test_notebook_defaults_are_the_papers_settings():
    import papermill as pm

    params = pm.inspect_notebook(str(REPO_ROOT / "notebooks" / "table2_generalisation.ipynb"))
    defaults = {k: v["default"] for k, v in params.items()}
    assert (defaults["fs_hz"], defaults["window_s"], defaults["epochs"]) == ("500", "30", "30")
    assert (defaults["batch_size"], defaults["lr"]) == ("32", "0.0001")


def test_table3_defaults_are_the_papers_settings():
    import papermill as pm

    params = pm.inspect_notebook(str(REPO_ROOT / "notebooks" / "table3_retraining.ipynb"))
    defaults = {k: v["default"] for k, v in params.items()}
    assert (defaults["epochs"], defaults["epochs_ours"], defaults["fs_hz"]) == ("30", "30", "500")
    assert defaults["augment_cpsc_in_ours2"] == "False"
