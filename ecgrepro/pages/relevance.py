"""Companion A's page (Bender et al., IEEE JBHI 2024; METHODS.md, "Companion papers", A).

The steps ``notebooks/companion_a_relevance.ipynb`` strings together: records, stored relevance
summaries (:func:`explain_records`), the three findings' tables, verdicts and figures. The
methods and statistics live in :mod:`ecgrepro.explain.relevance`.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import ConstantInputWarning, spearmanr

from ecgrepro.beats import WAVES
from ecgrepro.config import CLASSES, LEADS
from ecgrepro.explain import EXPLAIN_CODE_VERSION, zennit_compat
from ecgrepro.explain.relevance import (
    CLINICAL_LEADS,
    INDEPENDENT_LEADS,
    RELEVANCE_METHODS,
    canonizer_check,
    lead_rank_test,
    mean_interval,
    outcomes,
    relevance_summary,
    spearman_interval,
)

#: The classes explained: name -> logit index.
TARGETS = {"AF": CLASSES.index("AF"), "LBBB": CLASSES.index("LBBB")}
#: The models explained: catalogue name -> label.
MODELS = {"original": "Original", "ours2": "Ours_2"}
#: The datasets whose test folds are explained: key -> label.
DATASETS = {"cpsc": "CPSC 2018", "ptbxl": "PTB-XL"}
#: The relevance methods' labels in the page's tables.
METHOD_NAMES = {"ig": "IG", "lrp_epsilon_plus_flat": "LRP (EpsilonPlusFlat)",
                "lrp_epsilon_gamma_box": "LRP (EpsilonGammaBox)"}
#: The fewest records a panel needs for Findings 1 and 3 to be measurable.
MIN_RECORDS = 5
_WAVE_INDEX = {w: i for i, (w, _, _) in enumerate(WAVES)}


@dataclass
class Explained:
    """The page's explained records and their stored relevance summaries.

    Attributes
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    results : dict of (model, dataset) -> :func:`~ecgrepro.explain.relevance.relevance_summary`
    selected : dict of dataset -> numpy.ndarray of int, the rows explained
    snr_only : dict of dataset -> numpy.ndarray of bool, per row: labelled SNR and nothing else
    checks : list of dict, :func:`~ecgrepro.explain.relevance.canonizer_check` per panel
    """

    pipe: object
    results: dict
    selected: dict
    snr_only: dict
    checks: list


def companion_records(
    y: np.ndarray,
    classes: tuple[str, ...] = ("AF", "LBBB"),
    healthy: str = "SNR",
    n_per_group: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Rows of the records Companion A explains: those labelled with a class, and healthy ones.

    A record is in group ``c`` when labelled ``c``, in the healthy group when
    its only label is ``healthy`` (SNR, as in Bender et al.'s "healthy").

    Parameters
    ----------
    y : numpy.ndarray, shape (n, 9), multi-hot in :data:`ecgrepro.config.CLASSES` order
    classes : tuple of str
    healthy : str
    n_per_group, seed : int
        At most ``n_per_group`` records per group, drawn at random (``seed``); 0: all.

    Returns
    -------
    numpy.ndarray of int
        Sorted row indices (a record in two groups appears once).
    """
    y = np.asarray(y) > 0
    groups = [np.flatnonzero(y[:, CLASSES.index(c)]) for c in classes]
    h = CLASSES.index(healthy)
    groups.append(np.flatnonzero(y[:, h] & (y.sum(1) == 1)))
    rng = np.random.default_rng(seed)
    chosen = [g if not n_per_group or len(g) <= n_per_group else rng.choice(g, n_per_group, False)
              for g in groups]
    return np.unique(np.concatenate(chosen)).astype(int)


def setup_texts(page, models: dict) -> dict[str, str]:
    """The glue of the "Data, profile and methods" section.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Reads its ``fs_hz`` (Hz), ``window_s`` (s), ``n_steps``, ``n_per_group``,
        ``before_ms``, ``after_ms`` (ms), ``n_boot`` and profile.
    models : dict of str -> :meth:`ecgrepro.pipeline.Pipeline.model`'s trained models

    Returns
    -------
    dict of str -> str: ``a_profile``, ``a_setup``, ``a_artifacts``, ``a_torchvision``
    """
    problem = zennit_compat.TORCHVISION_PROBLEM
    groups = "all" if not page["n_per_group"] else f"at most {page['n_per_group']}"
    return {
        "a_profile": page.profile,
        "a_setup": f"{page['fs_hz']:g} Hz, {page['window_s']:g} s; IG with {page['n_steps']} "
        f"steps; {groups} test records per group and dataset; beats from {-page['before_ms']} "
        f"to +{page['after_ms']} ms around R; {page['n_boot']} bootstrap resamples",
        "a_artifacts": ", ".join(m.folder.name for m in models.values()),
        "a_torchvision": "torchvision imports here, so zennit is imported as it is"
        if problem is None
        else f"torchvision {problem}, so zennit is imported with its torchvision module "
        "stood in for (ecgrepro.explain.zennit_compat; zennit's own torchvision canonizers "
        "are never used here)",
    }


