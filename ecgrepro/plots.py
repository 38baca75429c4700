"""Figures and table views for the book pages."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.plots_ecg import ECG_ROWS, ecg_grid, ecg_grids, ecg_strips
from ecgrepro.tables import ROW_ORDER

#: The ECG printout (:mod:`ecgrepro.plots_ecg`), re-exported.
__all__ = [
    "ECG_ROWS",
    "cluster_figure",
    "ecg_grid",
    "ecg_grids",
    "ecg_strips",
    "learning_curves",
    "matrix_heatmap",
    "roc_curves",
    "shap_heatmaps",
]


def learning_curves(models: dict, figsize_per_model=(4.2, 3.0)):
    """Loss and validation scores per epoch for trained models.

    Parameters
    ----------
    models : dict of str -> object with ``log`` (DataFrame of
        :class:`ecgrepro.train.TrainResult`) and ``best_epoch``
    figsize_per_model : tuple of float
        Inches per model column.

    Returns
    -------
    matplotlib.figure.Figure
        Row 1: training and validation BCE loss; row 2: validation mean F1
        (best threshold per class) and macro AUC, with the kept epoch dotted.
    """
    n = len(models)
    w, h = figsize_per_model
    fig, axes = plt.subplots(2, n, figsize=(w * n, h * 2), squeeze=False, sharex="col")
    for k, (name, m) in enumerate(models.items()):
        log = m.log
        ax = axes[0, k]
        ax.plot(log.epoch, log.train_loss, label="train")
        ax.plot(log.epoch, log.val_loss, label="validation")
        ax.set(title=name, ylabel="BCE loss")
        ax.legend(fontsize=8)
        ax = axes[1, k]
        ax.plot(log.epoch, log.val_mean_f1, label="mean F1 (best thresholds)")
        ax.plot(log.epoch, log.val_macro_auc, label="macro AUC")
        ax.axvline(m.best_epoch, color="grey", ls=":", label="kept checkpoint")
        ax.set(xlabel="epoch", ylabel="validation score", ylim=(0, 1))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def matrix_heatmap(cells: pd.DataFrame, metrics=("auc", "f1"), title_suffix: str = ""):
    """Train x test heatmaps of macro (AVG) metrics with their intervals.

    Parameters
    ----------
    cells : pandas.DataFrame
        Long form with ``trained_on, test_set, metric, value, ci_low, ci_high``
        for ``class == "AVG"``.
    metrics : tuple of str
        One heatmap per metric.
    title_suffix : str
        Appended to each panel title (e.g. the profile).

    Returns
    -------
    matplotlib.figure.Figure
        Rows: training data; columns: test set; colour: the value (0-1);
        text: value and [low, high].
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = cells[cells.metric == metric]
        rows = list(dict.fromkeys(sub.trained_on))
        cols = list(dict.fromkeys(sub.test_set))
        grid = sub.pivot(index="trained_on", columns="test_set", values="value").reindex(rows)[cols]
        im = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis")
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                cell = sub[(sub.trained_on == r) & (sub.test_set == c)].iloc[0]
                colour = "black" if cell.value > 0.6 else "white"
                ax.text(
                    j,
                    i,
                    f"{cell.value:.3f}\n[{cell.ci_low:.2f}, {cell.ci_high:.2f}]",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=colour,
                )
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set(
            xlabel="tested on",
            ylabel="trained on",
            title=f"macro {'AUC' if metric == 'auc' else metric.upper()}{title_suffix}",
        )
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def roc_curves(y_true: np.ndarray, scores: dict, classes=CLASSES):
    """ROC curve per class for several models on one test set.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n_records, 9), {0, 1}
    scores : dict of str -> numpy.ndarray, shape (n_records, 9)
        Sigmoid outputs per model.
    classes : sequence of str

    Returns
    -------
    matplotlib.figure.Figure
        A 3 x 3 grid, one panel per class; classes without positive or
        negative test records are marked as such.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, axes = plt.subplots(3, 3, figsize=(10, 9.5), sharex=True, sharey=True)
    for k, (ax, c) in enumerate(zip(axes.flat, classes, strict=True)):
        t = y_true[:, k]
        ax.plot([0, 1], [0, 1], color="lightgrey", lw=1)
        if 0 < t.sum() < len(t):
            for name, s in scores.items():
                fpr, tpr, _ = roc_curve(t, s[:, k])
                ax.plot(fpr, tpr, label=f"{name} ({roc_auc_score(t, s[:, k]):.2f})")
            ax.legend(fontsize=7, loc="lower right", title="AUC", title_fontsize=7)
        else:
            ax.text(0.5, 0.5, "no positive or no negative\ntest record", ha="center", fontsize=8)
        ax.set_title(f"{c} (n+ = {int(t.sum())})")
    for ax in axes[-1]:
        ax.set_xlabel("false positive rate")
    for ax in axes[:, 0]:
        ax.set_ylabel("true positive rate")
    fig.tight_layout()
    return fig


#: How :func:`shap_heatmaps` marks a flagged row (:func:`ecgrepro.explain.sum_flags`).
ROW_MARKS: dict[str, str] = {"sum <= 0": " (sum\u22640)", "small sum": " (sum\u22480)"}


def shap_heatmaps(
    matrices: dict,
    vmax: float | None = None,
    ncols: int = 2,
    marks: dict | None = None,
    label: str = "share of the class's summed attribution",
):
    """Class x lead heatmaps on one shared, symmetric colour scale.

    Parameters
    ----------
    matrices : dict of str -> numpy.ndarray, shape (10, 12) or (10, 8)
        Panel title -> matrix (rows: the 9 classes then AVG; columns: leads
        I ... V6, or the 8 independent leads I, II, V1-V6 for an 8-column
        matrix), as :func:`ecgrepro.explain.aggregate_per_lead` returns.
    vmax : float, optional
        Colour-scale limit (the scale is [-vmax, vmax]); defaults to the
        largest absolute finite value over all panels.
    ncols : int
    marks : dict of str -> sequence of str, optional
        Panel title -> one flag per row (``""``, ``"sum <= 0"`` or ``"small
        sum"``, :func:`ecgrepro.explain.sum_flags`): a flagged row's label gets
        :data:`ROW_MARKS`'s suffix, in red.
    label : str
        Colour-bar label.

    Returns
    -------
    matplotlib.figure.Figure
        Each cell annotated with its value; NaN rows (no record of that class) blank.
    """
    from ecgrepro.config import LEADS
    from ecgrepro.explain import INDEPENDENT_LEADS

    finite = np.concatenate([m[np.isfinite(m)] for m in matrices.values()] + [np.zeros(1)])
    vmax = vmax or float(np.abs(finite).max()) or 1.0
    n = len(matrices)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.2 * ncols, 4.6 * nrows), squeeze=False)
    for ax, (title, mat) in zip(axes.flat, matrices.items(), strict=False):
        leads = INDEPENDENT_LEADS if mat.shape[1] == len(INDEPENDENT_LEADS) else LEADS
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                if np.isfinite(mat[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{mat[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if abs(mat[i, j]) > 0.6 * vmax else "black",
                    )
        flags = list((marks or {}).get(title, [""] * len(ROW_ORDER)))
        flags = (flags + [""] * len(ROW_ORDER))[: len(ROW_ORDER)]
        ax.set_xticks(range(len(leads)), leads)
        names = [r + ROW_MARKS.get(f, "") for r, f in zip(ROW_ORDER, flags, strict=True)]
        ax.set_yticks(range(len(ROW_ORDER)), names)
        for tick, f in zip(ax.get_yticklabels(), flags, strict=True):
            if f:
                tick.set_color("C3")
        ax.set(title=title, xlabel="lead")
        fig.colorbar(im, ax=ax, fraction=0.03, label=label)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def cluster_figure(
    signal: np.ndarray,
    fs_hz: float,
    labels: np.ndarray,
    entropy: np.ndarray,
    k: int,
    title: str = "",
    n_valid: int | None = None,
    leads: tuple[int, ...] = tuple(range(12)),
):
    """A 12-lead record on a background coloured by cluster, with an entropy band under it.

    Companion C's figure: each time step of the clusters' grid colours the
    background of every lead; the band at the bottom is the normalised
    entropy of the step's soft assignment (0: certain, 1: uniform over the K
    clusters).

    Parameters
    ----------
    signal : numpy.ndarray, shape (12, n_samples), float32, mV
    fs_hz : float
        Sampling frequency, Hz.
    labels : numpy.ndarray of int, shape (n_steps,)
        Cluster per grid step, -1 in the padding (left white).
    entropy : numpy.ndarray, shape (n_steps,)
        Normalised entropy per step, NaN in the padding.
    k : int
        Number of clusters (sets the colours).
    title : str
    n_valid : int, optional
        Valid samples (the last ``n_valid``); the axis starts there.
    leads : tuple of int
        Leads drawn, in :data:`ecgrepro.config.LEADS` order.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap

    from ecgrepro.config import LEADS

    n = signal.shape[-1]
    t = np.arange(n) / fs_hz
    start = 0 if n_valid is None else n - int(n_valid)
    colours = ListedColormap(plt.get_cmap("tab20" if k > 10 else "tab10").colors[:k])
    bands = np.ma.masked_less(np.asarray(labels)[None, :], 0)
    fig, axes = plt.subplots(
        len(leads) + 1,
        1,
        figsize=(13, 0.8 * len(leads) + 1.6),
        sharex=True,
        layout="constrained",
        gridspec_kw={"height_ratios": [1] * len(leads) + [0.6]},
    )
    for ax, lead in zip(axes[:-1], leads, strict=True):
        lo, hi = float(signal[lead, start:].min()), float(signal[lead, start:].max())
        span = max(hi - lo, 0.5)
        im = ax.imshow(
            bands,
            extent=(0, t[-1] + 1 / fs_hz, lo - 0.05 * span, hi + 0.05 * span),
            aspect="auto",
            cmap=colours,
            vmin=-0.5,
            vmax=k - 0.5,
            alpha=0.45,
            interpolation="nearest",
        )
        ax.plot(t, signal[lead], color="k", lw=0.6)
        ax.set_ylim(lo - 0.05 * span, hi + 0.05 * span)
        ax.set_ylabel(LEADS[lead], rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    steps = len(entropy)
    axes[-1].fill_between(
        (np.arange(steps) + 0.5) * n / steps / fs_hz, 0, entropy, step="mid", color="0.3"
    )
    axes[-1].set_ylim(0, 1)
    axes[-1].set_ylabel("entropy\n/ log K", rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(t[start], t[-1] + 1 / fs_hz)
    fig.colorbar(im, ax=axes[:-1], shrink=0.4, ticks=range(k), label="cluster")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
