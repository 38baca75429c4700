"""A full-size rehearsal (issue #27, item 2): ``make rehearsal``, by hand, not in CI.

Nothing had run at the full datasets' size (21,799 PTB-XL records at 100 and 500 Hz, 6,877
CPSC 2018 records of 6-60 s; the sample holds a tenth and 2%).
:func:`ecgrepro.rehearsal_root.synthetic_root` writes a data root of that layout, its counts
scaled by a fraction, from the sample's own records. :func:`run` times and measures, each in a
process of its own, the data layer at the quick and paper shapes, ``ecgrepro plan --profile
paper``, a few training batches of every catalogue model, the pages' record selections and one
page end to end (Table 2 under the quick shapes, one seed of one epoch: :data:`PAGE_STEP`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ecgrepro.catalogue import MODELS
from ecgrepro.rehearsal_root import CPSC_FS, synthetic_root

#: Fractions of the full datasets ``make rehearsal`` runs: about the sample's PTB-XL, half, all.
DEFAULT_FRACTIONS = (0.1, 0.5, 1.0)
#: Input shapes of the data layer: the quick and the paper profiles' (fs Hz, window s).
SHAPES = {"quick": (100, 10), "paper": (500, 30)}
#: Columns of ``<build>/tables/rehearsal.csv``.
COLUMNS = ("fraction", "step", "records", "seconds", "peak_rss_mb", "peak_anon_mb", "disk_mb",
           "signals_mb", "ok", "note")
#: Every step, in order: the root, the data layer, the plan (reusing the paper-shape caches),
#: a few training batches of each catalogue model, the pages' record selections.
STEPS = ("root", "data_quick", "data_paper", "plan_paper", *(f"train_{m}" for m in MODELS),
         "selection", "page_table2")
#: The page run end to end (``ecgrepro book --only``, its HTML included) and its parameters:
#: the quick shapes, reusing data_quick's caches; one seed of one epoch, so that the step
#: measures the page's data, scoring and bootstrap at full size, not 30 epochs on 2 cores.
PAGE_STEP = ("table2_generalisation", {"n_seeds": 1, "epochs": 1})
_MB = 2**20


def disk_estimate_mb(fraction: float) -> float:
    """Disk one fraction's :func:`run` needs at most, MiB (60 GB at 1.0; 55 GB measured).

    Parameters
    ----------
    fraction : float

    Returns
    -------
    float
        Each PTB-XL record's WFDB files (100 and 500 Hz) and rows in three signal caches
        (published, rhythm-aware, superclasses) at both shapes; each CPSC record's (about
        16 s) and its rows in one cache at both shapes.
    """
    ptbxl = 12 * (2 * (1000 + 5000) + 3 * 4 * (1000 + 15000))
    cpsc = 12 * (2 * 16 * CPSC_FS + 4 * (1000 + 15000))
    return fraction * (21_799 * ptbxl + 6_877 * cpsc) / _MB


def _data_step(root: Path, build: Path, shape: str) -> dict:
    """The data layer at one profile's shapes: every dataset a page reads, read and cached."""
    from ecgrepro.data import load_ptbxl
    from ecgrepro.pipeline import setup

    fs, window = SHAPES[shape]
    pipe = setup(str(root), str(build), fs_hz=fs, window_s=window, device="cpu", log=None)
    n, cache = pipe.n_samples, Path(build) / "cache"
    sets = {
        **pipe.datasets,
        "ptbxl rhythm-aware": load_ptbxl(root, fs, n, cache, label_mapping="rhythm-aware"),
        "ptbxl superclasses": load_ptbxl(root, fs, n, cache, label_set="superclasses"),
    }
    skipped = {k: len(ds.skipped) for k, ds in sets.items() if len(ds.skipped)}
    splits = {k: ds.records.split.value_counts().to_dict() for k, ds in sets.items()}
    fewest = min(int(s.get(x, 0)) for s in splits.values() for x in ("train", "val", "test"))
    used = ", ".join(f"{k} {len(ds.records):,}" for k, ds in sets.items())
    return {"records": sum(len(ds.records) for ds in sets.values()),
            "signals_mb": sum(ds.signals.nbytes for ds in sets.values()) / _MB,
            "ok": not skipped and fewest > 0, "note": f"{fs} Hz x {window} s; used: {used}; "
            f"skipped: {skipped or 'none'}; fewest records in a split: {fewest}"}


