"""Command line: execute the notebooks with papermill and build the Jupyter Book.

``ecgrepro book --profile quick`` (what ``make book`` runs):

1. checks the profile, the ``--only`` pages and every parameter
   (:func:`ecgrepro.parameters.validate`), then that the data root exists
   (one line and exit status 2 if not);
2. executes every notebook named in ``_toc.yml`` with papermill, with the
   profile's parameters (``ecgrepro/profiles.yml``) plus any ``-p NAME VALUE``
   overrides, into ``_build/src/`` (the executed copies);
3. builds the HTML book from those copies with ``execute_notebooks: "off"``
   and warnings as errors, into ``_build/html``: the pages executed in that
   build folder (after ``--only`` on a fresh folder, only those).

A failing notebook stops the build with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ecgrepro.catalogue import SETUP_PARAMETERS
from ecgrepro.config import REPO_ROOT, DataNotFoundError, find_data_root, load_profiles
from ecgrepro.parameters import PARAMETERS, ParameterError, check_profile, validate
from ecgrepro.report import (
    PAGE_ENV,
    check_pdf,
    clear_run_facts,
    figures_in_notebooks,
    run_report,
    run_report_markdown,
    run_report_summary,
    write_run_report,
)


def toc_notebooks(toc_file: Path) -> list[str]:
    """Notebook names (``notebooks/<name>``) listed in ``_toc.yml``, in order."""

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                yield node["file"]
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    toc = yaml.safe_load(toc_file.read_text())
    return [f for f in walk(toc) if f.startswith("notebooks/")]


#: A number in scientific notation that YAML 1.1 reads as a string (``1e-4``, ``2E3``, ``1.5e4``).
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


def parse_value(text: str):
    """A ``-p`` value as YAML, and scientific notation as a float.

    ``5`` is an int, ``0.5`` and ``1e-4`` floats (YAML 1.1, which :func:`yaml.safe_load`
    follows, reads ``1e-4`` as a string), ``true``/``false`` bools, ``[4, 6]`` a list,
    ``cpu`` a string; an empty value is the text itself.

    Parameters
    ----------
    text : str

    Returns
    -------
    object
    """
    value = yaml.safe_load(text)
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return text if value is None else value


def parse_parameter(name: str, text: str):
    """A ``-p NAME VALUE`` value: the text itself for a string parameter, else :func:`parse_value`.

    A string parameter keeps what was typed (``-p amp off`` is ``"off"``, not YAML's False;
    ``-p lstm_lead II``, ``-p data_root 2024``); the others are read by :func:`parse_value`
    and checked by :func:`ecgrepro.parameters.validate`.

    Parameters
    ----------
    name : str
    text : str

    Returns
    -------
    object
    """
    spec = PARAMETERS.get(name)
    return text if spec is not None and spec.kind == "str" else parse_value(text)


def book_pages() -> list[str]:
    """The book's pages: notebook stems in ``_toc.yml`` order."""
    return [Path(n).name for n in toc_notebooks(REPO_ROOT / "_toc.yml")]


def check_pages(only: list[str] | None) -> None:
    """Check the page names of ``--only`` against the book's pages.

    Parameters
    ----------
    only : list of str, optional
        Notebook stems; None or empty: every page.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        If a name is not a page of ``_toc.yml`` (one line listing the known pages).
    """
    pages = book_pages()
    unknown = [p for p in only or () if p not in pages]
    if unknown:
        raise ParameterError(
            f"unknown page(s) in --only: {', '.join(unknown)}; known pages: {', '.join(pages)}"
        )


