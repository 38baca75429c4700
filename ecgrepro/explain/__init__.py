"""Explanations of the trained models: SHAP per lead (Figures 2-5) and Grad-CAM (Figures 6-8).

- :mod:`ecgrepro.explain.shapley`: GradientExplainer per lead as the published
  code, and exact lead-level Shapley values;
- :mod:`ecgrepro.explain.gradcam`: 1-D Grad-CAM (time-localised, Selvaraju et
  al. 2017) beside the published code's channel-pooled variant, the automatic
  choice of the case studies and the share of Grad-CAM mass inside QRS
  complexes.
"""

from ecgrepro.explain.gradcam import (
    CASE_RULES,
    CASE_STATEMENTS,
    GRADCAM_VARIANTS,
    captum_grad_cam,
    case_eligibility,
    case_qrs,
    grad_cam,
    qrs_mask,
    qrs_mass_share,
    qrs_mass_table,
    raw_statements_text,
    select_cases,
    shifted_mass_shares,
    threshold_percentile,
)
from ecgrepro.explain.shapley import (
    PanelResult,
    aggregate_per_lead,
    coalition_masks,
    exact_lead_shapley,
    gradient_shap_per_lead,
    published_selection,
    shap_panel,
    shapley_from_values,
    spread_over_classes,
    stratified_selection,
    timed,
)

__all__ = [
    "CASE_RULES",
    "CASE_STATEMENTS",
    "GRADCAM_VARIANTS",
    "PanelResult",
    "aggregate_per_lead",
    "captum_grad_cam",
    "case_eligibility",
    "case_qrs",
    "coalition_masks",
    "exact_lead_shapley",
    "grad_cam",
    "gradient_shap_per_lead",
    "published_selection",
    "qrs_mask",
    "qrs_mass_share",
    "qrs_mass_table",
    "raw_statements_text",
    "select_cases",
    "shap_panel",
    "shifted_mass_shares",
    "shapley_from_values",
    "spread_over_classes",
    "stratified_selection",
    "threshold_percentile",
    "timed",
]
