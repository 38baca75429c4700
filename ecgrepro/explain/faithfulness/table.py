"""The faithfulness benchmark as one tidy table, each result through the explanation store.

:func:`faithfulness_table` runs the faithfulness page's three tests on a pipeline's models and
records: deletion and insertion curves on the Original and Ours_2 on both test folds
(:func:`curve_section`), cascading and data randomisation on Ours_2 and PTB-XL
(:func:`randomisation_section`), planted markers on a trained detector
(:func:`planted_section`). Each result is re-read from, or computed into, the explanation
store (:func:`ecgrepro.explain.store.cached`, under ``<build>/artifacts/explain``) and
flattened into one row per record and metric: ``model, dataset, method, test, record,
metric, value`` (:data:`COLUMNS`), the table the page's rank statistics, verdicts and
``faithfulness.csv`` read. The stored results' pipe-joined keys (``time|ig|morf_interpolate``)
stay inside this package and :mod:`ecgrepro.pages.faithfulness`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecgrepro.config import CLASSES
from ecgrepro.explain.faithfulness.benchmark import VERSION, Settings, capped, panel_benchmark
from ecgrepro.explain.faithfulness.curves import REPLACEMENTS, curve_scores
from ecgrepro.explain.faithfulness.maps import TIME_METHODS
from ecgrepro.explain.faithfulness.planted import MARKERS, marker_boxes, planted_scores
from ecgrepro.explain.faithfulness.sanity import model_similarity, randomisation_similarity
from ecgrepro.explain.shapley import (
    published_selection,
    shap_panel,
    spread_over_classes,
    stratified_selection,
)
from ecgrepro.explain.store import cached

#: The tidy table's columns, one row per record explanation and metric.
COLUMNS = ("model", "dataset", "method", "test", "record", "metric", "value")
#: The models whose maps the curves score (catalogue name -> the book's name).
MODEL_NAMES = {"original": "Original", "ours2": "Ours_2"}
#: The test folds the curves run on (dataset key -> the book's name).
DATASET_NAMES = {"cpsc": "CPSC 2018", "ptbxl": "PTB-XL"}
_TIME = tuple(TIME_METHODS)


@dataclass
class CurveSection:
    """Deletion and insertion curves of every model and dataset (:func:`curve_section`).

    Attributes
    ----------
    panels : dict of (str, str) -> dict of str -> numpy.ndarray
        Per (model, dataset): :func:`~ecgrepro.explain.faithfulness.panel_benchmark`'s result,
        with ``seconds|map|shapley12`` and ``seconds|map|shapley8`` (the SHAP page's time).
    selected : dict of (str, str) -> tuple
        Per (model, dataset): the records' rows (int array), their explained classes (int
        array) and how many of them, first, have exact lead Shapley values.
    table : pandas.DataFrame
        :data:`COLUMNS`, tests ``time``, ``leads12`` and ``independent8``.
    counts : pandas.DataFrame
        Records and classes per model and dataset, for display.
    seconds : float
        Wall-clock time of the section, s.
    """

    panels: dict
    selected: dict
    table: pd.DataFrame
    counts: pd.DataFrame
    seconds: float


@dataclass
class RandomisationSection:
    """Cascading (and data) randomisation on Ours_2 and PTB-XL (:func:`randomisation_section`).

    Attributes
    ----------
    randomised : dict of str -> numpy.ndarray
        :func:`~ecgrepro.explain.faithfulness.randomisation_similarity`'s result.
    data_randomised : dict of str -> numpy.ndarray or None
        :func:`~ecgrepro.explain.faithfulness.model_similarity`'s (None when not run).
    rows : numpy.ndarray of int
        The records' rows in PTB-XL.
    n_rand : int
        How many of them were randomised (all, or those with 12-lead exact values).
    stages : list of str
        The randomisation stages, top first.
    methods : list of str
        The methods compared.
    table : pandas.DataFrame
        :data:`COLUMNS`, tests ``randomisation`` (metric ``spearman:<stage>``,
        ``ssim:<stage>``) and ``data randomisation``.
    seconds : float
    """

    randomised: dict
    data_randomised: dict | None
    rows: np.ndarray
    n_rand: int
    stages: list
    methods: list
    table: pd.DataFrame
    seconds: float

    @property
    def last(self) -> str:
        """The last stage (every layer random)."""
        return self.stages[-1]


@dataclass
class PlantedSection:
    """Planted markers: the detector and every map's accuracy (:func:`planted_section`).

    Attributes
    ----------
    scores : dict of str -> numpy.ndarray
        :func:`~ecgrepro.explain.faithfulness.planted_scores`'s result.
    dataset : ecgrepro.data.ECGDataset
        The planted set (``records["marker"]``: -1 none, else the index in
        :data:`~ecgrepro.explain.faithfulness.MARKERS`).
    problems : list
        Records left unmarked (no R peak found).
    detector : ecgrepro.artifacts.TrainedModel
    auc : dict of str -> float
        The detector's test AUC per marker.
    explain : numpy.ndarray of int
        The explained records' rows in :attr:`dataset`.
    x : numpy.ndarray, shape (n, 12, n_samples), float32, mV
    targets : numpy.ndarray of int, shape (n,)
        Each record's marker.
    n_valid : numpy.ndarray of int, shape (n,)
    box : numpy.ndarray of bool, shape (n, 12, n_samples)
        The notches' lead x time boxes.
    n8, n12 : int
        Records with 8-lead and 12-lead exact Shapley values.
    table : pandas.DataFrame
        :data:`COLUMNS`, test ``planted``.
    seconds : float
    """

    scores: dict
    dataset: object
    problems: list
    detector: object
    auc: dict
    explain: np.ndarray
    x: np.ndarray
    targets: np.ndarray
    n_valid: np.ndarray
    box: np.ndarray
    n8: int
    n12: int
    table: pd.DataFrame
    seconds: float

    @property
    def box_share(self) -> np.ndarray:
        """Each record's box as a share of its lead x time samples, shape (n,)."""
        return self.box.reshape(len(self.box), -1).sum(1) / (12 * self.n_valid)