def execute_notebooks(
    profile: str, overrides: dict, data_root: Path, build_dir: Path, only: list[str] | None = None
) -> list[Path]:
    """Execute the book's notebooks with papermill into ``build_dir / "src"``.

    Every page's parameters (its profile's, the overrides it declares, the data root and build
    folder) are checked (:func:`ecgrepro.parameters.validate`) before the first page runs, so a
    bad value stops the build at once, with one line.

    Parameters
    ----------
    profile : str
        A profile of ``ecgrepro/profiles.yml``.
    overrides : dict
        Parameters that replace the profile's, for every notebook that declares them (values
        as :func:`parse_parameter` reads them; converted by
        :func:`ecgrepro.parameters.validate`).
    data_root : pathlib.Path
        Passed to each notebook as ``data_root``.
    build_dir : pathlib.Path
        ``_build``; notebooks write tables, figures and artifacts under it.
    only : list of str, optional
        Notebook stems to run; the others are not executed.

    Returns
    -------
    list of pathlib.Path
        The executed notebooks.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        For an unknown profile, an unknown page in ``only``, an unknown parameter name or a
        value a page does not allow (before any page runs).
    papermill.PapermillExecutionError
        If a notebook fails.
    """
    import papermill as pm

    profiles = load_profiles()
    check_profile(profile, profiles)
    check_pages(only)
    overrides = validate(overrides)
    src = build_dir / "src"
    plan = []
    for stem in book_pages():
        if only and stem not in only:
            continue
        nb_in = REPO_ROOT / "notebooks" / f"{stem}.ipynb"
        declared = pm.inspect_notebook(str(nb_in))
        params = {
            **profiles[profile].get(stem, {"profile": profile}),
            **overrides,
            "data_root": str(data_root),
            "build_dir": str(build_dir),
        }
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            print(f"[{stem}] not a parameter of this notebook, ignored: {unknown}")
        params = {k: v for k, v in params.items() if k in declared}
        params["profile"] = profile_label(
            profile, {k: overrides[k] for k in overrides if k in declared}
        )
        plan.append((stem, nb_in, validate(params, page=stem)))
    done = []
    for stem, nb_in, params in plan:
        nb_out = src / "notebooks" / f"{stem}.ipynb"
        nb_out.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{stem}] executing with {params}", flush=True)
        t0 = time.perf_counter()
        clear_run_facts(build_dir, stem)
        os.environ[PAGE_ENV] = stem  # the kernel inherits it: setup() records the run facts
        try:
            pm.execute_notebook(
                str(nb_in),
                str(nb_out),
                parameters=params,
                cwd=str(REPO_ROOT),
                kernel_name="python3",
                progress_bar=False,
                log_output=True,
            )
        finally:
            os.environ.pop(PAGE_ENV, None)
        hide_injected_parameters(nb_out)
        seconds = time.perf_counter() - t0
        print(f"[{stem}] done in {seconds:.0f} s", flush=True)
        record_page_time(build_dir / "tables" / "page_times.csv", stem, seconds)
        done.append(nb_out)
    return done


