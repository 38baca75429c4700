"""The steps and glue texts of the labels page (``labels_and_the_gap``).

The page audits PTB-XL's likelihood-0 statements, sets a rhythm-aware mapping beside the
published one (:mod:`ecgrepro.data.labels`) and re-measures the paper's Tables 1-3 under both;
the gap and its intervals are :mod:`ecgrepro.gap`'s. Each function here is one step of the page:
a table it shows, or the values its prose quotes (a dict of glue name -> text, for
:meth:`ecgrepro.book.page.Page.glue`). Intervals are printed as ``value [low, high]``
(:func:`interval_text`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecgrepro import gap, paper
from ecgrepro.book.report import shown_path
from ecgrepro.config import CLASSES
from ecgrepro.data import summary
from ecgrepro.data.labels import label_mapping
from ecgrepro.evaluate import difference_ci, seed_pooled_table
from ecgrepro.pages.tables import beside, write_table1

#: The two label mappings the page compares.
MAPPINGS = ("published", "rhythm-aware")

#: The Original's test sets on the labels page: CPSC's test fold and PTB-XL's
#: (:data:`ecgrepro.gap.PTBXL_TEST_SETS`), name -> (dataset, split).
TABLE2_SETS = {
    "cpsc": ("cpsc", "test"),
    **{k: ("ptbxl", s) for k, s in gap.PTBXL_TEST_SETS.items()},
}

#: Columns of ``table3_rhythm_aware.csv``.
TABLE3_COLUMNS = "model test_set class metric value ci_low ci_high paper_value".split()

#: Table 3's test sets on the labels page: the test folds, name -> (dataset, split).
TABLE3_SETS = {"cpsc": ("cpsc", "test"), "ptbxl": ("ptbxl", "test")}

#: The statements the audit's prose quotes.
AUDIT_CODES = ("AFIB", "AFLT", "PAC", "SR", "STACH", "SARRH", "SBRAD", "PVC", "STD_")

_TABLE1_SHOWN = ["count", "count_pct", "male_pct", "age_mean"]
_METRICS4 = ("precision", "recall", "f1", "auc")


#: Columns of ``labels_reverse.csv`` (one model per mapping, no seed columns).
REVERSE_COLUMNS = [
    c for c in gap.TABLE2_LABELS_COLUMNS if c not in ("seed_min", "seed_max", "n_seeds")
]


def _key(mapping: str) -> str:
    """A mapping's name in glue keys (``rhythm_aware``)."""
    return mapping.replace("-", "_")


def interval_text(row) -> str:
    """A value with its interval, ``0.123 [0.045, 0.210]``.

    Parameters
    ----------
    row : namedtuple or pandas.Series
        With ``value``, ``ci_low`` and ``ci_high`` (floats).

    Returns
    -------
    str
    """
    return f"{row.value:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"


def interval_pivot(frame: pd.DataFrame, index, classes=None) -> pd.DataFrame:
    """Cells ``value [low, high]`` (:func:`interval_text`) by metric and label mapping.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long form with ``class, metric, label_mapping, value, ci_low, ci_high`` and ``index``.
    index : str or list of str
        The rows.
    classes : list of str, optional
        Keep only these classes, and of their metrics precision, recall, F1 and AUC; default:
        every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``(metric, label_mapping)``.
    """
    if classes is not None:
        frame = frame[frame["class"].isin(classes) & frame.metric.isin(list(_METRICS4))]
    return frame.assign(cell=[interval_text(r) for r in frame.itertuples()]).pivot_table(
        index=index, columns=["metric", "label_mapping"], values="cell", aggfunc="first"
    )


