"""Artifact keys: what determines a model changes its key, nothing else does."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ecgrepro.artifacts import artifact_key
from ecgrepro.data import ECGDataset, SkipReport
from ecgrepro.pipeline import get_model, paper_specs


def fake_dataset(name, n=12, length=128, cache_key="abc", seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.1, (n, 12, length)).astype(np.float32)
    split = np.array(["train"] * (n - 4) + ["val"] * 2 + ["test"] * 2)
    records = pd.DataFrame({"record": [f"{name}{i}" for i in range(n)], "split": split})
    return ECGDataset(name, x, y, records, 100, length, SkipReport(name), cache_key=cache_key)


@pytest.fixture()
def datasets():
    return {"cpsc": fake_dataset("cpsc"), "ptbxl": fake_dataset("ptbxl", seed=1)}


def test_parameter_change_invalidates(datasets):
    spec = paper_specs()["original"]
    key = artifact_key(spec, datasets, "cpu")
    assert artifact_key(spec, datasets, "cpu") == key
    for change in ({"epochs": 29}, {"lr": 1e-3}, {"seed": 1}, {"batch_size": 16}):
        assert artifact_key(dataclasses.replace(spec, **change), datasets, "cpu") != key
    assert artifact_key(spec, datasets, "cuda") != key


def test_data_change_invalidates_only_models_that_use_it(datasets):
    specs = paper_specs()
    before = {n: artifact_key(s, datasets, "cpu") for n, s in specs.items()}
    changed = {**datasets, "ptbxl": fake_dataset("ptbxl", seed=1, cache_key="other signals")}
    after = {n: artifact_key(s, changed, "cpu") for n, s in specs.items()}
    assert after["original"] == before["original"]  # trained on CPSC only
    assert after["ours2"] != before["ours2"] and after["ptbxl_only"] != before["ptbxl_only"]
    relabelled = {**datasets, "cpsc": fake_dataset("cpsc", seed=5)}
    assert artifact_key(specs["original"], relabelled, "cpu") != before["original"]


def test_unrelated_parameters_do_not_change_the_key(datasets):
    # epochs_ours and the Ours_2 augmentation choice do not touch the Original
    a = paper_specs(epochs_ours=30)["original"]
    b = paper_specs(epochs_ours=3, augment_cpsc_in_ours2=True)["original"]
    assert artifact_key(a, datasets, "cpu") == artifact_key(b, datasets, "cpu")
    # the parent's key enters Ours_1's
    ours1 = paper_specs()["ours1"]
    assert artifact_key(ours1, datasets, "cpu", "p1") != artifact_key(ours1, datasets, "cpu", "p2")


def test_artifact_is_reused_and_retrained_on_request(datasets, tmp_path):
    spec = dataclasses.replace(paper_specs()["original"], epochs=1, batch_size=4)
    first = get_model(spec, datasets, tmp_path, log=None)
    assert not first.reused and (first.folder / "model.pt").is_file()
    second = get_model(spec, datasets, tmp_path, log=None)
    assert second.reused and second.key == first.key
    for k, v in first.model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), second.model.state_dict()[k].numpy())
    third = get_model(spec, datasets, tmp_path, retrain=True, log=None)
    assert not third.reused
    with pytest.raises(ValueError, match="starts from original"):
        get_model(paper_specs()["ours1"], datasets, tmp_path, log=None)