def _train_step(root: Path, build: Path, model: str, n_batches: int) -> dict:
    """A few training batches of one catalogue model at the quick shapes, as ``ecgrepro train``
    would make its spec (the parameters of the page that defines it); a child model starts
    from fresh weights, not its parent's."""
    import torch

    from ecgrepro.pipeline import build_model, samples_for
    from ecgrepro.plan import open_pipeline, page_parameters
    from ecgrepro.train import train_one_epoch

    t0 = time.perf_counter()
    pipe = open_pipeline(page_parameters("quick", MODELS[model].page), str(root), str(build))
    pipe.log = None
    spec = pipe.spec(model)
    ref = [pipe.dataset(d) for d in spec.train_on][0]
    torch.manual_seed(spec.seed)
    net = build_model(spec.arch, pipe.fs_hz, pipe.n_samples, ref.y.shape[1]).to(pipe.device)
    train = samples_for(pipe.datasets, spec.train_on, "train", spec.augment)
    t1 = time.perf_counter()
    loss = train_one_epoch(
        net, train, torch.optim.Adam(net.parameters(), lr=spec.lr), torch.nn.BCEWithLogitsLoss(),
        np.random.default_rng(spec.seed), spec.batch_size, pipe.device, spec.amp,
        max_batches=n_batches, desc=model,
    )
    done = min(n_batches, math.ceil(len(train) / spec.batch_size))
    per = (time.perf_counter() - t1) / max(done, 1)
    return {"records": len(train), "ok": bool(np.isfinite(loss)),
            "signals_mb": sum({id(p): p.nbytes for p in train.parts}.values()) / _MB,
            "note": f"{spec.name} on {'+'.join(spec.train_on)} ({pipe.device}): {done} batches "
            f"of {spec.batch_size}, {per:.2f} s a batch, data and model set up in {t1 - t0:.1f} s"}


def _selection_step(root: Path, build: Path) -> dict:
    """Each page's record selection at the quick shapes, on the records the data layer read.

    The selections made from labels run as the pages make them; those made from a model's
    scores (Figures 6-8 and Companion B's cases) run on stand-in scores (seeded uniform,
    thresholds 0.5), since no model is trained here.
    """
    from ecgrepro.explain.cases import case_eligibility, select_cases
    from ecgrepro.explain.shap_leads import published_selection, stratified_selection
    from ecgrepro.explain.shapley import spread_over_classes
    from ecgrepro.pages.relevance import companion_records
    from ecgrepro.plan import open_pipeline, page_parameters

    opened: dict = {}
    took, picked = {}, {}

    def page(name: str):
        p = page_parameters("quick", name)
        return open_pipeline(p, str(root), str(build), opened).datasets, p

    def timed(name: str, fn) -> None:
        t0 = time.perf_counter()
        picked[name], took[name] = int(fn()), time.perf_counter() - t0

    ds, p = page("fig2-5_shap_per_lead")
    split = {d: ds[d].records.split.to_numpy() for d in ("cpsc", "ptbxl")}
    test = {d: np.flatnonzero(r == "test") for d, r in split.items()}
    timed("fig2-5_shap_per_lead", lambda: sum(
        len(published_selection(len(r), p["n_background"], p["n_explained"])[1])
        + len(stratified_selection(np.flatnonzero(r == "train"), test[d], ds[d].y[test[d]],
                                   p["n_background"], p["n_per_class"], p["seed"])[1])
        for d, r in split.items()))
    ds, p = page("companion_a_relevance")
    timed("companion_a_relevance", lambda: sum(len(companion_records(
        ds[d].y[test[d]], n_per_group=p["n_per_group"], seed=p["seed"])) for d in test))
    recs = pd.concat([ds[d].records.iloc[test[d]] for d in test], ignore_index=True)
    y = np.concatenate([ds[d].y[test[d]] for d in test])
    raw = [c if isinstance(c, dict) else None for c in recs.get("scp_codes", [None] * len(y))]
    timed("fig6-8_gradcam, companion_b_deletion_mask", lambda: (select_cases(
        y, np.random.default_rng(0).random(y.shape), np.full(y.shape[1], 0.5),
        list(recs.record), eligible=case_eligibility(raw, list(recs.classes))).row >= 0).sum())
    _, p = page("companion_c_clusters")
    timed("companion_c_clusters", lambda: len(np.random.default_rng(p["seed"]).choice(
        len(y), min(p["n_wave_records"] or len(y), len(y)), replace=False)))
    _, p = page("faithfulness")
    timed("faithfulness", lambda: len(spread_over_classes(y.argmax(1), p["n_records"])))
    note = "; ".join(f"{k}: {picked[k]} records ({took[k]:.2f} s)" for k in picked)
    return {"records": len(y), "ok": True, "note": note + "; cases on stand-in scores"}


