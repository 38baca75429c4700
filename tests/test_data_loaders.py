"""Loaders on incomplete data roots: the PTB-XL release fall-back, empty splits, missing records."""

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from ecgrepro.data import (
    ECGDataset,
    EmptySplitError,
    MissingRecordsWarning,
    SkipReport,
    load_cpsc,
    load_ptbxl,
    ptbxl,
)
from ecgrepro.data.records import read_wfdb
from ecgrepro.data.sample import is_shared_sample, missing_records_note
from ecgrepro.train import Samples

# ecg_id 1-10: strat_fold 3, 2, 5, 3, 4, 4, 7, 9, 10, 9 (train 7, val 2, test 1)
IDS = range(1, 11)


def ptb_only_root(tmp_path, data_root, release: int, ids=IDS):
    """A data root with ptbxl_database.csv and only the given records of one release."""
    ptb = tmp_path / "ptb-xl"
    ptb.mkdir()
    shutil.copy(data_root / "ptb-xl" / "ptbxl_database.csv", ptb)
    suffix = "lr" if release == 100 else "hr"
    folder = ptb / f"records{release}" / "00000"
    folder.mkdir(parents=True)
    for i in ids:
        for ext in (".hea", ".dat"):
            src = data_root / "ptb-xl" / f"records{release}" / "00000" / f"{i:05d}_{suffix}{ext}"
            shutil.copy(src, folder)
    return tmp_path


def test_ptbxl_falls_back_to_the_500hz_release(tmp_path, data_root):
    # only records500/: a 100 Hz profile used to load 0 records and crash in scikit-learn
    root = ptb_only_root(tmp_path, data_root, 500)
    with pytest.warns(MissingRecordsWarning):
        ds = load_ptbxl(root, 100, 1000, cache_dir=tmp_path / "cache")
    assert ds.inventory["source_fs_hz"] == 500
    assert ds.inventory["present_at_100hz"] == 0 and ds.inventory["present_at_500hz"] == 10
    assert ds.notes[0] == (
        "PTB-XL: no records in records100/; read records500/ (10 records) and resampled "
        "500 -> 100 Hz with scipy.signal.resample_poly"
    )
    assert ds.source.endswith("ptb-xl/records500")
    assert list(ds.records.record) == [str(i) for i in IDS]
    assert ds.signals.shape == (10, 12, 1000)
    assert (ds.records.n_valid == 1000).all()
    # the resampled 500 Hz record matches the official 100 Hz one (same recording)
    lr = read_wfdb(data_root / "ptb-xl" / "records100" / "00000" / "00001_lr").signal.T
    for lead in range(12):
        r = np.corrcoef(ds.signals[0, lead, :950], lr[lead, :950])[0, 1]
        assert r > 0.95, lead
    # every split is usable, as a caller sees it
    for split, n in (("train", 7), ("val", 2), ("test", 1)):
        assert len(Samples.from_dataset(ds, split)) == n


def test_choose_release_rules():
    # the usual release is read when it holds the records
    assert ptbxl.choose_release({100: 1958, 500: 480}, 100) == (100, None)
    # none at the usual rate: the other release, resampled either way
    fs, note = ptbxl.choose_release({100: 0, 500: 480}, 100)
    assert fs == 500 and "no records in records100/; read records500/" in note
    assert "resampled 500 -> 100 Hz with scipy.signal.resample_poly" in note
    fs, note = ptbxl.choose_release({100: 1958, 500: 0}, 500)
    assert fs == 100 and "resampled 100 -> 500 Hz" in note
    # markedly fewer at 100 Hz: downsample the 500 Hz release
    fs, note = ptbxl.choose_release({100: 100, 500: 480}, 100)
    assert fs == 500 and "records100/ holds only 100 records" in note
    # markedly fewer at 500 Hz: no upsampling, but say so (the sample at 500 Hz)
    fs, note = ptbxl.choose_release({100: 1958, 500: 480}, 500)
    assert fs == 500 and "lack the content above 50 Hz" in note
    # an explicit release is read, and an empty one is reported
    fs, note = ptbxl.choose_release({100: 0, 500: 480}, 100, source_fs_hz=100)
    assert fs == 100 and "source_fs_hz=100 was asked" in note
    assert ptbxl.choose_release({100: 0, 500: 0}, 100) == (100, None)


