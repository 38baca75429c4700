"""One panel of the faithfulness benchmark (one model on one dataset): maps, curves and
their scores, as the faithfulness page stores them; the page's settings they depend on.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from torch import nn

from ecgrepro.config import LEADS
from ecgrepro.explain.faithfulness.curves import REPLACEMENTS, benchmark_curves
from ecgrepro.explain.faithfulness.maps import TIME_METHODS, lead_values, time_maps
from ecgrepro.explain.lead_games import LEAD_GAMES
from ecgrepro.explain.store import EXPLAIN_CODE_VERSION

#: The stored results' version entry (part of every payload of the faithfulness page).
VERSION = [EXPLAIN_CODE_VERSION, "faithfulness-1"]


def panel_benchmark(
    model: nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    fs_hz: float,
    n_valid: np.ndarray,
    given: dict[str, np.ndarray],
    shapley8: np.ndarray,
    published_background: np.ndarray,
    nsamples: int = 200,
    ig_steps: int = 50,
    mask_kw: dict | None = None,
    n_steps: int = 20,
    replacements: tuple[str, ...] = REPLACEMENTS,
    lerf_replacements: tuple[str, ...] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One model on one dataset's records: every map, the published SHAP values, every curve.

    Parameters
    ----------
    model, x, target, fs_hz, n_valid
        As :func:`time_maps`; ``target`` per record.
    given : dict of str -> numpy.ndarray, shape (k, 12)
        Lead values already computed (the SHAP page's ``shapley12`` and
        ``shap_principled``) for the first ``k`` records.
    shapley8 : numpy.ndarray, shape (k, 8)
        The 8-lead game's exact values for the same records.
    published_background : numpy.ndarray, shape (n_background, 12, n_samples)
        GradientExplainer's published background (``shap_published`` is computed here).
    nsamples, ig_steps, mask_kw, n_steps, replacements, lerf_replacements, seed
        As :func:`time_maps` and :func:`deletion_curves`.

    Returns
    -------
    dict of str -> numpy.ndarray
        :func:`benchmark_curves`'s keys (Grad-CAM, without a lead axis, has
        time-resolved curves only), and ``seconds|map|<method>``.
    """
    k = len(next(iter(given.values()))) if given else 0
    maps, sec = time_maps(
        model, x, target, fs_hz, n_valid, tuple(TIME_METHODS), ig_steps, mask_kw, seed=seed
    )
    published, sec_pub = lead_values(
        model,
        x[:k],
        target[:k],
        n_valid[:k],
        ("shap_published",),
        {"shap_published": published_background},
        nsamples,
        seed=seed,
    )
    given = {**given, **published}
    sec.update(sec_pub)
    idx8 = [LEADS.index(lead) for lead in LEAD_GAMES["independent8"]]
    lead_sets = {
        "leads12": given,
        "independent8": {**{m: v[:, idx8] for m, v in given.items()}, "shapley8": shapley8},
    }
    with_leads = {m: v for m, v in maps.items() if not m.startswith("gradcam")}
    out = benchmark_curves(
        model,
        x,
        target,
        fs_hz,
        n_valid,
        with_leads,
        lead_sets,
        np.arange(k),
        n_steps,
        replacements,
        lerf_replacements,
        seed,
    )
    cams = {m: v for m, v in maps.items() if m.startswith("gradcam")}
    out.update(
        benchmark_curves(
            model,
            x,
            target,
            fs_hz,
            n_valid,
            cams,
            None,
            None,
            n_steps,
            replacements,
            lerf_replacements,
            seed,
        )
    )
    out.update({f"seconds|map|{m}": np.array(v) for m, v in sec.items()})
    return out


@dataclass(frozen=True)
class Settings:
    """The faithfulness page's parameters that its results depend on.

    Attributes
    ----------
    fs_hz : float
        Model input sampling frequency, Hz.
    seed : int
    n_background, n_explained, nsamples, n_per_class, exact_per_panel : int
        The SHAP page's selection (its stored results are re-read).
    exact_baseline : str
        ``zeros`` or ``mean``: the exact lead Shapley values' absent lead.
    n_records : int
        Test records per model and dataset for the time-resolved curves.
    n_curve_steps : int
        Points of each curve, minus one.
    lerf_variants : bool
        LeRF under every replacement (False: interpolation only).
    n_steps : int
        Integrated Gradients steps.
    n_iter : int
        Deletion-mask iterations.
    n_random_records : int
        Records of the randomisation checks (Ours_2, PTB-XL).
    randomise_exact12, randomise_exact8 : bool
        Include the 12-lead and 8-lead exact Shapley values in the randomisation checks.
    data_randomisation : bool
        Also compare the PTB-XL-only model with one trained on shuffled labels.
    n_planted_explain : int
        Planted test records explained per marker.
    exact12_records, planted_exact8_records : int
        Records with 12-lead (8-lead, planted) exact Shapley values: 0 all, negative none,
        else at most this many (:func:`capped`).

    Notes
    -----
    The faithfulness page's parameters cell (``notebooks/faithfulness.ipynb``) and the SHAP
    selection it shares (:data:`ecgrepro.parameters.PAGE_SHARED`).
    """

    fs_hz: float
    seed: int
    n_background: int
    n_explained: int
    nsamples: int
    n_per_class: int
    exact_per_panel: int
    exact_baseline: str
    n_records: int
    n_curve_steps: int
    lerf_variants: bool
    n_steps: int
    n_iter: int
    n_random_records: int
    randomise_exact12: bool
    randomise_exact8: bool
    data_randomisation: bool
    n_planted_explain: int
    exact12_records: int
    planted_exact8_records: int

    @classmethod
    def of(cls, params) -> Settings:
        """The settings from a page's parameters (a mapping, or a ``Page``).

        Raises
        ------
        KeyError
            If a parameter is missing.
        """
        return cls(**{f.name: params[f.name] for f in fields(cls)})

    @property
    def mask_kw(self) -> dict:
        """The deletion mask's settings (Companion B's, with :attr:`n_iter` iterations)."""
        return {
            "n_iter": self.n_iter, "lr": 0.1, "l1": 1.0, "tv": 0.5, "blur_hz": 2.0, "bin_ms": 40.0
        }

    @property
    def map_kw(self) -> dict:
        """Extra arguments of :func:`~ecgrepro.explain.faithfulness.time_maps`."""
        return {"ig_steps": self.n_steps, "mask_kw": self.mask_kw}

    @property
    def lerf_replacements(self) -> tuple[str, ...]:
        """The replacements of the LeRF curves."""
        return REPLACEMENTS if self.lerf_variants else ("interpolate",)


def capped(limit: int, n: int) -> int:
    """A records parameter applied to ``n`` records: 0 all, negative none, else at most ``limit``.

    The page's ``exact12_records`` and ``planted_exact8_records``.
    """
    return n if not limit else min(n, max(limit, 0))
