"""The faithfulness page's figures, summary tables and glue texts.

The page (``notebooks/faithfulness.ipynb``) runs the benchmark with one call
(:func:`ecgrepro.explain.faithfulness.faithfulness_table`); what it then shows is drawn and
tabulated here, from the :class:`~ecgrepro.explain.faithfulness.Benchmark` and its tidy
per-record table (``model, dataset, method, test, record, metric, value``).
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ecgrepro.config import LEADS
from ecgrepro.explain import faithfulness as F
from ecgrepro.explain.lead_games import LEAD_GAMES

LABEL = F.METHOD_LABELS
#: The curves drawn bold in Figure 10.1 (the others thin).
SHOWN = [
    "random",
    "amplitude",
    "saliency",
    "input_x_gradient",
    "ig",
    "lrp_epsilon_plus_flat",
    "gradcam",
    "gradcam_published",
    "guided_gradcam",
    "deletion_mask",
]
#: Figure 10.1's curves.
CURVES = ("morf_interpolate", "lerf_interpolate", "insertion")
#: Figure 10.4's maps (the planted scores' ``example``).
EXAMPLE = ("input_x_gradient", "ig", "gradcam", "deletion_mask")
#: ``faithfulness_ranks.csv``'s columns.
RANK_COLUMNS = [
    "test",
    "metric",
    "method",
    "mean_rank",
    "ci_low",
    "ci_high",
    "mean",
    "mean_ci_low",
    "mean_ci_high",
    "records",
    "friedman_statistic",
    "friedman_p",
]


def setup_texts(page, models: dict) -> dict[str, str]:
    """Glue of the "Data, profile and methods" section.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Its parameters ``fs_hz``, ``window_s``, ``n_records``, ``n_curve_steps``, ``n_steps``,
        ``n_iter``, ``n_boot`` are read.
    models : dict of str -> ecgrepro.artifacts.TrainedModel

    Returns
    -------
    dict of str -> str
        ``f_profile``, ``f_setup``, ``f_artifacts``.
    """
    return {
        "f_profile": page.profile,
        "f_setup": f"{page['fs_hz']:g} Hz, {page['window_s']:g} s; at most {page['n_records']} "
        f"test records per model and dataset; {page['n_curve_steps'] + 1} points per curve; "
        f"IG with {page['n_steps']} steps; deletion masks with {page['n_iter']} iterations; "
        f"{page['n_boot']} bootstrap resamples",
        "f_artifacts": ", ".join(m.folder.name for m in models.values()),
    }


def curve_texts(curves: F.CurveSection) -> dict[str, str]:
    """Glue of section 1: ``f_curve_records``, the record explanations of the curves."""
    c = curves.counts
    return {
        "f_curve_records": f"{c['records (time-resolved)'].sum()} record explanations for the "
        f"time-resolved curves and {c['records (lead-level)'].sum()} for the lead-level ones"
    }


def curves_figure(curves: F.CurveSection, profile: str):
    """Figure 10.1: mean MoRF, LeRF (interpolation) and insertion curves of every time-resolved map.

    Parameters
    ----------
    curves : ecgrepro.explain.faithfulness.CurveSection
    profile : str
        Named in the title.

    Returns
    -------
    matplotlib.figure.Figure
        Probability of the explained class (0-1) against the share of units removed (%).
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    cmap = plt.get_cmap("tab20")
    panels = curves.panels
    titles = (
        "MoRF deletion (interpolation)",
        "LeRF deletion (interpolation)",
        "Insertion into 0 mV",
    )
    for ax, curve, title in zip(axes, CURVES, titles, strict=False):
        for j, meth in enumerate(F.TIME_METHODS):
            c = np.concatenate([out[f"time|{meth}|{curve}"] for out in panels.values()])
            f = next(iter(panels.values()))["time|fractions"]
            ls = "--" if meth in F.BASELINE_METHODS else "-"
            lw = 1.6 if meth in SHOWN else 0.9
            ax.plot(100 * f, c.mean(0), ls, color=cmap(j), lw=lw, label=LABEL[meth])
        ax.set_xlabel("units removed (inserted), % of the record's lead x 40 ms units")
        ax.set_ylabel("probability of the explained class")
        ax.set_title(title, fontsize=10)
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"Deletion and insertion curves, mean over {len(curves.table.record.unique())} record "
        f"explanations: Original and Ours_2 on the CPSC and PTB-XL test folds ({profile} profile)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def leads_figure(curves: F.CurveSection, profile: str):
    """Figure 10.2: mean whole-lead MoRF curves in the 12-lead and 8-lead games.

    Parameters
    ----------
    curves : ecgrepro.explain.faithfulness.CurveSection
    profile : str

    Returns
    -------
    matplotlib.figure.Figure
        Probability of the explained class (0-1) against the number of leads removed.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    cmap = plt.get_cmap("tab20")
    panels = curves.panels
    for ax, game in zip(axes, ("leads12", "independent8"), strict=False):
        methods = sorted(
            {
                key.split("|")[1]
                for out in panels.values()
                for key in out
                if key.startswith(f"{game}|") and key.count("|") == 2
            }
        )
        for j, meth in enumerate(methods):
            key = f"{game}|{meth}|morf"
            parts = [out[key] for out in panels.values() if key in out]
            if not parts:
                continue
            c = np.concatenate(parts)
            f = next(
                out[f"{game}|fractions"] for out in panels.values() if f"{game}|fractions" in out
            )
            ax.plot(
                np.round(f * len(LEAD_GAMES[game])),
                c.mean(0),
                "--" if meth in F.BASELINE_METHODS else "-",
                color=cmap(j % 20),
                label=LABEL[meth],
                lw=2.2 if meth in F.LEAD_METHODS else 1.0,
            )
        ax.set_xlabel("leads removed (most relevant first)")
        ax.set_ylabel("probability of the explained class")
        which = "12 leads" if game == "leads12" else "8 independent leads"
        ax.set_title(f"Whole-lead MoRF, {which}", fontsize=10)
    axes[-1].legend(fontsize=7)
    fig.suptitle(
        f"Lead-level deletion curves; the exact Shapley records only ({profile} profile)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def randomisation_figure(rand: F.RandomisationSection, profile: str):
    """Figure 10.3: median similarity with the trained model's map per randomisation stage.

    Parameters
    ----------
    rand : ecgrepro.explain.faithfulness.RandomisationSection
    profile : str

    Returns
    -------
    matplotlib.figure.Figure
        Median Spearman rho of |map| (left) and SSIM (right), dimensionless, per stage.
    """
    stages = rand.stages
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for ax, metric in zip(axes, ("spearman", "ssim"), strict=False):
        for j, meth in enumerate(rand.methods):
            v = rand.randomised[f"{meth}|{metric}"]
            if np.isnan(v).all():
                continue
            ax.plot(
                range(len(stages) + 1),
                np.r_[1.0, np.nanmedian(v, axis=1)],
                "--" if meth in F.BASELINE_METHODS else "-o",
                ms=3,
                color=cmap(j % 20),
                label=LABEL[meth],
            )
        ax.set_xticks(range(len(stages) + 1), ["trained"] + [f"+{s}" for s in stages])
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("layers re-initialised (cumulative, from the top)")
        what = "Spearman rho of |map|" if metric == "spearman" else "SSIM"
        ax.set_ylabel(f"median {what} with the trained map")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Cascading randomisation: Ours_2, {rand.n_rand} PTB-XL test records ({profile} profile)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def randomisation_summary(rand: F.RandomisationSection) -> pd.DataFrame:
    """Median similarity after the first and the last stage (and with shuffled labels).

    Parameters
    ----------
    rand : ecgrepro.explain.faithfulness.RandomisationSection

    Returns
    -------
    pandas.DataFrame
        One row per method (its label), ``median <metric> after <stage>`` columns; with data
        randomisation, ``median <metric>, shuffled labels vs PTB-XL-only`` too.
    """
    t, first, last = rand.table, rand.stages[0], rand.last
    chosen = [f"spearman:{first}", f"spearman:{last}", f"ssim:{last}"]
    tab = (
        t[(t.test == "randomisation") & t.metric.isin(chosen)]
        .groupby(["method", "metric"])
        .value.median()
        .unstack()
        .reindex(rand.methods)
    )
    tab.index = [LABEL[k] for k in tab.index]
    tab.columns = [f"median {c.replace(':', ' after ')}" for c in tab.columns]
    if rand.data_randomised is not None:
        dr = (
            t[t.test == "data randomisation"].groupby(["method", "metric"]).value.median().unstack()
        )
        dr.index = [LABEL[k] for k in dr.index]
        tab = tab.join(dr.rename(columns=lambda c: f"median {c}, shuffled labels vs PTB-XL-only"))
    return tab


def planted_texts(planted: F.PlantedSection, depth_mv: float, epochs: int) -> dict[str, str]:
    """Glue of section 3: the planted data, the detector's AUC, the box's share, the records.

    Parameters
    ----------
    planted : ecgrepro.explain.faithfulness.PlantedSection
    depth_mv : float
        The notch depth, mV (``planted_depth_mv``).
    epochs : int
        The detector's epochs (``planted_epochs``).

    Returns
    -------
    dict of str -> str
        ``f_depth``, ``f_planted_setup``, ``f_planted_auc``, ``f_box_share``, ``f_planted_n``.
    """
    marker = planted.dataset.records["marker"].to_numpy()
    how = "re-read" if planted.detector.reused else "trained on this build"
    return {
        "f_depth": f"{depth_mv:g}",
        "f_planted_setup": f"{len(planted.dataset.records)} PTB-XL records "
        f"({int((marker == 0).sum())} with the V2 notch, {int((marker == 1).sum())} with the "
        f"V5+V6 notch, {len(planted.problems)} left unmarked because no R peak was found), "
        f"trained for {epochs} epochs ({how})",
        "f_planted_auc": ", ".join(f"{mk} {v:.3f}" for mk, v in planted.auc.items()),
        "f_box_share": f"{100 * np.median(planted.box_share):.1f}% (lead x time, median); at the "
        "lead level 1 of 12 leads (V2) or 2 of 12 (V5, V6)",
        "f_planted_n": f"{len(planted.explain)} marked test records ({planted.n8} with 8-lead "
        f"and {planted.n12} with 12-lead exact Shapley values)",
    }


def planted_summary(planted: F.PlantedSection) -> pd.DataFrame:
    """Median relevance mass and rank accuracy per method (its label) on the planted markers."""
    t = planted.table
    pt = (
        t.groupby(["method", "metric"])
        .value.median()
        .unstack()
        .reindex([k for k in LABEL if k in set(t.method)])
    )
    pt.index = [LABEL[k] for k in pt.index]
    pt.columns = [f"median {c.replace('_', ' ')}" for c in pt.columns]
    return pt


def planted_figure(planted: F.PlantedSection, fs_hz: float, profile: str):
    """Figure 10.4: the first explained record's marked lead, its boxes and four maps.

    Parameters
    ----------
    planted : ecgrepro.explain.faithfulness.PlantedSection
    fs_hz : float
        Sampling frequency, Hz (the time axis).
    profile : str

    Returns
    -------
    matplotlib.figure.Figure
        The lead (mV) and the input x gradient, IG, Grad-CAM and deletion-mask maps
        (arbitrary units) against time (s).
    """
    ex, x, tg, box = planted.scores["example"], planted.x, planted.targets, planted.box
    i0 = 0
    name = list(F.MARKERS)[tg[i0]]
    lead_i = LEADS.index(F.MARKERS[name][0])
    t = np.arange(x.shape[-1]) / fs_hz
    fig, axes = plt.subplots(len(ex) + 1, 1, figsize=(13, 1.6 * (len(ex) + 1)), sharex=True)
    axes[0].plot(t, x[i0, lead_i], color="black", lw=0.8)
    axes[0].set_ylabel(f"{LEADS[lead_i]} (mV)")
    starts = np.flatnonzero(np.diff(np.r_[0, box[i0, lead_i].astype(int)]) == 1)
    for ax in axes:
        for s in starts:
            ax.axvspan(t[s], t[s] + 0.04, color="tab:red", alpha=0.25, lw=0)
    for ax, meth, mp in zip(axes[1:], EXAMPLE, ex, strict=False):
        ax.plot(t, mp[lead_i], lw=0.8)
        ax.set_ylabel(LABEL[meth], fontsize=7)
    axes[-1].set_xlabel("time in the input window (s)")
    fig.suptitle(
        f"Planted marker ({name}; red: the notches' 40 ms boxes) and four maps of the detector "
        f"on lead {LEADS[lead_i]} ({profile} profile)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def rank_summary(
    per_record: pd.DataFrame, tests: dict, n_boot: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Mean ranks, Friedman's test and pairwise Wilcoxon tests per summary column.

    Parameters
    ----------
    per_record : pandas.DataFrame
        The tidy table (:attr:`ecgrepro.explain.faithfulness.Benchmark.table`).
    tests : dict of str -> (str, str)
        Column name -> (test, metric); each metric's direction is
        :data:`~ecgrepro.explain.faithfulness.HIGHER_IS_BETTER`'s. Every record explanation is a
        block; in the planted and randomisation columns the methods computed on fewer records
        (12-lead Shapley) rank on those only if they have as many as the others.
    n_boot, seed : int
        Bootstrap of the mean ranks (:func:`~ecgrepro.explain.faithfulness.rank_methods`).

    Returns
    -------
    ranks : pandas.DataFrame
        :data:`RANK_COLUMNS` (``faithfulness_ranks.csv``).
    pairs : pandas.DataFrame
        :func:`~ecgrepro.explain.faithfulness.pairwise_wilcoxon` per test and metric
        (``faithfulness_pairs.csv``).
    summary : pandas.DataFrame
        Method (label) x column: ``mean rank (interval)``, then the ``Friedman p`` row and
        the ``records x methods`` it ranked.
    """
    rank_tables, pair_tables, cells, fried, blocks = [], [], {}, {}, {}
    for col, (test, metric) in tests.items():
        higher = F.HIGHER_IS_BETTER[metric.split(":")[0]]
        sub = per_record[(per_record.test == test) & (per_record.metric == metric)]
        if sub.empty:
            continue
        wide = sub.pivot_table(
            index="record", columns="method", values="value", aggfunc="mean", dropna=False
        )
        wide = wide.dropna(axis=1, how="all")
        if test in ("planted", "randomisation"):
            wide = wide.loc[:, wide.notna().sum() >= wide.notna().sum().max()]
        ranks, fr = F.rank_methods(wide, higher, n_boot, seed)
        pairs = F.pairwise_wilcoxon(wide, higher)
        rank_tables.append(
            ranks.assign(
                test=test, metric=metric, friedman_statistic=fr["statistic"], friedman_p=fr["p"]
            )
        )
        pair_tables.append(pairs.assign(test=test, metric=metric))
        cells[col] = {
            r.method: f"{r.mean_rank:.1f} ({r.ci_low:.1f}-{r.ci_high:.1f})"
            for r in ranks.itertuples()
        }
        fried[col] = f"{fr['p']:.2g}" if np.isfinite(fr["p"]) else "-"
        blocks[col] = f"{fr['records']} x {len(ranks)}"
    ranks_t = pd.concat(rank_tables, ignore_index=True)
    pairs_t = pd.concat(pair_tables, ignore_index=True)
    summary = pd.DataFrame(cells).reindex([k for k in LABEL if any(k in c for c in cells.values())])
    summary.loc["Friedman p"] = pd.Series(fried)
    summary.loc["records x methods"] = pd.Series(blocks)
    summary.index = [LABEL.get(k, k) for k in summary.index]
    return ranks_t[RANK_COLUMNS], pairs_t, summary


