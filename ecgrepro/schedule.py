"""The training plan as independent jobs: local processes, one per GPU, or a Slurm job array.

``ecgrepro train --plan --profile P`` trains every artifact of ``ecgrepro plan
--profile P`` (:func:`ecgrepro.plan.training_plan`) that is not stored yet. The
trainings are independent, apart from Ours_1 continuing from the Original of
the same replicate, so the natural unit of parallel work is one training per
device, not one batch split over devices (DDP, which stays for one model on
many GPUs). A job trains a *chain*: a model and, first, any parent of it that
is missing too (:func:`plan_jobs`).

The jobs run through submitit (facebookincubator/submitit), chosen over Ray
because research clusters run Slurm and submitit speaks to it directly (one
``sbatch`` of a job array, no long-lived head node), while its local executor
runs the very same jobs as processes on one machine. Every job writes into the
one build folder: each artifact is trained and written under its lock
(:func:`ecgrepro.data.signals.lock_for`), and so is each signal cache, so two
jobs never fill one at the same time. A failed job is reported with the end of
its log and does not stop the others; a rerun trains only what is still missing.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ecgrepro.config import REPO_ROOT


def plan_jobs(table: pd.DataFrame) -> list[list[dict]]:
    """The missing artifacts of a plan, grouped into jobs: each a parent-first chain.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`ecgrepro.plan.training_plan`'s table (a parent before its child).

    Returns
    -------
    list of list of dict
        One list of plan rows per job. A row whose parent (same replicate and
        label mapping, the plan's ``parent``) is missing too joins its parent's
        job, after it; a row whose parent is stored is a job of its own.
    """
    jobs: list[list[dict]] = []
    where: dict[str, int] = {}
    for row in table[~table.stored.astype(bool)].to_dict("records"):
        at = where.get(row["parent"]) if row["parent"] else None
        if at is None:
            jobs.append([row])
            at = len(jobs) - 1
        else:
            jobs[at].append(row)
        where[row["artifact"]] = at
    return jobs


def train_chain(
    profile: str,
    rows: list[dict],
    data_root: str,
    build_dir: str,
    overrides: Mapping | None = None,
    threads: int | None = None,
) -> list[str]:
    """One job: train each row of a chain, parent first, with its page's parameters.

    Parameters
    ----------
    profile : str
    rows : list of dict
        Plan rows (:func:`plan_jobs`); each names its model, replicate, label
        mapping, first page and artifact.
    data_root, build_dir : str
    overrides : mapping, optional
        The plan's ``-p`` parameters.
    threads : int, optional
        CPU threads of this job (``torch.set_num_threads``); None: torch's default.

    Returns
    -------
    list of str
        The artifact folders trained or found.

    Raises
    ------
    RuntimeError
        Before training, if a model's key is not the one the plan named (the plan
        and the job disagree on a parameter or the device).
    """
    import torch

    from ecgrepro.plan import open_pipeline, page_parameters

    if threads:
        torch.set_num_threads(threads)
    done = []
    opened: dict = {}
    for row in rows:
        page = row["pages"].split(", ")[0]
        # the row's mapping, whether or not the page declares one (the labels page opens both)
        params = {
            **page_parameters(profile, page, overrides),
            "label_mapping": row["label_mapping"],
        }
        pipe = open_pipeline(params, data_root, build_dir, opened)
        key = pipe.key(row["model"], int(row["replicate"]))
        if key != row["key"]:  # before any training: the job would store what no page reads
            raise RuntimeError(
                f"{row['model']} replicate {row['replicate']}: this job's key is {key} "
                f"(device {pipe.device.type}), the plan's {row['key']} ({row['artifact']}); "
                "were they planned for another device?"
            )
        trained = pipe.model(row["model"], int(row["replicate"]))
        done.append(trained.folder.name)
    return done


@dataclass
class PlanReport:
    """What ``ecgrepro train --plan`` did.

    Attributes
    ----------
    trained : list of str
        Artifact folders the jobs trained (or found stored by another job).
    failed : list of tuple of (str, str)
        ``(job's models, the end of submitit's message: the job's traceback)``.
    already : int
        Artifacts of the plan that were stored before it ran.
    seconds : float
    spans : list of tuple of (str, float, float)
        Each local job's chain and when it started and was seen done
        (``time.perf_counter``), to show the jobs ran side by side.
    submitted : list of submitit.Job
        The Slurm array's jobs, when not waited for (``wait=False``).
    """

    trained: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    already: int = 0
    seconds: float = 0.0
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    submitted: list = field(default_factory=list)


def describe(rows: list[dict]) -> str:
    """``ours1 #0 <- original #0 (published)``: a job's chain in one line."""
    parts = [f"{r['model']} #{r['replicate']}" for r in reversed(rows)]
    return " <- ".join(parts) + f" ({rows[0]['label_mapping']})"


def run_plan(
    profile: str,
    data_root: str,
    build_dir: str,
    overrides: Mapping | None = None,
    pages: list[str] | None = None,
    executor: str = "local",
    jobs: int = 0,
    jobs_per_gpu: int = 1,
    log_folder: str | os.PathLike | None = None,
    slurm: Mapping | None = None,
    wait: bool = True,
    log: Callable[[str], None] | None = print,
) -> PlanReport:
    """Train every missing artifact of a profile's plan as independent jobs.

    Parameters
    ----------
    profile, data_root, build_dir, overrides, pages
        As :func:`ecgrepro.plan.training_plan`.
    executor : {"local", "slurm", "inline"}
        ``local``: processes on this machine, at most ``jobs`` at once, each
        given one GPU (``CUDA_VISIBLE_DEVICES``, ``jobs_per_gpu`` jobs per GPU)
        or, without CUDA, ``cores / jobs`` CPU threads. ``slurm``: one job array
        (``slurm``: submitit's Slurm parameters, e.g. ``{"partition": "gpu",
        "timeout_min": 600}``). ``inline``: in this process, one after another.
    jobs : int
        Local jobs at once; 0: the number of GPUs x ``jobs_per_gpu``, or 2 on the CPU.
        On Slurm: the array's parallelism (0: no cap beyond the cluster's).
    jobs_per_gpu : int
        Local jobs sharing one GPU.
    log_folder : path-like, optional
        submitit's folder (pickled jobs, logs); default ``<build>/jobs``.
    wait : bool
        Slurm: wait for the array and collect its results (default); False:
        return once it is submitted, its jobs in :attr:`PlanReport.submitted`.
    log : callable, optional

    Returns
    -------
    PlanReport
    """
    import submitit
    import torch

    from ecgrepro.plan import training_plan

    if executor not in ("local", "slurm", "inline"):
        raise ValueError(f"unknown executor {executor!r}: local, slurm or inline")
    if jobs < 0 or jobs_per_gpu < 1:
        raise ValueError(
            f"jobs must be >= 0 (0: automatic) and jobs_per_gpu >= 1, not {jobs} and {jobs_per_gpu}"
        )
    t0 = time.perf_counter()
    build = Path(build_dir) if build_dir else REPO_ROOT / "_build"  # setup's default
    # a Slurm job trains on its node's GPU unless told the CPU: plan the keys for that device
    cpu = str((overrides or {}).get("device", "auto")) == "cpu"
    device = ("cpu" if cpu else "cuda") if executor == "slurm" else None
    table = training_plan(profile, data_root, str(build), overrides, pages, log=log, device=device)
    report = PlanReport(already=int(table.stored.sum()) if len(table) else 0)
    chains = plan_jobs(table) if len(table) else []
    if log:
        log(f"[train --plan] {len(chains)} job(s) for {sum(map(len, chains))} missing artifact(s)")
    if not chains:
        return report
    folder = Path(log_folder or build / "jobs")  # flat: an array keeps one submission file
    gpus = torch.cuda.device_count() if executor == "local" else 0
    devices = _visible_gpus(gpus)
    if executor == "local":
        width = jobs or (gpus * jobs_per_gpu if gpus else 2)
    else:
        width = len(chains)
    threads = None if gpus or executor != "local" else max(1, (os.cpu_count() or 1) // width)
    overrides = dict(overrides or {})
    # the executors themselves, not AutoExecutor: its plugin lookup imports pkg_resources
    timeout = (slurm or {}).get("timeout_min", 720)
    running: list = []
    if executor == "slurm":
        ex = submitit.SlurmExecutor(folder=folder)
        params = {k: v for k, v in (slurm or {}).items() if k != "timeout_min"}
        ex.update_parameters(
            job_name=f"ecgrepro-{profile}",
            time=timeout,
            gpus_per_node=1,
            array_parallelism=jobs or len(chains),
            **params,
        )
        with ex.batch():
            for rows in chains:
                job = ex.submit(train_chain, profile, rows, data_root, str(build), overrides)
                running.append((job, rows))
        if not wait:
            report.submitted = [job for job, _ in running]
            if log:
                log(f"[train --plan] submitted {len(running)} job(s) to Slurm, logs in {folder}")
            return report
    elif executor == "inline":  # in this process, one after another (submitit's debug
        for rows in chains:  # executor would open pdb on an error)
            t1 = time.perf_counter()
            try:
                report.trained += train_chain(profile, rows, data_root, str(build), overrides)
            except Exception as exc:
                report.failed.append((describe(rows), f"{type(exc).__name__}: {exc}"))
            report.spans.append((describe(rows), t1, time.perf_counter()))
    else:
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=timeout)
        pending = list(chains)
        free = [devices[i % gpus] for i in range(width)] if gpus else [None] * width
        try:
            _run_local(
                ex,
                pending,
                free,
                running,
                report,
                log,
                profile,
                data_root,
                build,
                overrides,
                threads,
            )
        finally:  # an error or an interrupt here: the jobs still running are cancelled
            for job, *_ in running:
                job.cancel(check=False)
        running = []
    for job, rows in running:  # the Slurm array
        _collect(job, rows, report, log)
    report.seconds = time.perf_counter() - t0
    return report


def _visible_gpus(count: int) -> list[int]:
    """The physical indices of this process's GPUs, as ``CUDA_VISIBLE_DEVICES`` lists them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not visible:
        return list(range(count))
    try:
        return [int(v) for v in visible.split(",")][:count]
    except ValueError:
        raise ValueError(
            f"CUDA_VISIBLE_DEVICES={visible!r}: ecgrepro train --plan assigns GPUs by index; "
            "give indices, not UUIDs"
        ) from None


def _run_local(
    ex, pending, free, running, report, log, profile, data_root, build, overrides, threads
) -> None:
    """Keep ``len(free)`` local jobs running until ``pending`` is empty and all have ended."""
    while pending or running:
        while pending and free:
            rows, slot = pending.pop(0), free.pop(0)
            if slot is not None:
                ex.update_parameters(visible_gpus=[slot], gpus_per_node=1)
            job = ex.submit(train_chain, profile, rows, data_root, str(build), overrides, threads)
            running.append((job, rows, slot, time.perf_counter()))
            if log:
                log(f"[train --plan] started {describe(rows)} (job {job.job_id})")
        for item in [r for r in running if r[0].done()]:
            running.remove(item)
            free.append(item[2])
            report.spans.append((describe(item[1]), item[3], time.perf_counter()))
            _collect(item[0], item[1], report, log)
        if running:
            time.sleep(1.0)


def _collect(job, rows: list[dict], report: PlanReport, log) -> None:
    try:
        report.trained += job.result()
        if log:
            log(f"[train --plan] done {describe(rows)}")
    except Exception as exc:  # submitit.core.utils.FailedJobError, UncompletedJobError, ...
        text = str(exc).strip().splitlines()
        errors = [line for line in text if re.match(r"^\w+(Error|Exception)\b", line.strip())]
        error = errors[-1].strip() if errors else (text[-1] if text else type(exc).__name__)
        report.failed.append((describe(rows), "\n".join(text[-12:])))
        if log:
            log(f"[train --plan] FAILED {describe(rows)}: {error}")
