"""The Companion C page: time-localised clusters, their alignment with the waves, a surrogate.

The page (``notebooks/companion_c_clusters.ipynb``) applies Companion C's method (Boubekki et
al., IEEE TBME 2026, arXiv:2509.15198; METHODS.md, "Companion papers", C) to Ours_2 and to the
superclass ResNet-34 through :mod:`ecgrepro.explain.clusters`; this module gathers each model's
records and predictions, fits and stores the clusters, delineates the waves, tabulates the
alignment and the surrogate forest, and draws the page's figures.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ecgrepro.beats import WAVE_CODES, wave_label_records
from ecgrepro.config import CLASSES
from ecgrepro.data.labels import SUPERCLASSES
from ecgrepro.explain.clusters import (
    LAYER4_BLOCKS,
    STAGES,
    cluster_records,
    forest_agreement,
    wave_alignment,
    waves_on_grid,
)
from ecgrepro.pipeline import samples_for, split_scores
from ecgrepro.plots import cluster_figure

#: The page's ``layers`` parameter -> the layers whose activations are clustered.
LAYER_SETS = {"stages": STAGES, "layer4_blocks": LAYER4_BLOCKS}
#: Catalogue model -> (display name, label set, datasets, class names).
MODELS = {"ours2": ("Ours_2", "9 classes", ("cpsc", "ptbxl"), CLASSES),
          "resnet34_super": ("ResNet-34, PTB-XL superclasses", "5 superclasses", ("ptbxl_super",),
                             SUPERCLASSES)}
#: The wave codes' names (P, QRS, T, other), in code order.
WAVE_NAMES = tuple(WAVE_CODES)


def setup_texts(params: Mapping, models: Mapping, sup) -> dict[str, str]:
    """The glue texts of the page's "Data, profile and method" section.

    Parameters
    ----------
    params : mapping of str -> object
        The page's parameters (a :class:`ecgrepro.book.page.Page`): ``profile``, ``fs_hz``
        (Hz), ``window_s`` (s), ``layers``, ``n_components``, ``ks``, ``k_seeds``,
        ``max_fit_steps``, ``n_estimators``, ``n_boot``.
    models : mapping of str -> ecgrepro.pipeline.TrainedModel
        The page's models (their artifact folders are named).
    sup : ecgrepro.data.ECGDataset
        PTB-XL with the diagnostic superclasses (``pipe.dataset("ptbxl_super")``).

    Returns
    -------
    dict of str -> str
        ``c_profile``, ``c_setup``, ``c_super`` (records per superclass and split),
        ``c_artifacts``.
    """
    p = params
    layers = ", ".join(LAYER_SETS[p["layers"]])
    setup = (f"{p['fs_hz']:g} Hz, {p['window_s']:g} s; layers {layers}; "
             f"PCA to {p['n_components']} components; K from {', '.join(map(str, p['ks']))} with "
             f"{p['k_seeds']} seeds each, fitted on up to {p['max_fit_steps']:,} time steps; "
             f"forest of {p['n_estimators']} trees; {p['n_boot']} bootstrap resamples")
    counts = zip(SUPERCLASSES, sup.y.sum(0), strict=False)
    per_class = ", ".join(f"{c} {int(v):,}" for c, v in counts)
    per_split = ", ".join(f"{s} {n:,}" for s, n in sup.records.split.value_counts().items())
    return {
        "c_profile": p["profile"],
        "c_setup": setup,
        "c_super": f"{len(sup.records):,} PTB-XL records with a diagnostic statement "
                   f"({per_class}); {per_split}",
        "c_artifacts": ", ".join(tm.folder.name for tm in models.values()),
    }


def model_data(pipe, name: str, tm) -> dict:
    """One model's training and test records, thresholds and predictions.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    name : str
        A key of :data:`MODELS`.
    tm : ecgrepro.pipeline.TrainedModel
        Its trained model.

    Returns
    -------
    dict
        ``train``, ``test`` (:class:`ecgrepro.train.Samples` of the model's datasets),
        ``thresholds`` (n_labels,) validation thresholds, ``train_pred`` and ``test_pred``
        (n, n_labels) bool thresholded sigmoid outputs, ``test_scores`` (n_test, n_labels)
        sigmoid outputs, ``names`` (``"<dataset>/<record>"`` of the test records).
    """
    parts = MODELS[name][2]
    ds = pipe.datasets
    train, test = samples_for(ds, parts, "train"), samples_for(ds, parts, "test")
    thresholds = pipe.thresholds(name)
    train_scores = np.concatenate([split_scores(tm, ds, d, "train", pipe.device)[1] for d in parts])
    test_scores = np.concatenate([split_scores(tm, ds, d, "test", pipe.device)[1] for d in parts])
    names = [f"{d}/{r}" for d in parts for r in ds[d].records.record[ds[d].records.split == "test"]]
    return {"train": train, "test": test, "thresholds": thresholds,
            "train_pred": train_scores >= thresholds, "test_pred": test_scores >= thresholds,
            "test_scores": test_scores, "names": names}


def fit_clusters(page, models: Mapping) -> tuple[dict, dict, float]:
    """Each model's clusters (:func:`ecgrepro.explain.clusters.cluster_records`), stored.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Its pipeline, its store (:meth:`~ecgrepro.book.page.Page.cached`, results
        ``clusters-<model>``) and its parameters ``layers``, ``n_components``, ``ks``,
        ``k_seeds``, ``min_stability``, ``max_fit_steps``, ``seed``.
    models : mapping of str -> ecgrepro.pipeline.TrainedModel
        The models of :data:`MODELS` (moved to the pipeline's device).

    Returns
    -------
    results : dict of str -> dict of str -> numpy.ndarray
        Model -> :func:`~ecgrepro.explain.clusters.cluster_records`' result.
    data : dict of str -> dict
        Model -> :func:`model_data`.
    seconds : float
        Wall time, s.
    """
    pipe, p = page.pipe, page
    layers = LAYER_SETS[p["layers"]]
    t0 = time.perf_counter()
    results, data = {}, {}
    for m, (_, _, parts, _) in MODELS.items():
        tm = models[m]
        model = tm.model.to(pipe.device).eval()
        data[m] = model_data(pipe, m, tm)
        payload = {"model": tm.key, "data": {d: pipe.datasets[d].data_key for d in parts},
                   "layers": layers, "n_components": p["n_components"], "ks": p["ks"],
                   "k_seeds": p["k_seeds"], "min_stability": p["min_stability"],
                   "max_fit_steps": p["max_fit_steps"], "seed": p["seed"]}
        seeds = tuple(range(p["seed"], p["seed"] + p["k_seeds"]))
        results[m] = page.cached(
            f"clusters-{m}", payload,
            partial(cluster_records, model, data[m]["train"], data[m]["test"], layers,
                    p["n_components"], tuple(p["ks"]), seeds, p["max_fit_steps"],
                    p["min_stability"], p["seed"]))
    return results, data, time.perf_counter() - t0


def sweep_table(results: Mapping) -> pd.DataFrame:
    """The K sweep of each model: BIC and stability per K, and the K chosen.

    Parameters
    ----------
    results : mapping of str -> dict
        :func:`fit_clusters`' results.

    Returns
    -------
    pandas.DataFrame
        ``model, K, seeds fitted, BIC, BIC sd over seeds, stability (mean ARI),
        stability (min ARI), chosen``.
    """
    return pd.concat([pd.DataFrame({
        "model": MODELS[m][0], "K": r["sweep_k"], "seeds fitted": r["sweep_fits"],
        "BIC": r["sweep_bic"], "BIC sd over seeds": r["sweep_bic_sd"],
        "stability (mean ARI)": r["sweep_stability"],
        "stability (min ARI)": r["sweep_stability_min"], "chosen": r["sweep_k"] == int(r["k"]),
    }) for m, r in results.items()], ignore_index=True)


def k_sweep_figure(results: Mapping, min_stability: float, profile: str):
    """Choosing K: BIC (mean and sd over seeds) and stability (mean ARI) against K, per model.

    Parameters
    ----------
    results : mapping of str -> dict
        :func:`fit_clusters`' results.
    min_stability : float
        The stability threshold (a grey line).
    profile : str
        Named in the title.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels; a dotted line at each model's chosen K.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    for m, r in results.items():
        axes[0].errorbar(r["sweep_k"], r["sweep_bic"], yerr=r["sweep_bic_sd"], marker="o",
                         label=MODELS[m][0])
        axes[1].plot(r["sweep_k"], r["sweep_stability"], marker="o", label=MODELS[m][0])
        for ax in axes:
            ax.axvline(int(r["k"]), ls=":", color=ax.lines[-1].get_color())
    axes[0].set(xlabel="K", ylabel="BIC (lower is better)", title="BIC, mean and sd over seeds")
    axes[1].set(xlabel="K", ylabel="mean adjusted Rand index", title="stability across seeds",
                ylim=(0, 1.02))
    axes[1].axhline(min_stability, color="grey", lw=0.6)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Choosing K; dotted: the K chosen ({profile} profile)", fontsize=10)
    return fig


def label_waves(page, data: Mapping) -> tuple[dict, dict]:
    """Delineate lead II of each model's test records (or a sample of them), stored.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Its pipeline, its store (results ``waves``) and its parameters ``n_wave_records``
        (0: all), ``fs_hz`` (Hz), ``qrs_method`` and ``seed`` (one generator draws each
        model's sample in :data:`MODELS`' order).
    data : mapping of str -> dict
        :func:`fit_clusters`' data.

    Returns
    -------
    waves : dict of str -> (numpy.ndarray, numpy.ndarray)
        Model -> (test rows delineated, int; their wave codes per sample, (n, n_samples) int8).
    problems : dict of str -> list of str
        Model -> the records whose delineation failed, with the reason.
    """
    pipe, p = page.pipe, page
    waves, problems = {}, {}
    rng = np.random.default_rng(p["seed"])
    for m, (_, _, parts, _) in MODELS.items():
        test, n = data[m]["test"], p["n_wave_records"]
        rows = np.arange(len(test)) if not n or n >= len(test) else np.sort(
            rng.choice(len(test), n, replace=False))
        x = test.signals(rows) if len(rows) else np.zeros((0, 12, pipe.n_samples), np.float32)
        names = [data[m]["names"][i] for i in rows]
        got = page.cached(
            "waves", {"records": names, "data": {d: pipe.datasets[d].data_key for d in parts},
                      "fs_hz": p["fs_hz"], "method": p["qrs_method"]},
            partial(wave_label_records, x, p["fs_hz"], names, test.n_valid[rows], 1,
                    p["qrs_method"]))
        waves[m] = (rows, got["labels"])
        problems[m] = [q for q in got["problem"] if q]
    return waves, problems


def wave_problems_text(waves: Mapping, problems: Mapping) -> str:
    """How many records per model were not delineated (the glue ``c_wave_problems``)."""
    return "; ".join(f"{MODELS[m][0]}: {len(q)} of {len(waves[m][0])} records not delineated"
                     + (f" (e.g. {q[0]})" if q else "") for m, q in problems.items())


def record_figure(name: str, result: Mapping, data: Mapping, fs_hz: float, profile: str):
    """The first PTB-XL test record of a model, segmented (:func:`ecgrepro.plots.cluster_figure`).

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    result, data : mapping
        The model's :func:`fit_clusters` result and data.
    fs_hz : float
        Sampling frequency, Hz.
    profile : str
        Named in the title.

    Returns
    -------
    matplotlib.figure.Figure
        The first test record from PTB-XL (else the first test record).
    """
    test, names, k = data["test"], data["names"], int(result["k"])
    i = next((j for j, record in enumerate(names) if record.startswith("ptbxl")), 0)
    return cluster_figure(test.signals(np.array([i]))[0], fs_hz, result["test_labels"][i],
                          result["test_entropy"][i], k,
                          f"{MODELS[name][0]}: {names[i]}, K = {k} ({profile} profile)",
                          int(test.n_valid[i]))


def wave_tables(results: Mapping, waves: Mapping, n_boot: int, seed: int):
    """How each model's clusters overlap the waves (:func:`.explain.clusters.wave_alignment`).

    Parameters
    ----------
    results : mapping of str -> dict
        :func:`fit_clusters`' results.
    waves : mapping of str -> (numpy.ndarray, numpy.ndarray)
        :func:`label_waves`' waves.
    n_boot : int
        Bootstrap resamples of the records.
    seed : int

    Returns
    -------
    table : pandas.DataFrame
        One row per model and cluster: ``model, label_set, cluster, steps``, the share of its
        steps in each wave, ``dominant``, and the model's ``nmi, nmi_low, nmi_high,
        nmi_shifted`` (the columns of ``clusters_waves.csv``).
    summaries : list of dict
        Per model: ``model`` (display name), ``K`` and the alignment's summary.
    """
    tables, summaries = [], []
    for m, (label, label_set, _, _) in MODELS.items():
        rows, labels = waves[m]
        r = results[m]
        on_grid = waves_on_grid(labels, r["test_labels"].shape[1])
        table, summary = wave_alignment(r["test_labels"][rows], on_grid, int(r["k"]), WAVE_NAMES,
                                        n_boot, seed)
        tables.append(table.assign(model=m, label_set=label_set, nmi=summary["nmi"],
                                   nmi_low=summary["nmi_low"], nmi_high=summary["nmi_high"],
                                   nmi_shifted=summary["nmi_shifted"]))
        summaries.append({"model": label, "K": int(r["k"]), **summary})
    table = pd.concat(tables, ignore_index=True)
    return table[["model", "label_set", "cluster", "steps", *WAVE_NAMES, "dominant", "nmi",
                  "nmi_low", "nmi_high", "nmi_shifted"]], summaries


def nmi_text(summaries: list[dict]) -> str:
    """Each model's NMI with its interval and the shifted baseline (the glue ``c_nmi``)."""
    return "; ".join(f"{s['model']}: NMI {s['nmi']:.3f} (95% CI {s['nmi_low']:.3f}-"
                     f"{s['nmi_high']:.3f}) against {s['nmi_shifted']:.3f} when shifted, on "
                     f"{s['records']} records" for s in summaries)


def forest_table(results: Mapping, data: Mapping, paper: Mapping, n_estimators: int, n_boot: int,
                 seed: int) -> pd.DataFrame:
    """The surrogate forest of each model (:func:`~ecgrepro.explain.clusters.forest_agreement`).

    Parameters
    ----------
    results, data : mapping of str -> dict
        :func:`fit_clusters`' results and data.
    paper : mapping of str -> float
        Companion C's values by metric, set beside the superclass model's rows.
    n_estimators, n_boot, seed : int
        Trees, bootstrap resamples, seed (5-fold cross-validation on the training folds).

    Returns
    -------
    pandas.DataFrame
        ``model, label_set, metric, value, ci_low, ci_high, paper_value`` (the columns of
        ``surrogate_forest.csv``); per-label agreements are named ``agreement_<class>``.
    """
    rows = []
    for m, (_, label_set, _, classes) in MODELS.items():
        r, d = results[m], data[m]
        t = forest_agreement(r["train_proportions"], d["train_pred"], r["test_proportions"],
                             d["test_pred"], d["test"].y, d["test_scores"], n_estimators, 5,
                             n_boot, seed)
        t["metric"] = [f"agreement_{classes[int(x.rsplit('_', 1)[1])]}"
                       if x.rsplit("_", 1)[-1].isdigit() else x for x in t.metric]
        rows.append(t.assign(model=m, label_set=label_set, paper_value=[
            paper.get(x, np.nan) if m == "resnet34_super" else np.nan for x in t.metric]))
    return pd.concat(rows, ignore_index=True)[["model", "label_set", "metric", "value", "ci_low",
                                               "ci_high", "paper_value"]]


def agreement_texts(forest: pd.DataFrame) -> dict[str, str]:
    """Each model's agreement with the CNN and its floor (the glue ``c_agree_<model>``).

    Parameters
    ----------
    forest : pandas.DataFrame
        :func:`forest_table`.

    Returns
    -------
    dict of str -> str
        ``c_agree_<model>`` for each model of :data:`MODELS`.
    """
    texts = {}
    for m in MODELS:
        f = forest[forest.model == m].set_index("metric")
        texts[f"c_agree_{m}"] = (
            f"{f.at['agreement', 'value']:.1%} (95% CI {f.at['agreement', 'ci_low']:.1%}-"
            f"{f.at['agreement', 'ci_high']:.1%}; a constant surrogate predicting each label's "
            f"training majority: {f.at['agreement_majority', 'value']:.1%}); all labels at once "
            f"{f.at['exact_match', 'value']:.1%}; cross-validated on the training folds "
            f"{f.at['agreement_cv', 'value']:.1%}")
    return texts


def seconds_text(page, models: Mapping) -> str:
    """The page's time so far and what it re-read (the glue ``c_seconds``).

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Its clock and its store's log.
    models : mapping of str -> ecgrepro.pipeline.TrainedModel
        Whether the superclass ResNet was re-read or trained.
    """
    n_reused = page.reused()
    return (f"{time.perf_counter() - page.started:.0f} s ({n_reused} of {len(page.log)} stored "
            f"results re-read; clusters {'re-read' if n_reused else 'fitted'}; the superclass "
            f"ResNet {'re-read' if models['resnet34_super'].reused else 'trained'})")
