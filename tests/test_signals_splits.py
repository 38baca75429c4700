"""Signal preparation (crop, pad, resample) and the seeded splits."""

import numpy as np
import pandas as pd
import pytest

from ecgrepro.data import load_cpsc, load_ptbxl
from ecgrepro.data.signals import prepare_signal
from ecgrepro.data.splits import split_of, stratified_folds


def ramp(n):
    return np.tile(np.arange(n, dtype=float)[:, None], (1, 12))


def test_keeps_last_samples():
    out = prepare_signal(ramp(20000), 500, 500, 15000)
    assert out.shape == (12, 15000) and out.dtype == np.float32
    assert out[0, 0] == 5000 and out[0, -1] == 19999


def test_pads_front_with_zeros():
    out = prepare_signal(ramp(5000) + 1, 500, 500, 15000)
    assert (out[:, :10000] == 0).all()
    assert out[0, 10000] == 1 and out[0, -1] == 5000


def test_resample_length_and_content():
    t = np.arange(5000) / 500
    sig = np.tile(np.sin(2 * np.pi * 1.0 * t)[:, None], (1, 12))
    out = prepare_signal(sig, 500, 100, 1000)
    expected = np.sin(2 * np.pi * 1.0 * np.arange(1000) / 100)
    np.testing.assert_allclose(out[0, 50:-50], expected[50:-50], atol=1e-2)


def test_bad_ratio_and_length():
    with pytest.raises(ValueError, match="n_samples must be positive"):
        prepare_signal(ramp(10), 500, 500, 0)
    with pytest.raises(ValueError, match="small rational"):
        prepare_signal(ramp(10), 500, 500 * np.pi, 10)


def test_folds_seeded_and_stratified():
    labels = pd.Series(
        np.repeat(list("ABCD"), [40, 30, 20, 10]), index=[f"r{i}" for i in range(100)]
    )
    a, b, c = stratified_folds(labels, 0), stratified_folds(labels, 0), stratified_folds(labels, 1)
    pd.testing.assert_series_equal(a, b)
    assert not a.equals(c)
    assert sorted(a.unique()) == list(range(1, 11))
    counts = pd.crosstab(a, labels)
    assert (counts["A"] == 4).all() and (counts["D"] == 1).all()
    assert split_of(pd.Series([1, 8, 9, 10])).tolist() == ["train", "train", "val", "test"]


def test_sample_datasets(data_root, tmp_path):
    cpsc = load_cpsc(data_root, 100, 1000, seed=0, cache_dir=tmp_path)
    assert cpsc.signals.shape == (160, 12, 1000) and cpsc.y.shape == (160, 9)
    assert cpsc.records.split.value_counts().to_dict() == {"train": 128, "val": 16, "test": 16}
    assert len(cpsc.skipped) == 0 and cpsc.inventory["header_disagreements"] == 0
    ptb = load_ptbxl(data_root, 100, 1000, cache_dir=tmp_path)
    assert ptb.inventory["listed"] == 21799 and ptb.inventory["kept_by_mapping"] == 21541
    assert ptb.signals.shape[0] == ptb.inventory["used"] == 1958
    assert ptb.records.fold.between(1, 10).all()
    # patient-safe: no patient in two splits (strat_fold is per patient)
    assert ptb.records.split.isin(["train", "val", "test"]).all()
