"""The steps and glue texts of the Table 1-3 pages (``table1_dataset``, ``table2_generalisation``,
``table3_retraining``).

Each function is one step of a page: it builds a table the page shows, writes the CSV the book
keeps under ``<build>/tables`` or formats the values the prose quotes through ``{glue:text}``
(a dict of glue name -> text, for :meth:`ecgrepro.book.page.Page.glue`). The methods they call
(bootstrap intervals, thresholds, the paper's values) live in :mod:`ecgrepro.evaluate`,
:mod:`ecgrepro.data.summary` and :mod:`ecgrepro.paper`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecgrepro import gap, paper
from ecgrepro.book.report import shown_path
from ecgrepro.data import summary
from ecgrepro.evaluate import attach_paper, seed_pooled_table, table_with_ci, threshold_flags
from ecgrepro.pipeline import split_scores

#: What :func:`model_table` can show of a trained model, by column name.
MODEL_FIELDS = {
    "trained on": lambda m: "+".join(m.spec.train_on),
    "starts from": lambda m: m.spec.init_from or "random",
    "augmented": lambda m: "+".join(d for d in m.spec.train_on if d in m.spec.augment) or "none",
    "epochs": lambda m: m.spec.epochs,
    "kept epoch": lambda m: m.best_epoch,
    "training (min)": lambda m: round(m.meta["train_seconds"] / 60, 1),
    "artifact": lambda m: m.folder.name,
    "reused": lambda m: m.reused,
}

#: Columns of ``table2.csv``.
TABLE2_COLUMNS = (
    "model test_set class metric value seed_min seed_max n_seeds ci_low ci_high paper_value "
    "paper_outside_ci"
).split()

#: Columns of ``table2_gap.csv``: the gap, pooled over the Original's training seeds.
GAP_COLUMNS = (
    "model reference test_set label_mapping class metric value seed_min seed_max n_seeds ci_low "
    "ci_high paper_value"
).split()

#: Columns of ``table3.csv``: Table 2's with the paper column each row is set against.
TABLE3_COLUMNS = [*TABLE2_COLUMNS[:2], "column", *TABLE2_COLUMNS[2:]]

#: Table 3's columns: (model, test set) -> the column it is shown in. The paper's Original column
#: repeats its Table 2 CPSC values, so it is set against our Original on the CPSC test fold.
TABLE3_COLUMN = {
    ("original", "cpsc"): "original (CPSC test)",
    ("original", "combined"): "original (combined)",
    ("ours1", "combined"): "ours1",
    ("ours2", "combined"): "ours2",
}

_METRICS5 = ("precision", "recall", "f1", "auc", "accuracy")


def beside(frames: dict[str, pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Several versions of a per-class table side by side, column by column.

    Parameters
    ----------
    frames : dict of str -> pandas.DataFrame
        Source name (``paper``, ``ours``, ...) -> a table indexed by class holding ``columns``.
    columns : list of str
        The columns to show, in order.

    Returns
    -------
    pandas.DataFrame
        Two-level columns ``(column, source)``: each column of ``columns`` with every source's
        value beside the others', in the order of ``frames`` (the Table 1 and labels pages).
    """
    side = pd.concat({name: frame[columns] for name, frame in frames.items()}, axis=1)
    return side.swaplevel(axis=1)[[(c, s) for c in columns for s in frames]]


def write_table1(rounded: pd.DataFrame, tables: Path, label_mapping: str) -> None:
    """Write Table 1 as the book keeps it: ``table1.csv`` (``table1_rhythm_aware.csv``).

    Parameters
    ----------
    rounded : pandas.DataFrame
        :func:`ecgrepro.data.summary.round_like_paper` of
        :func:`ecgrepro.data.summary.table1`, indexed by class.
    tables : pathlib.Path
        The build's ``tables`` folder.
    label_mapping : {"published", "rhythm-aware"}
        The mapping the table was computed under; it names the file.
    """
    name = "table1.csv" if label_mapping == "published" else "table1_rhythm_aware.csv"
    rounded.reset_index()[["class"] + summary.TABLE1_COLUMNS].to_csv(
        tables / name, index=False, float_format="%.2f"
    )