def audit_texts(audit: pd.DataFrame, meta: pd.DataFrame, root: Path) -> dict[str, str]:
    """The label audit's glue: likelihood-0 entries per category and per quoted statement.

    Parameters
    ----------
    audit : pandas.DataFrame
        :func:`ecgrepro.data.summary.label_audit` (published mapping).
    meta : pandas.DataFrame
        The PTB-XL records under the published mapping (``scp``: dict code -> likelihood).
    root : pathlib.Path
        The data root.

    Returns
    -------
    dict of str -> str
        ``lg_zero_<category>``, ``lg_<code>_n``, ``lg_<code>_pos``, ``lg_<code>_zero`` for
        :data:`AUDIT_CODES`, ``lg_AFIB_zero_snr``, ``lg_AFIB_zero_af``, ``lg_n_statements``,
        ``lg_n_zero_statements``, ``lg_listed``, ``lg_root`` and ``lg_6001`` (the statements of
        ecg_id 6001, the PhysioNet/CinC Challenge 2021 precedent).
    """
    texts = {}
    by_category = audit.groupby("category")[["records", "likelihood_zero"]].sum()  # entries
    for category in ("diagnostic", "form", "rhythm"):
        n, zero = by_category.at[category, "records"], by_category.at[category, "likelihood_zero"]
        texts[f"lg_zero_{category}"] = f"{zero:,} of {n:,} ({100 * zero / max(n, 1):.1f}%)"
    a = audit.set_index("scp_code")
    for code in AUDIT_CODES:
        texts[f"lg_{code}_n"] = f"{a.at[code, 'records']:,}"
        texts[f"lg_{code}_pos"] = f"{a.at[code, 'records'] - a.at[code, 'likelihood_zero']:,}"
        texts[f"lg_{code}_zero"] = f"{a.at[code, 'likelihood_zero']:,}"
    afib_zero = dict(p.split(":") for p in a.at["AFIB", "published_classes"].split(";"))
    texts["lg_AFIB_zero_snr"] = f"{int(afib_zero.get('SNR', 0)):,}"
    texts["lg_AFIB_zero_af"] = f"{int(afib_zero.get('AF', 0)):,}"
    texts["lg_n_statements"] = f"{len(audit)}"
    texts["lg_n_zero_statements"] = f"{int((audit.likelihood_zero > 0).sum())}"
    texts["lg_listed"] = f"{len(meta):,}"
    texts["lg_root"] = shown_path(root)
    texts["lg_6001"] = str(meta.scp.get(6001, "not listed"))
    return texts


def paper_texts() -> dict[str, str]:
    """The paper's Table 2 values the labels page quotes (3 decimals).

    Returns
    -------
    dict of str -> str
        ``lg_paper_<cpsc|ptbxl>_<f1|auc>`` (AVG), ``lg_paper_gap_<f1|auc>`` (CPSC minus
        PTB-XL) and ``lg_paper_af_<precision|recall>`` (AF on PTB-XL), from
        :func:`ecgrepro.paper.table2`.
    """
    p2 = paper.table2().set_index(["test_set", "class", "metric"]).value
    texts = {}
    for ts in ("cpsc", "ptbxl"):
        for metric in ("f1", "auc"):
            texts[f"lg_paper_{ts}_{metric}"] = f"{p2[(ts, 'AVG', metric)]:.3f}"
    for metric in ("f1", "auc"):
        gap_ = p2[("cpsc", "AVG", metric)] - p2[("ptbxl", "AVG", metric)]
        texts[f"lg_paper_gap_{metric}"] = f"{gap_:.3f}"
    for metric in ("precision", "recall"):
        texts[f"lg_paper_af_{metric}"] = f"{p2[('ptbxl', 'AF', metric)]:.3f}"
    return texts


def changed_statements(statements: pd.DataFrame) -> pd.DataFrame:
    """The SCP statements whose class or likelihood rule differs between the two mappings.

    Parameters
    ----------
    statements : pandas.DataFrame
        :func:`ecgrepro.data.ptbxl.load_statements` (``category``).

    Returns
    -------
    pandas.DataFrame
        Indexed by SCP code: ``category``, the ``published`` and ``rhythm-aware`` class
        (``(not read)`` for a statement the published mapping does not read), the
        rhythm-aware ``likelihood`` rule and its ``reason``.
    """
    ra = label_mapping("rhythm-aware").table
    pub = label_mapping("published").table.reindex(ra.index)
    changed = (ra.cpsc_class != pub.cpsc_class.fillna("(not read)")) | (
        ra.likelihood != pub.likelihood.fillna(">0")
    )
    view = pd.DataFrame(
        {
            "category": statements.category.reindex(ra.index),
            "published": pub.cpsc_class.fillna("(not read)"),
            "rhythm-aware": ra.cpsc_class,
            "likelihood": ra.likelihood,
            "reason": ra.reason,
        }
    )
    return view[changed]