@dataclass
class Benchmark:
    """The three sections and their tidy table (:func:`faithfulness_table`).

    Attributes
    ----------
    curves : CurveSection
    randomisation : RandomisationSection
    planted : PlantedSection
    table : pandas.DataFrame
        :data:`COLUMNS`: the three sections' tables, in that order.
    """

    curves: CurveSection
    randomisation: RandomisationSection
    planted: PlantedSection
    table: pd.DataFrame


def faithfulness_table(
    pipe, models: Mapping, settings: Settings, log: Callable[[str], None] = print
) -> Benchmark:
    """Every test of the faithfulness page, per record, as one tidy table.

    Runs :func:`curve_section`, :func:`randomisation_section` and :func:`planted_section` in
    that order (each result through the explanation store) and concatenates their tables.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
        Opened with the planted-marker parameters in its ``extra``.
    models : dict of str -> ecgrepro.artifacts.TrainedModel
        ``original`` and ``ours2`` (:data:`MODEL_NAMES`).
    settings : Settings
    log : callable
        Receives a line per stored result re-read or computed (and per model re-read).

    Returns
    -------
    Benchmark
        ``table`` has :data:`COLUMNS`, one row per record explanation and metric.

    Raises
    ------
    ValueError
        As :func:`planted_section`.

    Notes
    -----
    The faithfulness page (``notebooks/faithfulness.ipynb``); the tests follow Samek et al.
    (2017), Adebayo et al. (2018) and Arras et al. (2022).
    """
    curves = curve_section(pipe, models, settings, log)
    rand = randomisation_section(pipe, models, settings, curves.selected, log)
    planted = planted_section(pipe, settings, log)
    table = pd.concat([curves.table, rand.table], ignore_index=True)
    table = pd.concat([table, planted.table], ignore_index=True)
    return Benchmark(curves, rand, planted, table)


