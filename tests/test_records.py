"""Every record form of the real sample reads, in mV, in the standard lead order."""

import numpy as np
import pytest

from ecgrepro.config import LEADS
from ecgrepro.data import cpsc, ptbxl
from ecgrepro.data.records import read_cpsc_original, read_wfdb


@pytest.mark.parametrize("fs_hz, n", [(100, 1000), (500, 5000)])
def test_ptbxl_record_reads(data_root, fs_hz, n):
    meta, _ = ptbxl.load_metadata(data_root)
    rec = ptbxl.read_record(data_root, meta, 1, fs_hz)
    assert rec.signal.shape == (n, 12)
    assert rec.fs == fs_hz
    assert np.isfinite(rec.signal).all()
    # mV: a 12-lead ECG stays within a few mV
    assert 0.1 < np.abs(rec.signal).max() < 20


def test_ptbxl_lead_order_is_standard(data_root):
    # the header stores AVR/AVL/AVF in upper case; columns must follow LEADS
    rec = read_wfdb(data_root / "ptb-xl" / "records100" / "00000" / "00001_lr")
    raw = __import__("wfdb").rdrecord(
        str(data_root / "ptb-xl" / "records100" / "00000" / "00001_lr")
    )
    upper = [n.upper() for n in raw.sig_name]
    for k, lead in enumerate(LEADS):
        np.testing.assert_allclose(rec.signal[:, k], raw.p_signal[:, upper.index(lead.upper())])


def test_cpsc_forms_agree(data_root):
    a = read_wfdb(data_root / "cpsc2018" / "wfdb-2020" / "A0001")
    b = read_wfdb(data_root / "cpsc2018" / "wfdb-snomed" / "A0001")
    assert a.fs == b.fs == 500
    assert a.signal.shape == (7500, 12)
    np.testing.assert_array_equal(a.signal, b.signal)
    assert "Dx: RBBB" in a.comments
    assert "Dx: 59118001" in b.comments


def test_cpsc_original_form_reads(data_root):
    rec = read_cpsc_original(data_root / "cpsc2018" / "original" / "A1980.mat")
    assert rec.record == "A1980"
    assert rec.signal.shape[1] == 12 and rec.signal.shape[0] >= 5000
    assert rec.fs == 500
    assert np.isfinite(rec.signal).all()


def test_cpsc_index_and_labels(data_root):
    labels, report = cpsc.load_reference(data_root)
    assert len(labels) == 6877 and len(report) == 0
    index = cpsc.index_records(data_root)
    chosen = cpsc.choose_forms(index, labels)
    assert len(chosen) == 160
    assert (chosen.n_forms > 1).sum() == 10  # A0001-A0010 in both WFDB forms
    assert chosen.at["A0001", "form"] == "wfdb" and chosen.at["A1980", "form"] == "original"
    # sample README: label counts of A0001-A0150 for codes 1-9
    first150 = labels.loc[[f"A{i:04d}" for i in range(1, 151)]]
    assert first150[
        ["SNR", "AF", "IAVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"]
    ].sum().tolist() == [20, 24, 7, 8, 32, 13, 18, 19, 13]
    assert (first150.classes.map(len) > 1).sum() == 4


def test_header_dx_cross_check(data_root):
    import wfdb

    comments = wfdb.rdheader(str(data_root / "cpsc2018" / "wfdb-snomed" / "A0001")).comments
    assert cpsc.check_header_labels("A0001", comments, ["RBBB"]) is None
    assert "REFERENCE.csv ['AF']" in cpsc.check_header_labels("A0001", comments, ["AF"])
