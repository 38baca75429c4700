"""Relevance over classes, leads and average beats (Companion A: Bender et al., IEEE JBHI 2024).

Each sample of each lead is attributed to one class logit by

- Integrated Gradients (IG; Sundararajan et al. 2017) from captum, 0 mV
  baseline, ``n_steps`` Gauss-Legendre steps (captum's
  default), with the convergence delta (completeness error) of each record;
- Layer-wise Relevance Propagation (LRP; Bach et al. 2015) from zennit, with
  the ``EpsilonPlusFlat`` composite and the ``EpsilonGammaBox`` variant. The
  BatchNorm layers are merged into the convolutions before them
  (``SequentialMergeBatchNorm``) and the residual addition of each
  :class:`~ecgrepro.models.BasicBlock1d` is routed through zennit's ``Sum``
  layer (:class:`BasicBlock1dCanonizer`, on the pattern of zennit's canonizer
  for torchvision's ResNet), so that the relevance is split between the
  shortcut and the residual branch in proportion to their contributions
  (zennit's ``Norm`` rule) instead of passing both ways as a gradient would.

and averaged three ways (METHODS.md, "Companion papers", A): per record
(:func:`record_means`), per lead (:func:`lead_rank_test`) and over R-peak
aligned beats (:func:`ecgrepro.beats.beat_windows`). Padding never enters an
average: every function takes each record's ``n_valid``.

captum's own ``LRP`` is not used: it refuses ``Conv1d`` and passes relevance
through the residual addition as a plain gradient.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from ecgrepro.beats import valid_masks
from ecgrepro.explain.methods import explain
from ecgrepro.explain.zennit_compat import import_zennit
from ecgrepro.metrics import percentile_interval
from ecgrepro.models import BasicBlock1d

import_zennit()
from zennit.canonizers import AttributeCanonizer, SequentialMergeBatchNorm  # noqa: E402
from zennit.composites import (  # noqa: E402
    EpsilonGammaBox,
    EpsilonPlusFlat,
    LayerMapComposite,
    layer_map_base,
)
from zennit.layer import Sum  # noqa: E402
from zennit.rules import Epsilon  # noqa: E402
from zennit.types import Convolution  # noqa: E402

#: The leads clinicians read for each class (Bender et al.; METHODS.md, Companion A).
CLINICAL_LEADS: dict[str, tuple[str, ...]] = {
    "AF": ("II", "V1"),
    "LBBB": ("V1", "V2", "I", "aVL", "V5", "V6"),
}
#: The 8 independent leads (III, aVR, aVL and aVF are computed from I and II).
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: LRP composites by name: the paper's default, its variant, and plain LRP-epsilon (tests).
COMPOSITES = ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon")


def integrated_gradients(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    target: int | np.ndarray,
    n_steps: int = 50,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrated Gradients of one class logit, from a 0 mV baseline (captum).

    Parameters
    ----------
    model : torch.nn.Module
        Maps (batch, 12, n_samples) float32 mV to logits (batch, n_classes); in eval mode.
    x : array, shape (n, 12, n_samples), float32, mV
    target : int or numpy.ndarray of int, shape (n,)
        Class index (per record).
    n_steps : int
        Integration steps (captum's Gauss-Legendre rule; 50 in the book's paper profile).
    batch_size : int
        Records per call; each call evaluates ``batch_size * n_steps`` inputs.

    Returns
    -------
    attributions : numpy.ndarray, shape (n, 12, n_samples), float32
        Logit units per sample; exactly 0 wherever the input is 0 mV (the padding).
    delta : numpy.ndarray, shape (n,), float
        Convergence delta: sum of the attributions minus (logit(x) - logit(0)).

    Notes
    -----
    Sundararajan, Taly & Yan (2017), Eq. 1; Bender et al. use it with a zero baseline.
    """
    from captum.attr import IntegratedGradients

    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    targets = np.broadcast_to(np.asarray(target), (len(x),)).astype(int)
    device = next(model.parameters()).device
    ig = IntegratedGradients(model)
    attrs, deltas = [], []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device)
        tb = torch.as_tensor(targets[i : i + batch_size], device=device)
        a, d = ig.attribute(
            xb,
            baselines=torch.zeros_like(xb),
            target=tb,
            n_steps=n_steps,
            return_convergence_delta=True,
        )
        attrs.append(a.detach().cpu().numpy().astype(np.float32))
        deltas.append(d.detach().cpu().numpy().astype(float))
    return np.concatenate(attrs), np.concatenate(deltas)