def curve_section(
    pipe, models: Mapping, settings: Settings, log: Callable[[str], None] = print
) -> CurveSection:
    """Deletion, insertion and lead curves of every map, per model and test fold.

    Per model and dataset the SHAP page's principled test records are re-read
    (:func:`~ecgrepro.explain.shapley.shap_panel`), spread over their classes
    (``n_records`` of them, those with exact lead Shapley values first) and explained for
    their true class; the curves are stored as ``faithfulness-<model>-<dataset>``.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    models : dict of str -> ecgrepro.artifacts.TrainedModel
        Keyed by catalogue name (:data:`MODEL_NAMES`).
    settings : Settings
    log : callable

    Returns
    -------
    CurveSection

    Raises
    ------
    RuntimeError
        If the records with exact lead Shapley values do not come first.
    """
    t0 = time.perf_counter()
    panels, selected = {}, {}
    for m, tm in models.items():
        for d in DATASET_NAMES:
            panels[m, d], selected[m, d] = _curve_panel(pipe, m, tm, d, settings, log)
    seconds = time.perf_counter() - t0
    rows = [r for (m, d), out in panels.items() for r in _curve_rows(m, d, out, selected[m, d][0])]
    counts = pd.DataFrame(
        [
            {
                "model": MODEL_NAMES[m],
                "dataset": DATASET_NAMES[d],
                "records (time-resolved)": len(sel[0]),
                "records (lead-level)": sel[2],
                "classes": ", ".join(sorted({CLASSES[t] for t in sel[1]})),
            }
            for (m, d), sel in selected.items()
        ]
    )
    return CurveSection(panels, selected, pd.DataFrame(rows), counts, seconds)


def _curve_panel(pipe, m, tm, d, s: Settings, log):
    """One model on one test fold: the stored curves and the records' selection."""
    ds = pipe.datasets[d]
    res = shap_panel(
        tm.model.to(pipe.device), ds, s.n_background, s.n_explained, s.nsamples, s.n_per_class,
        s.exact_per_panel, s.exact_baseline, s.seed, model_key=tm.key,
        store_dir=pipe.artifacts / "explain", log=log,
    )
    model = tm.model.to(pipe.device).eval()
    ex2, t2 = res.rows["shap_principled"], res.targets["shap_principled"]
    order = spread_over_classes(t2, s.n_records)
    rows, targets = ex2[order], t2[order]
    exact_rows = res.rows["shapley12"]
    k = int(np.sum(np.isin(rows, exact_rows)))
    if not (rows[:k] == exact_rows[:k]).all():
        raise RuntimeError(f"{m}, {d}: the exact records do not come first (same spread order)")
    x = np.asarray(ds.signals[rows], dtype=np.float32)
    nv = ds.records["n_valid"].to_numpy()[rows]
    names = ds.records["record"].astype(str).to_numpy()[rows].tolist()
    bg_pub = published_selection(len(ds.records), s.n_background, s.n_explained)[0]
    given = {
        "shapley12": res.values["shapley12"][:k],
        "shap_principled": res.values["shap_principled"][order][:k],
    }
    shapley8 = res.values["shapley8"][:k]
    payload = {
        "model": tm.key, "data": ds.data_key, "records": names, "targets": targets, "k_exact": k,
        "shap": [s.n_background, s.n_explained, s.nsamples, s.n_per_class, s.exact_per_panel,
                 s.exact_baseline],
        "n_steps": s.n_steps, "mask": s.mask_kw, "curve_steps": s.n_curve_steps,
        "replacements": REPLACEMENTS, "lerf": s.lerf_replacements, "seed": s.seed,
        "version": VERSION,
    }

    def compute():
        return panel_benchmark(
            model, x, targets, s.fs_hz, nv, given, shapley8, np.asarray(ds.signals[bg_pub]),
            s.nsamples, s.n_steps, s.mask_kw, s.n_curve_steps, REPLACEMENTS,
            s.lerf_replacements, s.seed,
        )

    out = cached(pipe.artifacts / "explain", f"faithfulness-{m}-{d}", payload, compute, log=log)
    out["seconds|map|shapley12"] = np.array(res.exact.seconds.sum() if len(res.exact) else np.nan)
    out["seconds|map|shapley8"] = np.array(res.exact.seconds_8.sum() if len(res.exact) else np.nan)
    return out, (rows, targets, k)


def _curve_rows(m: str, d: str, out: dict, rows: np.ndarray) -> list[dict]:
    """One panel's curve scores (:func:`curve_scores`) as tidy rows."""
    found = []
    for kind in ("time", "leads12", "independent8"):
        methods = sorted(
            {key.split("|")[1] for key in out if key.startswith(f"{kind}|") and key.count("|") == 2}
        )
        for meth in methods:
            curves = {
                key.split("|")[2]: v for key, v in out.items() if key.startswith(f"{kind}|{meth}|")
            }
            curves["fractions"] = out[f"{kind}|fractions"]
            s = curve_scores(curves)
            found += [
                {"model": m, "dataset": d, "method": meth, "test": kind,
                 "record": f"{m}:{d}:{rows[r]}", "metric": metric, "value": v}
                for r, metric, v in s.itertuples(index=False)
            ]
    return found


