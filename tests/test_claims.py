"""The verdicts (ecgrepro.claims) and the claims the pages derive (ecgrepro.pages.verdicts)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ecgrepro import claims as C
from ecgrepro.pages import verdicts


def test_direction_verdict_reads_the_interval_on_the_papers_side():
    assert C.direction_verdict(0.02, 0.3) == C.HOLDS
    assert C.direction_verdict(-0.3, -0.02) == C.FAILS
    assert C.direction_verdict(-0.1, 0.3) == C.CANNOT_TELL
    assert C.direction_verdict(-0.3, -0.02, paper_sign=-1) == C.HOLDS
    assert C.direction_verdict(np.nan, 0.3) == C.CANNOT_TELL
    with pytest.raises(ValueError, match="paper_sign"):
        C.direction_verdict(0, 1, paper_sign=2)


def test_a_claim_refuses_an_unknown_verdict_and_repeated_keys():
    with pytest.raises(ValueError, match="not in"):
        C.Claim("k", "c", "1", "2", "probably", "b")
    one = C.Claim("k", "c", "1", "2", C.HOLDS, "b")
    with pytest.raises(ValueError, match="repeat"):
        C.claim_records("page", [one, one])


def _write_as_a_book_page(build, page, claims, monkeypatch):
    """What Page.finish does in a book build: the claims go with the page's run facts."""
    from ecgrepro.book.report import PAGE_ENV, write_run_facts

    monkeypatch.setenv(PAGE_ENV, page)
    write_run_facts(build, {"warnings": 0, "claims": C.claim_records(page, claims)})


def test_claims_round_trip_in_page_order_and_render_as_a_table(tmp_path, monkeypatch):
    a = C.Claim("gap", "a drop", "0.49", "0.15 [0.02, 0.29]", C.HOLDS, "n records")
    b = C.Claim("x", "a | b", "-", "0.01 [-0.1, 0.1]", C.CANNOT_TELL, "m records")
    _write_as_a_book_page(tmp_path, "second", [b], monkeypatch)
    _write_as_a_book_page(tmp_path, "first", [a], monkeypatch)
    table = C.collect_claims(tmp_path, ["first", "missing", "second"])
    assert table.page.tolist() == ["first", "second"] and table.key.tolist() == ["gap", "x"]
    md = C.claims_markdown(table, {"first": "Table 2"})
    assert "{doc}`Table 2 <../notebooks/first>`" in md and "a / b" in md
    assert "2 claims: 1 holds, 0 does not hold, 1 the sample cannot tell." in md
    assert "**the sample cannot tell**" in C.verdict_line([b])
    assert "no claim" in C.verdict_line([])
    assert "No page" in C.claims_markdown(C.collect_claims(tmp_path / "none", ["first"]))


def _set(n, seed, noise):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    return y, np.clip(y * (1 - noise) + rng.random((n, 9)) * noise, 0, 1).astype(np.float32)


def test_table3_claims_pair_replicates_and_write_the_differences(tmp_path):
    y = {ts: _set(n, i, 0.5)[0] for i, (ts, n) in enumerate((("cpsc", 60), ("ptbxl", 200)))}
    y["combined"] = np.concatenate([y["cpsc"], y["ptbxl"]])
    tests = {ts: SimpleNamespace(y=v) for ts, v in y.items()}
    rng = np.random.default_rng(5)

    def model(noise, n):  # n replicates; lower noise: a better model
        return [{ts: np.clip(v * (1 - noise) + rng.random(v.shape) * noise, 0, 1)
                 for ts, v in y.items()} for _ in range(n)]

    scores = {"original": model(1.0, 3), "ours1": model(0.9, 2), "ours2": model(0.3, 2)}
    thresholds = {m: [np.full(9, 0.5)] * len(s) for m, s in scores.items()}
    diff, cl = verdicts.table3_claims(tests, scores, thresholds, tmp_path, n_boot=200, seed=0)
    saved = pd.read_csv(tmp_path / "table3_differences.csv")
    assert list(saved.columns) == verdicts.DIFFERENCE_COLUMNS and len(saved) == 7
    assert (diff.n_seeds == 2).all()
    f1 = diff[(diff.comparison == "ours2 - ours1") & (diff.metric == "f1")].iloc[0]
    assert f1.paper_value == pytest.approx(0.125)
    assert [c.key for c in cl] == ["ours2_beats_ours1", "ours2_beats_original_on_ptbxl"]
    assert cl[1].verdict == C.HOLDS  # far less noise: clearly better on PTB-XL


