"""The book's explanation methods as one table: name, label, granularity, unit, function.

Every attribution method the book compares (the paper's SHAP per lead and
Grad-CAM, the companions' Integrated Gradients, LRP and deletion mask, the
exact lead Shapley values, the baselines) is one :class:`Method` in
:data:`METHODS`. Each has one function ``fn(model, x, target, *, n_valid,
seed, **params)`` and is called through :func:`explain`, which checks the
input, broadcasts the targets, passes each method only the parameters it
declares, zeroes the padding of a time map, restores the model's mode and
device, and checks the result's shape and dtype. A method with a diagnostic
of its own (IG's convergence delta, LRP's conservation) gives it beside the
map when asked (``with_check=True``), and ``keep_padding=True`` returns the
map as the method left it, so that the share of relevance the padding took
can be measured (Companion A's
:func:`ecgrepro.explain.relevance.relevance_summary` does both). The
faithfulness benchmark
(:mod:`ecgrepro.explain.faithfulness`), its figures and the parametrised test
``tests/test_methods.py`` loop over this table: a new method is one entry
here.

Granularities (the shape of one call's result for ``n`` records):

- ``"time"``: ``(n, 12, n_samples)`` float32, relevance per lead and sample,
  exactly 0 in the front padding;
- ``"leads12"``: ``(n, 12)`` float64, one value per lead (players in
  :data:`ecgrepro.config.LEADS` order);
- ``"leads8"``: ``(n, 8)`` float64, one value per independent lead
  (:data:`ecgrepro.explain.shapley.INDEPENDENT_LEADS` order).

The lead-level values stay float64: the exact Shapley values are weighted sums
over 4,096 (or 256) coalition logits, computed in float64, and the book's
tables were computed from them at that precision.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ecgrepro.beats import valid_lengths, valid_masks

#: What one call returns per granularity: (trailing shape as a function of (leads, samples), dtype).
GRANULARITIES: dict[str, tuple[Callable[[int, int], tuple[int, ...]], type]] = {
    "time": (lambda leads, samples: (leads, samples), np.float32),
    "leads12": (lambda leads, samples: (12,), np.float64),
    "leads8": (lambda leads, samples: (8,), np.float64),
}


@dataclass(frozen=True)
class Method:
    """One explanation method of the book.

    Attributes
    ----------
    name : str
        The one name used in code, CSVs and pages.
    label : str
        What the figures and tables print.
    granularity : {"time", "leads12", "leads8"}
        The shape of its result (see the module docstring).
    unit : str
        The unit of its values.
    baseline : bool
        True for the baselines every real method must beat (random, amplitude).
    batch_invariant : bool
        Whether a record's values are the same explained alone and in a batch.
        False where the random draws follow the record's position in the call
        (the random baseline's one stream; GradientExplainer's samples; the
        deletion mask's initial mask, seeded by ``(seed, row)``): there the
        first record still matches.
    fn : callable
        ``fn(model, x, target, *, n_valid, seed, **params)``: ``x`` (n, 12,
        n_samples) float32 mV, ``target`` (n,) int, ``n_valid`` (n,) int64.
    params : tuple of str
        The keyword parameters ``fn`` reads beyond ``n_valid`` and ``seed``.
    source : str
        Where the method is defined.
    required : tuple of str
        Those of ``params`` that :func:`explain` must be given (not None).
    check : str
        The method's own diagnostic, returned beside the map by
        ``explain(..., with_check=True)``; empty where it has none. ``fn``
        then accepts ``with_check`` and returns ``(map, check)``.
    """

    name: str
    label: str
    granularity: str
    unit: str
    baseline: bool
    batch_invariant: bool
    fn: Callable[..., np.ndarray]
    params: tuple[str, ...]
    source: str
    required: tuple[str, ...] = ()
    check: str = ""


def batch_slices(n: int, size: int) -> Iterator[slice]:
    """Slices of ``size`` consecutive rows (the last one shorter) covering ``n`` rows."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _captum(cls, model: nn.Module, x: np.ndarray, targets: np.ndarray, batch_size: int, **kw):
    """One captum attribution, batched; returns (n, 12, n_samples) float32."""
    device = next(model.parameters()).device
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum's notes on hooks and requires_grad
        for sl in batch_slices(len(x), batch_size):
            xb = torch.as_tensor(x[sl], device=device).requires_grad_(True)
            tb = torch.as_tensor(targets[sl], device=device)
            a = cls.attribute(xb, target=tb, **kw)
            out.append(a.detach().cpu().numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros_like(x)


# --------------------------------------------------------------------------- the functions


def random_map(model, x, target, *, n_valid, seed):
    """Uniform [0, 1) noise of the input's shape, one stream per call (``seed``)."""
    return np.random.default_rng(seed).random(x.shape, dtype=np.float32)


def amplitude_map(model, x, target, *, n_valid, seed):
    """|x|, mV: the baseline a map must beat to say more than "large deflections matter"."""
    return np.abs(x)


def saliency_map(model, x, target, *, n_valid, seed, batch_size=16):
    """|d logit / dx| (captum ``Saliency``, Simonyan et al. 2014)."""
    from captum.attr import Saliency

    return _captum(Saliency(model), model, x, target, batch_size, abs=True)


def input_x_gradient_map(model, x, target, *, n_valid, seed, batch_size=16):
    """x * d logit / dx (captum ``InputXGradient``, Shrikumar et al. 2016)."""
    from captum.attr import InputXGradient

    return _captum(InputXGradient(model), model, x, target, batch_size)


def guided_gradcam_map(model, x, target, *, n_valid, seed, layer="layer4", batch_size=16):
    """Guided backpropagation times Grad-CAM (captum ``GuidedGradCam``, Selvaraju et al. 2017)."""
    from captum.attr import GuidedGradCam

    cls = GuidedGradCam(model, model.get_submodule(layer))
    return _captum(cls, model, x, target, batch_size)


def ig_map(model, x, target, *, n_valid, seed, ig_steps=50, batch_size=16, with_check=False):
    """Integrated Gradients from 0 mV (:func:`ecgrepro.explain.relevance.integrated_gradients`).

    ``batch_size // 2`` records per call (each call evaluates ``ig_steps`` inputs per record);
    ``with_check``: also the convergence delta, sum of the map minus (logit(x) - logit(0)).
    """
    from ecgrepro.explain.relevance import integrated_gradients

    rel, delta = integrated_gradients(model, x, target, ig_steps, max(1, batch_size // 2))
    return (rel, delta) if with_check else rel


def _lrp(composite: str):
    def fn(model, x, target, *, n_valid, seed, batch_size=16, low=None, high=None,
           with_check=False):
        from ecgrepro.explain.relevance import lrp

        kw = {"low": low, "high": high, "batch_size": batch_size}
        rel, logit = lrp(model, x, target, composite=composite, **kw)
        if not with_check:
            return rel
        with np.errstate(divide="ignore", invalid="ignore"):  # a logit of exactly 0
            return rel, rel.reshape(len(rel), -1).sum(1) / logit

    fn.__name__ = f"lrp_{composite}_map"
    fn.__doc__ = (
        f"LRP with zennit's {composite} composite (:func:`ecgrepro.explain.relevance.lrp`); "
        "``low``/``high``: the z-box bounds, mV (default: the call's records' range); "
        "``with_check``: also the conservation, sum of relevance / the starting logit."
    )
    return fn


def gradcam_map(model, x, target, *, n_valid, seed, layer="layer4", batch_size=16):
    """Grad-CAM as defined, a map over time repeated over the 12 leads (Selvaraju et al. 2017)."""
    from ecgrepro.explain.gradcam import grad_cam

    cam = grad_cam(model, x, target, layer, "time", batch_size)
    return np.repeat(cam[:, None, :], x.shape[1], axis=1)


def gradcam_published_map(model, x, target, *, n_valid, seed, layer="layer4"):
    """The published code's channel-pooled Grad-CAM, one record per call, repeated over leads."""
    from ecgrepro.explain.gradcam import grad_cam

    # the published pooling averages over the records of a call: one record per call
    rows = range(len(x))
    one = [grad_cam(model, x[i : i + 1], target[i : i + 1], layer, "published") for i in rows]
    cam = np.concatenate(one)
    return np.repeat(cam[:, None, :], x.shape[1], axis=1)


def deletion_mask_map(model, x, target, *, n_valid, seed, fs_hz, mask_kw=None):
    """The deleted share ``1 - m`` of Companion B's learned mask (Fong & Vedaldi 2017, Eq. 3)."""
    from ecgrepro.explain.deletion_mask import deletion_mask

    kw = {"seed": seed, **(mask_kw or {})}
    return deletion_mask(model, x, target, fs_hz, n_valid, **kw)["saliency"]


def _shap(model, x, target, *, n_valid, seed, background, nsamples=200):
    from ecgrepro.explain.shapley import gradient_shap_per_lead

    return gradient_shap_per_lead(model, background, x, target, nsamples, seed, n_valid)


def _exact(game: str):
    def fn(model, x, target, *, n_valid, seed, exact_baseline=None):
        from ecgrepro.explain.shapley import LEAD_GAMES, exact_lead_shapley

        base = np.zeros(x.shape[1:], np.float32) if exact_baseline is None else exact_baseline
        phi = [  # on the model's device
            exact_lead_shapley(model, x[i], base, game=game, n_valid=int(n_valid[i]))[0][
                :, target[i]
            ]
            for i in range(len(x))
        ]
        return np.array(phi, dtype=np.float64).reshape(len(x), len(LEAD_GAMES[game]))

    fn.__name__ = f"exact_shapley_{game}"
    fn.__doc__ = (
        f"Exact Shapley values of the {game} lead game, absent leads replaced by "
        "``exact_baseline`` (default 0 mV) (:func:`ecgrepro.explain.shapley.exact_lead_shapley`)."
    )
    return fn


_IG_CHECK = "convergence delta: sum of the map - (logit(x) - logit(0)), logit"
_LRP_CHECK = "conservation: sum of the relevance over all samples / the target logit"
_SHAP_SOURCE = "Lundberg & Lee 2017; the paper's code (GradientExplainer, summed over time)"
_TIME_PARAMS = ("batch_size",)

#: Every explanation method of the book, by name (time-resolved first, then lead-level).
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("random", "Random (baseline)", "time", "none (uniform draw)", True, False,
               random_map, (), "baseline"),
        Method("amplitude", "|x| (baseline)", "time", "mV", True, True, amplitude_map, (),
               "baseline"),
        Method("saliency", "Saliency |gradient|", "time", "logit / mV", False, True,
               saliency_map, _TIME_PARAMS, "Simonyan et al. 2014 (captum)"),
        Method("input_x_gradient", "Input x gradient", "time", "logit", False, True,
               input_x_gradient_map, _TIME_PARAMS, "Shrikumar et al. 2016 (captum)"),
        Method("ig", "Integrated Gradients", "time", "logit", False, True, ig_map,
               ("ig_steps", "batch_size"), "Sundararajan et al. 2017, Eq. 1 (captum); Companion A",
               check=_IG_CHECK),
        Method("lrp_epsilon_plus_flat", "LRP EpsilonPlusFlat", "time", "logit", False, True,
               _lrp("epsilon_plus_flat"), ("batch_size", "low", "high"),
               "Bach et al. 2015; Montavon et al. 2019 (zennit); Companion A",
               check=_LRP_CHECK),
        Method("lrp_epsilon_gamma_box", "LRP EpsilonGammaBox", "time", "logit", False, True,
               _lrp("epsilon_gamma_box"), ("batch_size", "low", "high"),
               "Montavon et al. 2019 (zennit); Companion A's variant", check=_LRP_CHECK),
        Method("gradcam", "Grad-CAM (correct)", "time", "logit", False, True, gradcam_map,
               ("layer", "batch_size"), "Selvaraju et al. 2017, Eqs. 1-2, over time"),
        Method("gradcam_published", "Grad-CAM (published)", "time", "logit", False, True,
               gradcam_published_map, ("layer",), "the paper's code (METHODS.md)"),
        Method("guided_gradcam", "Guided Grad-CAM", "time", "logit / mV", False, True,
               guided_gradcam_map, ("layer", "batch_size"), "Selvaraju et al. 2017 (captum)"),
        Method("deletion_mask", "Deletion mask", "time", "share deleted (0-1)", False, False,
               deletion_mask_map, ("fs_hz", "mask_kw"), "Fong & Vedaldi 2017, Eq. 3; Companion B"),
        Method("shap_published", "SHAP per lead (published)", "leads12", "logit", False, False,
               _shap, ("background", "nsamples"), _SHAP_SOURCE + "; background as published",
               ("background",)),
        Method("shap_principled", "SHAP per lead (principled)", "leads12", "logit", False, False,
               _shap, ("background", "nsamples"), _SHAP_SOURCE + "; background from training",
               ("background",)),
        Method("shapley12", "Exact Shapley, 12 leads", "leads12", "logit", False, True,
               _exact("leads12"), ("exact_baseline",), "Shapley 1953; this book, 12-lead game"),
        Method("shapley8", "Exact Shapley, 8 leads", "leads8", "logit", False, True,
               _exact("independent8"), ("exact_baseline",),
               "Shapley 1953; this book, 8 independent leads"),
    )
}  # fmt: skip


def methods_of(granularity: str | tuple[str, ...]) -> tuple[str, ...]:
    """Names of the methods of one or more granularities, in table order.

    Parameters
    ----------
    granularity : str or tuple of str
        Among ``"time"``, ``"leads12"``, ``"leads8"``.

    Returns
    -------
    tuple of str
    """
    wanted = (granularity,) if isinstance(granularity, str) else tuple(granularity)
    return tuple(name for name, m in METHODS.items() if m.granularity in wanted)


def explain(
    name: str,
    model: nn.Module,
    x: np.ndarray,
    target: int | np.ndarray,
    *,
    n_valid: np.ndarray | None = None,
    seed: int = 0,
    keep_padding: bool = False,
    with_check: bool = False,
    **params,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One method's explanation of some records, through the method table.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    model : torch.nn.Module
        (batch, 12, n_samples) float32 mV -> logits. Explained in eval mode;
        its mode and device are as before when the call returns.
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    target : int or numpy.ndarray of int, shape (n,)
        Class (logit index) explained per record.
    n_valid : numpy.ndarray of int, shape (n,), optional
        Valid samples per record (the last ``n_valid``; the rest is front
        padding). None: all.
    seed : int
        Seeds the method's random draws, if any.
    keep_padding : bool
        Return a time map as the method left it, padding included (default:
        the padding set to exactly 0).
    with_check : bool
        Also return the method's own diagnostic (:attr:`Method.check`).
    **params
        Parameters of the methods; each method receives those of its
        ``params`` that are given (so one dict serves a loop over methods).

    Returns
    -------
    numpy.ndarray
        Of the method's granularity (see the module docstring): ``(n, 12,
        n_samples)`` float32 with 0 in the padding, or ``(n, 12)`` / ``(n, 8)``
        float64. With ``with_check``: ``(map, check)``, ``check`` (n,) float64.

    Raises
    ------
    ValueError
        For an unknown method, a required parameter missing (the SHAP
        methods' ``background``), ``x`` not a finite (n, leads, samples) array,
        a length outside [1, n_samples], a result of the wrong shape, or
        ``with_check`` for a method without a diagnostic.
    """
    if name not in METHODS:
        raise ValueError(f"unknown explanation method {name!r}; known: {list(METHODS)}")
    method = METHODS[name]
    missing = [p for p in method.required if params.get(p) is None]
    if missing:
        raise ValueError(f"{name} ({method.label}) needs {', '.join(missing)}")
    if with_check and not method.check:
        raise ValueError(f"{name} ({method.label}) has no diagnostic to return (with_check)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3 or not np.isfinite(x).all():
        raise ValueError(f"x must be a finite (n, leads, samples) array, got shape {x.shape}")
    n, n_leads, n_samples = x.shape
    targets = np.broadcast_to(np.asarray(target, dtype=int), (n,)).copy()
    lengths = valid_lengths(n_valid, (n,), n_samples)
    kw = {k: v for k, v in params.items() if k in method.params}
    if with_check:
        kw["with_check"] = True
    was_training = model.training
    model.eval()
    try:
        out = method.fn(model, x, targets, n_valid=lengths, seed=seed, **kw)
    finally:
        model.train(was_training)
    if with_check:
        out, check = out
        check = np.asarray(check, dtype=np.float64)
        if check.shape != (n,):
            raise ValueError(f"{name} returned a check of shape {check.shape} for {n} records")
    shape_of, dtype = GRANULARITIES[method.granularity]
    if method.granularity == "time" and not keep_padding:
        out = np.where(valid_masks(lengths, n_samples)[:, None, :], out, 0)
    out = np.asarray(out).astype(dtype)
    if out.shape != (n, *shape_of(n_leads, n_samples)):
        raise ValueError(f"{name} returned shape {out.shape} for x of shape {x.shape}")
    return (out, check) if with_check else out
