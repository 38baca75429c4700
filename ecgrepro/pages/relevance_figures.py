"""Companion A's figures (Book figures 7.1-7.4): the relevance per class, per lead and on the
average beat, from the tables and summaries of :mod:`ecgrepro.pages.relevance`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from ecgrepro.config import LEADS
from ecgrepro.explain.relevance import CLINICAL_LEADS, RELEVANCE_METHODS
from ecgrepro.pages.relevance import (
    _WAVE_INDEX,
    DATASETS,
    METHOD_NAMES,
    MODELS,
    TARGETS,
    Explained,
)


def classes_figure(classes: pd.DataFrame, profile: str):
    """Figure 7.1: mean relevance against probability, one panel per class and method."""
    colours = {"TP": "tab:green", "FP": "tab:orange", "FN": "tab:red", "TN": "tab:blue"}
    markers = {"cpsc": "o", "ptbxl": "^"}
    size = (4.2 * len(RELEVANCE_METHODS), 3.4 * len(TARGETS))
    fig, axes = plt.subplots(len(TARGETS), len(RELEVANCE_METHODS), figsize=size, squeeze=False)
    for i, c in enumerate(TARGETS):
        for j, meth in enumerate(RELEVANCE_METHODS):
            ax = axes[i, j]
            sub = classes[(classes["class"] == c) & (classes.method == meth)]
            for (o, d), g in sub.groupby(["outcome", "dataset"]):
                ax.scatter(g.probability, g.mean_relevance, s=14, c=colours[o], marker=markers[d],
                           alpha=0.75, label=f"{o}, {DATASETS[d]}")
            ax.axhline(0, color="grey", lw=0.6)
            if len(sub) and sub.probability.between(1e-6, 1 - 1e-6).all():
                ax.set_xscale("logit")
            ax.set_title(f"{c}: {METHOD_NAMES[meth]}", fontsize=9)
            ax.set_xlabel(f"probability of {c}")
            ax.set_ylabel("mean relevance (logit units per sample)")
            if i == 0 and j == len(RELEVANCE_METHODS) - 1:
                ax.legend(fontsize=6, loc="best")
    title = f"Relevance against probability: Original and Ours_2 pooled ({profile} profile)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def leads_figure(leads_t: pd.DataFrame, profile: str, shown=("ig", "lrp_epsilon_plus_flat")):
    """Figure 7.2: class x lead relevance heat maps, the clinical leads boxed, one per method."""
    panels = [(m, d) for m in MODELS for d in DATASETS]
    size = (7.5 * len(shown), 0.5 * len(panels) * len(TARGETS) + 1.6)
    fig, axes = plt.subplots(1, len(shown), figsize=size, squeeze=False)
    for ax, meth in zip(axes[0], shown, strict=True):
        labels, mat = [], []
        for c in TARGETS:
            for m, d in panels:
                sub = leads_t[(leads_t.model == m) & (leads_t.dataset == d)
                              & (leads_t.method == meth) & (leads_t["class"] == c)]
                labels.append(f"{c}: {MODELS[m]} on {DATASETS[d]}")
                values = sub.set_index("lead").value.reindex(list(LEADS)).to_numpy()
                mat.append(values if len(sub) else np.full(12, np.nan))
        mat = np.array(mat, dtype=float)
        vmax = np.nanmax(np.abs(mat)) if np.isfinite(mat).any() else 1.0
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(12), LEADS)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for row, label in enumerate(labels):
            c = label.split(":")[0]
            for lead in CLINICAL_LEADS[c]:
                box = plt.Rectangle((LEADS.index(lead) - 0.5, row - 0.5), 1, 1, fill=False,
                                    ec="black", lw=1.4)
                ax.add_patch(box)
            for col in range(12):
                if np.isfinite(mat[row, col]):
                    ax.text(col, row, f"{mat[row, col]:.2f}", ha="center", va="center", fontsize=6)
        title = f"{METHOD_NAMES[meth]}: mean relevance per lead / record's mean |relevance|"
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.03)
    title = f"Class x lead relevance; black boxes: the clinical leads ({profile} profile)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def beat_figures(ex: Explained, profile: str) -> Iterator[tuple[str, object, str]]:
    """Figure 7.3: IG relevance on the average beats, per class, healthy and labelled records.

    Drawn for Ours_2 on PTB-XL (or, without it, the model and dataset with the most records).

    Yields
    ------
    (name, figure, note) : the figure's file name, the figure and ""; or, where no record of
        the group has an average beat, None, None and a note (Markdown) saying so
    """
    big = max(ex.results, key=lambda k: len(ex.selected[k[1]]))
    m, d = big if ("ours2", "ptbxl") not in ex.results else ("ours2", "ptbxl")
    r = ex.results[m, d]
    rows = ex.selected[d]
    ds = ex.pipe.datasets[d]
    offsets = r["offsets_ms"]
    for c, t in TARGETS.items():
        for group, member in (("SNR only", ex.snr_only[d]), (f"labelled {c}", ds.y[rows, t] > 0)):
            ok = member & np.isfinite(r["beat_signal"][:, 0, 0])
            ok &= np.isfinite(r[f"ig.{c}.beat"][:, 0, 0])
            if ok.sum() == 0:
                yield None, None, (f"No {group} record of {DATASETS[d]} has an average beat on "
                                   f"this build: no figure for {c}.")
                continue
            fig = _beat_figure(r, ok, c, offsets)
            fig.suptitle(f"Average beat of {ok.sum()} {group} records, {MODELS[m]} on {DATASETS[d]}"
                         f", IG for {c}; shaded: median P (purple) and T (olive) windows "
                         f"({profile} profile)", fontsize=10)
            yield f"companion_a_beats_{c}_{group.split()[0].lower()}.png", fig, ""


def _beat_figure(r: dict, ok: np.ndarray, c: str, offsets: np.ndarray):
    """One 3 x 4 figure of average beats coloured by IG relevance for class ``c``."""
    scale = r[f"ig.{c}.abs"][ok][:, None, None]
    signal = r["beat_signal"][ok].mean(0)
    rel = (r[f"ig.{c}.beat"][ok] / scale).mean(0)
    vmax = np.nanmax(np.abs(rel)) or 1.0
    fig, axes = plt.subplots(3, 4, figsize=(13, 7), sharex=True)
    for j, ax in enumerate(axes.T.ravel()):
        points = np.array([offsets, signal[j]]).T.reshape(-1, 1, 2)
        lc = LineCollection(np.concatenate([points[:-1], points[1:]], axis=1), cmap="RdBu_r",
                            linewidths=3, norm=plt.Normalize(-vmax, vmax))
        lc.set_array(rel[j][:-1])
        ax.add_collection(lc)
        ax.plot(offsets, signal[j], color="black", lw=0.5)
        for wave, colour in (("P", "tab:purple"), ("T", "tab:olive")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the wave in no record: NaN
                lo_ms = np.nanmedian(r["waves"][ok, _WAVE_INDEX[wave], 0])
                hi_ms = np.nanmedian(r["waves"][ok, _WAVE_INDEX[wave], 1])
            if np.isfinite(lo_ms):
                ax.axvspan(lo_ms, hi_ms, color=colour, alpha=0.12)
        ax.set_xlim(offsets[0], offsets[-1])
        ax.set_ylim(np.nanmin(signal[j]) - 0.1, np.nanmax(signal[j]) + 0.1)
        ax.set_title(LEADS[j], fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("ms from R")
    for ax in axes[:, 0]:
        ax.set_ylabel("mV")
    fig.colorbar(lc, ax=axes, fraction=0.02,
                 label=f"IG relevance for {c} / record's mean |relevance|")
    return fig
