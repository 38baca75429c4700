"""The Companion B page's steps: learned deletion masks beside Grad-CAM, their sweep, the LSTM.

Companion B (Vijayarangan et al., EMBC 2020; METHODS.md, "Companion papers", B) explains an LSTM
with a learned input deletion mask (Fong & Vedaldi 2017;
:func:`ecgrepro.explain.deletion_mask.deletion_mask`). The page learns the mask for the Figures
6-8 case records of Ours_2, whose Grad-CAMs it re-reads
(:func:`ecgrepro.pages.gradcam.case_gradcam`), compares the maps, sweeps the mask's two penalty
weights and learns masks for a small LSTM over one lead.
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ecgrepro.config import CLASSES, LEADS
from ecgrepro.explain import qrs_mass_table, threshold_percentile
from ecgrepro.explain.deletion_mask import deletion_mask, top_share_jaccard
from ecgrepro.metrics import per_class_metrics
from ecgrepro.plots import ecg_grids, ecg_strips
from ecgrepro.runtime import torch_threads

#: The sweep's factors on the page's l1 and TV weights (a third of, at, three times).
SWEEP_FACTORS = (1 / 3, 1, 3)


def setup_texts(page, artifact) -> dict[str, str]:
    """The glue texts of the page's profile, setup and model.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Companion B page; reads ``profile``, ``fs_hz`` (Hz), ``window_s`` (s), ``n_iter``,
        ``mask_lr``, ``l1``, ``tv``, ``bin_ms`` (ms), ``blur_hz`` (Hz), ``layer``,
        ``lstm_lead`` and ``lstm_epochs``.
    artifact : ecgrepro.artifacts.TrainedModel
        Ours_2.

    Returns
    -------
    dict of str -> str
        ``b_profile``, ``b_setup`` and ``b_artifact`` (the model's artifact folder).
    """
    p = page.ns
    return {
        "b_profile": p["profile"],
        "b_setup": f"{p['fs_hz']:g} Hz, {p['window_s']:g} s; {p['n_iter']} Adam iterations "
        f"(learning rate {p['mask_lr']:g}) per mask, l1 {p['l1']:g}, TV {p['tv']:g}, "
        f"{p['bin_ms']:g} ms bins, deleted signal replaced by its low-pass copy below "
        f"{p['blur_hz']:g} Hz; Grad-CAM at {p['layer']}; LSTM over lead {p['lstm_lead']}, "
        f"{p['lstm_epochs']} epochs",
        "b_artifact": artifact.folder.name,
    }


def case_masks(
    page, cams: dict, name: str, artifact, l1: float, tv: float, mask_params: dict
) -> dict[str, np.ndarray]:
    """One model's deletion masks of the case records, through the store.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Companion B page; reads ``fs_hz`` (Hz).
    cams : dict
        :func:`ecgrepro.pages.gradcam.case_gradcam`'s result (records, targets, store key).
    name : str
        The stored result's name (``mask-cases`` for Ours_2, ``mask-cases-lstm``).
    artifact : ecgrepro.artifacts.TrainedModel
        The explained model.
    l1, tv : float
        Weights of the deleted share and of the mask's total variation.
    mask_params : dict
        :func:`~ecgrepro.explain.deletion_mask.deletion_mask`'s ``n_iter``, ``lr``,
        ``blur_hz``, ``bin_ms`` and ``seed``.

    Returns
    -------
    dict of str -> numpy.ndarray
        :func:`~ecgrepro.explain.deletion_mask.deletion_mask`'s result: ``saliency``
        (n, 12, n_samples), ``probability_start``, ``probability_blur``, ``probability``,
        ``deleted`` (n,), ``mask_bins``, ``valid_bins``, ``seconds_per_record``, ...
    """
    model = artifact.model.to(page.pipe.device).eval()
    x, n_valid, targets = cams["x"], cams["n_valid"], cams["targets"]
    return page.cached(
        name,
        {
            **cams["key"],
            "model": artifact.key,
            "targets": targets,
            "l1": l1,
            "tv": tv,
            **mask_params,
        },
        partial(deletion_mask, model, x, targets, page["fs_hz"], n_valid, l1, tv, **mask_params),
    )


def case_table(cams: dict, masks: dict, top_percent: float) -> pd.DataFrame:
    """Ours_2's mask per case beside both Grad-CAMs: probabilities, overlaps, QRS mass.

    Parameters
    ----------
    cams : dict
        :func:`ecgrepro.pages.gradcam.case_gradcam`'s result.
    masks : dict
        :func:`case_masks`'s result for Ours_2.
    top_percent : float
        The share of each map's valid samples whose overlap is measured (Jaccard), %.

    Returns
    -------
    pandas.DataFrame
        One row per case: ``model, case, record, target, probability_start,
        probability_blur, probability_end, deleted_share, jaccard_mask_gradcam,
        jaccard_mask_published, jaccard_gradcam_published, qrs_time_share, qrs_mass_mask,
        qrs_mass_gradcam, qrs_mass_published`` (the raw maps' mass share in QRS complexes,
        :func:`ecgrepro.explain.qrs_mass_table`; the mask averaged over the leads).
    """
    drawn, n_valid, maps, qrs = (cams[k] for k in ("drawn", "n_valid", "maps", "qrs"))
    case_rows = []
    for i, case in enumerate(drawn.index):
        nv = int(n_valid[i])
        saliency = masks["saliency"][i]
        time_map, published = maps["time"][i], maps["published"][i]
        case_rows.append(
            {
                "model": "Ours_2",
                "case": case,
                "record": drawn.at[case, "record"],
                "target": drawn.at[case, "target"],
                "probability_start": masks["probability_start"][i],
                "probability_blur": masks["probability_blur"][i],
                "probability_end": masks["probability"][i],
                "deleted_share": masks["deleted"][i],
                "jaccard_mask_gradcam": top_share_jaccard(saliency, time_map, nv, top_percent),
                "jaccard_mask_published": top_share_jaccard(saliency, published, nv, top_percent),
                "jaccard_gradcam_published": top_share_jaccard(
                    time_map, published, nv, top_percent
                ),
            }
        )
    table = pd.DataFrame(case_rows)
    mass = qrs_mass_table(qrs, {"mask": masks["saliency"].mean(1), **maps}, q=100 - top_percent)
    raw_mass = mass[mass["map"] == "raw"].pivot(
        index="case", columns="variant", values="qrs_mass_share"
    )
    table["qrs_time_share"] = table.case.map(
        mass.drop_duplicates("case").set_index("case").qrs_time_share
    )
    for variant, column in (
        ("mask", "qrs_mass_mask"),
        ("time", "qrs_mass_gradcam"),
        ("published", "qrs_mass_published"),
    ):
        table[column] = table.case.map(raw_mass[variant]) if variant in raw_mass else np.nan
    return table


def case_figures(page, cams: dict, masks: dict, percentile: float) -> dict:
    """Each case as 12-lead printouts under the mask's saliency and both thresholded Grad-CAMs.

    One printout per map, top to bottom (:func:`ecgrepro.plots.ecg_grids`: 3 x 4 leads of
    2.5 s, a lead II rhythm strip, one amplitude scale on ECG paper, 25 mm/s and 10 mm/mV; issue
    #25, item 3): the mask's saliency 1 - m (0-1) behind each lead, then the Grad-CAM as defined
    and the published one (one map over time, the same behind every lead); QRS complexes marked
    under the rhythm strips, front zero-padding left out. Saves ``companion_b_<case>.png`` under
    ``<build>/figures`` (110 dpi).

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Companion B page; reads ``fs_hz`` (Hz) and ``profile``.
    cams : dict
        :func:`ecgrepro.pages.gradcam.case_gradcam`'s result.
    masks : dict
        :func:`case_masks`'s result for Ours_2.
    percentile : float
        The Grad-CAMs' display threshold (95, as the paper), over the valid samples.

    Returns
    -------
    dict of str -> matplotlib.figure.Figure
        Case -> figure (closed: displayed by the page); empty without a case record.
    """
    fs_hz, profile = page["fs_hz"], page["profile"]
    drawn, x, n_valid, maps, qrs = (cams[k] for k in ("drawn", "x", "n_valid", "maps", "qrs"))
    names = {
        "time": f"Grad-CAM (over time), {percentile:g}th percentile",
        "published": f"published Grad-CAM, {percentile:g}th percentile",
    }
    figures = {}
    for i, case in enumerate(drawn.index):
        info = drawn.loc[case]
        nv = int(n_valid[i])
        panels = {
            "deletion mask 1 - m (per lead)": {
                "overlay": masks["saliency"][i],
                "label": "saliency 1 - m",
                "vmax": 1.0,
                "empty": "(empty: the mask deletes nothing)",
            },
            **{
                names[v]: {
                    "overlay": threshold_percentile(maps[v][i], percentile, n_valid=nv),
                    "label": "Grad-CAM (logit units)",
                    "empty": "(zero everywhere: ReLU removed the whole map)",
                }
                for v in maps
            },
        }
        title = (
            f"{case}: {info.record}, labelled {info.labels}, {info.target} score "
            f"{info.score:.2f}; mask lowers it to {masks['probability'][i]:.2f}, deleting "
            f"{masks['deleted'][i]:.1%} (Ours_2, {profile} profile)"
        )
        fig = ecg_grids(x[i], fs_hz, panels, n_valid=nv, title=title, qrs=qrs.at[case, "mask"])
        page.savefig(fig, f"companion_b_{case}.png", dpi=110)
        figures[case] = fig
        plt.close(fig)
    return figures


def mask_sweep(page, cams: dict, l1: float, tv: float, mask_params: dict):
    """Ours_2's masks of the first case record on a 3 x 3 grid of the l1 and TV weights.

    The nine masks are learned as one batch of copies (stored as ``mask-sweep``); the figure is
    saved as ``companion_b_sweep.png`` (110 dpi).

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Companion B page; reads ``fs_hz`` (Hz) and ``profile``.
    cams : dict
        :func:`ecgrepro.pages.gradcam.case_gradcam`'s result, with at least one case.
    l1, tv : float
        The page's weights, multiplied by :data:`SWEEP_FACTORS` (l1 down the rows, TV across).
    mask_params : dict
        As :func:`case_masks`.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The saliency 1 - m per lead and time (s) of each setting (closed).
    table : pandas.DataFrame
        One row per setting: ``l1, tv, probability_end, deleted_share, tv_of_mask``.
    """
    fs_hz, profile = page["fs_hz"], page["profile"]
    drawn, x, n_valid, targets = (cams[k] for k in ("drawn", "x", "n_valid", "targets"))
    factors = np.array(SWEEP_FACTORS)
    grid_l1, grid_tv = np.meshgrid(l1 * factors, tv * factors, indexing="ij")
    copies = np.repeat(x[:1], 9, axis=0)
    sweep = page.cached(
        "mask-sweep",
        {
            **cams["key"],
            "records": list(drawn.record[:1]),
            "n_valid": n_valid[:1],
            "targets": targets[:1],
            "l1": grid_l1.ravel(),
            "tv": grid_tv.ravel(),
            **mask_params,
        },
        partial(
            deletion_mask,
            cams["model"],
            copies,
            int(targets[0]),
            fs_hz,
            np.repeat(n_valid[:1], 9),
            grid_l1.ravel(),
            grid_tv.ravel(),
            **mask_params,
        ),
    )
    start = x.shape[-1] - int(n_valid[0])
    fig, axes = plt.subplots(
        3, 3, figsize=(13, 7.5), sharex=True, sharey=True, layout="constrained"
    )
    for k, ax in enumerate(axes.ravel()):
        im = ax.imshow(
            sweep["saliency"][k][:, start:],
            aspect="auto",
            cmap="YlOrRd",
            vmin=0,
            vmax=1,
            extent=(start / fs_hz, x.shape[-1] / fs_hz, 11.5, -0.5),
            interpolation="nearest",
        )
        ax.set_yticks(range(12), LEADS, fontsize=6)
        ax.set_title(
            f"l1 {grid_l1.ravel()[k]:.2g}, TV {grid_tv.ravel()[k]:.2g}: p "
            f"{sweep['probability'][k]:.2f}, deleted {sweep['deleted'][k]:.1%}",
            fontsize=8,
        )
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.colorbar(im, ax=axes, shrink=0.5, label="saliency 1 - m")
    fig.suptitle(
        f"{drawn.index[0]}: {drawn.record.iloc[0]}, {drawn.target.iloc[0]} from "
        f"{sweep['probability_start'][0]:.2f}; l1 down the rows, TV across ({profile} profile)",
        fontsize=10,
    )
    page.savefig(fig, "companion_b_sweep.png", dpi=110)
    plt.close(fig)
    table = pd.DataFrame(
        {
            "l1": grid_l1.ravel(),
            "tv": grid_tv.ravel(),
            "probability_end": sweep["probability"],
            "deleted_share": sweep["deleted"],
            "tv_of_mask": sweep["tv"],
        }
    )
    return fig, table


def lstm_metric_table(pipe, lstm_name: str, lstm_scores: dict, lstm_lead: str) -> pd.DataFrame:
    """AF and average test metrics of the LSTM beside Ours_2's, on each test set.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    lstm_name : str
        The LSTM's catalogue name (:data:`ecgrepro.catalogue.MODELS`).
    lstm_scores : dict of str -> (ecgrepro.train.Samples, numpy.ndarray)
        ``cpsc`` and ``ptbxl``: the LSTM's test records and (n, 9) scores
        (``pipe.test_scores``).
    lstm_lead : str
        The LSTM's lead, for its row label.

    Returns
    -------
    pandas.DataFrame
        One row per model, test set and class (``AF``, ``AVG``): ``model, test set, class,
        records, positives`` and :func:`ecgrepro.metrics.per_class_metrics`'s columns, at the
        validation-fold thresholds.
    """
    metric_rows = []
    models = ((f"LSTM, lead {lstm_lead}", lstm_name), ("Ours_2 (ResNet-34, 12 leads)", "ours2"))
    for label, name in models:
        # an LSTM's small sequential steps run faster on one CPU thread
        with torch_threads(1 if name == lstm_name else torch.get_num_threads()):
            thresholds = pipe.thresholds(name)
        for d, d_label in (("cpsc", "CPSC 2018"), ("ptbxl", "PTB-XL")):
            samples, scores = (
                lstm_scores[d] if name == lstm_name else pipe.test_scores(name, test_set=d)
            )
            t = per_class_metrics(samples.y, scores, thresholds)
            for cls in ("AF", "AVG"):
                positives = int(samples.y[:, CLASSES.index(cls)].sum()) if cls != "AVG" else np.nan
                metric_rows.append(
                    {
                        "model": label,
                        "test set": d_label,
                        "class": cls,
                        "records": len(samples),
                        "positives": positives,
                        **t.loc[cls].to_dict(),
                    }
                )
    return pd.DataFrame(metric_rows)


def lstm_texts(metrics: pd.DataFrame, lstm) -> dict[str, str]:
    """The glue texts of the LSTM: its AF AUC per test set and its training.

    Parameters
    ----------
    metrics : pandas.DataFrame
        :func:`lstm_metric_table`'s result.
    lstm : ecgrepro.artifacts.TrainedModel

    Returns
    -------
    dict of str -> str
        ``b_lstm_af_auc``, ``b_lstm_trained`` (training seconds, or re-read) and
        ``b_lstm_chance``: a sentence for the figures' captions where no AF AUC exceeds 0.65
        (chance is 0.5), else "" (issue #25, item 2: a figure of a near-chance model says so).
    """
    lstm_af = metrics[(metrics["class"] == "AF") & metrics.model.str.startswith("LSTM")]
    seconds = lstm.meta.get("train_seconds", float("nan"))
    near = len(lstm_af) and bool(lstm_af.auc.le(0.65).all())
    return {
        "b_lstm_chance": " The LSTM's AF AUC is no better than chance on any test set "
        f"({', '.join(f'{a:.2f}' for a in lstm_af.auc)}): its masks explain a model that has "
        "learned little." if near else "",
        "b_lstm_af_auc": "; ".join(f"{r['test set']} {r.auc:.2f}" for _, r in lstm_af.iterrows()),
        "b_lstm_trained": f"{seconds:.0f} s"
        if not lstm.reused
        else f"re-read (trained in {seconds:.0f} s)",
    }


def lead_masks_figure(page, cams: dict, results: dict, lead_name: str):
    """One lead of each case record under the saliency of several models' masks.

    One rhythm strip per case and model (:func:`ecgrepro.plots.ecg_strips`: ECG paper at
    25 mm/s and 10 mm/mV, the record's own samples only; issue #25, item 3), the saliency
    1 - m (0-1) shaded behind the trace. Saves ``companion_b_lstm.png`` under
    ``<build>/figures`` (110 dpi).

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        The Companion B page; reads ``fs_hz`` (Hz).
    cams : dict
        :func:`ecgrepro.pages.gradcam.case_gradcam`'s result, with at least one case.
    results : dict of str -> dict
        Model label -> :func:`case_masks`'s result, drawn in this order under each case.
    lead_name : str
        The lead shown (:data:`ecgrepro.config.LEADS`; the LSTM's).

    Returns
    -------
    fig : matplotlib.figure.Figure
        Lead ``lead_name`` per case and model (closed).
    table : pandas.DataFrame
        One row per case and model: ``case, record, target, model, probability_start,
        probability_end, deleted_share_lead`` (the mask's deleted share on the lead).
    """
    fs_hz = page["fs_hz"]
    drawn, x, n_valid = cams["drawn"], cams["x"], cams["n_valid"]
    lead = LEADS.index(lead_name)
    rows, strips = [], []
    for i, case in enumerate(drawn.index):
        for label, result in results.items():
            strips.append(
                {
                    "signal": x[i, lead],
                    "lead": lead_name,
                    "overlay": result["saliency"][i, lead],
                    "n_valid": int(n_valid[i]),
                    "title": f"{case}: {drawn.at[case, 'record']}, class "
                    f"{drawn.at[case, 'target']}; {label}: p {result['probability_start'][i]:.2f}"
                    f" -> {result['probability'][i]:.2f}",
                }
            )
            bins = result["valid_bins"][i]
            rows.append(
                {
                    "case": case,
                    "record": drawn.at[case, "record"],
                    "target": drawn.at[case, "target"],
                    "model": label,
                    "probability_start": result["probability_start"][i],
                    "probability_end": result["probability"][i],
                    "deleted_share_lead": float((1 - result["mask_bins"][i, lead][bins]).mean()),
                }
            )
    fig = ecg_strips(strips, fs_hz, overlay_label="saliency 1 - m", vmax=1.0)
    page.savefig(fig, "companion_b_lstm.png", dpi=110)
    plt.close(fig)
    return fig, pd.DataFrame(rows)


def cases_csv_table(
    table: pd.DataFrame, lstm_rows: pd.DataFrame | None, lstm_masks: dict | None, lstm_lead: str
) -> pd.DataFrame:
    """Ours_2's case table with the LSTM's cases appended (``deletion_mask_cases.csv``).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`case_table`'s result.
    lstm_rows : pandas.DataFrame or None
        :func:`lead_masks_figure`'s table (its LSTM rows are appended); None without a case.
    lstm_masks : dict or None
        :func:`case_masks`'s result for the LSTM (its ``deleted`` share over all leads).
    lstm_lead : str
        The LSTM's lead: its model is named ``LSTM_<lead>``.

    Returns
    -------
    pandas.DataFrame
        ``table``'s columns; the LSTM's rows leave the overlap and QRS columns empty.
    """
    out = table.copy()
    if lstm_rows is None:
        return out
    extra = lstm_rows[lstm_rows.model.str.startswith("LSTM")]
    lstm = pd.DataFrame(
        {
            "model": f"LSTM_{lstm_lead}",
            "case": extra.case,
            "record": extra.record,
            "target": extra.target,
            "probability_start": extra.probability_start,
            "probability_end": extra.probability_end,
            "deleted_share": lstm_masks["deleted"],
        }
    )
    return pd.concat([out, lstm], ignore_index=True)
