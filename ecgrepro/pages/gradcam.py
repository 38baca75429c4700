"""The Figs 6-8 page's steps: the case records' Grad-CAMs, their glue texts and their figures.

The paper's Figures 6-8 (Section 4.6) read features off Grad-CAM maps of three records of Ours_2;
the page draws the same records by rule (:func:`ecgrepro.explain.figure_cases`), computes the map
as the paper defines it and as its code pooled it (:func:`ecgrepro.explain.case_maps`), and
measures how much of each lies on the QRS complexes (:func:`ecgrepro.explain.qrs_mass_table`).
:func:`case_gradcam` is shared with the Companion B page (:mod:`ecgrepro.pages.deletion_mask`),
which sets its deletion masks beside the same maps: both pages read one stored result.
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ecgrepro.beats import delineate_records
from ecgrepro.config import CLASSES
from ecgrepro.explain import case_maps, qrs_frame, threshold_percentile
from ecgrepro.plots import ecg_grids

#: Case -> (the paper's figure number, the figure file's stem).
CASE_FIGURES = {
    "lbbb": ("6", "fig6_gradcam_lbbb"),
    "rbbb": ("7", "fig7_gradcam_rbbb"),
    "snr_as_af": ("8", "fig8_gradcam_snr_as_af"),
}

#: Case -> its name in the page's prose.
CASE_NAMES = {
    "lbbb": "LBBB (Fig. 6)",
    "rbbb": "RBBB (Fig. 7)",
    "snr_as_af": "SNR predicted AF (Fig. 8)",
}


def case_gradcam(page, drawn_cases: dict, artifact, layer: str, qrs_method: str) -> dict:
    """Both Grad-CAMs and the QRS complexes of the drawn case records, through the store.

    The Figs 6-8 page and the Companion B page call this with the same records, model and
    parameters, so the second re-reads the first's results (``gradcam-cases``, ``qrs-cases``
    under ``<build>/artifacts/explain``).

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The calling page, its pipeline opened; its ``fs_hz`` (Hz) is read.
    drawn_cases : dict
        :func:`ecgrepro.explain.figure_cases`'s result.
    artifact : ecgrepro.artifacts.TrainedModel
        The explained model (Ours_2 in the paper's figures), ``page.pipe.model(...)``.
    layer : str
        The Grad-CAM layer (``layer4``: the 4th residual block, Section 4.6).
    qrs_method : str
        ``neurokit2.ecg_delineate`` method of the QRS bounds
        (:func:`ecgrepro.beats.delineate_records`).

    Returns
    -------
    dict
        ``drawn`` (the cases with a record: ``cases[cases.row >= 0]``, n rows), ``x``
        (n, 12, n_samples) float32 mV, ``n_valid`` (n,) int (the rest is front padding),
        ``targets`` (n,) int class indices, ``model`` (the torch module, eval mode, on the
        pipeline's device), ``key`` (the store key shared by the cases' results: model,
        data, records, n_valid), ``stored`` (:func:`ecgrepro.explain.case_maps`'s arrays),
        ``maps`` ({"time", "published"}: (n, n_samples) float32 maps) and ``qrs``
        (:func:`ecgrepro.explain.qrs_frame`: one row per case).
    """
    pipe, fs_hz = page.pipe, page["fs_hz"]
    cases, test = drawn_cases["cases"], drawn_cases["test"]
    drawn = cases[cases.row >= 0]
    rows = drawn.row.to_numpy()
    x = test.signals(rows)
    n_valid = test.n_valid[rows]
    targets = np.array([CLASSES.index(c) for c in drawn.target], dtype=int)
    model = artifact.model.to(pipe.device).eval()
    key = {
        "model": artifact.key,
        "data": {d: pipe.datasets[d].data_key for d in ("cpsc", "ptbxl")},
        "records": list(drawn.record),
        "n_valid": n_valid,
    }
    stored = page.cached(
        "gradcam-cases",
        {**key, "targets": targets, "layer": layer},
        partial(case_maps, model, x, targets, layer),
    )
    delineation = page.cached(
        "qrs-cases",
        {**key, "fs_hz": fs_hz, "method": qrs_method},
        partial(delineate_records, x, fs_hz, list(drawn.record), qrs_method, n_valid),
    )
    return {
        "drawn": drawn,
        "x": x,
        "n_valid": n_valid,
        "targets": targets,
        "model": model,
        "key": key,
        "stored": stored,
        "maps": {"time": stored["time"], "published": stored["published"]},
        # delineated once: for the figures and the mass table
        "qrs": qrs_frame(drawn, delineation, n_valid),
    }


def choice_texts(page, cases: pd.DataFrame, test, artifact) -> dict[str, str]:
    """The glue texts of the records chosen and of the data they were chosen from.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Figs 6-8 page; reads ``profile``, ``label_mapping``, ``fs_hz`` (Hz), ``window_s``
        (s), ``epochs_ours``, ``layer`` and ``percentile``.
    cases : pandas.DataFrame
        :func:`ecgrepro.explain.figure_cases`'s ``cases`` (one row per case, drawn or not).
    test : ecgrepro.train.Samples
        The combined test set the cases were drawn from.
    artifact : ecgrepro.artifacts.TrainedModel
        Ours_2.

    Returns
    -------
    dict of str -> str
        ``g_rule6``-``g_rule8`` (the record and the rule that chose it), ``g_raw6``-``g_raw8``
        (its raw statements, predictions and labels), ``g_profile``, ``g_setup``, ``g_n_test``,
        ``g_n_cpsc``, ``g_n_ptbxl`` and ``g_artifact``.
    """
    datasets, n_samples = page.pipe.datasets, page.pipe.n_samples
    texts = {}
    for case, (number, _) in CASE_FIGURES.items():
        info = cases.loc[case]
        fallback = " (a fallback: the data held no record for the rule)" if info["fallback"] else ""
        texts[f"g_rule{number}"] = f"{info['record'] or 'none'}, {info['rule']}" + fallback
        texts[f"g_raw{number}"] = (
            f"{info['statements'] or 'none'}; predicted {info['predicted'] or 'none'}; "
            f"labelled {info['labels'] or 'none'} under the {page['label_mapping']} mapping"
        )
    n_split = {d: int((datasets[d].records.split == "test").sum()) for d in ("cpsc", "ptbxl")}
    return {
        **texts,
        "g_profile": page["profile"],
        "g_setup": f"{page['fs_hz']:g} Hz, last {page['window_s']:g} s ({n_samples:,} samples); "
        f"Ours_2 trained {page['epochs_ours']} epochs; Grad-CAM at {page['layer']}, threshold at "
        f"the {page['percentile']:g}th percentile",
        "g_n_test": f"{len(test):,}",
        "g_n_cpsc": f"{n_split['cpsc']:,}",
        "g_n_ptbxl": f"{n_split['ptbxl']:,}",
        "g_artifact": artifact.folder.name,
    }


def confidence_notes(cases: pd.DataFrame) -> dict[str, str]:
    """Per case, a caption sentence when the record's score is below 0.5, else "".

    The cases are the *most confident* correct records, yet on a small or briefly trained build
    their score can lie far below 0.5, a positive call only because the threshold chosen on the
    validation fold is low, often beside many other predicted classes: the map then explains a
    weak, unspecific decision, not the confident one the paper's reading presumes.

    Parameters
    ----------
    cases : pandas.DataFrame
        :func:`ecgrepro.explain.figure_cases`'s ``cases`` (index: the case; ``target``,
        ``score``, ``threshold``, ``predicted``: classes joined by ``+``).

    Returns
    -------
    dict of str -> str
        Case -> the sentence (with a leading space) or "".
    """
    notes = {}
    for case, info in cases.iterrows():
        notes[case] = ""
        if info["record"] and pd.notna(info["score"]) and info["score"] < 0.5:
            n = len(str(info["predicted"] or "").split("+"))
            notes[case] = (
                f" The model's {info['target']} score for this record is {info['score']:.2f}, "
                f"a positive call only against its threshold of {info['threshold']:.2f}, beside "
                f"{n - 1} other predicted class{'es' if n != 2 else ''}: the map explains a weak "
                "decision, not the confident one the paper's reading presumes."
            )
    return notes


def map_texts(page, cams: dict) -> dict[str, str]:
    """The glue texts on the maps: the captum check, their scale, cost, padding and resolution.

    Runs the model once on a zero input to count the layer's time steps.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Figs 6-8 page; reads ``fs_hz`` (Hz), ``window_s`` (s) and ``layer``.
    cams : dict
        :func:`case_gradcam`'s result.

    Returns
    -------
    dict of str -> str
        ``g_captum`` (captum's largest difference, logit units), ``g_scale`` (the time maps'
        largest value), ``g_seconds`` (s per record), ``g_padding`` (signal per record),
        ``g_steps`` (the layer's time steps) and ``g_fc`` (the mean output weight on the
        average-pooled channels of LBBB, RBBB and AF).
    """
    fs_hz, window_s, n_samples = page["fs_hz"], page["window_s"], page.pipe.n_samples
    stored, drawn, model = cams["stored"], cams["drawn"], cams["model"]
    scale = float(np.abs(cams["maps"]["time"]).max()) if len(drawn) else float("nan")
    texts = {
        "g_captum": f"{float(stored['captum_max_diff']):.1e}",
        "g_scale": f"{scale:.2e}",
        "g_seconds": f"{float(stored['seconds_per_record']):.2f}",
        "g_padding": "; ".join(
            f"{r}: {nv / fs_hz:.1f} s of signal in the {window_s:g} s window"
            for r, nv in zip(drawn.record, cams["n_valid"], strict=True)
        )
        or "no case",
    }
    steps = {}
    hook = model.get_submodule(page["layer"]).register_forward_hook(
        lambda m, i, o: steps.update(n=o.shape[-1])
    )
    with torch.no_grad():
        model(torch.zeros(1, 12, n_samples, device=next(model.parameters()).device))
    hook.remove()
    texts["g_steps"] = (
        f"{steps['n']} time steps for {n_samples:,} input samples (one per "
        f"{n_samples / steps['n']:.0f} samples, {1000 * window_s / steps['n']:.0f} ms)"
    )
    # the average-pooled half of the head's inputs
    fc_avg = model.fc.weight[:, : model.fc.in_features // 2].mean(dim=1).detach().cpu().numpy()
    texts["g_fc"] = ", ".join(
        f"{c} {fc_avg[CLASSES.index(c)]:+.4f}" for c in ("LBBB", "RBBB", "AF")
    )
    return texts


def case_figures(page, cams: dict, percentile: float) -> dict:
    """Figures 6-8: each case as 12-lead printouts under both thresholded maps, saved by halves.

    Each map gets the standard printout (:func:`ecgrepro.plots.ecg_grids`: 3 x 4 leads of
    2.5 s, a lead II rhythm strip, one amplitude scale on ECG paper, 25 mm/s and 10 mm/mV; issue
    #25, item 3), the map shaded behind every lead (it is one map over time), the QRS complexes
    marked under the rhythm strip, the front zero-padding left out. Saves
    ``fig6_gradcam_lbbb.png`` (the time map) and ``fig6_gradcam_lbbb_published.png`` (the
    published one), and so on, under ``<build>/figures`` (110 dpi); a map that is zero
    everywhere is saved as ``..._empty_map.png``, not under the paper's figure's name
    (issue #25, item 2).

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Figs 6-8 page; reads ``fs_hz`` (Hz) and ``profile``.
    cams : dict
        :func:`case_gradcam`'s result.
    percentile : float
        The display threshold (95: Section 4.6), over the record's valid samples.

    Returns
    -------
    dict of str -> matplotlib.figure.Figure
        Case -> both printouts, the map as defined above the published one (closed: displayed
        by the page).
    """
    fs_hz, profile = page["fs_hz"], page["profile"]
    drawn, x, n_valid, maps, qrs = (cams[k] for k in ("drawn", "x", "n_valid", "maps", "qrs"))
    titles = {
        "time": f"Grad-CAM as defined (over time), {percentile:g}th percentile",
        "published": "published code: a map over the 512 channels, stretched over time, "
        f"{percentile:g}th percentile",
    }
    figures = {}
    for i, case in enumerate(drawn.index):
        number, stem = CASE_FIGURES[case]
        info = drawn.loc[case]
        title = (
            f"Fig. {number}: {info.record}, labelled {info.labels}, {info.target} score "
            f"{info.score:.2f} (threshold {info.threshold:.2f}); Ours_2, {profile} profile"
        )
        panels = {
            v: {
                "overlay": threshold_percentile(maps[v][i], percentile, n_valid=n_valid[i]),
                "label": "Grad-CAM (logit units)",
                "empty": "(zero everywhere: ReLU removed the whole map)",
            }
            for v in maps
        }
        common = {"n_valid": int(n_valid[i]), "title": title, "qrs": qrs.at[case, "mask"]}
        for variant, suffix in (("time", ""), ("published", "_published")):
            single = ecg_grids(x[i], fs_hz, {titles[variant]: panels[variant]}, **common)
            # an empty map is no reproduction of the paper's figure: its file says so
            empty = not np.any(panels[variant]["overlay"])
            page.savefig(single, f"{stem}{suffix}{'_empty_map' if empty else ''}.png", dpi=110)
            plt.close(single)
        figures[case] = ecg_grids(x[i], fs_hz, {titles[v]: panels[v] for v in maps}, **common)
        plt.close(figures[case])
    return figures


def mass_texts(mass: pd.DataFrame) -> dict[str, str]:
    """The glue texts of the QRS mass table: the thresholded time maps and the delineation.

    Parameters
    ----------
    mass : pandas.DataFrame
        :func:`ecgrepro.explain.qrs_mass_table`'s result.

    Returns
    -------
    dict of str -> str
        ``g_mass_time`` (mass share, time share, enrichment and shift p of each thresholded
        time map) and ``g_qrs_found`` (QRS complexes and leads delineated per record).
    """
    shown = mass[
        (mass.variant == "time") & (mass["map"] == "thresholded") & mass.qrs_mass_share.notna()
    ]
    return {
        "g_mass_time": "; ".join(
            f"{CASE_NAMES[r.case]}: {r.qrs_mass_share:.2f} of the mass on {r.qrs_time_share:.2f} "
            f"of the time, enrichment {r.enrichment:.2f}, shift p {r.shift_p:.2f}"
            for r in shown.itertuples()
        )
        or "no case",
        "g_qrs_found": "; ".join(
            f"{r.record}: {r.qrs_complexes} QRS complexes, {r.leads_delineated} of 12 leads "
            "delineated"
            for r in mass.drop_duplicates("case").itertuples()
        ),
    }
