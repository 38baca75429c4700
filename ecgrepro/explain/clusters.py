"""Time-localised clusters of a ResNet's internal representations (Companion C).

Boubekki et al. (IEEE TBME 2026; METHODS.md, "Companion papers", C) cluster
the per-time-step activations of a 1-D ResNet's last residual stages, segment
each ECG into a sequence of clusters, take the entropy of the soft assignment
as a per-time-step uncertainty, and explain the network's predictions with a
random forest on each record's cluster proportions.

Here: the activations of named layers (``layer2``, ``layer3``, ``layer4`` of
our ResNet-34 by default, at T/8, T/16 and T/32) are upsampled linearly to the
finest layer's time grid, time steps in the front padding are left out, and
scikit-learn does the rest: ``StandardScaler`` and ``PCA``, then a
``GaussianMixture`` whose K is chosen by BIC and stability across seeds, and a
``RandomForestClassifier`` as the surrogate.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F

from ecgrepro.beats import valid_lengths
from ecgrepro.metrics import percentile_interval

#: The last three residual stages of our ResNet-34 (the default layers).
STAGES = ("layer2", "layer3", "layer4")
#: The alternative: the last three residual blocks, all inside layer4 (T/32).
LAYER4_BLOCKS = ("layer4.0", "layer4.1", "layer4.2")


def stage_activations(
    model: nn.Module,
    x: np.ndarray,
    n_valid: np.ndarray | None = None,
    layers: tuple[str, ...] = STAGES,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-time-step activations of several layers, on the first layer's time grid.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; ``layers`` name its submodules, each with output
        (batch, channels, steps).
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    n_valid : numpy.ndarray of int, shape (n,), optional
        Valid samples per record (the rest is front padding). None: all.
    layers : tuple of str
        Submodule names; the first sets the grid (the others are upsampled
        linearly to it, ``align_corners=False``).
    batch_size : int

    Returns
    -------
    features : numpy.ndarray, shape (n, n_steps, n_channels), float32
        The layers' channels side by side, per step of the grid.
    valid : numpy.ndarray of bool, shape (n, n_steps)
        Steps whose whole span lies in the record's signal (not the padding).

    Raises
    ------
    ValueError
        If a layer name is not a submodule of ``model``.
    """
    names = dict(model.named_modules())
    missing = [name for name in layers if name not in names]
    if missing:
        raise ValueError(f"no layer {', '.join(missing)} in the model")
    x = np.asarray(x, dtype=np.float32)
    n, _, n_samples = x.shape
    grabbed: dict[str, torch.Tensor] = {}
    hooks = [
        names[name].register_forward_hook(lambda m, i, o, name=name: grabbed.__setitem__(name, o))
        for name in layers
    ]
    device = next(model.parameters()).device
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                model(torch.from_numpy(x[start : start + batch_size]).to(device))
                steps = grabbed[layers[0]].shape[-1]
                parts = [
                    F.interpolate(grabbed[name], size=steps, mode="linear", align_corners=False)
                    if grabbed[name].shape[-1] != steps
                    else grabbed[name]
                    for name in layers
                ]
                chunks.append(torch.cat(parts, 1).transpose(1, 2).float().cpu().numpy())
    finally:
        for h in hooks:
            h.remove()
    features = np.concatenate(chunks) if chunks else np.zeros((0, 0, 0), np.float32)
    lengths = valid_lengths(n_valid, (n,), n_samples)
    return features, valid_steps(lengths, n_samples, features.shape[1])


def valid_steps(n_valid: np.ndarray, n_samples: int, n_steps: int) -> np.ndarray:
    """Grid steps (``n_steps`` equal spans of the input) that lie wholly in each record's signal.

    Returns
    -------
    numpy.ndarray of bool, shape (n, n_steps)
    """
    starts = np.arange(n_steps) * n_samples / n_steps
    return starts[None, :] >= (n_samples - np.asarray(n_valid))[:, None]


