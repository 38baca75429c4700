"""Explanations of the trained models: SHAP per lead (Figures 2-5) and Grad-CAM (Figures 6-8).

- :mod:`ecgrepro.explain.shapley`: the SHAP panels of Figures 2-5 and their
  readings; it re-exports :mod:`ecgrepro.explain.shap_leads` (GradientExplainer
  per lead as the published code, and the principled variant) and
  :mod:`ecgrepro.explain.lead_games` (the exact Shapley values of two lead games,
  12 leads and the 8 independent leads, which are different games from
  GradientExplainer's);
- :mod:`ecgrepro.explain.gradcam`: 1-D Grad-CAM (time-localised, Selvaraju et
  al. 2017) beside the published code's channel-pooled variant, and the share
  of Grad-CAM mass inside QRS complexes;
- :mod:`ecgrepro.explain.cases`: the automatic choice of the case studies,
  its rules kept as data;
- :mod:`ecgrepro.explain.store`: explanation results as artifacts keyed by
  model, records and parameters.

QRS delineation and R peaks live in :mod:`ecgrepro.beats`; :func:`qrs_mask` is
re-exported here.
"""

from ecgrepro.beats import qrs_mask
from ecgrepro.explain.cases import (
    CASE_RULES,
    CASE_STATEMENTS,
    CASES,
    CaseRule,
    Tier,
    case_eligibility,
    figure_cases,
    raw_statements_text,
    select_cases,
    tier_candidates,
)
from ecgrepro.explain.gradcam import (
    GRADCAM_VARIANTS,
    captum_grad_cam,
    case_maps,
    case_qrs,
    grad_cam,
    qrs_frame,
    qrs_mass_share,
    qrs_mass_table,
    shifted_mass_shares,
    threshold_percentile,
)
from ecgrepro.explain.shapley import (
    INDEPENDENT_LEADS,
    LEAD_GAMES,
    LIMB_FROM_I_II,
    NORMALISATIONS,
    SMALL_SUM_SHARE,
    PanelResult,
    aggregate_per_lead,
    claim_ranks,
    coalition_inputs,
    coalition_masks,
    dataset_valid_lengths,
    exact_lead_shapley,
    gradient_shap_per_lead,
    lead_rank,
    leads_of,
    limb_credit,
    limb_residual,
    published_selection,
    recompute_limb_leads,
    shap_panel,
    shapley_from_values,
    spread_over_classes,
    stratified_selection,
    sum_flags,
    timed,
    valid_mean,
)
from ecgrepro.explain.store import EXPLAIN_CODE_VERSION, cached, key_of, stored_payload

__all__ = [
    "CASES",
    "CASE_RULES",
    "CASE_STATEMENTS",
    "EXPLAIN_CODE_VERSION",
    "GRADCAM_VARIANTS",
    "INDEPENDENT_LEADS",
    "LEAD_GAMES",
    "LIMB_FROM_I_II",
    "NORMALISATIONS",
    "SMALL_SUM_SHARE",
    "CaseRule",
    "PanelResult",
    "Tier",
    "aggregate_per_lead",
    "cached",
    "captum_grad_cam",
    "case_eligibility",
    "figure_cases",
    "case_maps",
    "case_qrs",
    "claim_ranks",
    "coalition_inputs",
    "coalition_masks",
    "dataset_valid_lengths",
    "exact_lead_shapley",
    "grad_cam",
    "gradient_shap_per_lead",
    "key_of",
    "lead_rank",
    "leads_of",
    "limb_credit",
    "limb_residual",
    "published_selection",
    "qrs_frame",
    "qrs_mask",
    "qrs_mass_share",
    "qrs_mass_table",
    "raw_statements_text",
    "recompute_limb_leads",
    "select_cases",
    "shap_panel",
    "shapley_from_values",
    "shifted_mass_shares",
    "spread_over_classes",
    "stored_payload",
    "stratified_selection",
    "sum_flags",
    "threshold_percentile",
    "tier_candidates",
    "timed",
    "valid_mean",
]
