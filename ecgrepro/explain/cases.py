"""The case studies of Figures 6-8, chosen automatically by rules kept as data.

The paper does not say how its three records were chosen. Here each case is a
:class:`CaseRule` record in :data:`CASES`: the class whose Grad-CAM is drawn,
the raw statements a record must (and must not) carry for the figure's
reading to hold, and an ordered list of :class:`Tier` records (the rule's
preferences, then its fallbacks). :func:`select_cases` walks the tiers of
each case and takes the first tier that holds a record; it has no case-specific
branches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES


@dataclass(frozen=True)
class Tier:
    """One step of a case's search: which records qualify, and what choosing one means.

    A record qualifies when it is labelled with every class of ``labelled``
    and none of ``not_labelled`` (with ``label_alone``: with no other label
    at all), and predicted (score >= threshold) every class of ``predicted``
    and none of ``not_predicted``.

    Attributes
    ----------
    text : str
        How the choice is described under the figure.
    meets_rule : bool
        True for the rule's own tiers; False for a fallback (the figure then
        shows the nearest thing, flagged).
    labelled, not_labelled, predicted, not_predicted : tuple of str
        Classes (:data:`ecgrepro.config.CLASSES`).
    label_alone : bool
        The record carries exactly one label.
    """

    text: str
    meets_rule: bool
    labelled: tuple[str, ...] = ()
    not_labelled: tuple[str, ...] = ()
    label_alone: bool = False
    predicted: tuple[str, ...] = ()
    not_predicted: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseRule:
    """One case study (one figure).

    Attributes
    ----------
    case : str
        ``lbbb``, ``rbbb``, ``snr_as_af``.
    target : str
        The class whose Grad-CAM is drawn.
    description : str
        The rule in words.
    requires, excludes : tuple of str
        PTB-XL SCP statements the record must carry / must not carry, at any
        likelihood.
    cpsc : str
        The class a CPSC record must hold in its own labels (CPSC records
        carry no SCP statements).
    tiers : tuple of Tier
        Preferences first, fallbacks last.
    """

    case: str
    target: str
    description: str
    requires: tuple[str, ...]
    excludes: tuple[str, ...]
    cpsc: str
    tiers: tuple[Tier, ...]


def _bbb(cls: str, other: str, statement: str) -> CaseRule:
    rule = f"the most confident correct {cls} prediction"
    return CaseRule(
        case=cls.lower(),
        target=cls,
        description=rule,
        requires=(statement,),
        excludes=(),
        cpsc=cls,
        tiers=(
            Tier(
                f"{rule}, on a record not labelled {other}",
                True,
                labelled=(cls,),
                not_labelled=(other,),
                predicted=(cls,),
            ),
            Tier(f"{rule} (every one is also labelled {other})", True, (cls,), predicted=(cls,)),
            Tier(
                f"no correct {cls} prediction: the {cls} record with the highest {cls} score",
                False,
                labelled=(cls,),
            ),
        ),
    )


_SNR_AS_AF = "the most confident AF prediction on a record labelled SNR (and not AF)"

#: The case studies of Figures 6-8, in figure order. The mapped labels alone do not suffice
#: for the raw-statement requirement: the published mapping maps LAFB to LBBB, and labels SNR
#: on records whose rhythm statements (at likelihood 0) say atrial fibrillation, flutter or
#: sinus arrhythmia. Fig. 8's record must be in sinus rhythm (SR) with no atrial or
#: supraventricular arrhythmia, where an AF call would not be plainly wrong.
CASES: tuple[CaseRule, ...] = (
    _bbb("LBBB", "RBBB", "CLBBB"),
    _bbb("RBBB", "LBBB", "CRBBB"),
    CaseRule(
        case="snr_as_af",
        target="AF",
        description=_SNR_AS_AF,
        requires=("SR",),
        excludes=("AFIB", "AFLT", "SARRH", "SVARR", "SVTAC", "PSVT"),
        cpsc="SNR",
        tiers=(
            Tier(
                _SNR_AS_AF + ", SNR alone, not predicted",
                True,
                labelled=("SNR",),
                not_labelled=("AF",),
                label_alone=True,
                predicted=("AF",),
                not_predicted=("SNR",),
            ),
            Tier(
                _SNR_AS_AF + ", SNR alone (predicted SNR too)",
                True,
                labelled=("SNR",),
                not_labelled=("AF",),
                label_alone=True,
                predicted=("AF",),
            ),
            Tier(
                _SNR_AS_AF + " (every one has other labels too)",
                True,
                labelled=("SNR",),
                not_labelled=("AF",),
                predicted=("AF",),
            ),
            Tier(
                "no SNR record was predicted AF: the most confident AF prediction on a record "
                "not labelled AF",
                False,
                not_labelled=("AF",),
                predicted=("AF",),
            ),
            Tier(
                "no record was wrongly predicted AF: the SNR record with the highest AF score "
                "(below the threshold)",
                False,
                labelled=("SNR",),
                not_labelled=("AF",),
            ),
        ),
    ),
)

#: Case -> (class drawn, rule in words): a summary of :data:`CASES`.
CASE_RULES: dict[str, tuple[str, str]] = {r.case: (r.target, r.description) for r in CASES}

#: Case -> the raw statements its record must carry (``requires``), must not carry
#: (``excludes``, PTB-XL SCP statements at any likelihood) and the class a CPSC record must
#: hold in its own labels (``cpsc``): a summary of :data:`CASES`.
CASE_STATEMENTS: dict[str, dict] = {
    r.case: {"requires": r.requires, "excludes": r.excludes, "cpsc": r.cpsc} for r in CASES
}


def _most_confident(
    candidates: np.ndarray, score: np.ndarray, tie_rank: np.ndarray, n_predicted: np.ndarray
) -> int | None:
    """Fewest predicted classes first, then the highest score, then the seeded tie rank."""
    idx = np.flatnonzero(candidates)
    if not len(idx):
        return None
    return int(idx[np.lexsort((tie_rank[idx], -score[idx], n_predicted[idx]))[0]])


def tier_candidates(tier: Tier, labelled: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Records that qualify for one tier.

    Parameters
    ----------
    tier : Tier
    labelled, predicted : numpy.ndarray of bool, shape (n, 9)
        Labels and predictions, :data:`ecgrepro.config.CLASSES` order.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    ok = np.ones(len(labelled), dtype=bool)
    for classes, matrix, want in (
        (tier.labelled, labelled, True),
        (tier.not_labelled, labelled, False),
        (tier.predicted, predicted, True),
        (tier.not_predicted, predicted, False),
    ):
        for c in classes:
            ok &= matrix[:, CLASSES.index(c)] == want
    if tier.label_alone:
        ok &= labelled.sum(axis=1) == 1
    return ok


def case_eligibility(
    scp_codes: list[dict[str, float] | None], own_labels: list[list[str]]
) -> dict[str, np.ndarray]:
    """Which records' raw statements support each case's reading (:data:`CASES`).

    Parameters
    ----------
    scp_codes : list of (dict of str -> float, or None)
        Per record, its PTB-XL SCP statements (code -> likelihood %); None
        for a CPSC record.
    own_labels : list of list of str
        Per record, the CPSC classes of a CPSC record (its own annotators');
        ignored for PTB-XL records.

    Returns
    -------
    dict of str -> numpy.ndarray of bool, shape (n_records,)
        One entry per case of :data:`CASES`.

    Raises
    ------
    ValueError
        If the two lists differ in length.
    """
    if len(scp_codes) != len(own_labels):
        raise ValueError(f"{len(scp_codes)} statement sets but {len(own_labels)} label lists")
    out = {}
    for rule in CASES:
        out[rule.case] = np.array(
            [
                rule.cpsc in labels
                if codes is None
                else all(c in codes for c in rule.requires)
                and not any(c in codes for c in rule.excludes)
                for codes, labels in zip(scp_codes, own_labels, strict=True)
            ],
            dtype=bool,
        )
    return out


def raw_statements_text(codes: dict[str, float] | None, own_labels: list[str]) -> str:
    """A record's raw statements as printed under its figure.

    Parameters
    ----------
    codes : dict of str -> float, or None
        PTB-XL SCP statements (code -> likelihood %), or None for a CPSC record.
    own_labels : list of str
        The CPSC record's own classes (used when ``codes`` is None).

    Returns
    -------
    str
        ``"SCP: CLBBB 100, SR 0"`` or ``"CPSC label: LBBB"``.
    """
    if codes is None:
        return "CPSC label: " + ("+".join(own_labels) or "none")
    return "SCP: " + ", ".join(f"{k} {v:g}" for k, v in codes.items())


def _search_order(rule: CaseRule, eligible: np.ndarray | None, labelled, predicted) -> list:
    """(candidates, text, meets the rule, fewest predicted classes first) in search order.

    The rule's own tiers prefer records called few classes; the fallbacks pick
    by score, as they say. With ``eligible``: the tiers among records whose raw
    statements support the reading first, then the rule's own tiers on every
    record (flagged a fallback), then the fallbacks.
    """
    tries = [
        (tier_candidates(t, labelled, predicted), t.text, t.meets_rule, t.meets_rule)
        for t in rule.tiers
    ]
    if eligible is None:
        return tries
    supported = [
        (c & eligible, f"{text}; raw statements support it", m, f) for c, text, m, f in tries
    ]
    unsupported = [
        (c, f"{text}; no such record has raw statements that support it", False, True)
        for c, text, meets, _ in tries
        if meets
    ]
    return supported + unsupported + [x for x in tries if not x[2]]


def select_cases(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    records: list[str] | None = None,
    seed: int = 0,
    eligible: dict[str, np.ndarray] | None = None,
    rules: tuple[CaseRule, ...] = CASES,
) -> pd.DataFrame:
    """Choose the records of Figures 6-8 from test predictions, automatically.

    For each rule of ``rules`` (:data:`CASES`), its tiers are tried in order
    and the first with a record wins. Within a tier of the rule's own, the
    record with the fewest predicted classes wins (a figure of a record called
    five classes at once explains little), then the one with the highest
    score of the case's class; a fallback tier goes by score alone. Equal
    scores (saturated sigmoids) are broken by a permutation seeded with
    ``seed``. Where ``eligible`` is given, the tiers first keep only records
    whose raw statements support the reading (:func:`case_eligibility`);
    without such a record, the rule's own tiers are tried on every record and
    the choice is flagged a fallback.

    The rules of :data:`CASES`:

    - ``lbbb`` / ``rbbb``: labelled and predicted LBBB / RBBB, preferring
      records not labelled with the other bundle branch block. Fallback: the
      labelled record with the highest score (a missed one);
    - ``snr_as_af``: labelled SNR, not AF, predicted AF, preferring records
      labelled SNR alone, then records the model does not also call SNR.
      Fallbacks: any record not labelled AF but predicted AF; then the SNR
      record with the highest AF score (not a misclassification: the closest
      to one).

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n, 9)
        Multi-hot labels, :data:`ecgrepro.config.CLASSES` order.
    scores : numpy.ndarray, shape (n, 9)
        Sigmoid outputs.
    thresholds : numpy.ndarray, shape (9,)
        Decision thresholds (a class is predicted where score >= threshold).
    records : list of str, optional
        Record names, copied into the result.
    seed : int
    eligible : dict of str -> numpy.ndarray of bool, shape (n,), optional
        Per case, the records whose raw statements support it
        (:func:`case_eligibility`).
    rules : tuple of CaseRule
        The cases (default :data:`CASES`).

    Returns
    -------
    pandas.DataFrame
        Index: the case names. Columns ``row`` (int, -1 where no record
        qualifies), ``record``, ``target`` (class drawn), ``score`` (its
        sigmoid output), ``threshold``, ``labels``, ``predicted``, ``rule``
        (the tier that chose it) and ``fallback`` (bool).

    Raises
    ------
    ValueError
        If the shapes disagree.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    thresholds = np.asarray(thresholds)
    if y_true.shape != scores.shape or y_true.ndim != 2 or thresholds.shape != (scores.shape[1],):
        raise ValueError(
            f"y_true {y_true.shape}, scores {scores.shape} and thresholds "
            f"{thresholds.shape} disagree"
        )
    n = len(scores)
    records = list(records) if records is not None else [str(i) for i in range(n)]
    tie_rank = np.argsort(np.random.default_rng(seed).permutation(n))
    labelled = y_true > 0
    predicted = scores >= thresholds
    n_predicted = predicted.sum(axis=1)
    rows = {}
    for rule in rules:
        k = CLASSES.index(rule.target)
        ok = None
        if eligible is not None:
            ok = np.asarray(eligible[rule.case], dtype=bool)
            if ok.shape != (n,):
                raise ValueError(f"eligible[{rule.case!r}] has shape {ok.shape}, expected ({n},)")
        row = None
        chosen_rule = f"no record labelled for this case ({rule.description})"
        fallback = True
        for candidates, text, meets, few in _search_order(rule, ok, labelled, predicted):
            order = n_predicted if few else np.zeros(n, dtype=int)
            row = _most_confident(candidates, scores[:, k], tie_rank, order)
            if row is not None:
                chosen_rule, fallback = text, not meets
                break
        rows[rule.case] = {
            "row": -1 if row is None else row,
            "record": None if row is None else records[row],
            "target": rule.target,
            "score": np.nan if row is None else float(scores[row, k]),
            "threshold": float(thresholds[k]),
            "labels": None if row is None else "+".join(np.array(CLASSES)[labelled[row]]),
            "predicted": None
            if row is None
            else "+".join(np.array(CLASSES)[predicted[row]]) or "none",
            "rule": chosen_rule,
            "fallback": fallback,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def figure_cases(pipe, model: str = "ours2", seed: int = 0) -> dict:
    """The case records of Figures 6-8 for one model of a book page's pipeline.

    The Figs 6-8 page and the Companion B page draw the same records: the
    model's combined test set (CPSC 2018's test fold, then PTB-XL's), its
    validation thresholds, and :func:`select_cases` with the raw statements'
    eligibility (:func:`case_eligibility`).

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    model : str
        Model name (``ours2`` in the paper's figures).
    seed : int
        Breaks ties between equally confident records.

    Returns
    -------
    dict
        ``cases`` (:func:`select_cases`'s frame plus ``statements``, the raw
        SCP statements of PTB-XL records), ``test`` (the
        :class:`~ecgrepro.train.Samples`), ``scores`` (n_test, 9),
        ``thresholds`` (9,), ``names`` (``dataset/record`` per test record)
        and ``test_records`` (the datasets' record rows, in test order).
    """
    datasets = pipe.datasets
    thresholds = pipe.thresholds(model)
    test, scores = pipe.test_scores(model, test_set="combined")
    parts = [datasets[d].records[datasets[d].records.split == "test"] for d in ("cpsc", "ptbxl")]
    names = [f"{d}/{r}" for d, p in zip(("cpsc", "ptbxl"), parts, strict=True) for r in p.record]
    test_records = pd.concat(parts, ignore_index=True)
    codes = test_records.get("scp_codes", pd.Series([None] * len(test_records)))
    raw = [c if isinstance(c, dict) else None for c in codes]
    eligible = case_eligibility(raw, list(test_records.classes))
    cases = select_cases(test.y, scores, thresholds, names, seed=seed, eligible=eligible)
    cases["statements"] = [
        raw_statements_text(raw[r], test_records.classes[r]) if r >= 0 else "" for r in cases.row
    ]
    return {
        "cases": cases,
        "test": test,
        "scores": scores,
        "thresholds": thresholds,
        "names": names,
        "test_records": test_records,
    }