def _proc_status(pid: int) -> dict[str, float]:
    """``VmRSS``, ``RssAnon``, ... of ``/proc/<pid>/status`` in MiB; empty where unreadable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = (line.partition(":") for line in text.splitlines())
    return {k: float(v.split()[0]) / 1024 for k, _, v in fields if v.strip().endswith("kB")}


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a page's kernel under ``ecgrepro book``), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def measure(cmd: list[str], log_file: Path, env: dict | None = None) -> dict:
    """Run one command (its output to ``log_file``, environment ``env``) and measure it.

    Returns
    -------
    dict
        ``rc``, ``seconds`` (wall), ``peak_rss_mb`` (the largest, over samples every 50 ms,
        of the process's ``VmHWM``, its peak resident set since its ``exec``, plus the
        resident sets of the processes it started, such as a page's kernel; NaN if never
        sampled; not ``ru_maxrss``, which counts the parent's pages held between fork and
        exec) and ``peak_anon_mb`` (the largest ``RssAnon`` of ``/proc/<pid>/status`` summed
        over the same processes: memory that is not a mapped file, so a memory-mapped signal
        cache read through does not count, while signals copied into memory do; NaN without
        ``/proc``).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    t0, peak, hwm = time.perf_counter(), float("nan"), float("nan")
    with open(log_file, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree = [_proc_status(p) for p in _descendants(proc.pid)]
            if tree and tree[0]:
                anon = sum(t.get("RssAnon", 0.0) for t in tree)
                rss = sum(t.get("VmRSS", 0.0) for t in tree[1:]) + tree[0].get("VmHWM", 0.0)
                peak, hwm = float(np.fmax(peak, anon)), float(np.fmax(hwm, rss))
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return {"rc": proc.returncode, "seconds": time.perf_counter() - t0,
            "peak_rss_mb": hwm, "peak_anon_mb": peak}


def disk_mb(*paths: Path) -> float:
    """Space the files under ``paths`` take on disk (their allocated blocks), MiB.

    Parameters
    ----------
    *paths : pathlib.Path
        Folders (a missing one counts 0).

    Returns
    -------
    float
    """
    total = 0
    for path in paths:
        for folder, _, files in os.walk(path):
            for f in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(folder, f)).st_blocks * 512
    return total / _MB


def _plan_facts(csv: Path) -> dict:
    """What ``ecgrepro plan``'s CSV says: artifacts, records seen in training, GPU hours.

    The root lists only its own records, so the plan's full-size projection is the root
    itself: at fraction 1.0 it is the real datasets' plan.
    """
    from ecgrepro.cli import GPU_TRAINING_RATE

    plan = pd.read_csv(csv)
    seen = int(plan.records_seen.sum())
    return {"records": seen, "ok": len(plan) > 0,
            "note": f"{len(plan)} artifacts, {seen:,} records seen in training: "
            f"{seen / GPU_TRAINING_RATE / 3600:.1f} h at {GPU_TRAINING_RATE:g} records/s, one H200"}


def _page_facts(build: Path) -> dict:
    """The page step's outcome: its table written, and the records its models saw."""
    page, _ = PAGE_STEP
    facts = json.loads((build / "run" / f"{page}.json").read_text())
    used = sum(int(d.get("used", 0)) for d in facts.get("datasets", {}).values())
    rows = len(pd.read_csv(build / "tables" / "table2.csv"))
    return {"records": used, "ok": rows > 0,
            "note": f"{page} end to end under the quick shapes, {rows} rows in table2.csv"}


def _command(step: str, fraction, root, build, source, seed, n_batches, result) -> list[str]:
    if step == "page_table2":
        page, params = PAGE_STEP
        sets = [a for k, v in params.items() for a in ("-p", k, str(v))]
        return [sys.executable, "-m", "ecgrepro.cli", "book", "--profile", "quick", "--only",
                page, *sets, "--data", str(root), "--build-dir", str(build)]
    if step == "plan_paper":
        return [sys.executable, "-m", "ecgrepro.cli", "plan", "--profile", "paper", "--data",
                str(root), "--build-dir", str(build), "--csv", str(Path(build) / "plan_paper.csv")]
    cmd = [sys.executable, "-m", "ecgrepro.rehearsal", "--step", step, "--root", str(root),
           "--build", str(build), "--result", str(result), "--seed", str(seed),
           "--fraction", str(fraction), "--batches", str(n_batches)]
    return cmd + (["--data", str(source)] if source else [])


