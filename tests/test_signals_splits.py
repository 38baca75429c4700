"""Signal preparation (crop, pad, resample) and the seeded splits."""

import numpy as np
import pandas as pd
import pytest

from ecgrepro.data import MissingRecordsWarning, load_cpsc, load_ptbxl
from ecgrepro.data.signals import prepare_signal, resample, valid_length
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


def test_folds_of_a_toy_root_without_a_class_of_ten():
    """40 records, no class with 10: scikit-learn refuses to stratify; seeded folds instead."""
    counts = [9, 9, 8, 6, 5, 3]
    labels = pd.Series(np.repeat(list("ABCDEF"), counts), index=[f"r{i}" for i in range(40)])
    a, b = stratified_folds(labels, 0), stratified_folds(labels, 0)
    pd.testing.assert_series_equal(a, b)
    assert sorted(a.value_counts().tolist()) == [4] * 10


@pytest.mark.parametrize(
    "n_in, fs_in, fs_out, n",
    [
        (7500, 500, 100, 3000),
        (7501, 500, 100, 3000),
        (999, 100, 500, 15000),
        (20000, 500, 500, 15000),
    ],
)
def test_valid_length_is_the_resampled_length(n_in, fs_in, fs_out, n):
    out = prepare_signal(ramp(n_in) + 1, fs_in, fs_out, n)
    n_valid = valid_length(n_in, fs_in, fs_out, n)
    assert n_valid == min(len(resample(ramp(n_in), fs_in, fs_out)), n)
    assert (out[:, : n - n_valid] == 0).all()
    assert out[0, n - n_valid] != 0


def test_valid_length_marks_the_front_padding(mini_root, tmp_path):
    # CPSC A0001 has 7,500 samples at 500 Hz: 1,500 at 100 Hz, half a 3,000-sample window
    with pytest.warns(MissingRecordsWarning):
        ds = load_cpsc(mini_root, 100, 3000, cache_dir=tmp_path)
    rec = ds.records.set_index("record")
    assert ds.records.n_valid.dtype == np.int64
    assert rec.n_valid.to_dict() == {"A0001": 1500, "A0002": 1000, "A0003": 1000, "A1980": 1000}
    for i, row in ds.records.iterrows():
        x = ds.signals[i]
        pad = ds.n_samples - row.n_valid
        assert (x[:, :pad] == 0).all(), row.record  # exactly zero before the record
        assert (x[:, pad:] != 0).any(axis=1).all(), row.record  # every lead has signal after
    # the same window at 500 Hz: 7,500 samples, longer ones are cut to the window
    with pytest.warns(MissingRecordsWarning):
        ds = load_cpsc(mini_root, 500, 6000, cache_dir=tmp_path)
    assert ds.records.set_index("record").n_valid.to_dict() == {
        "A0001": 6000,
        "A0002": 5000,
        "A0003": 5000,
        "A1980": 5000,
    }
    assert (ds.signals[1, :, :1000] == 0).all() and (ds.signals[0, :, :10] != 0).any()
    # PTB-XL: 1,000 samples at 100 Hz in a 1,500-sample window
    with pytest.warns(MissingRecordsWarning):
        ptb = load_ptbxl(mini_root, 100, 1500, cache_dir=tmp_path)
    assert ptb.records.n_valid.tolist() == [1000, 1000, 1000]
    assert (np.asarray(ptb.signals)[:, :, :500] == 0).all()


def test_sample_datasets(sample_cpsc, sample_ptbxl):
    cpsc, ptb = sample_cpsc, sample_ptbxl
    assert cpsc.signals.shape == (160, 12, 1000) and cpsc.y.shape == (160, 9)
    assert cpsc.records.split.value_counts().to_dict() == {"train": 128, "val": 16, "test": 16}
    assert len(cpsc.skipped) == 0 and cpsc.inventory["header_disagreements"] == 0
    assert ptb.inventory["listed"] == 21799 and ptb.inventory["kept_by_mapping"] == 21541
    assert ptb.signals.shape[0] == ptb.inventory["used"] == 1958
    assert ptb.inventory["source_fs_hz"] == 100 and ptb.notes == []
    assert ptb.records.fold.between(1, 10).all()
    assert ptb.records.split.isin(["train", "val", "test"]).all()
    # 10 s records fill a 10 s window
    assert (ptb.records.n_valid == 1000).all()
    assert (cpsc.records.n_valid == 1000).all()


def test_ptbxl_splits_are_patient_safe(data_root, sample_ptbxl):
    # strat_fold keeps every patient in one fold: no patient_id in two splits
    records = sample_ptbxl.records
    assert records.patient_id.notna().all()
    meta = pd.read_csv(data_root / "ptb-xl" / "ptbxl_database.csv", index_col="ecg_id")
    expected = meta.loc[records.record.astype(int), "patient_id"].astype(int).tolist()
    assert records.patient_id.astype(int).tolist() == expected
    splits_per_patient = records.groupby("patient_id").split.nunique()
    assert splits_per_patient.max() == 1, splits_per_patient[splits_per_patient > 1].index.tolist()
    # the sample has patients with several records, so the check has teeth
    assert records.patient_id.nunique() < len(records)
    assert (records.groupby("patient_id").size() > 1).sum() > 50
