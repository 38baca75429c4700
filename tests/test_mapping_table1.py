"""The PTB-XL -> 9-class mapping and Table 1 equal the paper."""

import pandas as pd
import pytest

from ecgrepro import paper
from ecgrepro.config import CLASSES
from ecgrepro.data import ptbxl, summary
from ecgrepro.data.labels import DROP, scp_mapping


@pytest.fixture(scope="module")
def meta(data_root):
    meta, report = ptbxl.load_metadata(data_root)
    assert len(report) == 0
    return meta


def test_mapping_table_shape():
    mapping = scp_mapping()
    assert mapping.index.is_unique
    assert (mapping == DROP).sum() == 11
    assert set(mapping[mapping != DROP]) == set(CLASSES)
    assert sorted(mapping[mapping == DROP].index) == sorted(
        [
            "ISCIN",
            "ISCIL",
            "DIG",
            "ISCLA",
            "RVH",
            "LNGQT",
            "RAO/RAE",
            "EL",
            "ISCAN",
            "SEHYP",
            "STACH",
        ]
    )


def test_every_positive_code_is_mapped_or_dropped(meta):
    positive = {c for codes in meta.scp for c, p in codes.items() if p > 0}
    assert len(positive) == 52  # the paper's "52 categories"
    assert positive == set(scp_mapping().index)


def test_dropped_and_kept_counts(meta):
    assert len(meta) == 21799
    assert int(meta.dropped.sum()) == 258
    assert int((~meta.dropped).sum()) == 21541


def test_table1_equals_paper_in_every_cell(meta):
    cmp = summary.compare_with_paper(summary.table1(meta), paper.table1())
    assert len(cmp) == 9 * 6
    assert cmp.equal.all(), cmp[~cmp.equal]


def test_table1_hand_computation():
    # a tiny table: 3 kept records and 1 dropped, checked by hand
    meta = pd.DataFrame(
        {
            "age": [50.0, 300.0, 70.0, 20.0],
            "sex": [0, 1, 0, 0],
            "dropped": [False, False, False, True],
            **{c: [0, 0, 0, 0] for c in CLASSES},
        }
    )
    meta.loc[[0, 1], "SNR"] = 1
    meta.loc[[1, 2], "STE"] = 1
    t = summary.table1(meta)
    assert t.at["SNR", "count"] == 2 and t.at["SNR", "count_pct"] == pytest.approx(200 / 3)
    assert t.at["SNR", "male"] == 1 and t.at["SNR", "male_pct"] == 50
    assert t.at["SNR", "age_mean"] == 175 and t.at["SNR", "age_sd"] == pytest.approx(
        176.7767, abs=1e-4
    )
    c = summary.table1(meta, correct_ages=True)
    assert c.at["STE", "age_mean"] == 70 and c.at["STE", "age_placeholders"] == 1
    assert t.at["AF", "count"] == 0 and pd.isna(t.at["AF", "male_pct"])