def test_empty_split_is_a_named_error(tmp_path, data_root):
    # records 1-7 are all in training folds: no validation or test record on disk
    root = ptb_only_root(tmp_path, data_root, 100, ids=range(1, 8))
    with pytest.warns(MissingRecordsWarning):
        ds = load_ptbxl(root, 100, 1000, cache_dir=tmp_path / "cache")
    assert len(ds.subset("train")[0]) == 7  # loading and the other splits are fine
    folder = root / "ptb-xl" / "records100"
    with pytest.raises(EmptySplitError) as err:
        Samples.from_dataset(ds, "test")
    msg = str(err.value)
    assert msg.startswith(
        f"ptbxl: no records in split 'test' under {folder} "
        "(expected fold 10 of ptbxl_database.csv (strat_fold): 2,198 listed,"
    )
    assert "0 of them on disk" in msg and "7 records loaded in all (train 7, val 0, test 0)" in msg
    assert isinstance(err.value, ValueError)
    assert (err.value.dataset, err.value.split, err.value.folder) == ("ptbxl", "test", str(folder))
    with pytest.raises(EmptySplitError, match=r"split 'val' .*expected fold 9 of ptbxl"):
        ds.subset("val")


def test_empty_data_root_names_folder_and_expectation(tmp_path, data_root):
    root = ptb_only_root(tmp_path, data_root, 100, ids=[])
    with pytest.warns(MissingRecordsWarning, match=r"21,799 of the 21,799 records"):
        ds = load_ptbxl(root, 100, 1000, cache_dir=tmp_path / "cache")
    assert len(ds.records) == 0 and ds.inventory["source_fs_hz"] == 100
    for split in ("train", "all"):
        with pytest.raises(
            EmptySplitError, match=rf"no records in split '{split}' under .*records100"
        ):
            ds.subset(split)


def test_cpsc_empty_split_is_named(mini_root, tmp_path):
    with pytest.warns(MissingRecordsWarning):
        ds = load_cpsc(mini_root, 100, 1000, cache_dir=tmp_path)
    counts = ds.records.split.value_counts()
    empty = next(s for s in ("test", "val", "train") if s not in counts)
    with pytest.raises(
        EmptySplitError,
        match=rf"cpsc: no records in split '{empty}' under {mini_root / 'cpsc2018'} "
        r"\(expected fold .* of the seeded \(seed 0\) 10-fold split",
    ):
        ds.subset(empty)


def test_subset_without_provenance_still_names_the_split():
    records = pd.DataFrame({"record": ["a"], "split": ["train"]})
    ds = ECGDataset(
        "toy",
        np.zeros((1, 12, 4), np.float32),
        np.zeros((1, 9)),
        records,
        100,
        4,
        SkipReport("toy"),
    )
    with pytest.raises(EmptySplitError, match=r"toy: no records in split 'test'.*train 1"):
        ds.subset("test")


def test_incomplete_root_warns(mini_root, tmp_path):
    assert not is_shared_sample(mini_root)
    with pytest.warns(MissingRecordsWarning, match=r"ptbxl: 21,796 of the 21,799 records listed"):
        ptb = load_ptbxl(mini_root, 100, 1000, cache_dir=tmp_path)
    assert any("records listed in" in n and "are missing under" in n for n in ptb.notes)
    with pytest.warns(MissingRecordsWarning, match=r"cpsc: 6,873 of the 6,877 records listed"):
        cpsc = load_cpsc(mini_root, 100, 1000, cache_dir=tmp_path)
    assert any("are missing under" in n for n in cpsc.notes)


def test_shared_sample_does_not_warn(data_root, signal_cache_dir):
    if not is_shared_sample(data_root):
        pytest.skip(f"{data_root} is not the shared sample")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingRecordsWarning)
        ptb = load_ptbxl(data_root, 100, 1000, cache_dir=signal_cache_dir)
        cpsc = load_cpsc(data_root, 100, 1000, cache_dir=signal_cache_dir)
    assert not any("missing" in n for n in ptb.notes + cpsc.notes)


def test_missing_threshold_is_one_percent(tmp_path):
    args = ("ptbxl", 1000)
    assert missing_records_note(*args, 10, tmp_path / "x.csv", tmp_path, False) is None
    with pytest.warns(MissingRecordsWarning, match=r"11 of the 1,000 records .*\(1\.1%\)"):
        assert missing_records_note(*args, 11, tmp_path / "x.csv", tmp_path, False)
    with pytest.warns(MissingRecordsWarning, match="listed in the sample's SHA256SUMS"):
        missing_records_note(*args, 500, tmp_path / "x.csv", tmp_path, True)
