"""The labels page's gap measures on hand-made predictions."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ecgrepro import gap
from ecgrepro.config import CLASSES
from ecgrepro.metrics import per_class_metrics

AF = CLASSES.index("AF")


def _set(n, seed, noise):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    return y, np.clip(y * (1 - noise) + rng.random((n, 9)) * noise, 0, 1), np.full(9, 0.5)


def test_gap_rows_are_reference_minus_other_with_an_interval():
    cpsc, ptbxl = _set(120, 0, 0.6), _set(300, 1, 1.0)
    rows = gap.gap_rows(cpsc, ptbxl, n_boot=300).set_index("metric")
    assert set(rows["class"]) == {"GAP"} and list(rows.index) == ["f1", "auc"]
    expect = per_class_metrics(*cpsc).at["AVG", "f1"] - per_class_metrics(*ptbxl).at["AVG", "f1"]
    assert rows.at["f1", "value"] == pytest.approx(expect)
    assert 0 < rows.at["auc", "ci_low"] < rows.at["auc", "value"] < rows.at["auc", "ci_high"]


def test_af_confusion_counts_the_same_predictions_against_each_labelling():
    y, s, t = np.zeros((4, 9)), np.zeros((4, 9)), np.full(9, 0.5)
    s[[0, 1], AF] = 0.9  # the model calls AF on two records
    published = y.copy()  # under the published labels neither is AF
    rhythm = y.copy()
    rhythm[[0, 1, 2], AF] = 1  # under the rhythm-aware labels both are, and one more
    out = pd.concat(
        [
            gap.af_confusion({"all": (published, s, t)}, "published"),
            gap.af_confusion({"all": (rhythm, s, t)}, "rhythm-aware"),
        ]
    ).set_index("label_mapping")
    assert out.loc["published", ["tp", "fp", "fn", "tn"]].tolist() == [0, 2, 0, 2]
    assert out.loc["rhythm-aware", ["tp", "fp", "fn", "tn"]].tolist() == [2, 0, 1, 1]
    assert (out.records == 4).all()


def test_combined_keeps_the_thresholds_and_stacks_records():
    a, b = _set(5, 0, 0.5), _set(7, 1, 0.5)
    y, s, t = gap.combined(a, b)
    assert y.shape == s.shape == (12, 9) and t is a[2]


def test_relabelled_af_tabulates_published_labels_of_rhythm_aware_af_records():
    def ds(rows):
        return SimpleNamespace(records=pd.DataFrame(rows, columns=["record", "classes", "split"]))

    published = ds([("1", ["SNR"], "train"), ("2", ["SNR"], "test"), ("3", ["AF"], "test")])
    rhythm = ds(
        [("1", ["AF"], "train"), ("2", ["AF"], "test"), ("3", ["AF"], "test"), ("4", ["AF"], "val")]
    )
    out = gap.relabelled_af(published, rhythm)
    assert out.loc["SNR", "records"] == 2 and out.loc["SNR", "test"] == 1
    assert out.loc["AF", "records"] == 1 and out.loc["dropped", "val"] == 1


def test_share_closed_by_a_model_that_matches_the_reference_is_one():
    cpsc, weak = _set(150, 0, 0.7), _set(200, 1, 1.0)
    y = weak[0]
    noise = np.random.default_rng(7).random(y.shape)
    same_as_ref = (y, np.clip(y * 0.3 + noise * 0.7, 0, 1), weak[2])  # as good as on CPSC
    out = gap.share_closed(cpsc, weak, same_as_ref, n_boot=300).set_index("metric")
    assert out.at["auc", "improvement"] > 0
    assert out.at["auc", "improvement_ci_low"] > 0  # paired: a clear improvement
    assert 0.6 < out.at["auc", "share"] < 1.4
    assert out.at["auc", "share_ci_low"] < out.at["auc", "share"] < out.at["auc", "share_ci_high"]
    nothing = gap.share_closed(cpsc, weak, weak, n_boot=300).set_index("metric")
    assert nothing.at["f1", "share"] == 0 and nothing.at["f1", "improvement_ci_high"] == 0
    with pytest.raises(ValueError, match="differ in records: 200, 150"):
        gap.share_closed(cpsc, weak, cpsc)