def table1_both(meta: dict, statements: pd.DataFrame, tables: Path):
    """Table 1 under both mappings beside the paper's, and the records only one mapping keeps.

    Writes ``table1_rhythm_aware.csv`` in ``table1.csv``'s form (paper Table 1).

    Parameters
    ----------
    meta : dict of str -> pandas.DataFrame
        Mapping -> the PTB-XL records under it (:func:`ecgrepro.data.ptbxl.load_metadata`).
    statements : pandas.DataFrame
        :func:`ecgrepro.data.ptbxl.load_statements`.
    tables : pathlib.Path
        The build's ``tables`` folder.

    Returns
    -------
    side : pandas.DataFrame
        ``count, count_pct, male_pct, age_mean`` per class: the paper's, the published
        mapping's and the rhythm-aware one's, then the rhythm-aware count minus the paper's.
    texts : dict of str -> str
        ``lg_kept_<mapping>``, ``lg_dropped_<mapping>``, ``lg_af_<mapping>``,
        ``lg_snr_<mapping>``, ``lg_newly_dropped`` (records only the rhythm-aware mapping
        drops), ``lg_newly_dropped_was`` (their published labels) and
        ``lg_newly_dropped_why`` (their rhythm statements), most frequent first.
    """
    t1 = {m: summary.table1(meta[m]) for m in MAPPINGS}
    t1_ra = summary.round_like_paper(t1["rhythm-aware"])
    write_table1(t1_ra, tables, "rhythm-aware")
    paper_t1 = paper.table1()
    texts = {}
    for m in MAPPINGS:
        texts[f"lg_kept_{_key(m)}"] = f"{int((~meta[m].dropped).sum()):,}"
        texts[f"lg_dropped_{_key(m)}"] = f"{int(meta[m].dropped.sum()):,}"
        texts[f"lg_af_{_key(m)}"] = f"{int(t1[m].at['AF', 'count']):,}"
        texts[f"lg_snr_{_key(m)}"] = f"{int(t1[m].at['SNR', 'count']):,}"
    # why the rhythm-aware mapping drops records the published one keeps: their rhythm statements
    newly = meta["rhythm-aware"].dropped & ~meta["published"].dropped
    rhythm_codes = set(statements.index[statements.category == "rhythm"])
    why = pd.Series(
        [
            "+".join(sorted(c for c in s if c in rhythm_codes)) or "no rhythm statement"
            for s in meta["rhythm-aware"].scp[newly]
        ]
    ).value_counts()
    was = meta["published"].classes[newly].map(lambda c: "+".join(c)).value_counts()
    texts["lg_newly_dropped"] = f"{int(newly.sum()):,}"
    texts["lg_newly_dropped_was"] = ", ".join(f"{k} {v:,}" for k, v in was.head(4).items())
    texts["lg_newly_dropped_why"] = ", ".join(f"{k} {v:,}" for k, v in why.head(4).items())
    frames = {
        "paper": paper_t1,
        "published (ours)": summary.round_like_paper(t1["published"]),
        "rhythm-aware": t1_ra,
    }
    side = beside(frames, _TABLE1_SHOWN)
    side[("count", "difference")] = t1_ra["count"] - paper_t1["count"]
    return side, texts


def _counts(ds) -> dict[str, int]:
    af, snr = CLASSES.index("AF"), CLASSES.index("SNR")
    return {
        "records present and kept": len(ds.records),
        **{f"{s} records": int((ds.records.split == s).sum()) for s in ("train", "val", "test")},
        "AF records": int(ds.y[:, af].sum()),
        "AF records in the test fold": int(ds.subset("test")[1][:, af].sum()),
        "SNR records": int(ds.y[:, snr].sum()),
    }


def record_counts(cpsc, ptb: dict) -> tuple[pd.DataFrame, dict[str, str]]:
    """The records on disk: PTB-XL under each mapping and CPSC 2018, per split, AF and SNR.

    Parameters
    ----------
    cpsc : ecgrepro.data.ECGDataset
    ptb : dict of str -> ecgrepro.data.ECGDataset
        Mapping -> PTB-XL under it.

    Returns
    -------
    counts : pandas.DataFrame
        One column per dataset (``PTB-XL, <mapping>``, ``CPSC 2018``).
    texts : dict of str -> str
        ``lg_present_<mapping>``, ``lg_present_af_<mapping>``, ``lg_cpsc_n``,
        ``lg_cpsc_listed``, ``lg_cpsc_test``, ``lg_cpsc_af``.
    """
    counts = pd.DataFrame({f"PTB-XL, {m}": _counts(ptb[m]) for m in MAPPINGS})
    counts["CPSC 2018"] = _counts(cpsc)
    af = CLASSES.index("AF")
    texts = {}
    for m in MAPPINGS:
        texts[f"lg_present_{_key(m)}"] = f"{len(ptb[m].records):,}"
        texts[f"lg_present_af_{_key(m)}"] = f"{int(ptb[m].y[:, af].sum()):,}"
    texts["lg_cpsc_n"] = f"{len(cpsc.records):,}"
    texts["lg_cpsc_listed"] = f"{cpsc.inventory['listed']:,}"
    texts["lg_cpsc_test"] = f"{int((cpsc.records.split == 'test').sum()):,}"
    texts["lg_cpsc_af"] = f"{int(cpsc.y[:, af].sum()):,}"
    return counts, texts