def randomisation_section(
    pipe,
    models: Mapping,
    settings: Settings,
    selected: dict,
    log: Callable[[str], None] = print,
) -> RandomisationSection:
    """Cascading randomisation of Ours_2 (and, optionally, shuffled labels) on PTB-XL.

    The first ``n_random_records`` of the curves' Ours_2 PTB-XL records; each method's map
    after each stage against the trained model's (stored as ``faithfulness-randomisation``),
    and, with ``data_randomisation``, the PTB-XL-only model's maps against those of its
    training on permuted labels (``faithfulness-data-randomisation``). Adebayo et al. (2018),
    Sections 3 and 4.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    models : dict of str -> ecgrepro.artifacts.TrainedModel
        Holding ``ours2``.
    settings : Settings
    selected : dict
        :attr:`CurveSection.selected`.
    log : callable

    Returns
    -------
    RandomisationSection
    """
    s = settings
    store = pipe.artifacts / "explain"
    t0 = time.perf_counter()
    ds = pipe.datasets["ptbxl"]
    rows, targets, _ = selected["ours2", "ptbxl"]
    rows, targets = rows[: s.n_random_records], targets[: s.n_random_records]
    x = np.asarray(ds.signals[rows], dtype=np.float32)
    nv = ds.records["n_valid"].to_numpy()[rows]
    train_rows, _ = ds.subset("train")
    test_rows, test_y = ds.subset("test")
    bg_pri = stratified_selection(
        train_rows, test_rows, test_y, s.n_background, s.n_per_class, s.seed
    )[0]
    lead_methods = (
        ("shap_principled",)
        + (("shapley8",) if s.randomise_exact8 else ())
        + (("shapley12",) if s.randomise_exact12 else ())
    )
    n_rand = capped(s.exact12_records, len(rows)) if s.randomise_exact12 else len(rows)
    background = np.asarray(ds.signals[bg_pri])
    lead_kw = {"backgrounds": {"shap_principled": background}, "nsamples": s.nsamples}
    names = ds.records["record"].astype(str).to_numpy()[rows].tolist()
    payload = {
        "model": models["ours2"].key, "data": ds.data_key, "records": names, "targets": targets,
        "lead_methods": lead_methods, "n_rand": n_rand, "n_steps": s.n_steps, "mask": s.mask_kw,
        "nsamples": s.nsamples, "background": bg_pri, "seed": s.seed, "version": VERSION,
    }
    model = models["ours2"].model.to(pipe.device).eval()
    randomised = cached(
        store, "faithfulness-randomisation", payload,
        lambda: randomisation_similarity(
            model, x[:n_rand], targets[:n_rand], s.fs_hz, nv[:n_rand], _TIME, lead_methods,
            seed=s.seed, map_kw=s.map_kw, lead_kw=lead_kw,
        ),
        log=log,
    )
    data_rand = None
    if s.data_randomisation:
        ref = pipe.model("ptbxl_only")
        shuffled = pipe.model("shuffled_labels", log=log)  # PTB-XL-only on permuted labels
        data_rand = cached(
            store, "faithfulness-data-randomisation",
            {**payload, "ref": ref.key, "shuffled": shuffled.key},
            lambda: model_similarity(
                ref.model.eval(), shuffled.model.eval(), x, targets, s.fs_hz, nv, _TIME,
                s.map_kw, s.seed,
            ),
            log=log,
        )
    seconds = time.perf_counter() - t0

    stages = [str(st) for st in randomised["stages"]]
    methods = [k.split("|")[0] for k in randomised if k.endswith("|spearman")]
    found = []
    for meth in methods:
        for j, stage in enumerate(stages):
            for metric in ("spearman", "ssim"):
                v = randomised[f"{meth}|{metric}"][j]
                found += _rows("ours2", meth, "randomisation", f"{metric}:{stage}", v, rows)
    if s.data_randomisation:
        for meth in _TIME:
            for metric in ("spearman", "ssim"):
                v = data_rand[f"{meth}|{metric}"]
                found += _rows("ptbxl_only", meth, "data randomisation", metric, v, rows)
    return RandomisationSection(
        randomised, data_rand, rows, n_rand, stages, methods, pd.DataFrame(found), seconds
    )