def table1_texts(
    meta: pd.DataFrame, label_skips, comparison: pd.DataFrame, root: Path
) -> dict[str, str]:
    """The Table 1 page's glue: records listed, kept and dropped, cells equal to the paper's.

    Parameters
    ----------
    meta : pandas.DataFrame
        :func:`ecgrepro.data.ptbxl.load_metadata`'s records, with the boolean ``dropped``.
    label_skips : sized
        The records whose labels could not be read (its second return value).
    comparison : pandas.DataFrame
        :func:`ecgrepro.data.summary.compare_with_paper`, with the boolean ``equal``.
    root : pathlib.Path
        The data root.

    Returns
    -------
    dict of str -> str
        ``t1_listed``, ``t1_kept``, ``t1_dropped``, ``t1_cells_equal``, ``t1_label_errors``,
        ``t1_root``.
    """
    n_listed, n_dropped = len(meta) + len(label_skips), int(meta.dropped.sum())
    return {
        "t1_listed": f"{n_listed:,}",
        "t1_kept": f"{n_listed - n_dropped - len(label_skips):,}",
        "t1_dropped": f"{n_dropped:,}",
        "t1_cells_equal": f"{int(comparison.equal.sum())} of {len(comparison)}",
        "t1_label_errors": f"{len(label_skips)}",
        "t1_root": shown_path(root),
    }


def dropped_statements(meta: pd.DataFrame, mapping: pd.Series) -> pd.DataFrame:
    """The SCP statements the mapping drops and how many records carry each.

    Parameters
    ----------
    meta : pandas.DataFrame
        The PTB-XL records, with ``scp`` (dict code -> likelihood) and ``dropped``.
    mapping : pandas.Series
        SCP code -> CPSC class or ``DROP`` (:func:`ecgrepro.data.labels.scp_mapping`).

    Returns
    -------
    pandas.DataFrame
        Indexed by the dropped statements: the dropped records and all records carrying
        each with likelihood above 0 (Table 1 page, paper Section 4.1).
    """
    codes = list(mapping[mapping == "DROP"].index)
    dropped = meta[meta.dropped]
    return pd.DataFrame(
        {
            "records carrying it (dropped records)": [
                sum(c in s and s[c] > 0 for s in dropped.scp) for c in codes
            ],
            "records carrying it (all)": [
                sum(c in s and s[c] > 0 for s in meta.scp) for c in codes
            ],
        },
        index=pd.Index(codes, name="SCP statement"),
    )


def setup_text(page, pipe, seeds: str) -> str:
    """The training setup in one line, for the prose (``t2_setup``, ``t3_setup``, ``lg_setup``).

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Its parameters ``fs_hz``, ``window_s``, ``epochs``, ``batch_size``, ``lr`` and, where the
        page has it, ``epochs_ours`` (the retrained models' epochs) are read.
    pipe : ecgrepro.pipeline.Pipeline
        For the samples per window and the device.
    seeds : str
        The training seeds, in words.

    Returns
    -------
    str
    """
    p = page
    epochs = f"{p['epochs']} epochs"
    if "epochs_ours" in p.ns:
        epochs += f" for the Original and {p['epochs_ours']} for the others"
    return (
        f"{p['fs_hz']:g} Hz, last {p['window_s']:g} s ({pipe.n_samples:,} samples), {epochs}, "
        f"batch {p['batch_size']}, Adam lr {p['lr']:g}, {seeds}, device {pipe.device.type}"
    )


