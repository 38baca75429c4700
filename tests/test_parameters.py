"""Page and command parameters: one table, checked before anything runs; ``book --only``."""

from __future__ import annotations

import math

import numpy as np
import papermill as pm
import pytest
import torch
import yaml

from ecgrepro import cli, overrides
from ecgrepro.book import runner
from ecgrepro.config import LEADS, PROFILES_FILE, REPO_ROOT, load_profiles
from ecgrepro.parameters import (
    AMP,
    MAPPINGS,
    PAGE_SHARED,
    PARAMETERS,
    ParameterError,
    check_device_available,
    check_profile,
    notebook_parameters,
    page_declared,
    validate,
)

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
PROFILES = load_profiles()
PAGES = runner.book_pages()


def declared(nb) -> dict:
    """What the book may pass a page: its shared parameters and its notebook's own."""
    return page_declared(nb.stem)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_parameter_is_in_the_table_and_its_default_passes(nb):
    params = declared(nb)
    assert params
    missing = sorted(set(params) - set(PARAMETERS))
    assert not missing, f"{nb.name} declares parameters the table lacks: {missing}"
    defaults = dict(params)
    checked = validate(defaults, page=nb.stem, check_device=False)
    assert checked == defaults
    assert {k: type(v) for k, v in checked.items()} == {k: type(v) for k, v in defaults.items()}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_declares_only_its_own_parameters_and_the_book_passes_the_shared_ones(nb):
    own = notebook_parameters(nb.stem)
    assert list(own)[:3] == ["profile", "data_root", "build_dir"]
    assert not set(own) & set(PAGE_SHARED[nb.stem])
    assert set(pm.inspect_notebook(str(nb))) == set(own)  # papermill reads the same cell
    both = page_declared(nb.stem)
    assert set(both) == set(own) | set(PAGE_SHARED[nb.stem])
    paper = PROFILES["paper"][nb.stem]
    assert all(both[k] == paper[k] for k in PAGE_SHARED[nb.stem])


def test_a_notebook_that_declares_a_shared_parameter_is_an_error(tmp_path):
    import json

    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
            "execution_count": None, "source": 'profile = "custom"\nfs_hz = 500\n'}
    (tmp_path / "table3_retraining.ipynb").write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ValueError, match=r"declares shared parameters \['fs_hz'\]"):
        page_declared("table3_retraining", tmp_path)


def test_every_name_of_profiles_yml_is_in_the_table():
    raw = yaml.safe_load(PROFILES_FILE.read_text())
    names = {
        name for spec in raw.values() for part in (spec or {}).values() for name in (part or {})
    }
    assert names and not sorted(names - set(PARAMETERS))
    assert set(cli.TRAIN_PARAMETERS) <= set(PARAMETERS)


def test_every_row_has_a_type_a_range_and_a_meaning():
    for name, p in PARAMETERS.items():
        assert p.name == name and p.kind in ("int", "float", "bool", "str", "list of int")
        assert p.meaning and "\n" not in p.meaning and p.allowed()


def test_choices_follow_the_code():
    from ecgrepro.data.labels import MAPPING_FILES
    from ecgrepro.runtime import AMP_MODES

    assert set(MAPPINGS) == set(MAPPING_FILES)
    assert AMP == AMP_MODES
    assert PARAMETERS["lstm_lead"].choices == LEADS


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_passes_unchanged_on_every_page(profile, tmp_path):
    """What the book passes each page (only the names it declares) comes back as it went in:
    the same values and the same types, so validating cannot change a number of the book."""
    for nb in NOTEBOOKS:
        names = declared(nb)
        merged = {**PROFILES[profile][nb.stem], "data_root": str(tmp_path), "build_dir": ""}
        params = {k: v for k, v in merged.items() if k in names}
        checked = validate(params, page=nb.stem, check_device=False)
        assert checked == params
        assert [type(v) for v in checked.values()] == [type(v) for v in params.values()]
        # and the whole merged profile too (amp and compile included)
        assert (
            validate(PROFILES[profile][nb.stem], check_device=False) == PROFILES[profile][nb.stem]
        )


BAD = [
    ("epochs", -1),
    ("epochs", "five"),
    ("epochs", 0),
    ("epochs", 2.5),
    ("epochs", True),
    ("batch_size", 0),
    ("fs_hz", 0),
    ("fs_hz", -100),
    ("window_s", 1000),
    ("lr", 0),
    ("lr", "fast"),
    ("lr", math.nan),
    ("device", "gpu"),
    ("amp", "fp16"),
    ("label_mapping", "rhythm"),
    ("percentile", 0),
    ("percentile", 101),
    ("ks", []),
    ("ks", [4, 0]),
    ("retrain", "maybe"),
    ("lstm_lead", "X"),
    ("seed", -1),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_value_is_one_line_naming_the_parameter_the_value_and_what_is_allowed(name, value):
    with pytest.raises(ParameterError) as err:
        validate({name: value}, page="table3_retraining")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"parameter {name} (page table3_retraining): got {value!r};")
    assert f"allowed: {PARAMETERS[name].allowed()}" in message


