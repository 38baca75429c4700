"""The label audit and the rhythm-aware mapping, rule by rule (the labels page)."""

import pytest

from ecgrepro.data import ptbxl, summary
from ecgrepro.data.errors import RecordError
from ecgrepro.data.labels import DROP, SINUS, label_mapping, ptbxl_classes, scp_mapping

RA = "rhythm-aware"


@pytest.fixture(scope="module")
def audit(data_root):
    meta, _ = ptbxl.load_metadata(data_root)
    return summary.label_audit(meta, ptbxl.load_statements(data_root)).set_index("scp_code")


@pytest.mark.parametrize(
    "code, records, positive",
    [("AFIB", 1514, 48), ("AFLT", 73, 56), ("PAC", 398, 37), ("SR", 16748, 0), ("STACH", 826, 4)],
)
def test_audit_counts_on_the_complete_metadata(audit, code, records, positive):
    assert audit.at[code, "records"] == records
    assert audit.at[code, "records"] - audit.at[code, "likelihood_zero"] == positive


def test_audit_covers_every_statement_and_labels_the_zero_records(audit, data_root):
    assert len(audit) == 71
    assert audit.at["AFIB", "category"] == "rhythm" and audit.at["NST_", "category"] == (
        "diagnostic+form"
    )
    # the 1,466 AF records at likelihood 0: their published labels add up to them (+ co-labels)
    pairs = dict(p.split(":") for p in audit.at["AFIB", "published_classes"].split(";"))
    assert int(pairs["SNR"]) > int(pairs["AF"])
    assert sum(int(v) for v in pairs.values()) >= audit.at["AFIB", "likelihood_zero"]
    assert audit.at["NORM", "published_classes"] == ""  # never at likelihood 0


def test_class_counts_text_orders_by_count_and_names_dropped():
    import pandas as pd

    text = summary.class_counts_text(pd.Series([["SNR"], ["STE", "SNR"], [], ["STE"], ["SNR"]]))
    assert text == "SNR:3;STE:2;dropped:1"


def test_rhythm_aware_decides_every_statement(data_root):
    statements = ptbxl.load_statements(data_root)
    ra = label_mapping(RA).table
    assert set(ra.index) == set(statements.index)
    assert (ra.reason.str.len() > 10).all()
    published = scp_mapping()
    for code, row in ra.iterrows():
        category = statements.at[code, "category"]
        if "diagnostic" in category:  # diagnostic statements keep the published class and rule
            assert (row.cpsc_class, row.likelihood) == (published[code], ">0"), code
        else:  # rhythm and form statements count at any likelihood
            assert row.likelihood == "any", code
    assert list(ra.index[ra.cpsc_class == SINUS]) == ["SR"]


@pytest.mark.parametrize(
    "codes, published, rhythm_aware",
    [
        # AF recorded with likelihood 0: the published mapping labels it SNR
        ({"NORM": 100.0, "AFIB": 0.0}, ["SNR"], ["AF"]),
        ({"IMI": 50.0, "AFLT": 0.0}, ["STE"], ["AF", "STE"]),
        # SNR requires sinus rhythm ...
        ({"NORM": 100.0, "SR": 0.0}, ["SNR"], ["SNR"]),
        ({"NORM": 100.0}, ["SNR"], []),
        ({"NORM": 100.0, "SBRAD": 0.0}, ["SNR"], []),
        ({"NORM": 100.0, "STACH": 0.0}, ["SNR"], []),
        ({"NORM": 100.0, "SARRH": 0.0}, ["SNR"], []),
        # ... and no other class
        ({"NORM": 100.0, "SR": 0.0, "PVC": 0.0}, ["SNR"], ["PVC"]),
        ({"LVH": 100.0, "SR": 0.0, "CRBBB": 100.0}, ["SNR", "RBBB"], ["RBBB"]),
        ({"NORM": 100.0, "SR": 0.0, "PAC": 0.0}, ["SNR"], ["PAC"]),
        # SR gives no class by itself; ecg_id 6001 ({'NST_': 100.0, 'SR': 0.0})
        ({"NST_": 100.0, "SR": 0.0}, ["STD"], ["STD"]),
        ({"SR": 0.0, "LOWT": 0.0}, [], []),
        # a class-less form statement does not block SNR
        ({"NORM": 100.0, "SR": 0.0, "LOWT": 0.0}, ["SNR"], ["SNR"]),
        # diagnostic statements keep the published rule, likelihood > 0
        ({"NORM": 100.0, "SR": 0.0, "NST_": 0.0}, ["SNR"], ["SNR"]),
        # form statements that name a class
        ({"NORM": 80.0, "SR": 0.0, "STD_": 0.0}, ["SNR"], ["STD"]),
        ({"NORM": 80.0, "SR": 0.0, "STE_": 0.0}, ["SNR"], ["STE"]),
        ({"NORM": 80.0, "SR": 0.0, "LPR": 0.0}, ["SNR"], ["IAVB"]),
        # rhythm statements the published mapping misreads
        ({"PACE": 100.0}, ["PAC"], []),
        ({"BIGU": 100.0, "SR": 0.0, "NORM": 100.0}, ["SNR", "RBBB"], []),
        ({"PSVT": 100.0, "NORM": 100.0}, ["SNR", "AF"], []),
        ({"TRIGU": 0.0, "SR": 0.0, "NORM": 100.0}, ["SNR"], []),
        # another rhythm beside SR rules SNR out (ecg_id 12778: NORM, SR, SARRH)
        ({"NORM": 100.0, "SR": 0.0, "SARRH": 0.0}, ["SNR"], []),
        ({"NORM": 100.0, "SR": 0.0, "SVARR": 0.0, "PAC": 0.0}, ["SNR"], ["PAC"]),
    ],
)
def test_mapping_rules(codes, published, rhythm_aware):
    assert ptbxl_classes("t", codes) == published
    assert ptbxl_classes("t", codes, RA) == rhythm_aware


def test_unknown_code_at_likelihood_zero_is_an_error_only_where_it_could_count():
    codes = {"NORM": 100.0, "XYZ": 0.0}
    assert ptbxl_classes("t", codes) == ["SNR"]  # published: likelihood 0 is never read
    with pytest.raises(RecordError, match=r"t: .*unknown SCP code.*XYZ"):
        ptbxl_classes("t", codes, RA)


def test_unknown_mapping_name():
    with pytest.raises(ValueError, match="unknown label mapping 'nope'"):
        label_mapping("nope")


def test_rhythm_aware_labels_the_complete_metadata(data_root):
    meta, report = ptbxl.load_metadata(data_root, RA)
    assert len(report) == 0
    table = summary.table1(meta)
    published = summary.table1(ptbxl.load_metadata(data_root)[0])
    assert table.at["AF", "count"] > 5 * published.at["AF", "count"]
    assert table.at["SNR", "count"] < published.at["SNR", "count"]
    # SNR never shares a record with another class
    snr = meta[meta.SNR == 1]
    assert (snr[[c for c in table.index if c != "SNR"]].sum(axis=1) == 0).all()
    assert (DROP in set(label_mapping(RA).classes)) and len(meta) == 21799