def normalised_entropy(proba: np.ndarray) -> np.ndarray:
    """Entropy of soft assignments divided by log K: 0 for a hard assignment, 1 for a uniform one.

    Parameters
    ----------
    proba : numpy.ndarray, shape (..., K)
        Rows summing to 1.

    Returns
    -------
    numpy.ndarray, shape (...,), in [0, 1]
    """
    proba = np.asarray(proba, dtype=float)
    k = proba.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(proba > 0, proba * np.log(proba), 0.0).sum(-1)
    return h / np.log(k) if k > 1 else np.zeros(proba.shape[:-1])


def fit_reducer(steps: np.ndarray, n_components: int = 32, seed: int = 0) -> Pipeline:
    """``StandardScaler`` then ``PCA`` (at most ``n_components``), fitted on time steps.

    Parameters
    ----------
    steps : numpy.ndarray, shape (n_steps, n_channels)
    n_components : int
        32-64 in Companion C's recipe (fewer when there are fewer channels or steps).
    seed : int

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    k = min(n_components, steps.shape[1], steps.shape[0])
    return make_pipeline(StandardScaler(), PCA(k, random_state=seed)).fit(steps)


def k_sweep(
    z: np.ndarray,
    ks: tuple[int, ...] = (4, 6, 8, 12, 16),
    seeds: tuple[int, ...] = (0, 1, 2),
    covariance_type: str = "full",
    max_iter: int = 200,
    reg_covar: float = 1e-3,
) -> tuple[pd.DataFrame, dict]:
    """Fit a Gaussian mixture for each K and seed: BIC and stability across seeds.

    Parameters
    ----------
    z : numpy.ndarray, shape (n_steps, n_components)
        Reduced time steps (:func:`fit_reducer`).
    ks, seeds : tuple of int
    covariance_type, max_iter, reg_covar
        As ``sklearn.mixture.GaussianMixture``; ``reg_covar`` is added to the
        covariances' diagonals (the PCA components have unit-scale variance;
        scikit-learn's 1e-6 lets a component collapse onto repeated steps, such
        as those of a flat stretch).

    Returns
    -------
    table : pandas.DataFrame
        One row per K: ``k``, ``fits`` (seeds whose fit succeeded), ``bic``
        (mean over them; NaN if none), ``bic_sd``, ``stability`` (mean adjusted
        Rand index between the seeds' hard assignments of ``z``; 1: every seed
        finds the same clusters), ``stability_min``. A fit that fails (a
        collapsed component) is counted out, not raised.
    models : dict of (int, int) -> GaussianMixture
        The fitted mixtures by (K, seed).
    """
    rows, models = [], {}
    for k in ks:
        labels, bics = [], []
        for s in seeds:
            gmm = GaussianMixture(
                k,
                covariance_type=covariance_type,
                random_state=s,
                max_iter=max_iter,
                reg_covar=reg_covar,
            )
            try:
                gmm.fit(z)
            except ValueError:  # ill-defined covariance: this seed's fit is counted out
                continue
            models[k, s] = gmm
            bics.append(gmm.bic(z))
            labels.append(gmm.predict(z))
        ari = [adjusted_rand_score(a, b) for a, b in combinations(labels, 2)] or [np.nan]
        rows.append(
            {
                "k": k,
                "fits": len(bics),
                "bic": float(np.mean(bics)) if bics else np.nan,
                "bic_sd": float(np.std(bics)) if bics else np.nan,
                "stability": float(np.mean(ari)),
                "stability_min": float(np.min(ari)),
            }
        )
    return pd.DataFrame(rows), models


def choose_k(table: pd.DataFrame, min_stability: float = 0.7) -> int:
    """The K with the lowest BIC among those whose mean stability is at least ``min_stability``.

    Falls back to the most stable K when none is stable enough; a K with no
    successful fit is never chosen.

    Raises
    ------
    ValueError
        If no K has a successful fit.
    """
    table = table[table.bic.notna()]
    if not len(table):
        raise ValueError("no Gaussian mixture could be fitted for any K")
    stable = table[table.stability >= min_stability]
    if len(stable):
        return int(stable.loc[stable.bic.idxmin(), "k"])
    if table.stability.notna().any():
        return int(table.loc[table.stability.idxmax(), "k"])
    return int(table.loc[table.bic.idxmin(), "k"])  # one seed: no stability to compare


def assign(
    features: np.ndarray, valid: np.ndarray, reducer: Pipeline, gmm: GaussianMixture
) -> dict[str, np.ndarray]:
    """Each record's segmentation, uncertainty and cluster proportions.

    Parameters
    ----------
    features : numpy.ndarray, shape (n, n_steps, n_channels)
    valid : numpy.ndarray of bool, shape (n, n_steps)
    reducer : sklearn.pipeline.Pipeline
        :func:`fit_reducer`'s.
    gmm : sklearn.mixture.GaussianMixture

    Returns
    -------
    dict of str -> numpy.ndarray
        ``labels`` (n, n_steps) int, the most probable cluster, -1 in the
        padding; ``entropy`` (n, n_steps) float, :func:`normalised_entropy`,
        NaN in the padding; ``proportions`` (n, K), the share of each
        record's valid steps in each cluster (hard assignments).
    """
    n, n_steps, _ = features.shape
    k = gmm.n_components
    labels = np.full((n, n_steps), -1, dtype=np.int64)
    entropy = np.full((n, n_steps), np.nan)
    proportions = np.zeros((n, k))
    if valid.any():
        proba = gmm.predict_proba(reducer.transform(features[valid]))
        labels[valid] = proba.argmax(1)
        entropy[valid] = normalised_entropy(proba)
    for i in range(n):
        own = labels[i][valid[i]]
        if len(own):
            proportions[i] = np.bincount(own, minlength=k) / len(own)
    return {"labels": labels, "entropy": entropy, "proportions": proportions}


def waves_on_grid(waves: np.ndarray, n_steps: int) -> np.ndarray:
    """Per-sample wave codes (:func:`ecgrepro.beats.wave_labels`) at the centre of each grid step.

    waves : (n, n_samples) int -> (n, n_steps) int.
    """
    n_samples = waves.shape[-1]
    centres = ((np.arange(n_steps) + 0.5) * n_samples / n_steps).astype(int)
    return waves[:, np.minimum(centres, n_samples - 1)]


def wave_alignment(
    labels: np.ndarray,
    waves: np.ndarray,
    k: int,
    wave_names: tuple[str, ...] = ("P", "QRS", "T", "other"),
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """How the clusters overlap the waves, and one number for the alignment with its interval.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (n, n_steps)
        Clusters per step, -1 where not assigned.
    waves : numpy.ndarray of int, shape (n, n_steps)
        Wave code per step (:func:`waves_on_grid`), -1 where unknown.
    k : int
        Number of clusters.
    wave_names : tuple of str
        Names of the wave codes 0, 1, ...
    n_boot : int
        Bootstrap resamples of the records.
    seed : int

    Returns
    -------
    table : pandas.DataFrame
        One row per cluster: ``cluster``, ``steps``, the share of its steps in
        each wave, and ``dominant`` (its most frequent wave).
    summary : dict
        ``nmi``: normalised mutual information between cluster and wave over
        all steps, with ``nmi_low``/``nmi_high`` (95% bootstrap over records);
        ``nmi_shifted``: the same after shifting each record's waves by a
        random circular offset (the alignment expected by chance for clusters
        with the same time structure); ``records``, ``steps``.
    """
    ok = (labels >= 0) & (waves >= 0)
    rows = []
    for c in range(k):
        w = waves[ok & (labels == c)]
        shares = np.bincount(w, minlength=len(wave_names)) / max(len(w), 1)
        rows.append(
            {
                "cluster": c,
                "steps": len(w),
                **{name: shares[j] for j, name in enumerate(wave_names)},
                "dominant": wave_names[int(np.argmax(shares))] if len(w) else "",
            }
        )
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(ok.any(1))

    def nmi(rows_: np.ndarray, shift: bool = False) -> float:
        a, b = [], []
        for i in rows_:
            w = np.roll(waves[i], rng.integers(waves.shape[1])) if shift else waves[i]
            m = ok[i] & (w >= 0)
            a.append(labels[i][m])
            b.append(w[m])
        if not a or not len(np.concatenate(a)):
            return float("nan")
        return float(normalized_mutual_info_score(np.concatenate(b), np.concatenate(a)))

    point = nmi(keep)
    boots = [nmi(rng.choice(keep, len(keep))) for _ in range(n_boot)] if len(keep) > 1 else []
    low, high = percentile_interval(np.array(boots)) if boots else (np.nan, np.nan)
    summary = {
        "nmi": point,
        "nmi_low": float(low),
        "nmi_high": float(high),
        "nmi_shifted": nmi(keep, shift=True),
        "records": len(keep),
        "steps": int(ok.sum()),
    }
    return pd.DataFrame(rows), summary


def forest_agreement(
    train_x: np.ndarray,
    train_pred: np.ndarray,
    test_x: np.ndarray,
    test_pred: np.ndarray,
    test_y: np.ndarray,
    test_scores: np.ndarray,
    n_estimators: int = 300,
    cv: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """A random forest on cluster proportions as a surrogate of the CNN (Companion C).

    The forest learns the CNN's thresholded predictions from the records'
    cluster proportions on the training folds (``cross_val_predict`` gives the
    cross-validated agreement there), is refitted on all of them, and is scored
    on the test fold, which it never saw: its agreement with the CNN, and its
    accuracy and AUROC against the labels beside the CNN's.

    Parameters
    ----------
    train_x, test_x : numpy.ndarray, shape (n, K)
        Cluster proportions (:func:`assign`).
    train_pred, test_pred : numpy.ndarray of {0, 1}, shape (n, L)
        The CNN's thresholded predictions.
    test_y : numpy.ndarray of {0, 1}, shape (n_test, L)
        Labels.
    test_scores : numpy.ndarray, shape (n_test, L)
        The CNN's sigmoid outputs (its AUROC).
    n_estimators, cv, n_boot, seed
        Forest size, cross-validation folds, bootstrap resamples, seed.

    Returns
    -------
    pandas.DataFrame
        Rows ``metric, value, ci_low, ci_high``: ``agreement_cv`` (mean over
        labels, training folds), ``agreement`` (mean over labels, test fold),
        ``exact_match`` (all labels at once, test), ``agreement_majority`` (the
        agreement of a constant surrogate predicting each label's training
        majority: what agreement alone is worth), ``accuracy_forest`` and
        ``accuracy_cnn`` (mean over labels of the per-label accuracy against the
        labels), ``auroc_forest`` and ``auroc_cnn`` (macro over the labels with
        both values in the test fold), and ``agreement_<label index>``; the
        intervals are 95% bootstraps over the test records.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import KFold, cross_val_predict

    def forest():
        return RandomForestClassifier(n_estimators, random_state=seed, n_jobs=1)

    train_pred, test_pred = np.asarray(train_pred, int), np.asarray(test_pred, int)
    folds = KFold(min(cv, len(train_x)), shuffle=True, random_state=seed)
    cv_pred = cross_val_predict(forest(), train_x, train_pred, cv=folds)
    model = forest().fit(train_x, train_pred)
    pred = np.asarray(model.predict(test_x)).reshape(test_pred.shape)
    proba = model.predict_proba(test_x)
    proba = proba if isinstance(proba, list) else [proba]
    classes = model.classes_ if test_pred.shape[1] > 1 else [model.classes_]
    f_scores = np.column_stack(  # P(label predicted); 0 for a label the CNN never predicted
        [
            p[:, list(c).index(1)] if 1 in c else np.zeros(len(test_x))
            for p, c in zip(proba, classes, strict=True)
        ]
    )
    test_y = np.asarray(test_y, int)

    majority = (train_pred.mean(0) >= 0.5).astype(int)  # a surrogate that ignores the records

    def stats(idx: np.ndarray) -> dict:
        agree = (pred[idx] == test_pred[idx]).mean(0)
        aucs_f, aucs_c = [], []
        for j in range(test_y.shape[1]):
            t = test_y[idx, j]
            if 0 < t.sum() < len(t):
                aucs_f.append(roc_auc_score(t, f_scores[idx, j]))
                aucs_c.append(roc_auc_score(t, test_scores[idx, j]))
        return {
            "agreement": agree.mean(),
            "exact_match": (pred[idx] == test_pred[idx]).all(1).mean(),
            "agreement_majority": (majority == test_pred[idx]).mean(),
            "accuracy_forest": (pred[idx] == test_y[idx]).mean(),
            "accuracy_cnn": (test_pred[idx] == test_y[idx]).mean(),
            "auroc_forest": np.mean(aucs_f) if aucs_f else np.nan,
            "auroc_cnn": np.mean(aucs_c) if aucs_c else np.nan,
            **{f"agreement_{j}": a for j, a in enumerate(agree)},
        }

    n = len(test_x)
    point = stats(np.arange(n))
    rng = np.random.default_rng(seed)
    boots = pd.DataFrame([stats(rng.integers(0, n, n)) for _ in range(n_boot)]) if n > 1 else None
    rows = [
        {
            "metric": "agreement_cv",
            "value": float((cv_pred == train_pred).mean()),
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    ]
    for metric, value in point.items():
        lo, hi = (
            percentile_interval(boots[metric].to_numpy()) if boots is not None else (np.nan,) * 2
        )
        rows.append({"metric": metric, "value": float(value), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def cluster_records(
    model: nn.Module,
    train,
    test,
    layers: tuple[str, ...] = STAGES,
    n_components: int = 32,
    ks: tuple[int, ...] = (4, 6, 8, 12, 16),
    seeds: tuple[int, ...] = (0, 1, 2),
    max_fit_steps: int = 50_000,
    min_stability: float = 0.7,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """Companion C's clusters for one model: fitted on training records, applied to all.

    Two passes over the training records, so that no more than a batch of
    activations is held at once (the paper profile's 17,000 records x 1,875
    steps x 896 channels would not fit in memory): the first draws up to
    ``max_fit_steps`` valid steps (the same number from each record) and
    fits :func:`fit_reducer` and :func:`k_sweep` on them; the second assigns
    every training and test record (:func:`assign`) with the mixture of the
    chosen K (:func:`choose_k`) and the first seed whose fit succeeded.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode.
    train, test : ecgrepro.train.Samples
        The model's training-fold and test-fold records.
    layers, n_components, ks, seeds, min_stability
        As :func:`stage_activations`, :func:`fit_reducer`, :func:`k_sweep` and :func:`choose_k`.
    max_fit_steps : int
        Time steps the reducer and the mixtures are fitted on.
    seed : int
        Draws the fitting steps and seeds the PCA.
    batch_size : int

    Returns
    -------
    dict of str -> numpy.ndarray
        ``sweep_k``, ``sweep_bic``, ``sweep_bic_sd``, ``sweep_stability``,
        ``sweep_stability_min`` (one entry per K); ``k`` (the chosen K);
        ``train_proportions`` (n_train, K); ``test_labels`` and
        ``test_entropy`` (n_test, n_steps); ``test_proportions`` (n_test, K);
        ``fit_steps``; ``explained_variance`` (the PCA's share of the
        standardised variance).
    """
    rng = np.random.default_rng(seed)
    per_record = max(1, -(-max_fit_steps // max(len(train), 1)))

    def batches(samples):  # activations of a batch of records at a time, never all at once
        for start in range(0, len(samples), batch_size):
            idx = np.arange(start, min(start + batch_size, len(samples)))
            yield stage_activations(model, samples.signals(idx), samples.n_valid[idx], layers)

    picked = []
    for feats, valid in batches(train):
        for f, v in zip(feats, valid, strict=True):
            steps = np.flatnonzero(v)
            picked.append(f[rng.choice(steps, min(per_record, len(steps)), replace=False)])
    fit_steps = np.concatenate(picked)
    reducer = fit_reducer(fit_steps, n_components, seed)
    table, models = k_sweep(reducer.transform(fit_steps), ks, seeds)
    k = choose_k(table, min_stability)
    gmm = next(models[k, s] for s in seeds if (k, s) in models)

    def assigned(samples) -> dict:
        parts = [assign(feats, valid, reducer, gmm) for feats, valid in batches(samples)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    on_train, on_test = assigned(train), assigned(test)
    return {
        **{f"sweep_{c}": table[c].to_numpy() for c in table.columns},
        "k": np.array(k),
        "train_proportions": on_train["proportions"],
        "test_labels": on_test["labels"],
        "test_entropy": on_test["entropy"],
        "test_proportions": on_test["proportions"],
        "fit_steps": np.array(len(fit_steps)),
        "explained_variance": np.array(reducer[-1].explained_variance_ratio_.sum()),
    }
