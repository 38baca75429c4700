"""Beats: R peaks and QRS complexes on real records, the padding never delineated."""

import numpy as np
import pytest

from ecgrepro.beats import delineate_records, qrs_mask, r_peaks, run_lengths, valid_mask


@pytest.fixture(scope="module")
def records(data_root):
    from ecgrepro.data import load_ptbxl

    ds = load_ptbxl(data_root, 100, 1000)
    return np.array(ds.signals[:3]), [str(r) for r in ds.records.record[:3]]


def test_valid_mask():
    assert valid_mask(5).all()
    assert valid_mask(5, 2).tolist() == [False, False, False, True, True]
    with pytest.raises(ValueError, match="n_valid"):
        valid_mask(5, 6)


def test_run_lengths():
    assert run_lengths(np.array([0, 1, 1, 0, 1, 0, 1, 1, 1], bool)).tolist() == [2, 1, 3]
    assert run_lengths(np.zeros(4, bool)).tolist() == []


def test_r_peaks_on_a_padded_record(records):
    signals, names = records
    lead_ii = signals[0, 1]
    peaks = r_peaks(lead_ii, 100.0, record=names[0])
    assert 6 <= len(peaks) <= 20  # 10 s at 36-120 beats/min
    padded = np.r_[np.zeros(700, np.float32), lead_ii]
    shifted = r_peaks(padded, 100.0, n_valid=1000, record=names[0])
    np.testing.assert_array_equal(shifted, peaks + 700)  # found in the signal, not the padding
    with pytest.raises(ValueError, match="rec-z: the lead is flat"):
        r_peaks(np.zeros(1000), 100.0, record="rec-z")


def test_qrs_mask_on_a_padded_record_matches_the_unpadded_one(records):
    signals, names = records
    mask, leads, count = qrs_mask(signals[0], 100.0, names[0])
    padded = np.concatenate([np.zeros((12, 700), np.float32), signals[0]], axis=1)
    pmask, pleads, pcount = qrs_mask(padded, 100.0, names[0], n_valid=1000)
    assert not pmask[:700].any()
    np.testing.assert_array_equal(pmask[700:], mask)
    assert (pleads, pcount) == (leads, count) == (12, count)


def test_delineate_records_reports_failures_and_is_storable(records):
    signals, names = records
    signals = signals.copy()
    signals[2] = 0.0  # a flat record: reported, not raised
    out = delineate_records(signals, 100.0, names, n_valid=np.array([1000, 600, 1000]))
    assert out["mask"].shape == (3, 1000) and out["mask"].dtype == bool
    assert not out["mask"][1, :400].any()  # record 1 taken as padded: nothing delineated there
    assert out["problem"][0] == "" and "QRS delineation failed" in out["problem"][2]
    assert not out["mask"][2].any() and np.isnan(out["qrs_ms"][2])
    assert 40 <= out["qrs_ms"][0] <= 160 and out["leads_delineated"][0] == 12
    assert all(v.dtype != object for v in out.values())  # storable without pickle