def table2_labels(seeds: dict, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Table 2 under both mappings: the Original's metrics and its gap, pooled over its seeds.

    The same computation as the Table 2 page (:func:`ecgrepro.evaluate.seed_pooled_table`,
    :func:`ecgrepro.gap.pooled_gap_rows`, the same bootstrap seed), so that under the
    published mapping, on the PTB-XL test fold, this table and its gap are Table 2's.

    Parameters
    ----------
    seeds : dict of str -> list of dict
        Mapping -> per training seed of the Original, :func:`ecgrepro.gap.scored` on
        :data:`TABLE2_SETS`.
    n_boot, seed : int
        The bootstrap's resamples and seed.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ecgrepro.gap.TABLE2_LABELS_COLUMNS` (``table2_labels.csv``): every
        class and metric with its interval, then ``GAP`` rows.
    """
    rows = []
    for m in MAPPINGS:
        runs = seeds[m]
        for k, (y, _, _) in runs[0].items():
            pooled = seed_pooled_table(y, [r[k][1:] for r in runs], n_boot=n_boot, seed=seed)
            rows.append(pooled.assign(model="original", label_mapping=m, test_set=k))
        for k in gap.PTBXL_TEST_SETS:
            rows.append(
                gap.pooled_gap_rows(
                    [r["cpsc"] for r in runs], [r[k] for r in runs], n_boot=n_boot, seed=seed
                ).assign(model="original", label_mapping=m, test_set=k)
            )
    return pd.concat(rows, ignore_index=True)[gap.TABLE2_LABELS_COLUMNS]


def table2_texts(cell: pd.DataFrame) -> dict[str, str]:
    """The re-measured Table 2's glue, ``lg_t2_<test set>_<mapping>_<class>_<metric>``.

    Parameters
    ----------
    cell : pandas.DataFrame
        :func:`table2_labels` indexed by ``test_set, label_mapping, class, metric``.

    Returns
    -------
    dict of str -> str
        :func:`interval_text` of the AVG, AF and GAP rows' F1, AUC, precision and recall.
    """
    texts = {}
    for m in MAPPINGS:
        for k in ("cpsc",) + tuple(gap.PTBXL_TEST_SETS):
            for c in ("AVG", "AF", "GAP"):
                for metric in ("f1", "auc", "precision", "recall"):
                    if (k, m, c, metric) in cell.index:
                        texts[f"lg_t2_{k}_{_key(m)}_{c}_{metric}"] = interval_text(
                            cell.loc[(k, m, c, metric)]
                        )
    return texts


def retrained(models: dict, datasets: dict, device, *, n_boot: int, seed: int):
    """Table 3 under both mappings: the paper's models scored, with each one's remaining gap.

    Parameters
    ----------
    models : dict
        Mapping -> model name -> model (``original``, ``ours1``, ``ours2``).
    datasets : dict of str -> dict of str -> ecgrepro.data.ECGDataset
        Mapping -> the pipeline's datasets.
    device : torch.device
    n_boot, seed : int
        The bootstrap's resamples and seed.

    Returns
    -------
    scored : dict of str -> dict of str -> dict
        Mapping -> model -> :func:`ecgrepro.gap.scored` on ``cpsc``, ``ptbxl`` (test folds)
        and ``combined``.
    cells : pandas.DataFrame
        :func:`ecgrepro.gap.metric_table` of every model and mapping.
    gaps : pandas.DataFrame
        :func:`ecgrepro.gap.gap_rows`: the Original's CPSC AVG minus each model's PTB-XL AVG.
    """
    scored, rows, gaps = {}, [], []
    for m in MAPPINGS:
        scored[m] = {}
        for name in ("original", "ours1", "ours2"):
            s = gap.scored(models[m][name], datasets[m], TABLE3_SETS, device)
            s["combined"] = gap.combined(s["cpsc"], s["ptbxl"])
            scored[m][name] = s
            rows.append(
                gap.metric_table(s, n_boot=n_boot, seed=seed).assign(model=name, label_mapping=m)
            )
            gaps.append(
                gap.gap_rows(
                    scored[m]["original"]["cpsc"], s["ptbxl"], n_boot=n_boot, seed=seed
                ).assign(model=name, label_mapping=m)
            )
    return scored, pd.concat(rows, ignore_index=True), pd.concat(gaps, ignore_index=True)


def share_closed(scored: dict, *, n_boot: int, seed: int) -> pd.DataFrame:
    """How much Ours_1 and Ours_2 improve on the Original on PTB-XL under each mapping.

    The page shows the improvement with its paired interval. The share of the gap closed
    (improvement / gap) stays in the returned frame but is not shown: its ratio of two
    uncertain differences gave intervals such as [9%, 532%] on the sample, which say nothing.

    Parameters
    ----------
    scored : dict
        :func:`retrained`'s first return.
    n_boot, seed : int

    Returns
    -------
    pandas.DataFrame
        :func:`ecgrepro.gap.share_closed` per mapping and model, with the text
        ``improvement on PTB-XL [95% CI]``.
    """
    closed = pd.concat(
        [
            gap.share_closed(
                scored[m]["original"]["cpsc"],
                scored[m]["original"]["ptbxl"],
                scored[m][name]["ptbxl"],
                n_boot=n_boot,
                seed=seed,
            ).assign(label_mapping=m, model=name)
            for m in MAPPINGS
            for name in ("ours1", "ours2")
        ],
        ignore_index=True,
    )
    closed["improvement on PTB-XL [95% CI]"] = [
        f"{r.improvement:+.3f} [{r.improvement_ci_low:+.3f}, {r.improvement_ci_high:+.3f}]"
        for r in closed.itertuples()
    ]
    return closed


def retrained_texts(gaps: pd.DataFrame, closed: pd.DataFrame) -> dict[str, str]:
    """Glue on the remaining gaps (seed 0 of each model) and the improvements on PTB-XL.

    Parameters
    ----------
    gaps : pandas.DataFrame
        :func:`retrained`'s third return.
    closed : pandas.DataFrame
        :func:`share_closed`.

    Returns
    -------
    dict of str -> str
        ``lg_improved_<mapping>_<ours1|ours2>_<f1|auc>`` and
        ``lg_gap_<mapping>_<original|ours1|ours2>_<f1|auc>``.
    """
    g = gaps.set_index(["label_mapping", "model", "metric"])
    c = closed.set_index(["label_mapping", "model", "metric"])
    texts = {}
    for m in MAPPINGS:
        for name in ("ours1", "ours2"):
            for metric in ("f1", "auc"):
                texts[f"lg_improved_{_key(m)}_{name}_{metric}"] = c.loc[
                    (m, name, metric), "improvement on PTB-XL [95% CI]"
                ]
        for name in ("original", "ours1", "ours2"):
            for metric in ("f1", "auc"):
                texts[f"lg_gap_{_key(m)}_{name}_{metric}"] = interval_text(g.loc[(m, name, metric)])
    return texts


def reverse(models: dict, datasets: dict, device, *, n_boot: int, seed: int):
    """The reverse direction: the PTB-XL-only model of each mapping on every CPSC record.

    Parameters
    ----------
    models : dict of str -> dict of str -> ecgrepro.artifacts.TrainedModel
        Mapping -> model name -> model (``ptbxl_only`` is read).
    datasets : dict of str -> dict of str -> ecgrepro.data.ECGDataset
        Mapping -> the pipeline's datasets.
    device : torch.device
    n_boot, seed : int
        The bootstrap's resamples and seed.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`REVERSE_COLUMNS` (``labels_reverse.csv``): each
        mapping's model with its interval, then the paired difference ``rhythm-aware minus
        published`` (:func:`ecgrepro.evaluate.difference_ci`).
    texts : dict of str -> str
        ``lg_rev_<mapping>_<AF|AVG>_<f1|auc|recall|precision>`` (:func:`interval_text`), the
        difference's as ``lg_rev_rhythm_aware_minus_published_...``.
    """
    sets = {"cpsc_all": ("cpsc", "all")}
    rev = {m: gap.scored(models[m]["ptbxl_only"], datasets[m], sets, device) for m in MAPPINGS}
    rev = {m: s["cpsc_all"] for m, s in rev.items()}
    out = pd.concat(
        [
            gap.metric_table({"cpsc_all": rev[m]}, n_boot=n_boot, seed=seed).assign(
                model="ptbxl_only", label_mapping=m
            )
            for m in MAPPINGS
        ],
        ignore_index=True,
    )
    diff = difference_ci(
        rev["rhythm-aware"], rev["published"], n_boot=n_boot, seed=seed, paired=True
    )
    diff = diff.assign(
        model="ptbxl_only", label_mapping="rhythm-aware minus published", test_set="cpsc_all"
    )
    table = pd.concat([out, diff], ignore_index=True)[REVERSE_COLUMNS]
    r = table.set_index(["label_mapping", "class", "metric"])
    texts = {}
    for m in list(MAPPINGS) + ["rhythm-aware minus published"]:
        for c in ("AF", "AVG"):
            for metric in ("f1", "auc", "recall", "precision"):
                key = f"lg_rev_{_key(m).replace(' ', '_')}_{c}_{metric}"
                texts[key] = interval_text(r.loc[(m, c, metric)])
    return table, texts


def verdict(cell: pd.DataFrame, rev_table: pd.DataFrame) -> str:
    """The page's verdict on the paper's generalisation claim, read from the intervals.

    Parameters
    ----------
    cell : pandas.DataFrame
        :func:`table2_labels` indexed as in :func:`table2_texts`.
    rev_table : pandas.DataFrame
        :func:`reverse`'s table.

    Returns
    -------
    str
        Three sentences: the Original's F1 gap on every PTB-XL record present under each
        mapping, its AF F1 judged by each mapping's labels, and the reverse direction's paired
        AF difference; each says whether its interval settles the question.
    """
    g_pub = cell.loc[("ptbxl_all", "published", "GAP", "f1")]
    g_ra = cell.loc[("ptbxl_all", "rhythm-aware", "GAP", "f1")]
    af_pub = cell.loc[("ptbxl_all", "published", "AF", "f1")]
    af_ra = cell.loc[("ptbxl_all", "rhythm-aware", "AF", "f1")]
    r = rev_table.set_index(["label_mapping", "class", "metric"])
    rev_af = r.loc[("rhythm-aware minus published", "AF", "f1")]
    fmt = interval_text
    above = [m for m, g in (("published", g_pub), ("rhythm-aware", g_ra)) if g.ci_low > 0]
    if len(above) == 2:
        gap_says = (
            "The gap remains clearly above 0 under both mappings: relabelling does not make it "
            "disappear. "
        )
    elif above:
        other = "rhythm-aware" if above == ["published"] else "published"
        gap_says = (
            f"The interval lies above 0 under the {above[0]} labels only; under the {other} "
            "labels it reaches 0, so there the sample cannot show a gap. "
        )
    else:
        gap_says = "The interval reaches 0 under both mappings: the sample cannot show a gap. "
    if af_ra.ci_low > af_pub.ci_high:
        af_says = "the published labels understate its AF detection. "
    elif af_ra.ci_high < af_pub.ci_low:
        af_says = "the rhythm-aware labels make its AF detection look worse. "
    else:
        af_says = "the intervals overlap, so on the sample this change is not established. "
    if rev_af.ci_low > 0:
        rev_says = (
            "training on the published labels costs AF detection that CPSC's annotators can see. "
        )
    elif rev_af.ci_high < 0:
        rev_says = "the model trained on the rhythm-aware labels detects AF worse on CPSC. "
    else:
        rev_says = "the sample cannot separate the two. "
    sentences = [
        "Under the published labels the Original's F1 gap (pooled over its training seeds) on "
        f"every PTB-XL record present is "
        f"{fmt(g_pub)}; under the rhythm-aware labels it is {fmt(g_ra)}. " + gap_says,
        f"The Original's AF F1 on PTB-XL moves from {fmt(af_pub)} to {fmt(af_ra)} when its "
        "predictions are judged by the rhythm-aware labels: " + af_says,
        "Trained on PTB-XL and tested on CPSC's own labels, the rhythm-aware model's AF F1 minus "
        f"the published one's is {fmt(rev_af)} (paired): " + rev_says,
    ]
    return " ".join(sentences)
