"""Which explanation maps are faithful to the model: deletion curves, sanity checks, planted truth.

Every attribution method of the book is scored on the same model and records
by three kinds of evidence:

1. **Deletion and insertion curves** (Samek et al. 2017, "Evaluating the
   visualization of what a deep neural network has learned", IEEE TNNLS;
   Petsiuk et al. 2018, RISE, BMVC). The units are lead x 40 ms windows of the
   record's own samples (the front padding is never a unit); they are removed
   most-relevant-first (MoRF) or least-relevant-first (LeRF), or inserted
   most-relevant-first into a blank (0 mV) signal, and the class probability
   is traced. Removed samples are replaced by per-lead linear interpolation
   across the removed stretch (main), 0 mV, or the 2 Hz low-passed record.
   The lead-level methods (SHAP per lead, exact lead Shapley) are scored on
   whole-lead curves in the two lead games of :mod:`ecgrepro.explain.lead_games`.
2. **Sanity checks** (Adebayo et al. 2018, "Sanity checks for saliency maps",
   NeurIPS): cascading re-initialisation of the layers from the top, with the
   Spearman rank correlation and SSIM of each map against the trained model's.
3. **Planted ground truth** (Arras, Osman & Samek 2022, CLEVR-XAI, Information
   Fusion): a 40 ms notch before one QRS at a known lead and time; relevance
   mass accuracy and relevance rank accuracy on the marker's lead x time box.

Rankings use Friedman's test with records as blocks, mean ranks with
bootstrap intervals, and pairwise Wilcoxon signed-rank tests with Holm's
correction.

The package: :mod:`.maps` (every method's maps and lead values, through the method table),
:mod:`.curves` (deletion, insertion and lead curves), :mod:`.sanity` (cascading
randomisation), :mod:`.planted` (planted markers), :mod:`.ranks` (rank statistics and
verdicts, means over records), :mod:`.benchmark` (one panel, as the page stores it, and the
page's :class:`Settings`), :mod:`.table` (the page's three tests as one tidy table,
:func:`faithfulness_table`).
"""

from ecgrepro.explain.faithfulness.benchmark import (
    Settings,
    capped,
    panel_benchmark,
)
from ecgrepro.explain.faithfulness.curves import (
    REPLACEMENTS,
    benchmark_curves,
    curve_scores,
    deletion_curves,
    interpolate_removed,
    lead_curves,
    perturb,
)
from ecgrepro.explain.faithfulness.maps import (
    BASELINE_METHODS,
    LEAD_METHODS,
    METHOD_LABELS,
    TIME_METHODS,
    lead_scores,
    lead_values,
    time_maps,
    unit_ranks,
    unit_scores,
)
from ecgrepro.explain.faithfulness.planted import (
    MARKERS,
    marker_boxes,
    mass_accuracy,
    notch,
    plant_markers,
    planted_dataset,
    planted_scores,
    rank_accuracy,
)
from ecgrepro.explain.faithfulness.ranks import (
    HIGHER_IS_BETTER,
    holm,
    pairwise_wilcoxon,
    rank_methods,
    record_means,
    verdicts,
)
from ecgrepro.explain.faithfulness.sanity import (
    STAGES,
    map_similarity,
    model_similarity,
    randomisation_similarity,
    randomised_models,
)
from ecgrepro.explain.faithfulness.table import (
    COLUMNS,
    DATASET_NAMES,
    MODEL_NAMES,
    Benchmark,
    CurveSection,
    PlantedSection,
    RandomisationSection,
    curve_section,
    faithfulness_table,
    planted_section,
    randomisation_section,
)

__all__ = [
    "TIME_METHODS",
    "LEAD_METHODS",
    "METHOD_LABELS",
    "BASELINE_METHODS",
    "time_maps",
    "lead_values",
    "lead_scores",
    "unit_scores",
    "unit_ranks",
    "REPLACEMENTS",
    "interpolate_removed",
    "perturb",
    "deletion_curves",
    "lead_curves",
    "curve_scores",
    "benchmark_curves",
    "STAGES",
    "randomised_models",
    "map_similarity",
    "randomisation_similarity",
    "model_similarity",
    "MARKERS",
    "notch",
    "plant_markers",
    "marker_boxes",
    "mass_accuracy",
    "rank_accuracy",
    "planted_dataset",
    "planted_scores",
    "HIGHER_IS_BETTER",
    "holm",
    "rank_methods",
    "pairwise_wilcoxon",
    "verdicts",
    "panel_benchmark",
    "Settings",
    "capped",
    "record_means",
    "COLUMNS",
    "MODEL_NAMES",
    "DATASET_NAMES",
    "Benchmark",
    "CurveSection",
    "RandomisationSection",
    "PlantedSection",
    "faithfulness_table",
    "curve_section",
    "randomisation_section",
    "planted_section",
]