def test_gap_claims_read_the_pooled_interval_and_the_papers_size():
    gaps = pd.DataFrame({"metric": ["f1", "auc"], "value": [0.15, 0.30], "ci_low": [-0.08, 0.1],
                         "ci_high": [0.45, 0.5], "seed_min": [0.06, 0.2], "seed_max": [0.29, 0.4],
                         "n_seeds": [3, 3], "paper_value": [0.487, 0.278]})
    texts, cl = verdicts.gap_claims(gaps, 16, 252)
    assert [c.verdict for c in cl] == [C.CANNOT_TELL, C.HOLDS]
    assert "outside" in cl[0].basis and "inside" in cl[1].basis
    assert texts["t2_gap_f1"].startswith("0.150 [-0.080, 0.450]")


def test_table1_clusters_and_mask_claims_follow_their_rules():
    cmp = pd.DataFrame({"equal": [True, True, False]})
    assert verdicts.table1_claims(cmp, "10")[0].verdict == C.FAILS
    assert verdicts.table1_claims(cmp[cmp.equal], "10")[0].verdict == C.HOLDS
    waves = pd.DataFrame({"model": "m", "label_set": "5", "dominant": ["other", "other"],
                          "nmi": 0.02, "nmi_low": 0.01, "nmi_high": 0.03, "nmi_shifted": 0.001})
    forest = pd.DataFrame({"model": ["m"], "label_set": ["5"], "metric": ["agreement"],
                           "value": [0.93], "ci_low": [0.91], "ci_high": [0.946],
                           "paper_value": [0.949]})
    follows, is_wave, agree = verdicts.clusters_claims(waves, forest)
    assert (follows.verdict, is_wave.verdict, agree.verdict) == (C.HOLDS, C.FAILS, C.FAILS)
    cases = pd.DataFrame({"model": ["Ours_2", "Ours_2", "LSTM"], "case": ["a", "b", "a"],
                          "record": "r", "target": "AF", "probability_start": [0.8, 0.9, 0.1],
                          "probability_blur": [0.05, 0.1, np.nan],
                          "probability_end": [0.01, 0.8, 0.1], "deleted_share": [0.01, 0.02, 0]})
    assert [c.verdict for c in verdicts.deletion_mask_claims(cases)] == [C.HOLDS, C.FAILS]
    weak = cases.assign(probability_start=0.2)  # a record the model was not confident on
    assert {c.verdict for c in verdicts.deletion_mask_claims(weak)} == {C.CANNOT_TELL}


def test_shap_and_gradcam_claims():
    cols = pd.MultiIndex.from_tuples([("Fig. 5", "shap_published"), ("Fig. 5", "shapley12")])
    ranks = pd.DataFrame([[1, 2], [9, 12], [1, "-"]], columns=cols,
                         index=["II for AF", "aVF for PAC", "V1 for RBBB"])
    assert [c.verdict for c in verdicts.shap_claims(ranks)] == [C.HOLDS, C.FAILS, C.CANNOT_TELL]
    mass = pd.DataFrame({"case": ["lbbb", "af"], "record": "r", "variant": "time",
                         "map": "thresholded", "enrichment": [np.nan, 3.3],
                         "shift_p": [np.nan, 0.03], "note": ["the map is zero everywhere", ""]})
    cl = verdicts.gradcam_claims(mass)
    assert [c.verdict for c in cl] == [C.FAILS, C.FAILS, C.FAILS, C.HOLDS]


