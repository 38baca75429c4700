"""Attributions per lead for Figures 2-5: one panel (a model on a dataset) and its readings.

:func:`shap_panel` computes, for one panel, SHAP's GradientExplainer as the
published code and as the principled variant, and the exact Shapley values of the
two lead games, through the explanation store; :func:`claim_ranks` and
:func:`limb_credit` read the panels. The methods live in two modules, whose
public names are re-exported here (this is the module to import from):

- :mod:`ecgrepro.explain.shap_leads`: GradientExplainer per lead, the record
  selections (published, principled), the class x lead matrices and their
  normalisations and flags;
- :mod:`ecgrepro.explain.lead_games`: the two lead games (12 leads; the 8
  independent leads), their coalitions and exact Shapley values, which are
  different games from GradientExplainer's.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import nn

from ecgrepro.config import CLASSES, LEADS
from ecgrepro.explain.lead_games import (
    INDEPENDENT_LEADS,
    LEAD_GAMES,
    LIMB_FROM_I_II,
    coalition_inputs,
    coalition_masks,
    exact_lead_shapley,
    limb_residual,
    recompute_limb_leads,
    shapley_from_values,
    valid_mean,
)
from ecgrepro.explain.shap_leads import (
    NORMALISATIONS,
    SMALL_SUM_SHARE,
    aggregate_per_lead,
    gradient_shap_per_lead,
    published_selection,
    stratified_selection,
    sum_flags,
)
from ecgrepro.explain.store import cached
from ecgrepro.runtime import model_device

__all__ = [
    "INDEPENDENT_LEADS",
    "LEAD_GAMES",
    "LIMB_FROM_I_II",
    "NORMALISATIONS",
    "SMALL_SUM_SHARE",
    "PanelResult",
    "aggregate_per_lead",
    "claim_ranks",
    "coalition_inputs",
    "coalition_masks",
    "dataset_valid_lengths",
    "exact_lead_shapley",
    "gradient_shap_per_lead",
    "lead_rank",
    "leads_of",
    "limb_credit",
    "limb_residual",
    "published_selection",
    "recompute_limb_leads",
    "shap_panel",
    "shapley_from_values",
    "spread_over_classes",
    "stratified_selection",
    "sum_flags",
    "timed",
    "valid_mean",
]


def timed(fn, *args, **kwargs):
    """``(result, seconds)`` of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


@dataclass
class PanelResult:
    """Attributions of one model on one dataset (one of Figures 2-5).

    Attributes
    ----------
    matrices : dict of str -> numpy.ndarray, shape (10, n_players)
        Class (9 + AVG) x lead matrices per method, named as in
        :data:`ecgrepro.explain.methods.METHODS`: ``shap_published``
        (signed-sum normalisation, as published), ``shap_principled``,
        ``shapley12`` (the exact 12-lead game) and ``shapley8`` (the
        independent-lead game, 8 columns: :data:`INDEPENDENT_LEADS`), these
        three normalised by the sum of absolute values. The exact games'
        baseline is the panel's ``exact_baseline``.
    flags : pandas.DataFrame
        :func:`sum_flags` per method: ``method, class, records, signed_sum,
        abs_sum, signed_share, flag``.
    exact : pandas.DataFrame
        One row per record with exact values: ``record, class,
        spearman_exact_vs_gradient`` (12-lead game against GradientExplainer's
        per-lead sums), ``efficiency_error``, ``efficiency_error_8``
        (arithmetic checks), ``limb_residual_mv`` (recorded minus recomputed
        derived limb leads, :func:`limb_residual`), ``logit_change_8`` (target
        logit of the record with recomputed limb leads minus that of the
        record), ``seconds``, ``seconds_8``.
    costs : pandas.DataFrame
        ``method, records, model_evaluations_per_record, seconds_per_record``
        (the seconds of the computation, also when the result was re-read).
    values : dict of str -> numpy.ndarray, shape (n_records, n_players)
        Per-record values per method (target class only).
    targets : dict of str -> numpy.ndarray of int
        Class explained per record, per method.
    rows : dict of str -> numpy.ndarray of int
        The dataset rows of ``values[method]``'s records.
    reused : list of str
        Results re-read from the store instead of computed.
    """

    matrices: dict
    exact: pd.DataFrame
    costs: pd.DataFrame
    flags: pd.DataFrame = field(default_factory=pd.DataFrame)
    values: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)
    reused: list = field(default_factory=list)
    rows: dict = field(default_factory=dict)

    def row_marks(self, method: str) -> list[str]:
        """The flag of each row of ``matrices[method]`` (9 classes, then "" for AVG)."""
        flags = self.flags[self.flags.method == method].set_index("class").flag
        return [str(flags.get(c, "")) for c in CLASSES] + [""]