def _rows(model: str, meth: str, test: str, metric: str, v: np.ndarray, rows) -> list[dict]:
    """A randomisation metric's values on PTB-XL records as tidy rows."""
    return [
        {"model": model, "dataset": "ptbxl", "method": meth, "test": test,
         "record": f"ptbxl:{rows[r]}", "metric": metric, "value": v[r]}
        for r in range(len(v))
    ]


def planted_section(
    pipe, settings: Settings, log: Callable[[str], None] = print
) -> PlantedSection:
    """Planted markers: train (or re-read) the detector and score every map on the notches.

    The derived dataset ``ptbxl_planted`` and the ``planted`` model of the catalogue (built
    with the pipeline's ``planted_*`` parameters); ``n_planted_explain`` test records per
    marker, drawn with ``seed``, are explained for their marker and scored by relevance mass
    and rank accuracy on the notches' boxes (Arras et al. 2022); stored as
    ``faithfulness-planted``.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    settings : Settings
    log : callable

    Returns
    -------
    PlantedSection

    Raises
    ------
    ValueError
        If the planted set's test fold has no marked record.
    """
    from sklearn.metrics import roc_auc_score

    from ecgrepro.train import Samples, predict_scores

    s = settings
    t0 = time.perf_counter()
    made = pipe.derived("ptbxl_planted")  # planted_dataset with the planted_* parameters
    planted, window, problems = made.dataset, made.extras["window"], made.extras["problems"]
    detector = pipe.model("planted", log=log)
    det = detector.model.to(pipe.device).eval()
    idx, y = planted.subset("test")
    samples = Samples.from_dataset(planted, "test", augment=False)
    p_test = predict_scores(det, samples, device=pipe.device)
    auc = {
        mk: roc_auc_score(y[:, j], p_test[:, j]) if 0 < y[:, j].sum() < len(y) else np.nan
        for j, mk in enumerate(MARKERS)
    }
    marker = planted.records["marker"].to_numpy()
    rng = np.random.default_rng(s.seed)
    explain = np.concatenate(
        [
            np.sort(rng.permutation(idx[marker[idx] == j])[: s.n_planted_explain])
            for j in range(len(MARKERS))
        ]
    ).astype(int)
    if not len(explain):
        raise ValueError(
            f"the planted set's test fold ({len(idx)} records) has no marked record to explain: "
            f"raise planted_records ({pipe.params.get('planted_records')}; 0: all) "
            "or use a larger data root"
        )
    x = np.asarray(planted.signals[explain], dtype=np.float32)
    nv = planted.records["n_valid"].to_numpy()[explain]
    tg = marker[explain]
    box = marker_boxes(tg, window[explain])
    p_train = planted.subset("train")[0]
    bg = np.sort(rng.permutation(p_train)[: s.n_background])
    n12 = capped(s.exact12_records, len(explain))
    n8 = capped(s.planted_exact8_records, len(explain))
    names = planted.records["record"].astype(str).to_numpy()[explain].tolist()
    payload = {
        "model": detector.key, "data": planted.data_key, "records": names, "n_steps": s.n_steps,
        "mask": s.mask_kw, "nsamples": s.nsamples, "background": bg, "n12": n12, "seed": s.seed,
        **({"n8": n8} if n8 < len(explain) else {}), "version": VERSION,
    }

    def compute():
        backgrounds = {
            "shap_published": np.asarray(planted.signals[: s.n_background]),
            "shap_principled": np.asarray(planted.signals[bg]),
        }
        return planted_scores(
            det, x, tg, s.fs_hz, nv, box, backgrounds, s.nsamples, n12, s.map_kw, s.seed, n8
        )

    out = cached(pipe.artifacts / "explain", "faithfulness-planted", payload, compute, log=log)
    seconds = time.perf_counter() - t0

    found = []
    for key, v in out.items():
        meth, _, metric = key.partition("|")
        if metric in ("mass_accuracy", "rank_accuracy"):
            found += [
                {"model": "planted", "dataset": "ptbxl_planted", "method": meth, "test": "planted",
                 "record": f"planted:{explain[r]}", "metric": metric, "value": v[r]}
                for r in range(len(v))
            ]
    return PlantedSection(
        out, planted, problems, detector, auc, explain, x, tg, nv, box, n8, n12,
        pd.DataFrame(found), seconds,
    )