def table2_data_texts(page, pipe) -> dict[str, str]:
    """The Table 2 page's glue on its data and profile.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Its parameters (``profile``, ``fs_hz``, ``n_seeds``, ...) are read.
    pipe : ecgrepro.pipeline.Pipeline
        The page's pipeline, with the ``cpsc`` and ``ptbxl`` datasets.

    Returns
    -------
    dict of str -> str
        ``t2_profile``, ``t2_setup``, ``t2_root``, ``t2_n_seeds``, ``t2_kernel_ms`` and
        ``t2_kernel_paper_ms`` (the span of the first 15-sample kernel here and at the paper's
        rate), ``t2_ptbxl_release`` and the record counts ``t2_cpsc_used``, ``t2_cpsc_listed``,
        ``t2_ptbxl_used``, ``t2_ptbxl_kept``, ``t2_cpsc_test``, ``t2_cpsc_train``.
    """
    fs_hz, n_seeds, seed = page["fs_hz"], page["n_seeds"], page["seed"]
    cpsc, ptb = pipe.datasets["cpsc"], pipe.datasets["ptbxl"]
    texts = {
        "t2_profile": page["profile"],
        "t2_setup": setup_text(
            page, pipe, f"{n_seeds} training seed(s) ({seed} to {seed + n_seeds - 1})"
        ),
        "t2_root": shown_path(pipe.root),
        "t2_n_seeds": str(page["n_seeds"]),
        "t2_kernel_ms": f"{15 / fs_hz * 1000:.0f}",
        "t2_kernel_paper_ms": f"{15 / paper.FACTS['fs_hz'] * 1000:.0f}",
        "t2_ptbxl_release": f"{ptb.inventory.get('source_fs_hz', 100 if fs_hz <= 100 else 500)} Hz",
    }
    counts = {
        "cpsc_used": cpsc.inventory["used"],
        "cpsc_listed": cpsc.inventory["listed"],
        "ptbxl_used": ptb.inventory["used"],
        "ptbxl_kept": ptb.inventory["kept_by_mapping"],
        "cpsc_test": int((cpsc.records.split == "test").sum()),
        "cpsc_train": int((cpsc.records.split == "train").sum()),
    }
    return texts | {f"t2_{key}": f"{value:,}" for key, value in counts.items()}


def model_table(models: dict, fields: tuple[str, ...] = tuple(MODEL_FIELDS)) -> pd.DataFrame:
    """The trained models of a page: what each was trained on, its checkpoint and artifact.

    Parameters
    ----------
    models : dict of hashable -> ecgrepro.artifacts.TrainedModel
        Row label -> model.
    fields : tuple of str
        Keys of :data:`MODEL_FIELDS`, the columns in order.

    Returns
    -------
    pandas.DataFrame
        One row per model.
    """
    return pd.DataFrame({k: {f: MODEL_FIELDS[f](m) for f in fields} for k, m in models.items()}).T


def replicate_texts(originals: list) -> dict[str, str]:
    """The Table 2 page's glue on the Original's replicates.

    Parameters
    ----------
    originals : list of ecgrepro.artifacts.TrainedModel
        The replicates, seed order.

    Returns
    -------
    dict of str -> str
        ``t2_params`` (parameters of the first), ``t2_best_epoch``, ``t2_train_minutes``
        (all replicates), ``t2_artifact`` (folders, reused or trained now).
    """
    from ecgrepro.models import count_parameters

    return {
        "t2_params": f"{count_parameters(originals[0].model):,}",
        "t2_best_epoch": ", ".join(str(m.best_epoch) for m in originals),
        "t2_train_minutes": f"{sum(m.meta['train_seconds'] for m in originals) / 60:.1f}",
        "t2_artifact": ", ".join(
            m.folder.name + (" (reused)" if m.reused else " (trained now)") for m in originals
        ),
    }