@torch.no_grad()
def _logits(model: nn.Module, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    device = model_device(model)
    return (
        np.concatenate(
            [
                model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(device))
                .cpu()
                .numpy()
                for i in range(0, len(x), batch_size)
            ]
        )
        if len(x)
        else np.zeros((0, len(CLASSES)), np.float32)
    )


def spread_over_classes(targets: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` entries taking each class's first record, then each class's second, ..."""
    rank = np.array([np.sum(targets[:i] == targets[i]) for i in range(len(targets))])
    return np.lexsort((targets, rank))[:k]


def dataset_valid_lengths(ds, rows: np.ndarray) -> np.ndarray:
    """Valid samples of some records of a dataset (``ds.records["n_valid"]``; else all)."""
    rows = np.asarray(rows, dtype=int)
    if "n_valid" in ds.records:
        return ds.records["n_valid"].to_numpy(dtype=np.int64)[rows]
    return np.full(len(rows), ds.n_samples, dtype=np.int64)


def _store(store_dir, name: str, payload: dict, compute, log, reused: list) -> dict:
    """``compute()``, through the store when there is one; notes what was re-read."""
    if store_dir is None:
        return compute()
    hit = []
    out = cached(store_dir, name, payload, compute, log=lambda line: hit.append(line))
    if hit and "reusing" in hit[0]:
        reused.append(name)
    if log:
        for line in hit:
            log(line)
    return out


def shap_panel(
    model: nn.Module,
    ds,
    n_background: int = 100,
    n_explained: int = 200,
    nsamples: int = 200,
    n_per_class: int = 20,
    exact_per_panel: int = 20,
    exact_baseline: str = "zeros",
    seed: int = 0,
    model_key: str = "",
    store_dir: Path | str | None = None,
    log=None,
) -> PanelResult:
    """Published SHAP, the principled variant and the two exact lead games for one panel.

    Parameters
    ----------
    model : torch.nn.Module
        A trained model (CPU), (batch, 12, n) -> (batch, 9) logits.
    ds : ecgrepro.data.ECGDataset
        Its record order is the label table's order; ``records["n_valid"]``,
        where present, gives each record's valid samples.
    n_background, n_explained : int
        Published selection: the first rows of the label table (100 and 200).
    nsamples : int
        GradientExplainer samples per record.
    n_per_class : int
        Principled variant: test records per true class (background drawn
        from the training folds, ``n_background`` of them).
    exact_per_panel : int
        Principled records (spread over classes) whose exact values are computed.
    exact_baseline : {"zeros", "mean"}
        What replaces an absent lead: zeros, or the training folds' mean signal.
    seed : int
    model_key : str
        The model's artifact key (:attr:`ecgrepro.pipeline.TrainedModel.key`);
        required with ``store_dir``.
    store_dir : pathlib.Path or str, optional
        Where results are stored (``pipe.artifacts / "explain"``), keyed by the
        model, the records and the parameters (:func:`ecgrepro.explain.store.cached`);
        None: compute everything, store nothing.
    log : callable, optional
        Receives one line per stored result (reused or computed).

    Returns
    -------
    PanelResult

    Raises
    ------
    ValueError
        For an unknown ``exact_baseline``, or a store without a model key.
    """
    if exact_baseline not in ("zeros", "mean"):
        raise ValueError(f"exact_baseline must be 'zeros' or 'mean', not {exact_baseline!r}")
    if store_dir is not None and not model_key:
        raise ValueError("storing explanations needs the model's artifact key (model_key)")
    model = model.eval()  # explained where it is: the pipeline's device
    x_all = ds.signals
    names = ds.records.record.astype(str).to_numpy()
    reused: list[str] = []
    common = {
        "model": model_key,
        "dataset": ds.name,
        "data": ds.data_key,
        "fs_hz": ds.fs_hz,
        "n_samples": ds.n_samples,
        "nsamples": nsamples,
        "seed": seed,
    }
    tag = f"{model_key or 'model'}-{ds.name}"

    # published selection: the first rows; target = the predicted class
    bg_idx, ex_idx = published_selection(len(ds.records), n_background, n_explained)
    nv_ex = dataset_valid_lengths(ds, ex_idx)

    def published():
        x_ex = np.asarray(x_all[ex_idx])
        targets = _logits(model, x_ex).argmax(axis=1)
        values, sec = timed(
            gradient_shap_per_lead,
            model,
            np.asarray(x_all[bg_idx]),
            x_ex,
            targets,
            nsamples,
            seed,
            nv_ex,
        )
        return {"targets": targets, "values": values, "seconds": sec}

    pub = _store(
        store_dir,
        f"shap-published-{tag}",
        {**common, "background": names[bg_idx], "explained": names[ex_idx], "n_valid": nv_ex},
        published,
        log,
        reused,
    )

    # principled selection: background from the training folds, test records by true class
    train_rows, _ = ds.subset("train")
    test_rows, test_y = ds.subset("test")
    bg2, ex2, t2 = stratified_selection(
        train_rows, test_rows, test_y, n_background, n_per_class, seed
    )
    nv_ex2 = dataset_valid_lengths(ds, ex2)

    def principled():
        values, sec = timed(
            gradient_shap_per_lead,
            model,
            np.asarray(x_all[bg2]),
            np.asarray(x_all[ex2]),
            t2,
            nsamples,
            seed,
            nv_ex2,
        )
        return {"values": values, "seconds": sec}

    pri = _store(
        store_dir,
        f"shap-principled-{tag}",
        {
            **common,
            "background": names[bg2],
            "explained": names[ex2],
            "targets": t2,
            "n_valid": nv_ex2,
        },
        principled,
        log,
        reused,
    )

    # exact lead games on some principled records
    chosen = spread_over_classes(t2, exact_per_panel)
    rows_c, t_c, nv_c = ex2[chosen], t2[chosen], nv_ex2[chosen]

    @functools.cache
    def baseline():
        if exact_baseline == "zeros":
            return np.zeros(x_all.shape[1:], np.float32)
        all_valid = dataset_valid_lengths(ds, np.arange(len(ds.records)))
        return valid_mean(x_all, train_rows, all_valid)

    def exact(game):
        def compute():
            x = np.asarray(x_all[rows_c])
            n_players = len(LEAD_GAMES[game])
            out = {
                "phi": np.zeros((len(x), n_players, len(CLASSES))),
                "v_none": np.zeros((len(x), len(CLASSES))),
                "v_all": np.zeros((len(x), len(CLASSES))),
                "f_x": _logits(model, x).astype(np.float64),
                "seconds": np.zeros(len(x)),
            }
            for j in range(len(x)):
                (phi, v), sec = timed(
                    exact_lead_shapley, model, x[j], baseline(), game=game, n_valid=int(nv_c[j])
                )
                out["phi"][j], out["v_none"][j], out["v_all"][j] = phi, v[0], v[-1]
                out["seconds"][j] = sec
            out["limb_residual_mv"] = np.array([limb_residual(r) for r in x])
            return out

        payload = {
            **common,
            "game": game,
            "baseline": exact_baseline,
            "records": names[rows_c],
            "targets": t_c,
            "n_valid": nv_c,
        }
        payload.pop("nsamples")
        return _store(store_dir, f"lead-shapley-{game}-{tag}", payload, compute, log, reused)

    games = {"leads12": exact("leads12"), "independent8": exact("independent8")}

    j = np.arange(len(chosen))
    values = {
        "shap_published": pub["values"],
        "shap_principled": pri["values"],
        "shapley12": games["leads12"]["phi"][j, :, t_c],
        "shapley8": games["independent8"]["phi"][j, :, t_c],
    }
    targets = {
        "shap_published": np.asarray(pub["targets"], dtype=int),
        "shap_principled": t2,
        "shapley12": t_c,
        "shapley8": t_c,
    }
    matrices, flags = {}, []
    for method, vals in values.items():
        rule = "signed" if method == "shap_published" else "abs"
        # (records, leads * ...); explicit so that a panel without exact records (0 rows) works
        vals = vals.reshape(len(targets[method]), int(np.prod(vals.shape[1:])))
        matrices[method] = aggregate_per_lead(vals, targets[method], normalise=rule)
        flags.append(sum_flags(vals, targets[method]).assign(method=method))
    flags = pd.concat(flags, ignore_index=True)[
        ["method", "class", "records", "signed_sum", "abs_sum", "signed_share", "flag"]
    ]

    g12, g8 = games["leads12"], games["independent8"]
    exact_rows = []
    for k in j:
        gradient = pri["values"][chosen[k]]
        phi12 = values["shapley12"][k]
        exact_rows.append(
            {
                "record": names[rows_c[k]],
                "class": CLASSES[t_c[k]],
                "spearman_exact_vs_gradient": spearmanr(phi12, gradient).statistic
                if np.ptp(phi12) > 0 and np.ptp(gradient) > 0
                else np.nan,
                "efficiency_error": float(
                    np.abs(g12["phi"][k].sum(axis=0) - (g12["v_all"][k] - g12["v_none"][k])).max()
                ),
                "efficiency_error_8": float(
                    np.abs(g8["phi"][k].sum(axis=0) - (g8["v_all"][k] - g8["v_none"][k])).max()
                ),
                "limb_residual_mv": float(g8["limb_residual_mv"][k]),
                "logit_change_8": float(g8["v_all"][k, t_c[k]] - g8["f_x"][k, t_c[k]]),
                "seconds": float(g12["seconds"][k]),
                "seconds_8": float(g8["seconds"][k]),
            }
        )
    columns = [
        "record",
        "class",
        "spearman_exact_vs_gradient",
        "efficiency_error",
        "efficiency_error_8",
        "limb_residual_mv",
        "logit_change_8",
        "seconds",
        "seconds_8",
    ]
    exact_df = pd.DataFrame(exact_rows, columns=columns)
    n_pub, n_pri = len(pub["values"]), len(pri["values"])
    costs = pd.DataFrame(
        [
            (
                "GradientExplainer, published selection",
                n_pub,
                nsamples,
                float(pub["seconds"]) / max(n_pub, 1),
            ),
            (
                "GradientExplainer, principled selection",
                n_pri,
                nsamples,
                float(pri["seconds"]) / max(n_pri, 1),
            ),
            (
                f"exact 12-lead game, {exact_baseline} baseline",
                len(chosen),
                2**12,
                exact_df.seconds.mean() if len(exact_df) else np.nan,
            ),
            (
                f"exact 8-lead game, {exact_baseline} baseline",
                len(chosen),
                2**8,
                exact_df.seconds_8.mean() if len(exact_df) else np.nan,
            ),
        ],
        columns=["method", "records", "model_evaluations_per_record", "seconds_per_record"],
    )
    rows = {
        "shap_published": np.asarray(ex_idx, dtype=int),
        "shap_principled": np.asarray(ex2, dtype=int),
        "shapley12": np.asarray(rows_c, dtype=int),
        "shapley8": np.asarray(rows_c, dtype=int),
    }
    return PanelResult(matrices, exact_df, costs, flags, values, targets, reused, rows)


def lead_rank(row: np.ndarray, lead: str, leads: tuple[str, ...]) -> int | None:
    """Rank of ``lead`` in one class row (1 = largest value); None if absent or the row is NaN."""
    if lead not in leads or not np.isfinite(row).all():
        return None
    return int((row > row[leads.index(lead)]).sum() + 1)


def leads_of(matrix: np.ndarray) -> tuple[str, ...]:
    """The column leads of a class x lead matrix: 12 leads, or the 8 independent ones."""
    return INDEPENDENT_LEADS if matrix.shape[-1] == len(INDEPENDENT_LEADS) else LEADS


def claim_ranks(results: dict, claims: list[tuple[str, str]]) -> pd.DataFrame:
    """Each "lead X for class C" reading as X's rank in C's row, per panel and method.

    Parameters
    ----------
    results : dict of str -> PanelResult
        Panel name -> its result.
    claims : list of (class, lead)

    Returns
    -------
    pandas.DataFrame
        Rows: ``"<lead> for <class>"``; columns: (panel, method). Entries: the
        rank (1 = largest share), ``"-"`` where no record of the class was
        explained, ``"derived"`` where the lead is not a player of the game
        (aVF in the 8-lead game).
    """
    table = {}
    for cls, lead in claims:
        row = {}
        for panel, r in results.items():
            for method, mat in r.matrices.items():
                values = mat[CLASSES.index(cls)]
                leads = leads_of(mat)
                rank = lead_rank(values, lead, leads)
                row[(panel, method)] = (
                    "derived" if lead not in leads else "-" if rank is None else rank
                )
        table[f"{lead} for {cls}"] = row
    return pd.DataFrame(table).T


def limb_credit(results: dict, classes: tuple[str, ...]) -> pd.DataFrame:
    """Where the limb leads' credit goes between the 12-lead and the 8-lead game.

    Parameters
    ----------
    results : dict of str -> PanelResult
    classes : tuple of str
        Classes to report (those of the paper's readings).

    Returns
    -------
    pandas.DataFrame
        One row per panel and class with explained records: the 12-lead game's
        shares (|.|-normalised) of I, II, aVF and of the four derived limb leads
        together (``derived_12``), and the 8-lead game's shares of I and II.
    """
    out = []
    for panel, r in results.items():
        m12, m8 = r.matrices["shapley12"], r.matrices["shapley8"]
        for cls in classes:
            c = CLASSES.index(cls)
            if not (np.isfinite(m12[c]).all() and np.isfinite(m8[c]).all()):
                continue
            derived = [LEADS.index(lead) for lead in LIMB_FROM_I_II]
            out.append(
                {
                    "panel": panel,
                    "class": cls,
                    "I_12": m12[c, LEADS.index("I")],
                    "II_12": m12[c, LEADS.index("II")],
                    "aVF_12": m12[c, LEADS.index("aVF")],
                    "derived_12": m12[c, derived].sum(),
                    "I_8": m8[c, INDEPENDENT_LEADS.index("I")],
                    "II_8": m8[c, INDEPENDENT_LEADS.index("II")],
                }
            )
    columns = ["panel", "class", "I_12", "II_12", "aVF_12", "derived_12", "I_8", "II_8"]
    return pd.DataFrame(out, columns=columns)