def run(fractions=DEFAULT_FRACTIONS, work: Path | None = None, build: Path | None = None,
        source: Path | None = None, steps: tuple[str, ...] | None = None, n_batches: int = 3,
        seed: int = 0, keep: bool = False, log=print) -> pd.DataFrame:
    """Time and measure every step on a synthetic root of each fraction (issue #27, item 2).

    Parameters
    ----------
    fractions : sequence of float
        Each in (0, 1] (:func:`synthetic_root`).
    work : pathlib.Path, optional
        Each fraction's root and build folder (``fraction-F/data``, ``fraction-F/build``) and
        step logs (``logs/fraction-F/``); default ``<build>/rehearsal``.
    build : pathlib.Path, optional
        The table goes to ``<build>/tables/rehearsal.csv``; default ``<repo>/_build``.
    source : pathlib.Path, optional
        The sample (:func:`ecgrepro.config.find_data_root`).
    steps : tuple of str, optional
        Only these of :data:`STEPS` (``root`` always runs first).
    n_batches, seed : int
        Training batches per model; the records' seed (:func:`choose_records`).
    keep : bool
        Keep each fraction's root and build folder (default: removed once measured).
    log : callable or None

    Returns
    -------
    pandas.DataFrame
        One row per fraction and step, columns :data:`COLUMNS`: ``records`` the step wrote
        or read, ``seconds``, ``peak_rss_mb``, ``peak_anon_mb`` (:func:`measure`),
        ``disk_mb`` (what the root and build folder grew by), ``signals_mb`` (the signal
        arrays it maps), ``ok`` and a ``note``. A failed step is a row with ``ok`` false
        naming its log; the next steps still run.

    Raises
    ------
    ValueError
        For a step not in :data:`STEPS`.
    RuntimeError
        When the disk has less free space than a fraction needs (:func:`disk_estimate_mb`).
    """
    from ecgrepro.config import REPO_ROOT

    build = Path(build or REPO_ROOT / "_build").resolve()
    work = Path(work or build / "rehearsal").resolve()
    wanted = ["root", *[s for s in STEPS if s != "root" and (steps is None or s in steps)]]
    unknown = sorted(set(steps or ()) - set(STEPS))
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; known: {list(STEPS)}")
    rows = []
    for fraction in fractions:
        base, logs = work / f"fraction-{fraction:g}", work / "logs" / f"fraction-{fraction:g}"
        shutil.rmtree(base, ignore_errors=True)
        root, bdir = base / "data", base / "build"
        bdir.mkdir(parents=True)
        need, free = disk_estimate_mb(fraction), shutil.disk_usage(base).free / _MB
        if free < need:
            raise RuntimeError(f"fraction {fraction:g} needs about {need / 1024:.1f} GB under "
                               f"{base}; {free / 1024:.1f} GB are free")
        for step in wanted:
            result = logs / f"{step}.json"
            result.unlink(missing_ok=True)
            cmd = _command(step, fraction, root, bdir, source, seed, n_batches, result)
            before = disk_mb(root, bdir)
            got = measure(cmd, logs / f"{step}.log")
            row = {"fraction": fraction, "step": step, **got,
                   "disk_mb": disk_mb(root, bdir) - before, "signals_mb": 0.0}
            if got["rc"] == 0:
                facts = {}  # a rehearsal step writes its own; plan and page are read here
                if step == "plan_paper":
                    facts = _plan_facts(bdir / "plan_paper.csv")
                elif step == "page_table2":
                    facts = _page_facts(bdir)
                row.update(facts or json.loads(result.read_text()))
            else:
                row.update(ok=False, note=f"failed (exit {got['rc']}): {logs / (step + '.log')}")
            row.pop("rc")
            rows.append(row)
            if log:
                log(f"[rehearsal] {fraction:g} {step}: {row['seconds']:.1f} s, peak "
                    f"{row['peak_rss_mb']:.0f} MB, disk {row['disk_mb']:+.0f} MB; {row['note']}")
            if step == "root" and not row["ok"]:
                break
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    (build / "tables").mkdir(parents=True, exist_ok=True)
    table.to_csv(build / "tables" / "rehearsal.csv", index=False)
    return table


