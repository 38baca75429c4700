"""The words a table shows for the raw names the pages display (#25, "What to build" item 4).

:data:`LABELS` maps the raw names (column labels, index names and values) the book's pages
show to what a reader reads; :func:`label` applies it, the explanation methods' own labels,
and a fallback (underscores to spaces). :mod:`ecgrepro.book.display` uses it for every table.
"""

from __future__ import annotations

import math
import re
import sys

#: Raw names the pages show (column labels, index names, index values) -> what a reader reads.
LABELS: dict[str, str] = {
    # counts, shares, intervals
    "n_records": "records",
    "count": "records",
    "count_pct": "share (%)",
    "male": "male",
    "male_pct": "male (%)",
    "age_mean": "age, mean (years)",
    "age_sd": "age, SD (years)",
    "age_n": "records with an age",
    "age_placeholders": "age 300 (placeholder)",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "paper_value": "paper",
    "paper_outside_ci": "paper outside our CI",
    "seed_min": "lowest seed",
    "seed_max": "highest seed",
    "n_seeds": "seeds",
    "mean_rank": "mean rank",
    "mean_ci_low": "mean, 95% CI low",
    "mean_ci_high": "mean, 95% CI high",
    "friedman_statistic": "Friedman statistic",
    "friedman_p": "Friedman p",
    # metrics and confusion counts
    "auc": "AUC",
    "f1": "F1",
    "tp": "TP",
    "fp": "FP",
    "fn": "FN",
    "tn": "TN",
    "nmi": "NMI",
    "nmi_low": "NMI, 95% CI low",
    "nmi_high": "NMI, 95% CI high",
    "nmi_shifted": "NMI, shifted labels",
    # datasets, test sets, models
    "cpsc": "CPSC 2018",
    "ptbxl": "PTB-XL",
    "ptbxl_all": "PTB-XL, all records present",
    "ptbxl_fold10": "PTB-XL, test fold (10)",
    "ptbxl_only": "PTB-XL only",
    "original": "Original",
    "ours1": "Ours_1",
    "ours2": "Ours_2",
    "test_set": "test set",
    "label_mapping": "label mapping",
    "label_set": "label set",
    # data inventory (Table 2's page)
    "source_fs_hz": "release read (Hz)",
    "present_at_100hz": "present at 100 Hz",
    "present_at_500hz": "present at 500 Hz",
    "val_positives": "validation positives",
    "scp_code": "SCP code",
    "cpsc_class": "CPSC 2018 class",
    "likelihood_zero": "with likelihood 0",
    "published_classes": "published mapping's classes",
    "published_labels": "published labels",
    # SHAP page
    "signed_sum": "signed sum",
    "abs_sum": "sum of |value|",
    "signed_share": "signed share",
    "median_spearman": "median Spearman rho",
    "max_efficiency_error": "max efficiency error",
    "model_evaluations_per_record": "model evaluations per record",
    "seconds_per_record": "s per record",
    # Grad-CAM and deletion-mask cases
    "lbbb": "LBBB",
    "rbbb": "RBBB",
    "snr_as_af": "SNR predicted as AF",
    "qrs_ms": "QRS (ms)",
    "shift_p": "shift p",
    "probability_start": "probability, input",
    "probability_blur": "probability, blurred",
    "probability_end": "probability, masked",
    "deleted_share": "share deleted",
    "deleted_share_lead": "share deleted (lead)",
    "jaccard_mask_gradcam": "Jaccard, mask vs Grad-CAM",
    "jaccard_mask_published": "Jaccard, mask vs published Grad-CAM",
    "jaccard_gradcam_published": "Jaccard, Grad-CAM vs published",
    "qrs_time_share": "QRS share of time",
    "qrs_mass_share": "QRS share of the map's mass",
    "qrs_mass_mask": "QRS mass, mask",
    "qrs_mass_gradcam": "QRS mass, Grad-CAM",
    "qrs_mass_published": "QRS mass, published Grad-CAM",
    "l1": "L1 weight",
    "tv": "TV weight",
    "tv_of_mask": "TV of the mask",
    # Companion A
    "mean_relevance": "mean relevance",
    "max_change_canonized": "max change, canonized",
    "max_change_after": "max change, restored",
    "parameters_restored": "parameters restored",
}

_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def label(name) -> str:
    """What a raw column, index or level name reads as (#25 item 4; the rules in full:
    :mod:`ecgrepro.book.display`).

    Parameters
    ----------
    name : object
        A column label, index name or index value; ``None`` reads as ``""``.

    Returns
    -------
    str
        :data:`LABELS`' entry; else the label of a method of
        :data:`ecgrepro.explain.methods.METHODS` where that module is already imported; else
        a lower-case ``snake_case`` name with spaces; else ``str(name)``.
    """
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return ""
    if not isinstance(name, str):
        return str(name)
    if name in LABELS:
        return LABELS[name]
    methods = sys.modules.get("ecgrepro.explain.methods")  # never imported here: it pulls torch
    if methods is not None and name in getattr(methods, "METHODS", {}):
        return methods.METHODS[name].label
    return name.replace("_", " ") if _SNAKE.fullmatch(name) else name
