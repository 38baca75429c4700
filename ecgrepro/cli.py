"""Command line: execute the notebooks with papermill and build the Jupyter Book.

``ecgrepro book`` and ``ecgrepro pdf`` run the book (:mod:`ecgrepro.book.runner`);
``train``, ``plan``, ``download``, ``export`` and ``import`` train, list, fetch and release
what its pages use. A bad profile, page or parameter, or a missing data root, is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ecgrepro.book.runner import check_pages, run_book, run_pdf
from ecgrepro.catalogue import SETUP_PARAMETERS
from ecgrepro.config import REPO_ROOT, DataNotFoundError, find_data_root, load_profiles
from ecgrepro.overrides import parse_parameter
from ecgrepro.parameters import ParameterError, check_profile, validate

#: Parameters of :func:`ecgrepro.pipeline.setup` that ``ecgrepro train`` takes from the profile.
TRAIN_PARAMETERS = SETUP_PARAMETERS


def add_run_arguments(
    parser: argparse.ArgumentParser, parameter_help: str, build_dir_help: str
) -> None:
    """The arguments ``ecgrepro book`` and ``ecgrepro train`` share: ``--profile``, ``--data``,
    ``--build-dir`` and ``-p NAME VALUE`` (repeatable)."""
    parser.add_argument("--profile", default="quick", help="profile of ecgrepro/profiles.yml")
    parser.add_argument(
        "--data", default=None, help="data root (default: $ECGREPRO_DATA, then ../shared/ecg-data)"
    )
    parser.add_argument("--build-dir", default=None, help=build_dir_help)
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=parameter_help,
    )


def add_train_parser(sub) -> None:
    """The ``train`` subcommand's arguments (see :func:`train_command`)."""
    train = sub.add_parser(
        "train",
        help="train one model into the artifacts the book reuses (also under torchrun)",
        description="Train replicate K of one model with a profile's parameters and store it "
        "where the book's pages look for it. Under `torchrun --nproc_per_node N -m ecgrepro.cli "
        "train ...` the N processes share each batch (DistributedDataParallel: NCCL on GPUs, "
        "gloo on CPUs); rank 0 validates and writes the artifact once.",
    )
    what = train.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--model",
        help="a model of ecgrepro.catalogue.MODELS: original, ours1, ours2, ptbxl_only, lstm, "
        "resnet34_super, shuffled_labels, planted (with the parameters of the page that uses it)",
    )
    what.add_argument(
        "--plan",
        action="store_true",
        help="every artifact of `ecgrepro plan` not stored yet, as independent jobs "
        "(ecgrepro/schedule.py): --executor local (one per GPU, or --jobs on the CPU) or slurm",
    )
    train.add_argument("--executor", choices=["local", "slurm", "inline"], default="local")
    train.add_argument(
        "--jobs", type=int, default=0, help="jobs at once (default: GPUs x --jobs-per-gpu, or 2)"
    )
    train.add_argument("--jobs-per-gpu", type=int, default=1, help="local jobs sharing one GPU")
    train.add_argument("--only", nargs="*", help="--plan: only these pages' models")
    train.add_argument("--slurm-partition", default=None, help="--executor slurm: the partition")
    train.add_argument(
        "--timeout-min", type=int, default=720, help="--plan: each job's time limit, minutes"
    )
    train.add_argument(
        "--no-wait", action="store_true", help="--executor slurm: submit the array and return"
    )
    train.add_argument(
        "--seed-index", type=int, default=0, help="replicate K: trained with seed + K (default 0)"
    )
    add_run_arguments(
        train,
        parameter_help=f"override one parameter ({', '.join(TRAIN_PARAMETERS)}), e.g. -p epochs 5",
        build_dir_help="build folder (default: <repo>/_build)",
    )
    train.add_argument(
        "--sync-bn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="batch norm over the global batch (default: on with several CUDA processes; "
        "torch's SyncBatchNorm has no CPU version)",
    )


def train_command(args) -> int:
    """``ecgrepro train``: one model, as :meth:`ecgrepro.pipeline.Pipeline.model` would train it.

    The parameters are the profile's for the page that uses the model
    (:attr:`ecgrepro.catalogue.ModelEntry.page`) plus the ``-p``
    overrides, so the artifact has the key a ``make book`` with the same
    profile and overrides looks up, and is reused there. Under ``torchrun``
    (``WORLD_SIZE`` set) the process group is joined first
    (:func:`ecgrepro.runtime.init_distributed`); rank 0 reads (and caches) the
    data before the others, so that the signal cache is written once.

    The parameters are checked (:func:`ecgrepro.parameters.validate`, the device's presence
    included) before the data root is looked for.

    Returns
    -------
    int
        0; 2 if the model or a parameter name is unknown.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        For an unknown profile or a value a parameter does not allow (:func:`main` prints it
        as one line and returns 2).
    ecgrepro.config.DataNotFoundError
        If no data root is found (likewise).
    """
    import torch.distributed

    from ecgrepro.catalogue import MODELS
    from ecgrepro.pipeline import setup
    from ecgrepro.plan import model_parameters
    from ecgrepro.runtime import init_distributed

    if args.model not in MODELS:
        print(f"error: unknown model {args.model!r}; known: {list(MODELS)}", file=sys.stderr)
        return 2
    own = model_parameters(args.model)
    overrides = {k: parse_parameter(k, v) for k, v in args.parameter}
    unknown = sorted(set(overrides) - set(TRAIN_PARAMETERS) - set(own))
    if unknown:
        known = TRAIN_PARAMETERS + own
        print(f"error: unknown parameter(s) {unknown}; known: {known}", file=sys.stderr)
        return 2
    profiles = load_profiles()
    check_profile(args.profile, profiles)
    page = MODELS[args.model].page  # the page whose parameters define the model
    page_params = {**profiles[args.profile][page], **overrides}
    params = validate({k: v for k, v in page_params.items() if k in TRAIN_PARAMETERS})
    extra = validate({k: page_params[k] for k in own}, page=page, check_device=False)
    data_root = find_data_root(args.data)
    dist, device = init_distributed(params.pop("device"))
    log = print if dist.is_main else None
    build = str(Path(args.build_dir).resolve()) if args.build_dir else ""
    try:
        pipe = None
        for turn in ("main", "others"):  # rank 0 fills the signal cache, then the others read it
            if (turn == "main") == dist.is_main:
                pipe = setup(str(data_root), build, device=str(device), extra=extra, **params)
            dist.barrier()
        pipe.dist, pipe.sync_bn = dist, args.sync_bn
        if log:
            log(
                f"ecgrepro train: {args.model} replicate {args.seed_index}, profile "
                f"{args.profile}, {dist.world_size} process(es) on {device}, data {data_root}"
            )
        t0 = time.perf_counter()
        trained = pipe.model(args.model, args.seed_index, log=log)
        if log:
            log(
                f"{args.model} replicate {args.seed_index}: artifact {trained.folder} "
                f"({'reused' if trained.reused else 'trained'}, {time.perf_counter() - t0:.0f} s)"
            )
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def train_plan_command(args) -> int:
    """``ecgrepro train --plan``: :func:`ecgrepro.schedule.run_plan` for a profile.

    Prints each job's start and end, then a summary; a failed job's message and
    the end of its log follow.

    Returns
    -------
    int
        0 when every job succeeded; 1 if any failed; 2 for a bad page or parameter.
    """
    from ecgrepro.schedule import run_plan

    check_pages(args.only)
    overrides = {k: parse_parameter(k, v) for k, v in args.parameter}
    data_root = find_data_root(args.data)
    build = str(Path(args.build_dir).resolve()) if args.build_dir else ""
    slurm = {"timeout_min": args.timeout_min}
    if args.slurm_partition:
        slurm["partition"] = args.slurm_partition
    if args.executor != "slurm" and (args.no_wait or args.slurm_partition):
        print("error: --no-wait and --slurm-partition go with --executor slurm", file=sys.stderr)
        return 2
    try:
        report = run_plan(
            args.profile,
            str(data_root),
            build,
            overrides,
            args.only,
            executor=args.executor,
            jobs=args.jobs,
            jobs_per_gpu=args.jobs_per_gpu,
            slurm=slurm,
            wait=not args.no_wait,
        )
    except ValueError as err:  # --jobs or --jobs-per-gpu out of range, CUDA_VISIBLE_DEVICES
        print(f"error: {err}", file=sys.stderr)
        return 2
    if report.submitted:
        print(f"train --plan: submitted {', '.join(j.job_id for j in report.submitted)}")
        return 0
    print(
        f"train --plan: {len(report.trained)} artifact(s) trained or found, "
        f"{report.already} already stored, {len(report.failed)} job(s) failed, "
        f"{report.seconds:.0f} s"
    )
    for what, why in report.failed:
        print(f"failed: {what}\n{why}")
    return 1 if report.failed else 0


#: Training records per second of ``train_one_epoch`` at the paper's input (12 x 15,000 samples,
#: batch 32, float32 with TF32, deterministic) on one NVIDIA H200, measured for issue #26 at
#: commit 71386ba: the default rate of ``ecgrepro plan``'s projected training time.
GPU_TRAINING_RATE = 437.0


def plan_command(args) -> int:
    """``ecgrepro plan``: print :func:`ecgrepro.plan.training_plan` for a profile.

    One line per artifact (model, replicate, training data, epochs, records seen in
    training, key, stored or not), then the totals. Returns 0.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        For an unknown profile or a bad ``-p`` value.
    ecgrepro.config.DataNotFoundError
        If no data root is found.
    """
    from ecgrepro.plan import training_plan

    check_pages(args.only)
    if not args.rate > 0:
        raise ParameterError(f"--rate must be > 0 records/s, got {args.rate:g}")
    overrides = {k: parse_parameter(k, v) for k, v in args.parameter}
    data_root = find_data_root(args.data)
    build = str(Path(args.build_dir).resolve()) if args.build_dir else ""
    table = training_plan(args.profile, str(data_root), build, overrides, args.only, log=print)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if not len(table):
        print(f"profile {args.profile}: no page of this plan trains a model")
        return 0
    with pd_display():
        print(table.drop(columns=["key"]).to_string(index=False))
    stored = table.stored.astype(bool)
    seen, to_train = int(table.records_seen.sum()), int(table.records_seen[~stored].sum())
    full = int(table.full_records_seen.sum())
    print(
        f"profile {args.profile}: {len(table)} artifacts, {int(sum(stored))} stored, "
        f"{len(table) - int(sum(stored))} to train; {seen:,} records seen in training in all "
        f"({to_train:,} still to train)\n"
        f"on the full datasets (every record the label files list, split as here): {full:,} "
        f"records seen in training; at {args.rate:g} records/s, {full / args.rate / 3600:.1f} h "
        "of training steps (validation, scoring and the pages' explanations not counted)"
    )
    return 0


def pd_display():
    """Pandas options for printing a wide table whole."""
    import pandas as pd

    return pd.option_context("display.width", 250, "display.max_colwidth", 80)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ecgrepro`` command."""
    parser = argparse.ArgumentParser(prog="ecgrepro", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="execute the notebooks and build the HTML book")
    add_run_arguments(
        book,
        parameter_help="override one notebook parameter, e.g. -p epochs 5",
        build_dir_help="build folder (default: <repo>/_build); its HTML goes to "
        "BUILD_DIR/_build/html unless it is the default",
    )
    book.add_argument("--only", nargs="*", help="execute only these notebooks (stems)")
    book.add_argument(
        "--no-execute", action="store_true", help="rebuild HTML from the last executed copies"
    )
    pdf = sub.add_parser("pdf", help="build the whole book as one PDF from the executed notebooks")
    pdf.add_argument("--build-dir", default=None, help="build folder (default: <repo>/_build)")
    dl = sub.add_parser(
        "download", help="fetch PTB-XL v1.0.3 and CPSC 2018 from PhysioNet, verified"
    )
    dl.add_argument("root", help="data root to fill (ptb-xl/ and cpsc2018/ are created under it)")
    dl.add_argument("--dataset", nargs="*", default=["ptbxl", "cpsc"], choices=["ptbxl", "cpsc"])
    dl.add_argument("--base-url", default=None, help="mirror replacing the PhysioNet release root")
    add_train_parser(sub)
    plan = sub.add_parser(
        "plan",
        help="list every model artifact a profile's book trains, its key and whether it is stored",
    )
    add_run_arguments(
        plan,
        parameter_help="override one parameter for every page, e.g. -p n_seeds 2",
        build_dir_help="build folder whose artifacts are looked up (default: <repo>/_build)",
    )
    plan.add_argument("--only", nargs="*", help="only these pages (notebook stems)")
    plan.add_argument("--csv", default=None, help="also write the table to this CSV file")
    plan.add_argument(
        "--rate",
        type=float,
        default=GPU_TRAINING_RATE,
        help="training records per second for the projected time (default: "
        f"{GPU_TRAINING_RATE:g}, the training loop at the paper's input on one H200, issue #26)",
    )
    for name, text, folder in (
        ("export", "write every stored model as a release (safetensors + SHA-256 manifest)", "DIR"),
        ("import", "verify a release and install its models so the book trains none", "DIR"),
    ):
        rel = sub.add_parser(name, help=text)
        rel.add_argument("release", metavar=folder, help="the release folder")
        rel.add_argument("--build-dir", default=None, help="build folder (default: <repo>/_build)")
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except (ParameterError, DataNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run_command(args: argparse.Namespace) -> int:
    """Run the subcommand :func:`main` parsed.

    Returns
    -------
    int
        The exit status.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        For a bad profile, ``--only`` page or parameter (before any data is read).
    ecgrepro.config.DataNotFoundError
        If no data root is found.
    """
    if args.command == "train" and args.plan:
        return train_plan_command(args)
    if args.command == "train":
        return train_command(args)
    if args.command == "plan":
        return plan_command(args)
    if args.command != "download":
        build_dir = Path(args.build_dir).resolve() if args.build_dir else REPO_ROOT / "_build"
    if args.command in ("export", "import"):
        from ecgrepro.release import ReleaseError, export_models, import_models

        try:
            if args.command == "export":
                export_models(build_dir, Path(args.release))
            else:
                import_models(Path(args.release), build_dir)
        except ReleaseError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    if args.command == "download":
        from ecgrepro.download import DownloadError, download

        failed = 0
        for name in args.dataset:
            try:
                report = download(name, Path(args.root), base_url=args.base_url)
            except DownloadError as err:  # the checksum list itself
                print(f"{name}: failed: {err}")
                failed += 1
                continue
            print(
                f"{name}: {len(report.fetched)} fetched, {len(report.present)} already present, "
                f"{len(report.failed)} failed"
            )
            for _, why in report.failed:  # each message names the file and why
                print(f"{name}: failed: {why}")
            failed += len(report.failed)
        return 1 if failed else 0

    if args.command == "pdf":
        return run_pdf(build_dir)
    return run_book(
        args.profile, args.parameter, args.data, build_dir, args.only, execute=not args.no_execute
    )


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    raise SystemExit(main())