def architecture(tables: Path):
    """The paper's Figure 1 from the model object: the stage table, its figure and checks.

    Builds :func:`ecgrepro.models.resnet34` (untrained) and writes its stage table to
    ``fig1_architecture.csv`` (Table 2 page; paper Section 4.2 and Figure 1).

    Parameters
    ----------
    tables : pathlib.Path
        The build's ``tables`` folder.

    Returns
    -------
    table : pandas.DataFrame
        :func:`ecgrepro.architecture.architecture_table`.
    fig : matplotlib.figure.Figure
        :func:`ecgrepro.architecture.architecture_figure`.
    checks : pandas.DataFrame
        :func:`ecgrepro.architecture.paper_checks`, its columns named for the page.
    texts : dict of str -> str
        ``t2_rf_quick``, ``t2_rf_paper`` (receptive field of one ``layer4`` step, s) and
        ``t2_arch_holds`` (the paper's points that hold).
    """
    from ecgrepro.architecture import architecture_figure, architecture_table, paper_checks
    from ecgrepro.models import count_parameters, resnet34

    network = resnet34()  # the architecture, whatever the weights
    table = architecture_table(network)
    table.to_csv(tables / "fig1_architecture.csv", index=False)
    fig = architecture_figure(table, count_parameters(network))
    layer4 = table.set_index("stage").loc["layer4"]
    checks = paper_checks(network, table)
    texts = {
        "t2_rf_quick": f"{layer4.quick_rf_ms / 1000:.1f} s",
        "t2_rf_paper": f"{layer4.paper_rf_ms / 1000:.1f} s",
        "t2_arch_holds": f"{int(checks.holds.sum())} of {len(checks)}",
    }
    checks = checks.rename(
        columns={"paper": "the paper (section 4.2)", "model": "the model object"}
    )
    return table, fig, checks, texts


def table2(pipe, originals: list, thresholds: list, *, n_boot: int, seed: int):
    """Table 2: the Original's replicates on each test set, pooled over seeds, and seed 0 alone.

    Each replicate is scored on the test fold of each dataset with its own validation
    thresholds; the interval is a bootstrap pooled over the replicates
    (:func:`ecgrepro.evaluate.seed_pooled_table`). Writes ``table2.csv`` (paper Table 2) and
    ``table2_gap.csv``, the gap (CPSC AVG minus PTB-XL AVG, F1 and AUC) pooled over the same
    replicates (:func:`ecgrepro.gap.pooled_gap_rows`), the paper's gap beside it.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    originals : list of ecgrepro.artifacts.TrainedModel
        The replicates, seed order.
    thresholds : list of numpy.ndarray, shape (9,)
        Each replicate's validation thresholds.
    n_boot : int
        Bootstrap resamples in all.
    seed : int
        The bootstrap's seed.

    Returns
    -------
    table : pandas.DataFrame
        Long form, with the paper's values (:func:`ecgrepro.evaluate.attach_paper`).
    first_seed : pandas.DataFrame
        The same from the first replicate alone, resampling the test records only.
    gap_rows : pandas.DataFrame
        ``table2_gap.csv``'s rows (:data:`GAP_COLUMNS`).
    """
    frames, first_seed, scored = [], [], {}
    for name in pipe.datasets:
        runs = []
        for k, m in enumerate(originals):
            test, scores = split_scores(m, pipe.datasets, name, "test", pipe.device)
            runs.append((scores, thresholds[k]))
        scored[name] = [(test.y, s, t) for s, t in runs]
        frames.append(
            seed_pooled_table(test.y, runs, n_boot=n_boot, seed=seed).assign(
                model="original", test_set=name
            )
        )
        first_seed.append(
            table_with_ci(test.y, *runs[0], n_boot=n_boot, seed=seed).assign(
                model="original", test_set=name
            )
        )
    table = attach_paper(pd.concat(frames, ignore_index=True), paper.table2())
    seed0 = attach_paper(pd.concat(first_seed, ignore_index=True), paper.table2())
    table[TABLE2_COLUMNS].to_csv(pipe.build / "tables" / "table2.csv", index=False)
    gaps = gap.pooled_gap_rows(scored["cpsc"], scored["ptbxl"], n_boot=n_boot, seed=seed)
    printed = paper.table2().query("`class` == 'AVG'").set_index(["test_set", "metric"]).value
    gaps = gaps.assign(
        model="original", reference="cpsc", test_set="ptbxl",
        label_mapping=pipe.params.get("label_mapping", "published"),
        paper_value=[round(printed[("cpsc", m)] - printed[("ptbxl", m)], 3) for m in gaps.metric],
    )[GAP_COLUMNS]
    gaps.to_csv(pipe.build / "tables" / "table2_gap.csv", index=False)
    return table, seed0, gaps


