"""The Figures 2-5 page: SHAP per lead for four panels, their tables, figures and readings.

The page (``notebooks/fig2-5_shap_per_lead.ipynb``) explains the Original and Ours_2 on CPSC
2018 and PTB-XL (the paper's Figures 2-5, Section 5) with :func:`ecgrepro.explain.shap_panel`
(the published GradientExplainer recipe, the principled variant and the exact values of the
12-lead and 8-lead games); this module runs the four panels, writes their tables and draws the
figures. The method names in the tables (``shap_published``, ``shap_principled``,
``shapley12``, ``shapley8``) are the method table's (:data:`ecgrepro.explain.methods.METHODS`)
and :class:`ecgrepro.explain.PanelResult`'s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ecgrepro.config import CLASSES
from ecgrepro.explain import SMALL_SUM_SHARE, leads_of, shap_panel
from ecgrepro.plots import shap_heatmaps

#: Figure number -> (model, dataset) of the paper's Figures 2-5.
PANELS = {2: ("original", "cpsc"), 3: ("original", "ptbxl"), 4: ("ours2", "cpsc"),
          5: ("ours2", "ptbxl")}
#: Display names of the panels' models and datasets.
NAMES = {"original": "Original", "ours2": "Ours_2", "cpsc": "CPSC 2018", "ptbxl": "PTB-XL"}
#: Figure number -> the file its published panel is saved as (``<build>/figures``).
FIGURE_FILES = {2: "fig2_shap_original_cpsc.png", 3: "fig3_shap_original_ptbxl.png",
                4: "fig4_shap_ours2_cpsc.png", 5: "fig5_shap_ours2_ptbxl.png"}
#: The columns of the flagged-rows table the page shows.
FLAG_COLUMNS = ["model", "dataset", "method", "class", "records", "signed_sum", "abs_sum",
                "signed_share", "flag"]
#: :func:`ecgrepro.explain.limb_credit`'s columns as the page shows them.
CREDIT_COLUMNS = {"I_12": "I (12)", "II_12": "II (12)", "aVF_12": "aVF (12)",
                  "derived_12": "III+aVR+aVL+aVF (12)", "I_8": "I (8)", "II_8": "II (8)"}


def setup_texts(params: Mapping, models: Mapping) -> dict[str, str]:
    """The glue texts of the page's "Data and profile" section.

    Parameters
    ----------
    params : mapping of str -> object
        The page's parameters (a :class:`ecgrepro.book.page.Page` or its namespace):
        ``profile``, ``fs_hz`` (Hz), ``window_s`` (s) and the SHAP selection
        (:data:`ecgrepro.parameters.SHAP`).
    models : mapping of str -> ecgrepro.pipeline.TrainedModel
        The explained models (their artifact folders are named).

    Returns
    -------
    dict of str -> str
        ``s_profile``, ``s_setup``, ``s_artifacts``, ``s_small``.
    """
    p = params
    setup = (f"{p['fs_hz']:g} Hz, {p['window_s']:g} s; published selection: background "
             f"{p['n_background']}, explained {p['n_explained']}, {p['nsamples']} "
             f"GradientExplainer samples per record; principled: {p['n_per_class']} test records "
             f"per class; exact values for {p['exact_per_panel']} records per panel, baseline "
             f"{p['exact_baseline']}")
    return {
        "s_profile": p["profile"],
        "s_setup": setup,
        "s_artifacts": ", ".join(m.folder.name for m in models.values()),
        "s_small": f"{100 * SMALL_SUM_SHARE:g}%",
    }


def explain_panels(pipe, models: Mapping, params: Mapping, log=print) -> tuple[dict, float]:
    """Run :func:`ecgrepro.explain.shap_panel` on the four panels of Figures 2-5.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
        Its datasets ``cpsc`` and ``ptbxl``; results are stored under
        ``pipe.artifacts / "explain"`` (re-read when stored).
    models : mapping of str -> ecgrepro.pipeline.TrainedModel
        ``original`` and ``ours2`` (moved to the CPU).
    params : mapping of str -> object
        ``n_background``, ``n_explained``, ``nsamples``, ``n_per_class``, ``exact_per_panel``,
        ``exact_baseline``, ``seed`` (the page's parameters).
    log : callable
        Receives one line per stored result (re-read or computed).

    Returns
    -------
    results : dict of int -> ecgrepro.explain.PanelResult
        Figure number -> its panel, in :data:`PANELS`' order.
    seconds : float
        Wall time of the four panels, s.
    """
    p = params
    t0 = time.perf_counter()
    results = {
        fig: shap_panel(models[m].model.to(pipe.device), pipe.datasets[d], p["n_background"],
                        p["n_explained"], p["nsamples"], p["n_per_class"], p["exact_per_panel"],
                        p["exact_baseline"], p["seed"], model_key=models[m].key,
                        store_dir=pipe.artifacts / "explain", log=log)
        for fig, (m, d) in PANELS.items()
    }
    return results, time.perf_counter() - t0


def reused_text(results: Mapping, seconds: float) -> str:
    """How many of the panels' stored results were re-read (the glue ``s_reused``)."""
    n_reused = sum(len(r.reused) for r in results.values())
    n = 4 * len(results)
    return (f"{n_reused} of the {n} stored results re-read, {n - n_reused} "
            f"computed ({seconds:.0f} s for the four panels)")


def _tagged(results: Mapping, attribute: str) -> pd.DataFrame:
    """One of the panels' tables, concatenated, with the panel's model and dataset."""
    return pd.concat([getattr(r, attribute).assign(model=PANELS[f][0], dataset=PANELS[f][1])
                      for f, r in results.items()], ignore_index=True)


def write_tables(results: Mapping, build: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Write the panels' matrices and flags; return the flags, exact-value checks and costs.

    Parameters
    ----------
    results : mapping of int -> ecgrepro.explain.PanelResult
        :func:`explain_panels`' results.
    build : pathlib.Path
        The build folder: writes ``tables/shap_per_lead.csv`` (``model, dataset, method,
        class, lead, value``; one row per panel, method, class or AVG, and lead) and
        ``tables/shap_per_lead_flags.csv`` (:func:`ecgrepro.explain.sum_flags` per panel).

    Returns
    -------
    flags, exact, costs : pandas.DataFrame
        :class:`~ecgrepro.explain.PanelResult`'s ``flags``, ``exact`` and ``costs`` of every
        panel, with columns ``model`` and ``dataset`` appended.
    """
    rows_out = list(CLASSES) + ["AVG"]
    long = pd.DataFrame([(PANELS[f][0], PANELS[f][1], method, rows_out[c], lead, mat[c, j])
                         for f, r in results.items() for method, mat in r.matrices.items()
                         for c in range(10) for j, lead in enumerate(leads_of(mat))],
                        columns=["model", "dataset", "method", "class", "lead", "value"])
    long.to_csv(build / "tables" / "shap_per_lead.csv", index=False)
    flags = _tagged(results, "flags")
    flags.to_csv(build / "tables" / "shap_per_lead_flags.csv", index=False)
    return flags, _tagged(results, "exact"), _tagged(results, "costs")


def flag_count(flags: pd.DataFrame, published: bool) -> str:
    """``"<flagged> of <rows>"`` class rows, of the published method or of the variants."""
    rows = flags[(flags.method == "shap_published") == published]
    return f"{int((rows.flag != '').sum())} of {len(rows)}"


def panels(results: Mapping, method: str, kind: str = "") -> dict[str, dict]:
    """One method's four matrices and row marks, titled, for :func:`ecgrepro.plots.shap_heatmaps`.

    Parameters
    ----------
    results : mapping of int -> ecgrepro.explain.PanelResult
    method : str
        A key of the panels' ``matrices`` (``shap_published``, ...).
    kind : str
        Inserted after the figure number in each title (``" principled"``, ...).

    Returns
    -------
    dict
        ``matrices`` and ``marks``: title (``"Fig. <n><kind>: <model> on <data>"``) -> the
        (10, n_leads) matrix, and -> its row flags.
    """
    titles = {f: f"Fig. {f}{kind}: {NAMES[m]} on {NAMES[d]}" for f, (m, d) in PANELS.items()}
    return {"matrices": {titles[f]: results[f].matrices[method] for f in PANELS},
            "marks": {titles[f]: results[f].row_marks(method) for f in PANELS}}


def save_published_figures(results: Mapping, build: Path, profile: str) -> None:
    """Save each panel's published heatmap alone, as the paper's Figures 2-5.

    Parameters
    ----------
    results : mapping of int -> ecgrepro.explain.PanelResult
    build : pathlib.Path
        Writes ``figures/<FIGURE_FILES[n]>`` (PNG, 120 dpi).
    profile : str
        Named in the titles.
    """
    for f, (m, d) in PANELS.items():
        title = f"Fig. {f}: {NAMES[m]} on {NAMES[d]} (published SHAP, {profile} profile)"
        single = shap_heatmaps({title: results[f].matrices["shap_published"]}, ncols=1,
                               marks={title: results[f].row_marks("shap_published")})
        single.savefig(build / "figures" / FIGURE_FILES[f], dpi=120)
        plt.close(single)


def agreement(results: Mapping) -> pd.DataFrame:
    """How far the published and the principled matrices agree, per panel.

    Parameters
    ----------
    results : mapping of int -> ecgrepro.explain.PanelResult

    Returns
    -------
    pandas.DataFrame
        One row per panel (``Fig. <n>``): the Spearman correlation of the two (10, 12)
        matrices over their finite cells, and the number of the 9 classes, explained by both,
        whose largest lead differs (int).
    """
    table = {}
    for f in PANELS:
        pub = results[f].matrices["shap_published"]
        var = results[f].matrices["shap_principled"]
        table[f"Fig. {f}"] = {
            "rank correlation of the two matrices (Spearman, all finite cells)": spearmanr(
                pub.ravel(), var.ravel(), nan_policy="omit").statistic,
            "classes where the top lead differs": sum(
                np.isfinite(pub[c]).all() and np.isfinite(var[c]).all()
                and pub[c].argmax() != var[c].argmax() for c in range(9)),
        }
    return pd.DataFrame(table).T.astype({"classes where the top lead differs": int})


def exact_texts(exact: pd.DataFrame) -> dict[str, str]:
    """The glue texts on the exact values' checks (``"n/a"`` where no record has them).

    Parameters
    ----------
    exact : pandas.DataFrame
        :func:`write_tables`' ``exact``.

    Returns
    -------
    dict of str -> str
        ``s_eff`` (largest efficiency error of both games, logit units), ``s_rho`` (median
        Spearman correlation of the 12-lead game's values with GradientExplainer's per-lead
        sums), ``s_limb_residual`` (largest recorded-minus-recomputed limb lead, mV),
        ``s_limb_logit`` (largest change of the explained logit by the recomputation).
    """
    some = len(exact) > 0
    rho = exact.spearman_exact_vs_gradient
    return {
        "s_eff": f"{exact[['efficiency_error', 'efficiency_error_8']].max().max():.1e}"
        if some else "n/a",
        "s_rho": f"{rho.median():.2f}" if rho.notna().any() else "n/a",
        "s_limb_residual": f"{exact.limb_residual_mv.max():.3f}" if some else "n/a",
        "s_limb_logit": f"{exact.logit_change_8.abs().max():.3f}" if some else "n/a",
    }


def limb_reading(credit: pd.DataFrame) -> str:
    """The paper's lead-II and aVF readings against the two games (the glue ``s_limb_reading``).

    Parameters
    ----------
    credit : pandas.DataFrame
        :func:`ecgrepro.explain.limb_credit` of the panels for AF, PAC, PVC (and RBBB).

    Returns
    -------
    str
        Two sentences (Section 5's readings of lead II for AF, PAC and PVC, and of aVF for
        PAC), or what cannot be checked where no such record has exact values.
    """
    ii_classes = credit[credit["class"].isin(["AF", "PAC", "PVC"])]
    pac = credit[credit["class"] == "PAC"]
    reading = (
        "No AF, PAC or PVC record has exact values on this build (raise exact_per_panel), so "
        "the comparison cannot be made here." if ii_classes.empty else
        f"Averaged over the {len(ii_classes)} panel and class pairs the paper reads lead II for "
        f"(AF, PAC, PVC) that have exact values here, lead II holds {ii_classes.II_12.mean():.2f} "
        f"of the 12-lead game's credit and the four derived limb leads together "
        f"{ii_classes.derived_12.mean():.2f}; in the 8-lead game lead II holds "
        f"{ii_classes.II_8.mean():.2f} and lead I {ii_classes.I_8.mean():.2f}.")
    reading += (
        " No PAC record has exact values, so aVF's reading cannot be checked here." if pac.empty
        else f" For PAC, aVF holds {pac.aVF_12.mean():.2f} of the 12-lead credit, lead II "
        f"{pac.II_12.mean():.2f}; in the 8-lead game lead II holds {pac.II_8.mean():.2f}.")
    return reading


def rows_note(results: Mapping, method: str = "shap_published") -> str:
    """A caption sentence on the panels' classes with no explained record (#25, item 2).

    Parameters
    ----------
    results : mapping of int -> ecgrepro.explain.PanelResult
    method : str
        A key of the panels' ``matrices``.

    Returns
    -------
    str
        Per panel with fewer than the 9 classes explained: which classes have a row, and that
        the AVG row then averages only those ("" when every panel has all 9).
    """
    parts = []
    for f in PANELS:
        mat = results[f].matrices[method][: len(CLASSES)]
        shown = [c for c, row in zip(CLASSES, mat, strict=True) if np.isfinite(row).all()]
        if len(shown) < len(CLASSES):
            parts.append(f"Fig. {f}: {', '.join(shown) or 'none'}")
    if not parts:
        return ""
    return (" Rows of classes with no explained record are blank, and the AVG row averages the "
            "others only (" + "; ".join(parts) + ").")
