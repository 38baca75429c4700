"""Bad input: a named error per record, and batch readers that skip and count it."""

import os
import shutil

import numpy as np
import pytest
import scipy.io

from ecgrepro.data import RecordError, cpsc, load_cpsc, load_ptbxl
from ecgrepro.data.labels import ptbxl_classes
from ecgrepro.data.records import read_cpsc_original, read_wfdb

PTB_DIR = ("ptb-xl", "records100", "00000")

# mini_root lacks almost every listed record: the warning is tested in test_data_loaders.py
pytestmark = pytest.mark.filterwarnings("ignore::ecgrepro.data.MissingRecordsWarning")


def n_caches(cache):
    """Cache folders (the digest memory and lock files beside them are not caches)."""
    return sum(p.is_dir() and not p.name.startswith(".") for p in cache.iterdir())


def rec_path(root, i):
    return root.joinpath(*PTB_DIR, f"{i:05d}_lr")


def test_truncated_dat_is_named(mini_root):
    dat = rec_path(mini_root, 2).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    with pytest.raises(RecordError, match=r"record ptbxl:2: .*(truncated|unreadable)"):
        read_wfdb(rec_path(mini_root, 2), record="ptbxl:2")


def test_bad_header_is_named(mini_root):
    rec_path(mini_root, 3).with_suffix(".hea").write_text("garbage header\n")
    with pytest.raises(RecordError, match=r"record 00003_lr: unreadable header"):
        read_wfdb(rec_path(mini_root, 3))


def test_missing_signal_file_is_named(mini_root):
    rec_path(mini_root, 1).with_suffix(".dat").unlink()
    with pytest.raises(RecordError, match=r"missing file .*00001_lr.dat"):
        read_wfdb(rec_path(mini_root, 1))


def test_missing_header_is_named(mini_root):
    with pytest.raises(
        RecordError, match=r"record 00009_lr: missing file .*00009_lr.hea \(the WFDB header"
    ):
        read_wfdb(rec_path(mini_root, 9))


def test_cpsc_wfdb_record_without_header_is_named(mini_root, tmp_path):
    # A WFDB-form record (.mat holding `val`) whose .hea is gone used to be taken for the
    # original release and failed with "KeyError: 'ECG'".
    wfdb_dir = mini_root / "cpsc2018" / "wfdb"
    (wfdb_dir / "A0002.hea").unlink()
    index = cpsc.index_records(mini_root)
    assert index.set_index("record").at["A0002", "form"] == "wfdb"
    pattern = r"record A0002: missing file .*A0002\.hea \(the WFDB header is missing\)"
    with pytest.raises(RecordError, match=pattern):
        cpsc.read_record("A0002", "wfdb", wfdb_dir / "A0002")
    # read as the original release, the same file is named as a headerless WFDB signal
    with pytest.raises(RecordError, match=pattern) as err:
        read_cpsc_original(wfdb_dir / "A0002.mat")
    assert "KeyError" not in str(err.value)
    ds = load_cpsc(mini_root, 100, 1000, cache_dir=tmp_path / "cache")
    problems = dict(ds.skipped.skipped)
    assert "the WFDB header is missing" in problems["A0002"]
    assert "KeyError" not in problems["A0002"]
    assert list(ds.records.record) == ["A0001", "A0003", "A1980"]


def test_original_mat_without_ecg_struct_is_named(tmp_path):
    scipy.io.savemat(str(tmp_path / "A1981.mat"), {"other": np.zeros((12, 10))})
    with pytest.raises(RecordError, match=r"record A1981: .*no MATLAB struct 'ECG'.*\['other'\]"):
        read_cpsc_original(tmp_path / "A1981.mat")


def test_wrong_lead_set_is_named(mini_root):
    hea = rec_path(mini_root, 1).with_suffix(".hea")
    hea.write_text(hea.read_text().replace(" V6", " V7"))
    with pytest.raises(RecordError, match="wrong lead set"):
        read_wfdb(rec_path(mini_root, 1))