def explain_records(page, models, fs_hz, n_steps, n_per_group, before_ms, after_ms, seed):
    """Select each dataset's records and explain them with each model, through the store.

    Per dataset (:data:`DATASETS` order), the test records labelled AF, LBBB or SNR only
    (:func:`companion_records`); per model (:data:`MODELS` order), the canonizer check on two
    records and :func:`~ecgrepro.explain.relevance.relevance_summary`, stored under
    ``relevance-<model>-<dataset>`` by ``page.cached`` (re-read when the payload matches).

    Parameters
    ----------
    page : ecgrepro.book.page.Page, its pipeline opened
    models : dict of str -> trained model (moved to the pipeline's device, eval mode)
    fs_hz : float, Hz
    n_steps, n_per_group : int
        IG steps; records per group and dataset (0: all; else drawn with ``seed``).
    before_ms, after_ms : float
        The average beat's window around R, ms.
    seed : int

    Returns
    -------
    Explained
    """
    pipe = page.pipe
    results, selected, checks = {}, {}, []
    for d in DATASETS:
        ds = pipe.datasets[d]
        idx, y = ds.subset("test")
        rows = idx[companion_records(y, tuple(TARGETS), "SNR", n_per_group, seed)]
        selected[d] = rows
        x = ds.signals[rows].astype(np.float32)
        n_valid = ds.records["n_valid"].to_numpy()[rows]
        names = ds.records["record"].astype(str).to_numpy()[rows].tolist()
        for m, tm in models.items():
            model = tm.model.to(pipe.device).eval()  # a GPU where the page runs on one
            if len(rows):
                checks.append({"model": m, "dataset": d, **canonizer_check(model, x[:2])})
            payload = {"model": tm.key, "data": ds.data_key, "records": names, "targets": TARGETS,
                       "n_steps": n_steps, "before_ms": before_ms, "after_ms": after_ms,
                       "methods": RELEVANCE_METHODS, "version": EXPLAIN_CODE_VERSION}

            def compute(model=model, x=x, n_valid=n_valid, names=names):
                return relevance_summary(model, x, n_valid, names, fs_hz, TARGETS,
                                         RELEVANCE_METHODS, n_steps, before_ms, after_ms)

            results[m, d] = page.cached(f"relevance-{m}-{d}", payload, compute)
    snr_only = {d: ((pipe.datasets[d].y[rows] > 0).sum(1) == 1)
                & (pipe.datasets[d].y[rows, CLASSES.index("SNR")] > 0)
                for d, rows in selected.items()}
    return Explained(pipe, results, selected, snr_only, checks)


def record_counts(ex: Explained) -> pd.DataFrame:
    """Records explained per dataset: in all, labelled AF, labelled LBBB, SNR only."""
    rows = []
    for d, sel in ex.selected.items():
        y = ex.pipe.datasets[d].y[sel]
        rows.append({"dataset": DATASETS[d], "records explained": len(sel),
                     **{f"labelled {c}": int((y[:, t] > 0).sum()) for c, t in TARGETS.items()},
                     "SNR only": int(ex.snr_only[d].sum())})
    return pd.DataFrame(rows).set_index("dataset")


