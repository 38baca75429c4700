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


def test_pooled_gap_is_the_difference_of_the_seed_pooled_tables_averages():
    from ecgrepro.evaluate import seed_pooled_table

    cpsc = [_set(120, 0, 0.5), _set(120, 0, 0.7)]  # same records, two replicates' scores
    ptbxl = [_set(300, 1, 0.9), _set(300, 1, 1.0)]
    rows = gap.pooled_gap_rows(cpsc, ptbxl, n_boot=400, seed=3).set_index("metric")

    def avg(sets):
        runs = [(s, t) for _, s, t in sets]
        table = seed_pooled_table(sets[0][0], runs, n_boot=10).set_index(["class", "metric"])
        return table.value

    for metric in ("f1", "auc"):
        expect = avg(cpsc)[("AVG", metric)] - avg(ptbxl)[("AVG", metric)]
        assert rows.at[metric, "value"] == pytest.approx(expect)
        one = [gap.gap_rows(c, p, n_boot=10).set_index("metric").at[metric, "value"]
               for c, p in zip(cpsc, ptbxl, strict=True)]
        assert rows.at[metric, "seed_min"] == pytest.approx(min(one))
        assert rows.at[metric, "seed_max"] == pytest.approx(max(one))
        assert rows.at[metric, "ci_low"] < rows.at[metric, "value"] < rows.at[metric, "ci_high"]
    assert (rows.n_seeds == 2).all() and set(rows["class"]) == {"GAP"}


def test_pooled_gap_with_one_replicate_matches_gap_rows_point_and_refuses_unequal_lists():
    cpsc, ptbxl = _set(120, 0, 0.6), _set(300, 1, 1.0)
    one = gap.pooled_gap_rows([cpsc], [ptbxl], n_boot=300).set_index("metric")
    plain = gap.gap_rows(cpsc, ptbxl, n_boot=300).set_index("metric")
    assert one.at["f1", "value"] == pytest.approx(plain.at["f1", "value"])
    with pytest.raises(ValueError, match="one PTB-XL set per CPSC set"):
        gap.pooled_gap_rows([cpsc, cpsc], [ptbxl])


def test_paired_pooled_difference_of_a_model_with_itself_is_exactly_zero():
    sets = [_set(150, 0, 0.6), _set(150, 0, 0.8)]
    rows = gap.pooled_difference_rows(sets, sets, paired=True, n_boot=200, label="D")
    assert (rows[["value", "ci_low", "ci_high"]].to_numpy() == 0).all()
    assert set(rows["class"]) == {"D"}
    unpaired = gap.pooled_difference_rows(sets, sets, paired=False, n_boot=200)
    assert (unpaired.ci_high - unpaired.ci_low > 0).all()  # drawn apart, the same sets differ
    with pytest.raises(ValueError, match="paired sets differ in records"):
        gap.pooled_difference_rows([sets[0]], [_set(149, 0, 0.6)], paired=True)