def _outside_texts(prefix: str, table: pd.DataFrame, seed0: pd.DataFrame, n_boot: int) -> dict:
    n_cells = int(table.paper_value.notna().sum())
    return {
        f"{prefix}_n_boot": f"{n_boot:,}",
        f"{prefix}_outside": f"{int(table.paper_outside_ci.sum())} of {n_cells}",
        f"{prefix}_outside_seed0": f"{int(seed0.paper_outside_ci.sum())} of {n_cells}",
    }


def table2_texts(
    table: pd.DataFrame, seed0: pd.DataFrame, flags: pd.DataFrame, n_val: int, n_boot: int
) -> dict[str, str]:
    """The Table 2 page's glue on its table.

    Parameters
    ----------
    table, seed0 : pandas.DataFrame
        :func:`table2`'s returns.
    flags : pandas.DataFrame
        :func:`table2_flags`.
    n_val : int
        Records in the CPSC validation fold.
    n_boot : int

    Returns
    -------
    dict of str -> str
        ``t2_n_boot``, ``t2_outside``, ``t2_outside_seed0`` (cells whose paper value lies
        outside the pooled and the seed-0 interval), ``t2_<test set>_<f1|auc>`` (AVG, 3
        decimals), ``t2_n_val``, ``t2_n_rare``, ``t2_n_none``.
    """
    texts = _outside_texts("t2", table, seed0, n_boot)
    avg = table[table["class"] == "AVG"].set_index(["test_set", "metric"]).value
    for ts in ("cpsc", "ptbxl"):
        for m in ("f1", "auc"):
            texts[f"t2_{ts}_{m}"] = f"{avg[(ts, m)]:.3f}"
    texts["t2_n_val"] = f"{n_val:,}"
    texts["t2_n_rare"] = str(int(flags.flag.str.startswith("rare").sum()))
    texts["t2_n_none"] = str(int(flags.flag.str.startswith("no positives").sum()))
    return texts


def table3_data_texts(page, pipe) -> dict[str, str]:
    """The Table 3 page's glue on its data and profile.

    Parameters
    ----------
    page : ecgrepro.book.page.Page
        Its parameters (``profile``, ``n_seeds``, ``n_seeds_ours``, ...) are read.
    pipe : ecgrepro.pipeline.Pipeline

    Returns
    -------
    dict of str -> str
        ``t3_profile``, ``t3_setup``, ``t3_n_seeds`` and ``t3_<dataset>_<split>`` (records).
    """
    texts = {
        "t3_profile": page["profile"],
        "t3_setup": setup_text(
            page,
            pipe,
            f"{page['n_seeds']} training seed(s) of the Original and {page['n_seeds_ours']} of "
            f"Ours_1 and Ours_2 (from seed {page['seed']})",
        ),
        "t3_n_seeds": f"{page['n_seeds']} (Original) and {page['n_seeds_ours']} (Ours_1, Ours_2)",
    }
    for name, ds in pipe.datasets.items():
        for split in ("train", "val", "test"):
            texts[f"t3_{name}_{split}"] = f"{int((ds.records.split == split).sum()):,}"
    return texts


def table3_cells(tests, scores, thresholds, paper_models, *, n_boot: int, seed: int):
    """Table 3's cells: every model on every test set, pooled over seeds, and seed 0 alone.

    Parameters
    ----------
    tests, scores, thresholds
        :func:`table3_scores`'s returns.
    paper_models : tuple of str
        The paper's models (their first-seed intervals are computed too).
    n_boot, seed : int
        The bootstrap's resamples and seed.

    Returns
    -------
    cells : pandas.DataFrame
        :func:`ecgrepro.evaluate.seed_pooled_table` per model and test set, long form.
    first_seed : pandas.DataFrame
        :func:`ecgrepro.evaluate.table_with_ci` of the first replicate of each paper model.
    """
    cells = pd.concat(
        [
            seed_pooled_table(
                tests[ts].y,
                [(scores[name][k][ts], thresholds[name][k]) for k in range(len(scores[name]))],
                n_boot=n_boot,
                seed=seed,
            ).assign(model=name, test_set=ts)
            for name in scores
            for ts in tests
        ],
        ignore_index=True,
    )
    first_seed = pd.concat(
        [
            table_with_ci(
                tests[ts].y, scores[name][0][ts], thresholds[name][0], n_boot=n_boot, seed=seed
            ).assign(model=name, test_set=ts)
            for name in paper_models
            for ts in tests
        ],
        ignore_index=True,
    )
    return cells, first_seed