def summary(table: pd.DataFrame) -> str:
    """The table as text: step x fraction (seconds, peak MB, disk MB), how time grows, memory.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`run`'s.

    Returns
    -------
    str
        The wide table, with the exponent ``k`` of ``seconds ~ fraction^k`` between the
        smallest and largest fraction (1: in proportion to the records); then, per fraction,
        the paper-shape steps' largest peak anonymous memory against the signals their
        caches hold ("too small to tell" under 2 GB of signals).
    """
    wide = table.pivot(index="step", columns="fraction",
                       values=["seconds", "peak_rss_mb", "disk_mb"])
    wide = wide.reindex([s for s in STEPS if s in wide.index])
    short = {"seconds": "s", "peak_rss_mb": "peak MB", "disk_mb": "disk MB"}
    wide.columns = [f"{short[m]} @{f:g}" for m, f in wide.columns]
    fr = sorted(table.fraction.unique())
    if len(fr) > 1:
        lo, hi = (table[table.fraction == f].set_index("step").seconds for f in (fr[0], fr[-1]))
        wide["time ~ f^k"] = np.log(hi / lo) / np.log(fr[-1] / fr[0])
    lines = [wide.round(2).to_string()]
    paper = table[table.step.isin(["data_paper", "plan_paper"])]
    for f, rows in paper.groupby("fraction"):
        signals = table[(table.fraction == f) & (table.step == "data_paper")].signals_mb.sum()
        anon = rows.peak_anon_mb.max()
        verdict = ("not measured (no /proc)" if np.isnan(anon) else
                   "too small to tell" if signals < 2048 else
                   "no step holds all signals in memory" if anon < signals / 2 else
                   "a step HOLDS the signals in memory")
        lines.append(f"fraction {f:g}, paper shapes: {signals:,.0f} MB of signals, largest "
                     f"peak anonymous memory {anon:,.0f} MB: {verdict}")
    return "\n".join(lines)


def _child(args) -> int:
    root, build = Path(args.root), Path(args.build)
    if args.step == "root":
        got = synthetic_root(root, args.fraction, args.data, args.seed)
        facts = {"records": got["ptbxl"] * 2 + got["cpsc"], "ok": True,
                 "note": f"{got['ptbxl']:,} PTB-XL records at 100 and 500 Hz "
                 f"({got['ptbxl_recycled']:,} recycled), {got['cpsc']:,} CPSC "
                 f"({got['cpsc_recycled']:,} recycled)"}
    elif args.step.startswith("data_"):
        facts = _data_step(root, build, args.step.removeprefix("data_"))
    elif args.step.startswith("train_"):
        facts = _train_step(root, build, args.step.removeprefix("train_"), args.batches)
    elif args.step == "selection":
        facts = _selection_step(root, build)
    else:
        raise ValueError(f"unknown step {args.step!r}")
    Path(args.result).write_text(json.dumps(facts))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ecgrepro.rehearsal [FRACTION ...]``: :func:`run`, then :func:`summary`."""
    parser = argparse.ArgumentParser(prog="python -m ecgrepro.rehearsal",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("fractions", nargs="*", type=float, default=list(DEFAULT_FRACTIONS),
                        help="fractions of the full datasets (default: 0.1 0.5 1.0)")
    parser.add_argument("--build-dir", default=None, help="table in BUILD_DIR/tables/")
    parser.add_argument("--work", default=None, help="roots and caches (BUILD_DIR/rehearsal)")
    parser.add_argument("--data", default=None, help="the sample (default: ../shared/ecg-data)")
    parser.add_argument("--steps", nargs="*", default=None, help="only these steps")
    parser.add_argument("--batches", type=int, default=3, help="training batches per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the roots and caches")
    for hidden in ("--step", "--root", "--build", "--result"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fraction", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        return _child(args)
    bad = [f for f in args.fractions if not 0 < f <= 1]
    if bad:
        print(f"error: fractions must be in (0, 1], got {bad}", file=sys.stderr)
        return 2
    table = run(args.fractions, args.work, args.build_dir, args.data, args.steps and
                tuple(args.steps), args.batches, args.seed, args.keep)
    print(summary(table))
    return 0 if table.ok.all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