def test_values_are_converted():
    assert validate({"lr": "1e-4"}) == {"lr": 0.0001}
    assert validate({"lr": 1e-4}) == {"lr": 0.0001}
    assert type(validate({"fs_hz": 500})["fs_hz"]) is int  # an int for a float stays an int
    assert validate({"epochs": "5", "n_boot": 20.0}) == {"epochs": 5, "n_boot": 20}
    assert validate({"retrain": "true", "compile": "False"}) == {"retrain": True, "compile": False}
    assert validate({"ks": "[4, 6]"}) == {"ks": [4, 6]}
    assert validate({"amp": False}) == {"amp": "off"}  # YAML 1.1 reads a bare off as False
    assert validate({"epochs": np.int64(3)}) == {"epochs": 3}


def test_samples_and_nyquist_are_checked_together():
    assert validate({"fs_hz": 100, "window_s": 10}) == {"fs_hz": 100, "window_s": 10}
    assert validate({"fs_hz": 500, "window_s": 0.1})["window_s"] == 0.1  # 50 samples
    with pytest.raises(
        ParameterError, match=r"^parameters fs_hz and window_s: got .*\(3\.5 samples\)"
    ):
        validate({"fs_hz": 0.35, "window_s": 10})
    with pytest.raises(ParameterError, match=r"^parameter blur_hz: got 50; allowed: .*\(0, 50\)"):
        validate({"fs_hz": 100, "blur_hz": 50})


def test_unknown_names_and_profiles_are_one_line():
    with pytest.raises(ParameterError, match=r"^unknown parameter 'epoch'; known: .*epochs"):
        validate({"epoch": 5})
    with pytest.raises(ParameterError, match=r"^unknown profile 'fast' \(--profile\); known: "):
        check_profile("fast", PROFILES)
    check_profile("quick", PROFILES)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_a_gpu_is_an_error_naming_the_parameter():
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ParameterError, match=rf"^parameter device: got '{device}', but "):
            validate({"device": device})
    assert validate({"device": "cuda"}, check_device=False) == {"device": "cuda"}
    assert check_device_available("cpu") == "cpu" and check_device_available("auto") == "auto"


def test_parse_value_reads_scientific_notation_as_a_float():
    assert overrides.parse_value("1e-4") == 1e-4 and type(overrides.parse_value("1e-4")) is float
    assert overrides.parse_value("2E3") == 2000.0 and overrides.parse_value("1.5e4") == 15000.0
    assert type(overrides.parse_value("5")) is int and overrides.parse_value("0.5") == 0.5
    assert overrides.parse_value("true") is True and overrides.parse_value("false") is False
    assert overrides.parse_value("[4, 6]") == [4, 6]
    assert overrides.parse_value("cpu") == "cpu" and overrides.parse_value("five") == "five"
    # a string parameter keeps what was typed
    assert overrides.parse_parameter("amp", "off") == "off"
    assert overrides.parse_parameter("lstm_lead", "II") == "II"
    assert overrides.parse_parameter("lr", "1e-4") == 1e-4


@pytest.fixture()
def no_data(tmp_path, monkeypatch):
    """An empty data root, and a finder that fails the test if it is reached at all."""

    def reached(*args, **kwargs):
        raise AssertionError("the data root was looked for")

    monkeypatch.setattr(cli, "find_data_root", reached)
    monkeypatch.setattr(runner, "find_data_root", reached)
    root = tmp_path / "empty-data"
    root.mkdir()
    return root


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["-p", "epochs", "-1"], "epochs"),
        (["-p", "epochs", "five"], "epochs"),
        (["-p", "batch_size", "0"], "batch_size"),
        (["-p", "fs_hz", "0"], "fs_hz"),
        (["-p", "window_s", "1000"], "window_s"),
        (["--profile", "fast"], "profile"),
    ],
)
@pytest.mark.parametrize("command", ["book", "train"])
def test_a_bad_parameter_stops_the_command_with_one_line_before_the_data(
    command, argv, name, no_data, tmp_path, capsys
):
    head = [command] + (["--model", "original"] if command == "train" else [])
    args = head + ["--data", str(no_data), "--build-dir", str(tmp_path / "build")] + argv
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and name in err
    assert not (tmp_path / "build").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_a_gpu_stops_the_training_before_the_data(no_data, tmp_path, capsys):
    args = ["train", "--model", "original", "--data", str(no_data), "-p", "device", "cuda"]
    assert cli.main(args + ["--build-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: parameter device: got 'cuda', but ")


def test_the_book_checks_every_page_before_running_any(tmp_path, monkeypatch):
    """A value that only one page cannot take (companion B's blur_hz at quick's 100 Hz) stops
    the build before the first page runs, naming that page."""
    ran = []
    monkeypatch.setattr(pm, "execute_notebook", lambda *a, **k: ran.append(a))
    with pytest.raises(ParameterError, match=r"^parameter blur_hz \(page companion_b_deletion"):
        runner.execute_notebooks("quick", {"blur_hz": 50}, tmp_path, tmp_path / "build")
    with pytest.raises(ParameterError, match=r"^parameters fs_hz and window_s \(page table2_"):
        runner.execute_notebooks("quick", {"window_s": 0.015}, tmp_path, tmp_path / "build")
    with pytest.raises(ParameterError, match=r"^unknown profile 'fast'"):
        runner.execute_notebooks("fast", {}, tmp_path, tmp_path / "build")
    assert ran == [] and not (tmp_path / "build").exists()


def test_setup_checks_its_arguments_before_the_data(tmp_path):
    from ecgrepro.pipeline import setup

    with pytest.raises(ParameterError, match=r"^parameter epochs: got -1;"):
        setup(str(tmp_path), str(tmp_path / "build"), epochs=-1)
    with pytest.raises(ParameterError, match=r"^parameter lr: got 'fast';"):
        setup(str(tmp_path), str(tmp_path / "build"), lr="fast")
    assert not (tmp_path / "build").exists()


def toy_samples(n=16, length=128, seed=0):
    from ecgrepro.train import Samples

    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.1, (n, 12, length)).astype(np.float32)
    return Samples([x], np.zeros(n, int), np.arange(n), y, np.zeros(n, bool))