def table3(cells: pd.DataFrame, first_seed: pd.DataFrame, tables: Path, n_boot: int):
    """Table 3 like with like: the paper's columns beside ours (:data:`TABLE3_COLUMN`).

    Writes ``table3.csv`` (paper Table 3; its Original column set against our Original on the
    CPSC test fold).

    Parameters
    ----------
    cells, first_seed : pandas.DataFrame
        :func:`table3_cells`'s returns.
    tables : pathlib.Path
        The build's ``tables`` folder.
    n_boot : int
        The bootstrap's resamples (quoted).

    Returns
    -------
    table : pandas.DataFrame
        The pooled cells of :data:`TABLE3_COLUMN`'s pairs with ``column`` and the paper's values.
    texts : dict of str -> str
        ``t3_n_boot``, ``t3_outside``, ``t3_outside_seed0`` (cells whose paper value lies outside
        the pooled and the first seed's interval), ``t3_<column>_<f1|auc|accuracy>`` (AVG, 3
        decimals) and ``t3_ours2_better`` (the AVG metrics where Ours_2 beats Ours_1).
    """
    paper3 = paper.table3().assign(
        test_set=lambda t: np.where(t.model == "original", "cpsc", t.test_set)
    )
    compared = {}
    for which, frame in (("pooled", cells), ("first seed", first_seed)):
        keep = [(m, ts) in TABLE3_COLUMN for m, ts in zip(frame.model, frame.test_set, strict=True)]
        out = attach_paper(frame[keep], paper3)
        compared[which] = out.assign(
            column=[TABLE3_COLUMN[(m, ts)] for m, ts in zip(out.model, out.test_set, strict=True)]
        )
    table, before = compared["pooled"], compared["first seed"]
    table[TABLE3_COLUMNS].to_csv(tables / "table3.csv", index=False)
    texts = _outside_texts("t3", table, before, n_boot)
    avg = table[table["class"] == "AVG"].set_index(["column", "metric"]).value
    for key, col in (
        ("original", "original (CPSC test)"),
        ("original_combined", "original (combined)"),
        ("ours1", "ours1"),
        ("ours2", "ours2"),
    ):
        for metric in ("f1", "auc", "accuracy"):
            texts[f"t3_{key}_{metric}"] = f"{avg[(col, metric)]:.3f}"
    better = [m for m in _METRICS5 if avg[("ours2", m)] > avg[("ours1", m)]]
    texts["t3_ours2_better"] = f"{len(better)} of 5 ({', '.join(better) or 'none'})"
    return table, texts


def table3_flags(datasets: dict, models: dict, thresholds: dict, paper_models, tables: Path):
    """Per paper model (first seed), the classes with few or no validation positives.

    Writes ``table3_threshold_flags.csv``.

    Parameters
    ----------
    datasets : dict of str -> ecgrepro.data.ECGDataset
    models : dict of str -> ecgrepro.artifacts.TrainedModel
        First replicate of each model; its ``spec.train_on`` names its validation folds.
    thresholds : dict of str -> list of numpy.ndarray, shape (9,)
    paper_models : tuple of str
    tables : pathlib.Path

    Returns
    -------
    pandas.DataFrame
        :func:`ecgrepro.evaluate.threshold_flags`, indexed by ``model`` and class.
    """
    flags = pd.concat(
        {
            name: threshold_flags(
                np.concatenate([datasets[d].subset("val")[1] for d in models[name].spec.train_on]),
                thresholds[name][0],
            )
            for name in paper_models
        },
        names=["model"],
    )
    flags.to_csv(tables / "table3_threshold_flags.csv")
    return flags

