"""The case rules are data: each tier a record, no case-specific branch in select_cases."""

import numpy as np

from ecgrepro.config import CLASSES
from ecgrepro.explain import CASE_RULES, CASE_STATEMENTS, CASES, CaseRule, Tier, select_cases
from ecgrepro.explain.cases import tier_candidates


def _labels(*names):
    y = np.zeros(9)
    y[[CLASSES.index(n) for n in names]] = 1
    return y


def test_the_rules_as_data():
    assert [r.case for r in CASES] == ["lbbb", "rbbb", "snr_as_af"]
    assert CASE_RULES["snr_as_af"][0] == "AF" and CASE_RULES["lbbb"][0] == "LBBB"
    assert CASE_STATEMENTS["lbbb"] == {"requires": ("CLBBB",), "excludes": (), "cpsc": "LBBB"}
    for rule in CASES:
        assert rule.tiers[0].meets_rule and not rule.tiers[-1].meets_rule  # preferences first
        assert all(c in CLASSES for t in rule.tiers for c in t.labelled + t.predicted)


def test_tier_candidates():
    labelled = np.array([_labels("SNR"), _labels("SNR", "PAC"), _labels("AF")]) > 0
    predicted = np.array([_labels("AF"), _labels("AF", "SNR"), _labels("AF")]) > 0
    alone = Tier("x", True, ("SNR",), ("AF",), label_alone=True, predicted=("AF",))
    assert tier_candidates(alone, labelled, predicted).tolist() == [True, False, False]
    not_snr = Tier("x", True, ("SNR",), predicted=("AF",), not_predicted=("SNR",))
    assert tier_candidates(not_snr, labelled, predicted).tolist() == [True, False, False]
    assert tier_candidates(Tier("any", False), labelled, predicted).all()


def test_a_new_rule_needs_no_code():
    # a PVC case written as data goes through the same search
    pvc = CaseRule(
        "pvc",
        "PVC",
        "the most confident correct PVC prediction",
        requires=("PVC",),
        excludes=(),
        cpsc="PVC",
        tiers=(
            Tier("correct PVC", True, ("PVC",), predicted=("PVC",)),
            Tier("missed PVC, highest score", False, ("PVC",)),
        ),
    )
    y = np.array([_labels("PVC"), _labels("PVC"), _labels("SNR")])
    s = np.full((3, 9), 0.1)
    s[:, CLASSES.index("PVC")] = [0.4, 0.3, 0.9]
    cases = select_cases(y, s, np.full(9, 0.5), rules=(pvc,))
    assert list(cases.index) == ["pvc"]
    assert cases.loc["pvc", "row"] == 0 and cases.loc["pvc", "fallback"]
    s[1, CLASSES.index("PVC")] = 0.6
    cases = select_cases(y, s, np.full(9, 0.5), rules=(pvc,))
    assert cases.loc["pvc", "row"] == 1 and cases.loc["pvc", "rule"] == "correct PVC"
