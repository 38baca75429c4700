"""Sanity checks (Adebayo et al. 2018, NeurIPS): cascading re-initialisation of the layers
from the top, and the similarity of each map to the trained model's.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from scipy.stats import ConstantInputWarning, spearmanr
from torch import nn

from ecgrepro.beats import valid_lengths
from ecgrepro.explain.faithfulness.maps import TIME_METHODS, lead_values, time_maps

#: Cascading randomisation stages, from the top (Adebayo et al. 2018, Section 3).
STAGES: dict[str, tuple[str, ...]] = {
    "fc": ("fc",),
    "layer4": ("layer4",),
    "layer3": ("layer3",),
    "layer2": ("layer2",),
    "layer1": ("layer1",),
    "conv1": ("conv1", "bn1"),
}


def randomised_models(
    model: nn.Module, stages: tuple[str, ...] = tuple(STAGES), seed: int = 0
) -> Iterator[tuple[str, nn.Module]]:
    """Cascading parameter randomisation: copies with the layers re-initialised from the top.

    Stage ``k`` re-initialises the modules of ``stages[:k + 1]`` (their
    ``reset_parameters``, and BatchNorm running statistics), as Adebayo et al.
    (2018), Section 3.1. The model passed in is not changed.

    Parameters
    ----------
    model : torch.nn.Module
        :class:`ecgrepro.models.ResNet1d`.
    stages : tuple of str
        Keys of :data:`STAGES`, top first.
    seed : int
        Seeds each stage's new weights (``seed + k``).

    Yields
    ------
    stage : str
    model : torch.nn.Module
        In eval mode, on ``model``'s device; each yield is a new copy. The new weights are
        drawn on the CPU (torch's CPU generator, seeded), so a stage's weights are the same
        whichever device the model is on.

    Raises
    ------
    KeyError
        For an unknown stage.
    """
    device = next(model.parameters()).device
    current = copy.deepcopy(model).cpu().eval()  # new weights from the CPU generator, any device
    for k, stage in enumerate(stages):
        torch.manual_seed(seed + k)
        for name in STAGES[stage]:
            for module in current.get_submodule(name).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
        yield stage, copy.deepcopy(current).to(device).eval()


def map_similarity(
    a: np.ndarray, b: np.ndarray, n_valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation and SSIM of two maps of each record (Adebayo et al. 2018).

    Both on absolute values over the record's own samples. SSIM
    (``skimage.metrics.structural_similarity``) compares the lead x time images
    after each is divided by its maximum (data range 1); it needs a lead axis
    and at least 7 samples, else NaN (lead-level values: Spearman only).

    Parameters
    ----------
    a, b : numpy.ndarray, shape (n, 12, n_samples) or (n, n_players)
    n_valid : numpy.ndarray of int, shape (n,), optional
        For 3-D maps.

    Returns
    -------
    spearman, ssim : numpy.ndarray, shape (n,), float64
        NaN where a map is constant.
    """
    from skimage.metrics import structural_similarity

    a, b = np.abs(np.asarray(a, dtype=np.float64)), np.abs(np.asarray(b, dtype=np.float64))
    n = len(a)
    rho, ssim = np.full(n, np.nan), np.full(n, np.nan)
    lengths = valid_lengths(n_valid, (n,), a.shape[-1]) if a.ndim == 3 else None
    for i in range(n):
        ai, bi = a[i], b[i]
        if a.ndim == 3:
            ai, bi = ai[:, a.shape[-1] - lengths[i] :], bi[:, a.shape[-1] - lengths[i] :]
        if np.ptp(ai) > 0 and np.ptp(bi) > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConstantInputWarning)
                rho[i] = spearmanr(ai.ravel(), bi.ravel()).statistic
            if ai.ndim == 2 and min(ai.shape) >= 7:
                ssim[i] = structural_similarity(ai / ai.max(), bi / bi.max(), data_range=1.0)
    return rho, ssim


def randomisation_similarity(
    model: nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    methods: tuple[str, ...],
    lead_methods: tuple[str, ...] = (),
    map_kw: dict | None = None,
    lead_kw: dict | None = None,
    stages: tuple[str, ...] = tuple(STAGES),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each method's map after each cascading randomisation stage, against the trained model's.

    Parameters
    ----------
    model, x, target, fs_hz, n_valid
        As :func:`time_maps`.
    methods : tuple of str
        Time-resolved methods (:data:`TIME_METHODS`).
    lead_methods : tuple of str
        Lead-level methods (:data:`LEAD_METHODS`), compared on their lead values.
    map_kw, lead_kw : dict, optional
        Extra arguments of :func:`time_maps` and :func:`lead_values`.
    stages : tuple of str
        :data:`STAGES`, top first.
    seed : int

    Returns
    -------
    dict of str -> numpy.ndarray
        ``<method>|spearman`` and ``<method>|ssim``: (n_stages, n) similarity
        of the stage's map with the trained model's (:func:`map_similarity`);
        ``<method>|seconds`` (n_stages + 1,); ``stages``.
    """
    map_kw, lead_kw = map_kw or {}, lead_kw or {}

    def all_maps(m):
        maps, sec = time_maps(m, x, target, fs_hz, n_valid, methods, seed=seed, **map_kw)
        if lead_methods:
            vals, sec2 = lead_values(m, x, target, n_valid, lead_methods, seed=seed, **lead_kw)
            maps.update(vals)
            sec.update(sec2)
        return maps, sec

    base, sec = all_maps(model)
    names = list(base)
    out = {f"{k}|{s}": np.zeros((len(stages), len(x))) for k in names for s in ("spearman", "ssim")}
    seconds = {k: [sec[k]] for k in names}
    for j, (_, m) in enumerate(randomised_models(model, stages, seed)):
        maps, sec = all_maps(m)
        for k in names:
            nv = n_valid if base[k].ndim == 3 else None
            out[f"{k}|spearman"][j], out[f"{k}|ssim"][j] = map_similarity(base[k], maps[k], nv)
            seconds[k].append(sec[k])
    out.update({f"{k}|seconds": np.array(v) for k, v in seconds.items()})
    out["stages"] = np.array(stages)
    return out


def model_similarity(
    model_a: nn.Module,
    model_b: nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    methods: tuple[str, ...] = tuple(TIME_METHODS),
    map_kw: dict | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each method's maps of two models on the same records, compared (data randomisation).

    Adebayo et al. (2018), Section 4: a model trained on shuffled labels
    against one trained on the true labels.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``<method>|spearman`` and ``<method>|ssim``, shape (n,) (:func:`map_similarity`).
    """
    a, _ = time_maps(model_a, x, target, fs_hz, n_valid, methods, seed=seed, **(map_kw or {}))
    b, _ = time_maps(model_b, x, target, fs_hz, n_valid, methods, seed=seed, **(map_kw or {}))
    out = {}
    for m in methods:
        out[f"{m}|spearman"], out[f"{m}|ssim"] = map_similarity(a[m], b[m], n_valid)
    return out