class BasicBlock1dCanonizer(AttributeCanonizer):
    """Routes the residual addition of each :class:`BasicBlock1d` through zennit's ``Sum``.

    Same pattern as zennit's ``ResNetBasicBlockCanonizer`` for torchvision: the
    block's ``forward`` is replaced (while the canonizer is applied) by one that
    stacks (shortcut, residual) and sums them in a ``Sum`` module, which the
    composites give the ``Norm`` rule. The output is the same as the block's
    own forward (checked by :func:`canonizer_check`).
    """

    def __init__(self):
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name, module):
        if isinstance(module, BasicBlock1d):
            return {"forward": cls.forward.__get__(module), "canonizer_sum": Sum()}
        return None

    @staticmethod
    def forward(self, x):
        """The block's forward with the addition as a ``Sum`` layer."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.dropout(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        out = self.canonizer_sum(torch.stack([identity, out], dim=-1))
        return self.relu(out)


def canonizers() -> list:
    """The canonizers for :class:`~ecgrepro.models.ResNet1d`: BatchNorm merge, residual sums."""
    return [SequentialMergeBatchNorm(), BasicBlock1dCanonizer()]


def make_composite(name: str, low: float = -5.0, high: float = 5.0, epsilon: float = 1e-6):
    """A zennit composite with this model's canonizers.

    Parameters
    ----------
    name : {"epsilon_plus_flat", "epsilon_gamma_box", "epsilon"}
        ``epsilon_plus_flat``: flat rule for the first convolution, z+ for the
        other convolutions, epsilon for the dense layer (the default of Bender
        et al.'s toolbox). ``epsilon_gamma_box``: z-box for the first
        convolution (bounds ``low``, ``high`` in mV), gamma (0.25) for the others,
        epsilon for the dense layer. ``epsilon``: LRP-epsilon everywhere.
    low, high : float
        Input bounds of the z-box rule, mV.
    epsilon : float
        Stabiliser of the epsilon rule.

    Returns
    -------
    zennit.core.Composite

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if name == "epsilon_plus_flat":
        return EpsilonPlusFlat(epsilon=epsilon, canonizers=canonizers())
    if name == "epsilon_gamma_box":
        return EpsilonGammaBox(low=low, high=high, epsilon=epsilon, canonizers=canonizers())
    if name == "epsilon":
        layer_map = layer_map_base() + [
            (Convolution, Epsilon(epsilon=epsilon)),
            (nn.Linear, Epsilon(epsilon=epsilon)),
        ]
        return LayerMapComposite(layer_map=layer_map, canonizers=canonizers())
    raise ValueError(f"unknown LRP composite {name!r}; known: {COMPOSITES}")


def lrp(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    target: int | np.ndarray,
    composite: str = "epsilon_plus_flat",
    epsilon: float = 1e-6,
    low: float | None = None,
    high: float | None = None,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """LRP relevance of one class logit for each input sample (zennit).

    The relevance starts as the target logit itself (so that, were the rules
    conservative, each record's relevance would sum to its logit).

    Parameters
    ----------
    model : torch.nn.Module
        :class:`~ecgrepro.models.ResNet1d` (or any model the canonizers leave as
        it is), in eval mode. Restored when the call returns.
    x : array, shape (n, 12, n_samples), float32, mV
    target : int or numpy.ndarray of int, shape (n,)
    composite : {"epsilon_plus_flat", "epsilon_gamma_box", "epsilon"}
        See :func:`make_composite`.
    epsilon : float
    low, high : float, optional
        The z-box bounds of ``epsilon_gamma_box``, mV: the input domain. Default:
        the minimum and maximum of ``x`` (all records of the call, so that a
        record's relevance does not depend on the records batched with it).
    batch_size : int
        Records per backward pass.

    Returns
    -------
    relevance : numpy.ndarray, shape (n, 12, n_samples), float32
        Not 0 in the padding under the flat and z-box rules: mask it
        (:func:`record_means`).
    logits : numpy.ndarray, shape (n,), float
        The target logit of each record (the relevance that entered).

    Notes
    -----
    Bach et al. (2015); Montavon et al. (2019) for the composites; Bender et al.
    (2024) apply ``EpsilonPlusFlat`` to a 1-D ResNet on 12-lead ECG.
    """
    x = np.asarray(x, dtype=np.float32)
    targets = np.broadcast_to(np.asarray(target), (len(x),)).astype(int)
    low = float(x.min()) if low is None else low
    high = float(x.max()) if high is None else high
    device = next(model.parameters()).device
    rel, logits = [], []
    for s in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[s : s + batch_size], device=device).requires_grad_(True)
        rows = torch.arange(len(xb), device=device)
        tb = torch.as_tensor(targets[s : s + batch_size], device=device)
        with make_composite(composite, low, high, epsilon).context(model) as modified:
            out = modified(xb)
            seed = torch.zeros_like(out)
            seed[rows, tb] = out[rows, tb].detach()
            (grad,) = torch.autograd.grad(out, xb, grad_outputs=seed)
        rel.append(grad.detach().cpu().numpy().astype(np.float32))
        logits.append(out[rows, tb].detach().cpu().numpy().astype(float))
    return np.concatenate(rel), np.concatenate(logits)


def canonizer_check(model: nn.Module, x: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Whether the canonized model computes the same logits, and is restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode.
    x : array, shape (n, 12, n_samples), float32, mV

    Returns
    -------
    dict
        ``max_change_canonized``: largest |logit change| while the canonizers
        are applied (merged BatchNorm, ``Sum`` layers); ``max_change_after``:
        after they are removed; ``parameters_restored``: 1.0 if every parameter
        and buffer is bit-identical afterwards, else 0.0.
    """
    device = next(model.parameters()).device
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(xt)
        with make_composite("epsilon_plus_flat").context(model) as modified:
            during = modified(xt)
        after = model(xt)
    restored = all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    return {
        "max_change_canonized": float((during - before).abs().max()),
        "max_change_after": float((after - before).abs().max()),
        "parameters_restored": float(restored),
    }


def record_means(relevance: np.ndarray, n_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean relevance per record and per (record, lead), over the valid samples only.

    Parameters
    ----------
    relevance : numpy.ndarray, shape (n, n_leads, n_samples)
    n_valid : numpy.ndarray of int, shape (n,)
        Valid samples of each record (the last ``n_valid``; the rest is padding).

    Returns
    -------
    per_record : numpy.ndarray, shape (n,), float
        Mean over the leads and the valid samples (Bender et al., analysis a).
    per_lead : numpy.ndarray, shape (n, n_leads), float
        Mean over the valid samples of each lead.
    """
    mask = valid_masks(n_valid, relevance.shape[-1])[:, None, :]
    per_lead = (relevance * mask).sum(-1) / mask.sum(-1)
    return per_lead.mean(1), per_lead


def outcomes(labelled: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """TP / FP / FN / TN of each record for one class (positive: probability >= threshold).

    Parameters
    ----------
    labelled : numpy.ndarray of bool, shape (n,)
    probability : numpy.ndarray, shape (n,)
    threshold : float
        The model's validation threshold for the class (METHODS.md).

    Returns
    -------
    numpy.ndarray of str, shape (n,)
    """
    called = np.asarray(probability) >= threshold
    labelled = np.asarray(labelled, dtype=bool)
    return np.where(called, np.where(labelled, "TP", "FP"), np.where(labelled, "FN", "TN"))


def spearman_interval(
    x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Spearman's rho with a 95% percentile bootstrap interval over the records.

    Parameters
    ----------
    x, y : numpy.ndarray, shape (n,)
    n_boot : int
    seed : int

    Returns
    -------
    (rho, low, high) : tuple of float
        NaN where fewer than 3 records (or a constant variable) leave rho undefined.
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan, np.nan
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    boot = np.full(n_boot, np.nan)
    for b in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            boot[b] = spearmanr(x[i], y[i]).statistic
    low, high = percentile_interval(boot)
    return rho, float(low), float(high)


def mean_interval(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean with a 95% percentile bootstrap interval (records resampled); NaN if empty."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    boot = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    low, high = percentile_interval(boot)
    return float(values.mean()), float(low), float(high)


def lead_rank_test(
    lead_values: np.ndarray, leads: tuple[str, ...], clinical: tuple[str, ...]
) -> tuple[float, float, int]:
    """Rank of the clinical leads among all leads, with an exact permutation p-value.

    The leads are ranked by value (1 = largest relevance; tied leads share the
    mean of their ranks, so a map that gives every lead the same value ranks
    the clinical leads at chance, p = 1). The statistic is the
    mean rank of the clinical leads; the p-value is the share of all
    ``C(n_leads, k)`` sets of ``k`` leads whose mean rank is at most the
    observed one (one-sided: clinical leads more relevant than chance).

    Parameters
    ----------
    lead_values : numpy.ndarray, shape (n_leads,)
    leads : tuple of str
        Names of the leads, in ``lead_values`` order.
    clinical : tuple of str
        The clinical leads; those not in ``leads`` are dropped (aVL among the 8
        independent leads).

    Returns
    -------
    mean_rank : float
    p_value : float
    k : int
        Clinical leads ranked.

    Raises
    ------
    ValueError
        If no clinical lead is among ``leads`` or a value is not finite.
    """
    from scipy.stats import rankdata

    values = np.asarray(lead_values, dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("lead values must be finite")
    idx = [leads.index(lead) for lead in clinical if lead in leads]
    if not idx:
        raise ValueError(f"none of {clinical} is among {leads}")
    ranks = rankdata(-values, method="average")  # tied leads share their mean rank
    observed = ranks[idx].mean()
    null = np.array(
        [ranks[list(c)].mean() for c in itertools.combinations(range(len(values)), len(idx))]
    )
    return float(observed), float(np.mean(null <= observed + 1e-12)), len(idx)


#: Relevance methods by name: IG and the two LRP composites.
#: Companion A's methods, names of :data:`ecgrepro.explain.methods.METHODS` (those with a check).
RELEVANCE_METHODS = ("ig", "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box")


def relevance_summary(
    model: nn.Module,
    x: np.ndarray,
    n_valid: np.ndarray,
    records: list[str],
    fs_hz: float,
    targets: dict[str, int],
    methods: tuple[str, ...] = RELEVANCE_METHODS,
    n_steps: int = 50,
    before_ms: float = 250.0,
    after_ms: float = 450.0,
    beat_lead: int = 1,
    chunk: int = 8,
) -> dict[str, np.ndarray]:
    """Relevance of each record for each target class, reduced to what the three analyses read.

    The full per-sample maps are not kept (at 500 Hz and 30 s they are 720 kB
    per record, method and class); what is kept is storable with
    :func:`ecgrepro.explain.store.cached`.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode.
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    n_valid : numpy.ndarray of int, shape (n,)
    records : list of str
        Record names (for the delineation problems).
    fs_hz : float
        Sampling frequency, Hz.
    targets : dict of str -> int
        Class name -> logit index (``{"AF": 1, "LBBB": 3}``).
    methods : tuple of str
        Among :data:`RELEVANCE_METHODS`.
    n_steps : int
        IG steps.
    before_ms, after_ms : float
        The average beat's window around each R peak, ms.
    beat_lead : int
        Lead whose R peaks and waves align the beats (1: lead II).
    chunk : int
        Records per batch.

    Returns
    -------
    dict of str -> numpy.ndarray
        Per record: ``logit.<class>`` (n,); ``waves`` (n, 3, 2) ms of the P, QRS
        and T windows (NaN where not delineated); ``beat_signal`` (n, 12, L) mV,
        the average beat (NaN where no beat); ``n_beats`` (n,); ``problem``
        (n,) str. Per method ``m`` and class ``c``: ``<m>.<c>.record`` (n,)
        mean relevance over leads and valid samples; ``<m>.<c>.lead`` (n, 12);
        ``<m>.<c>.abs`` (n,) mean |relevance| (the scale of a record);
        ``<m>.<c>.beat`` (n, 12, L), the average beat's relevance;
        ``<m>.<c>.check`` (n,), IG's convergence delta or LRP's conservation
        (sum of relevance over all samples / the logit); ``<m>.<c>.padding``
        (n,), the share of |relevance| that fell in the padding; ``offsets_ms`` (L,).

    Raises
    ------
    ValueError
        For an unknown method.
    """
    from ecgrepro.beats import WAVES, beat_windows, wave_windows_ms

    unknown = set(methods) - set(RELEVANCE_METHODS)
    if unknown:
        raise ValueError(f"unknown relevance methods {sorted(unknown)}; known: {RELEVANCE_METHODS}")
    x = np.asarray(x, dtype=np.float32)
    n, n_leads, n_samples = x.shape
    low, high = float(x.min()), float(x.max())  # z-box bounds: the explained records' range, mV
    _, offsets = beat_windows(x[0], np.array([], dtype=int), fs_hz, before_ms, after_ms)
    length = len(offsets)
    out: dict[str, np.ndarray] = {
        "offsets_ms": offsets,
        "waves": np.full((n, len(WAVES), 2), np.nan),
        "beat_signal": np.full((n, n_leads, length), np.nan),
        "n_beats": np.zeros(n, dtype=np.int64),
        "problem": np.array([""] * n, dtype=object),
    }
    peaks = []
    for i in range(n):
        try:
            windows, r = wave_windows_ms(x[i, beat_lead], fs_hz, int(n_valid[i]), records[i])
        except ValueError as err:
            out["problem"][i] = str(err)
            peaks.append(np.array([], dtype=int))
            continue
        out["waves"][i] = [windows[w] for w, _, _ in WAVES]
        beats, _ = beat_windows(x[i], r, fs_hz, before_ms, after_ms, int(n_valid[i]))
        out["n_beats"][i] = len(beats)
        if len(beats):
            out["beat_signal"][i] = beats.mean(0)
        peaks.append(r)
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = np.concatenate(
            [
                model(torch.as_tensor(x[i : i + chunk], device=device)).cpu().numpy()
                for i in range(0, n, chunk)
            ]
        )
    for cls, t in targets.items():
        out[f"logit.{cls}"] = logits[:, t].astype(float)
        for m in methods:
            rec, lead, scale = np.zeros(n), np.zeros((n, n_leads)), np.zeros(n)
            beat = np.full((n, n_leads, length), np.nan)
            check, padding = np.zeros(n), np.zeros(n)
            for s in range(0, n, chunk):
                xb, nv = x[s : s + chunk], np.asarray(n_valid[s : s + chunk])
                # the padding kept: its share of |relevance| is a column. batch_size: IG
                # takes batch_size // 2 records per call, LRP batch_size; so the chunk at once
                rel, check[s : s + len(xb)] = explain(
                    m, model, xb, t, n_valid=nv, keep_padding=True, with_check=True,
                    ig_steps=n_steps, batch_size=2 * chunk, low=low, high=high,
                )
                mask = valid_masks(nv, n_samples)[:, None, :]
                total = np.abs(rel).reshape(len(xb), -1).sum(1)
                padding[s : s + len(xb)] = np.where(
                    total > 0, (np.abs(rel) * ~mask).reshape(len(xb), -1).sum(1) / total, 0.0
                )
                r_mean, l_mean = record_means(rel, nv)
                rec[s : s + len(xb)], lead[s : s + len(xb)] = r_mean, l_mean
                scale[s : s + len(xb)] = record_means(np.abs(rel), nv)[0]
                for j in range(len(xb)):
                    beats, _ = beat_windows(rel[j], peaks[s + j], fs_hz, before_ms, after_ms, nv[j])
                    if len(beats):
                        beat[s + j] = beats.mean(0)
            prefix = f"{m}.{cls}"
            out[f"{prefix}.record"], out[f"{prefix}.lead"], out[f"{prefix}.abs"] = rec, lead, scale
            out[f"{prefix}.beat"], out[f"{prefix}.check"] = beat, check
            out[f"{prefix}.padding"] = padding
    out["problem"] = out["problem"].astype(str)
    return out