def test_nan_samples_are_named(tmp_path, data_root):
    mat = scipy.io.loadmat(str(data_root / "cpsc2018" / "original" / "A1980.mat"))
    mat["ECG"]["data"][0, 0][6, 100:110] = np.nan
    scipy.io.savemat(str(tmp_path / "A1980.mat"), {"ECG": mat["ECG"]})
    with pytest.raises(
        RecordError, match=r"record A1980: 10 NaN/infinite samples in leads \['V1'\]"
    ):
        read_cpsc_original(tmp_path / "A1980.mat")


def test_unknown_label_code_is_named():
    with pytest.raises(RecordError, match=r"record 7: unknown SCP code\(s\) \['XYZ'\]"):
        ptbxl_classes("7", {"NORM": 100.0, "XYZ": 50.0})
    # likelihood 0 codes are ignored, as in the published notebooks
    assert ptbxl_classes("7", {"NORM": 100.0, "XYZ": 0.0}) == ["SNR"]


def test_batch_readers_skip_and_report(mini_root, tmp_path):
    # PTB-XL: record 2 truncated; records 1 and 3 fine
    dat = rec_path(mini_root, 2).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    ds = load_ptbxl(mini_root, 100, 1000, cache_dir=tmp_path / "cache")
    assert list(ds.records.record) == ["1", "3"]
    assert ds.signals.shape == (2, 12, 1000)
    assert [r for r, _ in ds.skipped.skipped] == ["ptbxl:2"]
    assert ds.inventory["signal_errors"] == 1
    # CPSC: A0002's header is broken, an unknown label code in REFERENCE.csv for A0003
    cpsc_dir = mini_root / "cpsc2018"
    (cpsc_dir / "wfdb" / "A0002.hea").write_text("A0002 12 500\n")
    ref = cpsc_dir / "REFERENCE.csv"
    ref.write_text(ref.read_text().replace("A0003,2,,", "A0003,12,,"))
    ds = load_cpsc(mini_root, 100, 1000, cache_dir=tmp_path / "cache")
    assert list(ds.records.record) == ["A0001", "A1980"]
    problems = dict(ds.skipped.skipped)
    assert "unknown label code" in problems["A0003"]
    assert "A0002" in problems
    frame = ds.skipped.to_frame()
    assert list(frame.columns) == ["dataset", "record", "problem"] and len(frame) == 2


def test_cache_is_reused_and_invalidated(mini_root, tmp_path):
    cache = tmp_path / "cache"
    a = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    assert n_caches(cache) == 1
    b = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    np.testing.assert_array_equal(a.signals, b.signals)
    assert n_caches(cache) == 1  # reused
    load_ptbxl(mini_root, 100, 500, cache_dir=cache)
    assert n_caches(cache) == 2  # another length is another cache
    dat = rec_path(mini_root, 3).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:2000])  # a changed record invalidates the cache
    c = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    assert n_caches(cache) == 3
    assert list(c.records.record) == ["1", "2"]


def test_cache_sees_a_same_size_replacement(mini_root, tmp_path):
    # The cache was keyed on file sizes only: a record replaced by another of the same
    # size kept its stale decoded signal.
    cache = tmp_path / "cache"
    a = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    assert list(a.records.record) == ["1", "2", "3"]
    dat2 = rec_path(mini_root, 2).with_suffix(".dat")
    dat3 = rec_path(mini_root, 3).with_suffix(".dat")
    assert dat3.stat().st_size == dat2.stat().st_size
    before = dat3.stat().st_mtime_ns
    os.chmod(dat3, 0o644)
    shutil.copyfile(dat2, dat3)  # different bytes, same size
    os.utime(dat3, ns=(before + 10**9, before + 10**9))  # a new mtime, whatever the clock
    assert dat3.stat().st_size == dat2.stat().st_size
    b = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    assert b.cache_key != a.cache_key
    assert n_caches(cache) == 2  # rebuilt, not reused
    np.testing.assert_array_equal(b.signals[2], a.signals[1])  # record 3 now holds 2's samples
    assert not np.array_equal(b.signals[2], a.signals[2])