def hide_injected_parameters(nb_path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell`` in an executed notebook.

    The rendered page shows the parameters in its front matter
    (:func:`ecgrepro.report.page_parameters`) instead of a code cell; the executed notebook
    keeps the cell, so it still reruns as it ran.
    """
    nb = json.loads(Path(nb_path).read_text())
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
    Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def profile_label(profile: str, overrides: dict) -> str:
    """How a page names the parameters it ran with: the profile, plus any override.

    A page run with the profile's parameters only says ``quick``; one run with
    ``-p epochs_ours 10`` says ``quick, with epochs_ours=10``, so that no page
    claims a profile it did not run. (A notebook run by hand keeps its own
    default, ``custom``.)

    Parameters
    ----------
    profile : str
    overrides : dict
        The ``-p`` parameters this page declares.

    Returns
    -------
    str
    """
    if not overrides:
        return profile
    return f"{profile}, with " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def record_page_time(path: Path, page: str, seconds: float) -> None:
    """Write one page's execution time into ``page_times.csv`` (``page,seconds``).

    The rows of pages not executed in this build are kept, so a partial build
    (``--only``) updates its pages and leaves the others' last times.
    """
    rows = read_page_times(path)
    rows[page] = seconds
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["page,seconds"] + [f"{p},{s:.1f}" for p, s in rows.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def read_page_times(path: Path) -> dict[str, float]:
    """``page_times.csv`` as page -> seconds, in the order written (empty if absent)."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines()[1:]:
        page, _, seconds = line.rpartition(",")
        out[page] = float(seconds)
    return out


def page_times_markdown(times: dict[str, float], pages: list[str]) -> str:
    """The time per page as a Markdown table, in the book's page order, with the total.

    Parameters
    ----------
    times : dict of str -> float
        Page stem -> seconds (:func:`read_page_times`).
    pages : list of str
        Page stems in the book's order; pages without a time are listed as such.

    Returns
    -------
    str
    """
    if not times:
        return "No page has been executed in this build folder yet.\n"
    lines = ["| page | seconds | minutes |", "|---|---:|---:|"]
    for page in pages:
        if page in times:
            lines.append(f"| `{page}` | {times[page]:,.0f} | {times[page] / 60:.1f} |")
        else:
            lines.append(f"| `{page}` | not executed | |")
    total = sum(times.get(p, 0.0) for p in pages)
    lines.append(f"| **all pages** | **{total:,.0f}** | **{total / 60:.1f}** |")
    return "\n".join(lines) + "\n"


#: Sphinx warnings a partial book (:func:`stage_config`) does not treat as errors: the links and
#: glued values of the other pages point at pages it does not have.
PARTIAL_BOOK_SUPPRESSED = ("ref.doc", "mystnb.glue_ref")


def stage_toc(toc_file: Path, out: Path, executed) -> list[str]:
    """Write the table of contents of the pages that have been executed.

    Parameters
    ----------
    toc_file : pathlib.Path
        The book's ``_toc.yml``.
    out : pathlib.Path
        The staged ``_toc.yml`` to write.
    executed : iterable of str
        Stems of the notebooks with an executed copy.

    Returns
    -------
    list of str
        The pages left out (not executed), in the book's order. Empty: ``toc_file``
        is copied unchanged.
    """
    executed = set(executed)
    left_out = [p for p in (Path(n).name for n in toc_notebooks(toc_file)) if p not in executed]
    if not left_out:
        shutil.copy2(toc_file, out)
        return []

    def kept(node) -> bool:
        name = node.get("file") if isinstance(node, dict) else None
        return not (
            isinstance(name, str) and name.startswith("notebooks/") and Path(name).name in left_out
        )

    def prune(node):
        if isinstance(node, dict):
            return {k: prune(v) for k, v in node.items()}
        if isinstance(node, list):
            return [prune(v) for v in node if kept(v)]
        return node

    toc = prune(yaml.safe_load(toc_file.read_text()))
    out.write_text(yaml.safe_dump(toc, sort_keys=False))
    return left_out


def stage_config(config_file: Path, out: Path, partial: bool) -> None:
    """Write the staged ``_config.yml``: a copy, or for a partial book one that lets its pages
    link to the missing ones.

    A partial book (``--only``, :func:`stage_toc`) still builds with warnings as errors, except
    those of :data:`PARTIAL_BOOK_SUPPRESSED`: the introduction and the pages link to
    (``{doc}``) and glue values from (``{glue:text}``) pages it leaves out.

    Parameters
    ----------
    config_file : pathlib.Path
        The book's ``_config.yml``.
    out : pathlib.Path
    partial : bool
        False: ``config_file`` is copied unchanged.
    """
    if not partial:
        shutil.copy2(config_file, out)
        return
    config = yaml.safe_load(config_file.read_text())
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    suppressed = list(sphinx_config.get("suppress_warnings", []))
    sphinx_config["suppress_warnings"] = suppressed + [
        w for w in PARTIAL_BOOK_SUPPRESSED if w not in suppressed
    ]
    out.write_text(yaml.safe_dump(config, sort_keys=False))


def stage_book(build_dir: Path, mathjax: bool = True) -> Path:
    """Copy the book's sources beside the executed notebooks; vendor MathJax.

    The book is made of the pages executed in this build folder: where a page has no executed
    copy (``--only`` on a fresh folder), the staged ``_toc.yml`` leaves it out
    (:func:`stage_toc`, :func:`stage_config`) and one line names the pages left out; where
    every page has one, ``_toc.yml`` and ``_config.yml`` are copied unchanged.

    Also writes ``book/page_times.md`` into the staged sources: the time per
    page from ``tables/page_times.csv``, which the reproduction notes include; and the run
    report (:mod:`ecgrepro.report`): ``book/run_report.md``, the book's appendix, and
    ``tables/run_report.csv``.

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder; the executed notebooks are in ``build_dir / "src" / "notebooks"``.
    mathjax : bool
        Copy the vendored MathJax into ``_static`` (False only for the smoke test's build,
        whose HTML nobody opens).

    Returns
    -------
    pathlib.Path
        The staged source folder (``build_dir / "src"``).

    Raises
    ------
    FileNotFoundError
        If ``mathjax`` and the vendored MathJax (``_build/vendor/mathjax/es5``, fetched by
        ``make book`` from npm ``mathjax@3``) is missing.
    """
    src = build_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    executed = [nb.stem for nb in (src / "notebooks").glob("*.ipynb")]
    left_out = stage_toc(REPO_ROOT / "_toc.yml", src / "_toc.yml", executed)
    stage_config(REPO_ROOT / "_config.yml", src / "_config.yml", partial=bool(left_out))
    if left_out:
        print(
            f"book of the pages executed in {build_dir}; left out as not executed: "
            + ", ".join(left_out),
            flush=True,
        )
    shutil.copytree(REPO_ROOT / "book", src / "book", dirs_exist_ok=True)
    pages = [Path(n).name for n in toc_notebooks(REPO_ROOT / "_toc.yml")]
    times = page_times_markdown(read_page_times(build_dir / "tables" / "page_times.csv"), pages)
    (src / "book" / "page_times.md").write_text(times)
    report = run_report(build_dir, pages)
    write_run_report(report, build_dir / "tables")
    (src / "book" / "run_report.md").write_text(run_report_markdown(report))
    (src / "_static").mkdir(exist_ok=True)
    (src / "_vendor").mkdir(exist_ok=True)  # html_extra_path: MathJax, copied to the HTML root
    if not mathjax:
        return src
    vendored = REPO_ROOT / "_build" / "vendor" / "mathjax" / "es5"  # `make vendor`
    if not (vendored / "tex-svg.js").is_file():
        raise FileNotFoundError(
            f"vendored MathJax not found at {vendored}; run `make vendor` (npm pack mathjax@3)"
        )
    shutil.rmtree(src / "_static" / "mathjax", ignore_errors=True)  # where earlier builds put it
    shutil.copytree(vendored, src / "_vendor" / "mathjax", dirs_exist_ok=True)
    return src


def build_html(src: Path, out_root: Path) -> None:
    """``jupyter-book build`` with warnings as errors; HTML lands in ``out_root/_build/html``."""
    cmd = [
        "jupyter-book",
        "build",
        str(src),
        "--path-output",
        str(out_root),
        "-W",
        "-n",
        "--keep-going",
    ]
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        cmd[0] = str(exe)
    subprocess.run(cmd, check=True)


def build_pdf(src: Path, build_dir: Path) -> Path:
    """The whole book as one PDF: jupyter-book's LaTeX builder, then xelatex (via latexmk).

    The LaTeX build reads a copy of ``_config.yml`` that also hides every code cell's source
    (``nb_remove_code_source``): a printed page shows the prose, the tables and the figures.

    Parameters
    ----------
    src : pathlib.Path
        Staged sources (:func:`stage_book`).
    build_dir : pathlib.Path
        The PDF is written to ``build_dir / "pdf" / "book.pdf"``; LaTeX works in
        ``build_dir / "latex"``.

    Returns
    -------
    pathlib.Path
        The PDF.

    Raises
    ------
    FileNotFoundError
        If ``xelatex`` or ``latexmk`` is not installed (``make tex`` installs them).
    subprocess.CalledProcessError
        If the LaTeX build fails.
    """
    for tool in ("xelatex", "latexmk"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} not found; `make tex` installs Debian's TeX Live")
    config = yaml.safe_load((src / "_config.yml").read_text())
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["nb_remove_code_source"] = True
    pdf_config = src / "_config_pdf.yml"
    pdf_config.write_text(yaml.safe_dump(config, sort_keys=False))
    work = build_dir / "latex"
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(src), "--builder", "pdflatex"]
    cmd += ["--config", str(pdf_config), "--path-output", str(work), "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    target = build_dir / "pdf" / "book.pdf"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(work / "_build" / "latex" / "book.pdf", target)
    return target


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
    (:func:`ecgrepro.train.init_distributed`); rank 0 reads (and caches) the
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
    from ecgrepro.train import init_distributed

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
    print(
        f"profile {args.profile}: {len(table)} artifacts, {int(sum(stored))} stored, "
        f"{len(table) - int(sum(stored))} to train; {seen:,} records seen in training in all "
        f"({to_train:,} still to train)"
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

    t0 = time.perf_counter()
    if args.command == "pdf":
        src = stage_book(build_dir, mathjax=False)
        pdf_path = build_pdf(src, build_dir)
        executed = sorted((src / "notebooks").glob("*.ipynb"))
        figures = figures_in_notebooks(executed)
        # every executed page is at least a chapter of its own; every figure is embedded
        pages, images = check_pdf(pdf_path, min_pages=len(executed) + 2, min_images=figures)
        print(
            f"PDF written in {time.perf_counter() - t0:.0f} s: {pdf_path}: {pages} pages, "
            f"{images} embedded images for the {figures} figures of {len(executed)} pages"
        )
        return 0
    # everything the user typed is checked before the data root is looked for or a page runs
    check_profile(args.profile, load_profiles())
    check_pages(args.only)
    overrides = validate({k: parse_parameter(k, v) for k, v in args.parameter})
    data_root = find_data_root(args.data)
    print(f"data root: {data_root}; profile: {args.profile}", flush=True)
    if not args.no_execute:
        execute_notebooks(args.profile, overrides, data_root, build_dir, args.only)
    src = stage_book(build_dir)
    print("run report (" + str(build_dir / "tables" / "run_report.csv") + "):", flush=True)
    print(
        run_report_summary(
            pd.read_csv(build_dir / "tables" / "run_report.csv", dtype=str, keep_default_na=False)
        ),
        flush=True,
    )
    out_root = REPO_ROOT if build_dir == REPO_ROOT / "_build" else build_dir
    build_html(src, out_root)
    minutes, seconds = divmod(time.perf_counter() - t0, 60)
    index = out_root / "_build" / "html" / "index.html"  # where jupyter-book writes it
    print(f"book built in {int(minutes)} min {seconds:.0f} s: {index}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    raise SystemExit(main())
