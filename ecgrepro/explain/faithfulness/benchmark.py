"""One panel of the faithfulness benchmark (one model on one dataset): maps, curves and
their scores, as the faithfulness page stores them.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ecgrepro.config import LEADS
from ecgrepro.explain.faithfulness.curves import REPLACEMENTS, benchmark_curves
from ecgrepro.explain.faithfulness.maps import TIME_METHODS, lead_values, time_maps
from ecgrepro.explain.lead_games import LEAD_GAMES


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