@pytest.mark.parametrize("epochs", [0, -1, 2.0])
def test_train_model_refuses_fewer_than_one_epoch(epochs):
    from ecgrepro.train import train_model

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12 * 128, 9))
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1"):
        train_model(model, toy_samples(), toy_samples(seed=1), epochs=epochs, log=None)


def test_train_model_never_returns_empty_weights(monkeypatch):
    """No epoch kept (every validation F1 NaN): an error, not an empty state dict that would be
    stored as a trained model."""
    from ecgrepro import train

    nan = {"val_loss": math.nan, "val_mean_f1": math.nan, "val_macro_auc": math.nan}
    monkeypatch.setattr(train, "_validate", lambda *a, **k: dict(nan))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12 * 128, 9))
    with pytest.raises(RuntimeError, match="kept no usable weights"):
        train.train_model(model, toy_samples(), toy_samples(seed=1), epochs=1, log=None)


# --- ecgrepro book --only ---------------------------------------------------------------------


def test_an_unknown_page_in_only_is_one_line_before_anything_runs(tmp_path, no_data, capsys):
    build = tmp_path / "build"
    assert cli.main(["book", "--only", "no_such_page", "--build-dir", str(build)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: unknown page(s) in --only: no_such_page; known pages: ")
    assert all(page in err for page in PAGES)
    assert not build.exists()
    with pytest.raises(ParameterError, match="no_such_page"):
        runner.execute_notebooks(
            "quick", {}, no_data, build, only=["table1_dataset", "no_such_page"]
        )


def test_the_toc_keeps_every_page_when_all_were_executed(tmp_path):
    out = tmp_path / "_toc.yml"
    assert runner.stage_toc(REPO_ROOT / "_toc.yml", out, PAGES) == []
    assert out.read_bytes() == (REPO_ROOT / "_toc.yml").read_bytes()
    config = tmp_path / "_config.yml"
    runner.stage_config(REPO_ROOT / "_config.yml", config, partial=False)
    assert config.read_bytes() == (REPO_ROOT / "_config.yml").read_bytes()


def test_the_toc_of_a_partial_build_lists_only_the_executed_pages(tmp_path):
    out = tmp_path / "_toc.yml"
    executed = ["table2_generalisation", "table1_dataset"]
    left_out = runner.stage_toc(REPO_ROOT / "_toc.yml", out, executed)
    assert left_out == [p for p in PAGES if p not in executed]  # in the book's order
    toc, full = (
        yaml.safe_load(out.read_text()),
        yaml.safe_load((REPO_ROOT / "_toc.yml").read_text()),
    )
    assert runner.toc_notebooks(out) == [
        "notebooks/table1_dataset",
        "notebooks/table2_generalisation",
    ]
    assert toc["root"] == full["root"] and toc["format"] == full["format"]
    book = [c["file"] for c in full["chapters"] if not c["file"].startswith("notebooks/")]
    assert [c["file"] for c in toc["chapters"] if c["file"] in book] == book  # kept, in order
    config = tmp_path / "_config.yml"
    runner.stage_config(REPO_ROOT / "_config.yml", config, partial=True)
    staged, original = (
        yaml.safe_load(config.read_text()),
        yaml.safe_load((REPO_ROOT / "_config.yml").read_text()),
    )
    suppressed = staged["sphinx"]["config"].pop("suppress_warnings")
    kept = original["sphinx"]["config"].pop("suppress_warnings")
    assert suppressed == kept + list(runner.PARTIAL_BOOK_SUPPRESSED)
    assert staged == original  # nothing else changes


def test_stage_book_names_the_pages_left_out(tmp_path, capsys):
    build = tmp_path / "build"
    executed = build / "src" / "notebooks" / "table1_dataset.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    src = runner.stage_book(build, mathjax=False)
    assert runner.toc_notebooks(src / "_toc.yml") == ["notebooks/table1_dataset"]
    lines = [line for line in capsys.readouterr().out.splitlines() if "left out" in line]
    assert len(lines) == 1 and lines[0].endswith(", ".join(PAGES[1:]))