def method_checks(ex: Explained) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The canonizer checks and, per method, what the relevance adds up to.

    Returns
    -------
    canonizers : pandas.DataFrame, :func:`~ecgrepro.explain.relevance.canonizer_check`
    checks : pandas.DataFrame, per panel and class: IG's convergence delta (logit) or LRP's
        conservation (ratio), median and range, and the largest share in the padding
    texts : dict, ``a_ig_delta``: IG's largest |convergence delta|, logit
    """
    canonizers = pd.DataFrame(ex.checks).assign(model=lambda t: t.model.map(MODELS),
                                                dataset=lambda t: t.dataset.map(DATASETS))
    check_rows = []
    for (m, d), r in ex.results.items():
        for meth in RELEVANCE_METHODS:
            for c in TARGETS:
                v, p = r[f"{meth}.{c}.check"], r[f"{meth}.{c}.padding"]
                if len(v):
                    check_rows.append({
                        "model": MODELS[m], "dataset": DATASETS[d], "method": METHOD_NAMES[meth],
                        "class": c, "records": len(v), "check median": np.median(v),
                        "check range": f"{np.min(v):.3g} to {np.max(v):.3g}",
                        "padding share (max)": float(np.max(p)),
                    })
    checks = pd.DataFrame(check_rows)
    ig_delta = checks[checks.method == "IG"]
    deltas = [abs(float(v)) for r in ex.results.values()
              for c in TARGETS for v in r[f"ig.{c}.check"]]
    worst = f"{max(deltas):.3g}" if len(ig_delta) else "n/a"
    return canonizers, checks, {"a_ig_delta": worst}


def relevance_vs_probability(ex: Explained, n_boot: int, seed: int):
    """Finding 1: each record's mean relevance against the model's probability for the class.

    Over the records labelled with the class and the healthy ones: the outcome (TP, FP, FN,
    TN at the model's validation threshold) and Spearman's rho with a 95% bootstrap interval
    (``n_boot`` resamples, ``seed``) per model, dataset, class and method.

    Returns
    -------
    classes : pandas.DataFrame, one row per record and panel (``relevance_classes.csv``)
    rho : pandas.DataFrame, one row per panel: rho, ci_low, ci_high, mean per outcome
    """
    class_rows, rho_rows = [], []
    for (m, d), r in ex.results.items():
        rows = ex.selected[d]
        ds = ex.pipe.datasets[d]
        thresholds = ex.pipe.thresholds(m)
        names = ds.records["record"].astype(str).to_numpy()[rows]
        healthy = ex.snr_only[d]
        for c, t in TARGETS.items():
            labelled = ds.y[rows, t] > 0
            keep = labelled | healthy
            prob = expit(r[f"logit.{c}"])
            outcome = outcomes(labelled, prob, float(thresholds[t]))
            for meth in RELEVANCE_METHODS:
                rel = r[f"{meth}.{c}.record"]
                class_rows += [
                    {"model": m, "dataset": d, "method": meth, "class": c, "record": names[i],
                     "probability": prob[i], "outcome": outcome[i], "mean_relevance": rel[i]}
                    for i in np.flatnonzero(keep)
                ]
                rho, lo, hi = spearman_interval(rel[keep], prob[keep], n_boot, seed)
                by = {o: rel[keep & (outcome == o)] for o in ("TP", "FP", "FN", "TN")}
                rho_rows.append({
                    "model": MODELS[m], "dataset": DATASETS[d], "method": METHOD_NAMES[meth],
                    "class": c, "records": int(keep.sum()), "labelled": int(labelled.sum()),
                    "rho": rho, "ci_low": lo, "ci_high": hi,
                    **{f"mean {o} (n)": (f"{v.mean():.2e} ({len(v)})" if len(v) else "(0)")
                       for o, v in by.items()},
                })
    return pd.DataFrame(class_rows), pd.DataFrame(rho_rows)


_UNIFORM = (
    "{} gives every lead the same relevance at every sample on this build, "
    "so it ranks no lead above another and Finding 2 is not measurable with it. That is the flat "
    "rule on the first convolution: it ignores the input and the weights and spreads each "
    "first-layer neuron's relevance equally over everything in its receptive field, which spans "
    "all 12 leads (they are the convolution's input channels). With such a first layer, LRP's "
    "per-lead picture is empty by construction, however well the rest of the pass works."
)


def clinical_leads(ex: Explained):
    """Finding 2: relevance per lead of the records labelled with a class, and the rank test.

    Each record's mean relevance per lead over its mean |relevance|, averaged over the
    records; the clinical leads' rank among 12 and among the 8 independent leads
    (:func:`~ecgrepro.explain.relevance.lead_rank_test`; not for a method that gives every
    lead the same value).

    Returns
    -------
    leads : pandas.DataFrame, per panel and lead: the value (``relevance_leads.csv``)
    ranks : pandas.DataFrame, per panel and lead set: mean rank, chance, p, top lead
    texts : dict, ``a_uniform``: which methods rank no lead above another, and why;
        ``a_uniform_caption``: the same in a sentence for Book figure 7.2's caption ("": none)
    """
    lead_rows, rank_rows, uniform = [], [], set()
    for (m, d), r in ex.results.items():
        rows = ex.selected[d]
        ds = ex.pipe.datasets[d]
        for c, t in TARGETS.items():
            labelled = ds.y[rows, t] > 0
            for meth in RELEVANCE_METHODS:
                if labelled.sum() == 0:
                    continue
                scale = r[f"{meth}.{c}.abs"][labelled]
                per_lead = r[f"{meth}.{c}.lead"][labelled]
                values = per_lead / np.where(scale > 0, scale, np.nan)[:, None]
                mean = np.nanmean(values, 0)
                lead_rows += [
                    {"model": m, "dataset": d, "method": meth, "class": c, "lead": lead, "value": v}
                    for lead, v in zip(LEADS, mean, strict=True)
                ]
                for lead_set, leads in (("12 leads", LEADS), ("8 independent", INDEPENDENT_LEADS)):
                    vals = np.array([mean[LEADS.index(lead)] for lead in leads])
                    if not np.isfinite(vals).all():
                        continue
                    if np.ptp(vals) <= 1e-6 * np.abs(vals).max():
                        uniform.add(METHOD_NAMES[meth])  # every lead the same: nothing to rank
                        continue
                    rank, p, k = lead_rank_test(vals, leads, CLINICAL_LEADS[c])
                    rank_rows.append({
                        "model": MODELS[m], "dataset": DATASETS[d], "method": METHOD_NAMES[meth],
                        "class": c, "leads": lead_set, "records": int(labelled.sum()),
                        "clinical leads": k, "mean rank": rank,
                        "chance mean rank": (len(leads) + 1) / 2, "p": p,
                        "top lead": leads[int(np.argmax(vals))],
                    })
    columns = ["model", "dataset", "method", "class", "lead", "value"]
    names = " and ".join(sorted(uniform))
    texts = {
        "a_uniform": _UNIFORM.format(names)
        if uniform
        else "Every method gives the leads different relevance on this build.",
        "a_uniform_caption": f" The {names} panel is one colour by construction: every lead "
        "gets the same value, so it ranks no lead (see below)."
        if uniform
        else "",
    }
    return pd.DataFrame(lead_rows, columns=columns), pd.DataFrame(rank_rows), texts


def wave_relevance(ex: Explained, n_boot: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Finding 3: relevance inside the P, QRS and T windows of the average beats.

    Per record and lead, the average beat's mean relevance inside the wave's window over the
    record's mean |relevance|; averaged over the healthy and the labelled records, per lead,
    all 12 and the 8 independent leads, with a 95% bootstrap interval (``n_boot``, ``seed``).

    Returns
    -------
    beats : pandas.DataFrame, ``relevance_beats.csv``
    key : pandas.DataFrame, its rows the verdict reads (all 12 leads; AF: P, LBBB: T)
    """
    beat_rows = []
    for (m, d), r in ex.results.items():
        rows = ex.selected[d]
        ds = ex.pipe.datasets[d]
        healthy = ex.snr_only[d]
        offsets = r["offsets_ms"]
        for c, t in TARGETS.items():
            groups = {"SNR only": healthy, f"labelled {c}": ds.y[rows, t] > 0}
            for meth in RELEVANCE_METHODS:
                beat = r[f"{meth}.{c}.beat"]
                scale = r[f"{meth}.{c}.abs"]
                for wave in ("P", "QRS", "T"):
                    start = r["waves"][:, _WAVE_INDEX[wave], 0]
                    end = r["waves"][:, _WAVE_INDEX[wave], 1]
                    inside = (offsets[None] >= start[:, None]) & (offsets[None] <= end[:, None])
                    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # no beat: NaN
                        per_lead = np.where(inside[:, None, :], beat, np.nan)  # (n, 12, L)
                        scaled = np.where(scale > 0, scale, np.nan)[:, None]
                        per_lead = np.nanmean(per_lead, -1) / scaled  # (n, 12)
                    for group, member in groups.items():
                        for lead_name, cols in [
                            *((lead, [j]) for j, lead in enumerate(LEADS)),
                            ("all 12", list(range(12))),
                            ("8 independent", [LEADS.index(x) for x in INDEPENDENT_LEADS]),
                        ]:
                            vals = (
                                per_lead[member][:, cols].mean(1) if member.any() else np.array([])
                            )
                            mean, lo, hi = mean_interval(vals, n_boot, seed)
                            beat_rows.append({
                                "model": m, "dataset": d, "method": meth, "class": c,
                                "lead": lead_name, "wave": wave, "mean_relevance": mean,
                                "ci_low": lo, "ci_high": hi, "group": group,
                                "records": int(np.isfinite(vals).sum()),
                            })
    beats = pd.DataFrame(beat_rows)
    key = beats[(beats.lead == "all 12") & (((beats["class"] == "AF") & (beats.wave == "P"))
                                            | ((beats["class"] == "LBBB") & (beats.wave == "T")))]
    return beats, key


def labelled_view(table: pd.DataFrame) -> pd.DataFrame:
    """The table with the model, dataset and method keys replaced by their labels."""
    return table.assign(model=table.model.map(MODELS), dataset=table.dataset.map(DATASETS),
                        method=table.method.map(METHOD_NAMES))


def verdicts(rho_t: pd.DataFrame, rank_t: pd.DataFrame, key_rows: pd.DataFrame):
    """The three findings' verdicts per method, counted over the measurable panels.

    Finding 1: rho's interval above 0 (at least :data:`MIN_RECORDS` records); 2: the
    clinical leads' p below 0.05 over 12 leads (at least 3 labelled records); 3: the healthy
    records' wave relevance with its interval below 0 (all 12 leads).

    Returns
    -------
    table : pandas.DataFrame, one row per finding and method
    texts : dict, ``a_v0`` ... ``a_v8`` (method-major): "verdict (k of n)"
    """
    verdict_rows, texts = [], {}
    for meth in RELEVANCE_METHODS:
        label = METHOD_NAMES[meth]
        f1 = rho_t[(rho_t.method == label) & (rho_t.records >= MIN_RECORDS) & rho_t.ci_low.notna()]
        f2 = rank_t
        if len(rank_t):
            f2 = rank_t[(rank_t.method == label) & (rank_t.leads == "12 leads")
                        & (rank_t.records >= 3)]
        f3 = key_rows[(key_rows.method == meth) & (key_rows.group == "SNR only")
                      & (key_rows.records >= MIN_RECORDS)]
        for finding, panels_ok, good in (
            ("1: relevance rises with probability", f1, (f1.ci_low > 0) if len(f1) else []),
            ("2: clinical leads most relevant", f2, (f2.p < 0.05) if len(f2) else []),
            ("3: P (AF) and T (LBBB) waves negative", f3, (f3.ci_high < 0) if len(f3) else []),
        ):
            n_ok, n_good = len(panels_ok), int(np.sum(good))
            verdict = ("not measurable on this build" if n_ok == 0
                       else "supported" if n_good == n_ok
                       else "not supported" if n_good == 0 else "partly supported")
            verdict_rows.append({"finding": finding, "method": label, "measurable panels": n_ok,
                                 "panels the paper's way": n_good, "verdict": verdict})
            texts[f"a_v{len(verdict_rows) - 1}"] = f"{verdict} ({n_good} of {n_ok})"
    return pd.DataFrame(verdict_rows), texts


def method_agreement(leads_t: pd.DataFrame, build) -> tuple[pd.DataFrame, str]:
    """Spearman's rho over the 12 leads between IG, both LRP and SHAP (principled) per lead.

    SHAP's values: the Figs 2-5 page's ``<build>/tables/shap_per_lead.csv``
    (``shap_principled``), where that page has written it.

    Returns
    -------
    agree : pandas.DataFrame, per model, dataset and class: one column per pair of methods
    note : str, Markdown saying SHAP is left out ("" when it is in)
    """
    shap_path = build / "tables" / "shap_per_lead.csv"
    per_lead, note = {}, ""
    for (m, d, meth, c), g in leads_t.groupby(["model", "dataset", "method", "class"]):
        values = g.set_index("lead").value.reindex(list(LEADS)).to_numpy()
        per_lead[m, d, METHOD_NAMES[meth], c] = values
    if shap_path.is_file():
        shap = pd.read_csv(shap_path)
        shap = shap[(shap.method == "shap_principled") & shap["class"].isin(list(TARGETS))]
        for (m, d, c), g in shap.groupby(["model", "dataset", "class"]):
            vals = g.set_index("lead").value.reindex(list(LEADS)).to_numpy()
            if np.isfinite(vals).all():
                per_lead[m, d, "SHAP (principled)", c] = vals
    else:
        note = ("The Figs 2-5 page has not written `shap_per_lead.csv` in this build folder: "
                "SHAP is left out.")
    agree_rows = []
    names = ["IG", "LRP (EpsilonPlusFlat)", "LRP (EpsilonGammaBox)", "SHAP (principled)"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)  # a constant map: NaN
        for m, d, c in itertools.product(MODELS, DATASETS, TARGETS):
            row = {"model": MODELS[m], "dataset": DATASETS[d], "class": c}
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    va, vb = per_lead.get((m, d, a, c)), per_lead.get((m, d, b, c))
                    both = (va is not None and vb is not None
                            and np.isfinite(va).all() and np.isfinite(vb).all())
                    row[f"{a} vs {b}"] = spearmanr(va, vb).statistic if both else np.nan
            agree_rows.append(row)
    return pd.DataFrame(agree_rows), note