def test_relevance_and_faithfulness_claims_hold_only_when_every_test_goes_the_papers_way():
    v = pd.DataFrame({"finding": ["1: up", "1: up", "2: leads", "2: leads"],
                      "method": ["IG", "LRP", "IG", "LRP"], "measurable panels": [4, 2, 0, 3],
                      "panels the paper's way": [4, 2, 0, 1]})
    one, two = verdicts.relevance_claims(v, "n records")
    assert (one.verdict, two.verdict) == (C.HOLDS, C.CANNOT_TELL) and "6 of 6" in one.ours
    f = pd.DataFrame({"passed": [2, 0, 1], "tests_run": [2, 3, 3], "text": ["a", "b", "c"]},
                     index=["ig", "gradcam", "saliency"])
    cl = verdicts.faithfulness_claims(f, [("A", "ig"), ("B", "gradcam"), ("C", "saliency")])
    assert [c.verdict for c in cl] == [C.HOLDS, C.FAILS, C.CANNOT_TELL]


def test_the_lstm_caption_says_when_its_af_auc_is_no_better_than_chance():
    from ecgrepro.pages.deletion_mask import lstm_texts

    lstm = SimpleNamespace(meta={"train_seconds": 12.0}, reused=False)
    metrics = pd.DataFrame({"model": ["LSTM, lead II"] * 2 + ["Ours_2"], "class": "AF",
                            "test set": ["CPSC 2018", "PTB-XL", "PTB-XL"],
                            "auc": [0.31, 0.38, 0.9]})
    assert "no better than chance" in lstm_texts(metrics, lstm)["b_lstm_chance"]
    better = metrics.assign(auc=[0.31, 0.8, 0.9])
    assert lstm_texts(better, lstm)["b_lstm_chance"] == ""


def test_the_shap_caption_names_the_classes_that_have_a_row():
    from ecgrepro.pages.shap_per_lead import PANELS, rows_note

    full = np.ones((10, 12))
    one = np.full((10, 12), np.nan)
    one[0] = 1.0  # SNR only
    results = {f: SimpleNamespace(matrices={"shap_published": full}) for f in PANELS}
    assert rows_note(results) == ""
    results[max(PANELS)] = SimpleNamespace(matrices={"shap_published": one})
    assert rows_note(results).endswith(f"(Fig. {max(PANELS)}: SNR).")


def test_the_gradcam_captions_say_when_a_case_scores_below_one_half():
    from ecgrepro.pages.gradcam import confidence_notes

    cases = pd.DataFrame(
        {"record": ["cpsc/A1", "ptbxl/2", ""], "target": ["LBBB", "RBBB", "AF"],
         "score": [0.11, 0.93, np.nan], "threshold": [0.05, 0.4, np.nan],
         "predicted": ["SNR+LBBB+RBBB", "RBBB", ""]},
        index=["lbbb", "rbbb", "snr_as_af"],
    )
    notes = confidence_notes(cases)
    assert "LBBB score for this record is 0.11" in notes["lbbb"]
    assert "threshold of 0.05, beside 2 other predicted classes" in notes["lbbb"]
    assert notes["rbbb"] == "" and notes["snr_as_af"] == ""  # confident; no record drawn


def test_the_lead_figure_caption_says_which_method_is_uniform():
    from ecgrepro.config import CLASSES
    from ecgrepro.explain.relevance import RELEVANCE_METHODS
    from ecgrepro.pages.relevance import Explained, clinical_leads

    rng = np.random.default_rng(0)
    y = np.zeros((6, len(CLASSES)))
    y[:3, CLASSES.index("AF")] = y[3:, CLASSES.index("LBBB")] = 1
    result = {}
    for meth in RELEVANCE_METHODS:
        for c in ("AF", "LBBB"):
            flat = meth == "lrp_epsilon_plus_flat"
            result[f"{meth}.{c}.lead"] = np.ones((6, 12)) if flat else rng.random((6, 12))
            result[f"{meth}.{c}.abs"] = np.ones(6)
    pipe = SimpleNamespace(datasets={"cpsc": SimpleNamespace(y=y)})
    ex = Explained(pipe, {("original", "cpsc"): result}, {"cpsc": np.arange(6)}, {}, [])
    _, ranks, texts = clinical_leads(ex)
    assert texts["a_uniform_caption"].startswith(" The LRP (EpsilonPlusFlat) panel is one colour")
    assert "LRP (EpsilonPlusFlat)" not in set(ranks.method)  # nothing to rank
    for meth in RELEVANCE_METHODS:
        result[f"{meth}.AF.lead"] = result[f"{meth}.LBBB.lead"] = rng.random((6, 12))
    assert clinical_leads(ex)[2]["a_uniform_caption"] == ""