def verdict_list(
    per_record: pd.DataFrame, pairs: pd.DataFrame, readings: list, last_stage: str
) -> str:
    """The verdicts (:func:`~ecgrepro.explain.faithfulness.verdicts`) as a Markdown list.

    Parameters
    ----------
    per_record, pairs : pandas.DataFrame
        The tidy table and :func:`rank_summary`'s pairs.
    readings : list of (str, str)
        (what the paper or a companion reads, method), one item each.
    last_stage : str
        The last randomisation stage.

    Returns
    -------
    str
        ``- **reading** (k of n tests run passed): why.`` per reading.
    """
    v = F.verdicts(per_record, pairs, [meth for _, meth in readings], last_stage)
    v = v.set_index("method")
    return "\n".join(
        f"- **{reading}** ({v.passed[meth]} of {v.tests_run[meth]} tests run passed): "
        f"{v.text[meth]}."
        for reading, meth in readings
    )


def cost_table(bench: F.Benchmark) -> pd.DataFrame:
    """Each method's computation time, s: maps of the curve records, curves, randomisation, planted.

    A re-read result keeps the time of the run that computed it; the exact Shapley values'
    maps are the SHAP page's time.
    """
    panels = bench.curves.panels.values()
    rows = []
    for meth in list(F.TIME_METHODS) + list(F.LEAD_METHODS):
        maps_s = sum(float(out.get(f"seconds|map|{meth}", 0.0)) for out in panels)
        curve_s = sum(
            float(v)
            for out in panels
            for key, v in out.items()
            if key.startswith("seconds|")
            and key.split("|")[1] != "map"
            and key.split("|")[2] == meth
        )
        rand_s = float(np.sum(bench.randomisation.randomised.get(f"{meth}|seconds", 0.0)))
        plant_s = float(bench.planted.scores.get(f"{meth}|seconds", 0.0))
        rows.append(
            {
                "method": LABEL[meth],
                "maps, curve records (s)": maps_s,
                "curves (s)": curve_s,
                "randomisation (s)": rand_s,
                "planted (s)": plant_s,
                "total (s)": maps_s + curve_s + rand_s + plant_s,
            }
        )
    return pd.DataFrame(rows)


def seconds_text(bench: F.Benchmark, page) -> str:
    """Glue ``f_seconds``: the page's time, the stored results re-read, each section's time."""
    return (
        f"{time.perf_counter() - page.started:.0f} s ({page.reused()} of {len(page.log)} stored "
        f"results re-read; curves {bench.curves.seconds:.0f} s, randomisation "
        f"{bench.randomisation.seconds:.0f} s, planted marker {bench.planted.seconds:.0f} s; "
        f"the detector {'re-read' if bench.planted.detector.reused else 'trained'})"
    )
