"""Trained models as a release (issue #27, item 3): export -> import -> reused, never unpickled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgrepro import cli
from ecgrepro.artifacts import check_artifact
from ecgrepro.metrics import f1_optimal_thresholds
from ecgrepro.pipeline import get_model
from ecgrepro.release import ReleaseError, export_models, import_models, verify_release
from ecgrepro.train import Samples


@pytest.fixture()
def build(trained, tmp_path) -> Path:
    """A build folder holding the session's trained model, with its validation scores."""
    shared, datasets = trained
    build = tmp_path / "build"
    folder = build / "artifacts" / shared.folder.name
    # only the model's own files: other tests may have stored scores beside the shared artifact
    folder.mkdir(parents=True)
    for name in ("model.pt", "log.csv", "meta.json"):
        shutil.copy2(shared.folder / name, folder / name)
    m = get_model(shared.spec, datasets, folder.parent, "cpu", log=None)
    assert m.reused and m.folder == folder
    m.scores("cpsc-val", Samples.from_dataset(datasets["cpsc"], "val", augment=False), "k0")
    return build


def test_export_then_import_gives_the_model_the_book_reuses(trained, build, tmp_path):
    m, datasets = trained
    release = tmp_path / "release"
    report = export_models(build, release, log=None)
    assert report.models == [m.folder.name] and report.skipped == []
    names = sorted(p.name for p in (release / m.folder.name).iterdir())
    assert names == [
        "labels-cpsc-val-k0.npy",
        "log.csv",
        "meta.json",
        "model.safetensors",
        "scores-cpsc-val-k0.npy",
    ]
    manifest = verify_release(release)
    # thresholds from the stored validation scores and labels, as the book computes them
    result = manifest["results"][m.folder.name]
    val = Samples.from_dataset(datasets["cpsc"], "val", augment=False)
    np.testing.assert_array_equal(np.load(release / m.folder.name / names[0]), val.y)
    stored = np.load(build / "artifacts" / m.folder.name / "scores-cpsc-val-k0.npy")
    want, _ = f1_optimal_thresholds(val.y, stored)  # train_on = ("cpsc",): its val fold only
    assert m.spec.train_on == ("cpsc",) or list(m.spec.train_on) == ["cpsc"]
    np.testing.assert_allclose(result["thresholds"], want)
    assert result["n_train"] > 0 and result["metrics"] == {}  # no test split was scored
    assert set(manifest) >= {"profiles", "data", "commit", "versions"}
    assert set(manifest["files"]) == {f"{m.folder.name}/{n}" for n in names}
    assert {"torch", "numpy", "safetensors", "python"} <= set(manifest["versions"])
    fresh = tmp_path / "fresh"
    assert import_models(release, fresh, log=None).models == [m.folder.name]
    folder = fresh / "artifacts" / m.folder.name
    check_artifact(folder)
    again = get_model(m.spec, datasets, fresh / "artifacts", "cpu", log=None)
    assert again.reused and again.folder == folder  # nothing trained
    for k, v in m.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v), k
    np.testing.assert_array_equal(
        np.load(folder / "scores-cpsc-val-k0.npy"),
        np.load(build / "artifacts" / m.folder.name / "scores-cpsc-val-k0.npy"),
    )
    # a second import keeps what is there
    assert import_models(release, fresh, log=None).skipped[0][1].startswith("already stored")


def test_a_changed_file_stops_the_import_and_installs_nothing(trained, build, tmp_path):
    m, _ = trained
    release = tmp_path / "release"
    export_models(build, release, log=None)
    log_csv = release / m.folder.name / "log.csv"
    log_csv.write_text(log_csv.read_text() + "0,0,0\n")
    with pytest.raises(ReleaseError, match=rf"{m.folder.name}/log.csv: its size or SHA-256"):
        import_models(release, tmp_path / "fresh", log=None)
    assert not (tmp_path / "fresh" / "artifacts").exists()


def test_a_manifest_entry_outside_the_release_is_refused(trained, build, tmp_path):
    release = tmp_path / "release"
    export_models(build, release, log=None)
    manifest = json.loads((release / "manifest.json").read_text())
    manifest["files"]["../../outside.txt"] = {"bytes": 0, "sha256": ""}
    (release / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReleaseError, match=r"lists '\.\./\.\./outside\.txt', which is not a file"):
        verify_release(release)


def test_export_leaves_out_a_model_that_fails_its_check(trained, build, tmp_path):
    m, _ = trained
    bad = build / "artifacts" / f"ours1-{m.key}"  # another name, the same key
    shutil.copytree(build / "artifacts" / m.folder.name, bad)
    (bad / "model.pt").write_bytes(b"not a model")
    report = export_models(build, tmp_path / "release", log=None)
    assert report.models == [m.folder.name]
    assert report.skipped[0][0] == bad.name and "model.pt holds 11 bytes" in report.skipped[0][1]


def test_the_commands_export_and_import(build, tmp_path, capsys):
    release = str(tmp_path / "release")
    assert cli.main(["export", release, "--build-dir", str(build)]) == 0
    assert cli.main(["export", release, "--build-dir", str(build)]) == 2  # never overwritten
    assert "a release is already there" in capsys.readouterr().err
    assert cli.main(["import", release, "--build-dir", str(tmp_path / "fresh")]) == 0
