"""The book runner: execute the notebooks with papermill and build the Jupyter Book.

``ecgrepro book --profile quick`` (what ``make book`` runs, :func:`run_book`):

1. checks the profile, the ``--only`` pages and every parameter
   (:func:`ecgrepro.parameters.validate`), then that the data root exists
   (one line and exit status 2 if not);
2. executes every notebook named in ``_toc.yml`` with papermill, with the
   profile's parameters (``ecgrepro/profiles.yml``) plus any ``-p NAME VALUE``
   overrides, into ``_build/src/`` (the executed copies);
3. builds the HTML book from those copies with ``execute_notebooks: "off"``
   and warnings as errors, into ``_build/html``: the pages executed in that
   build folder (after ``--only`` on a fresh folder, only those), each ending with the
   tables and figures it wrote, copied into the HTML (:mod:`ecgrepro.book.downloads`).

A failing notebook stops the build with a non-zero exit status. ``ecgrepro pdf``
(:func:`run_pdf`) builds the whole book as one PDF from the executed copies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ecgrepro.book.downloads import clear_outputs, output_stamps, record_outputs, stage_downloads
from ecgrepro.book.report import (
    PAGE_ENV,
    check_pdf,
    clear_run_facts,
    figures_in_notebooks,
    run_report,
    run_report_markdown,
    run_report_summary,
    write_run_report,
)
from ecgrepro.claims import stage_claims
from ecgrepro.config import REPO_ROOT, find_data_root, load_profiles
from ecgrepro.overrides import parse_parameter
from ecgrepro.parameters import ParameterError, check_profile, page_declared, validate


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
        as :func:`ecgrepro.overrides.parse_parameter` reads them; converted by
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
        declared = page_declared(stem)
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
    _quiet_shared_parameters()
    done = []
    for stem, nb_in, params in plan:
        nb_out = src / "notebooks" / f"{stem}.ipynb"
        nb_out.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{stem}] executing with {params}", flush=True)
        t0 = time.perf_counter()
        clear_run_facts(build_dir, stem)
        clear_outputs(build_dir, stem)
        before = output_stamps(build_dir)  # what the page then writes is its Downloads list
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
        record_outputs(build_dir, stem, before)
        seconds = time.perf_counter() - t0
        print(f"[{stem}] done in {seconds:.0f} s", flush=True)
        record_page_time(build_dir / "tables" / "page_times.csv", stem, seconds)
        done.append(nb_out)
    return done


class _SharedParameterFilter:
    """Drops papermill's "Passed unknown parameter" lines: the runner passes a page only what
    :func:`ecgrepro.parameters.page_declared` lists, and the shared ones are not in the cell."""

    def filter(self, record) -> bool:
        return not str(record.getMessage()).startswith("Passed unknown parameter")


def _quiet_shared_parameters() -> None:
    import logging

    log = logging.getLogger("papermill")
    if not any(isinstance(f, _SharedParameterFilter) for f in log.filters):
        log.addFilter(_SharedParameterFilter())


def hide_injected_parameters(nb_path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell`` in an executed notebook.

    The rendered page shows the parameters in its front matter
    (:func:`ecgrepro.book.report.page_parameters`) instead of a code cell; the executed notebook
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

    Each staged notebook ends with the tables and figures its page wrote, copied into
    ``_outputs`` and so into the HTML (:func:`ecgrepro.book.downloads.stage_downloads`).
    Also writes ``book/page_times.md`` into the staged sources: the time per
    page from ``tables/page_times.csv``, which the reproduction notes include; and the run
    report (:mod:`ecgrepro.book.report`): ``book/run_report.md``, the book's appendix, and
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
    (src / "book" / "claims.md").write_text(stage_claims(build_dir, pages))  # the first page's
    report = run_report(build_dir, pages)
    write_run_report(report, build_dir / "tables")
    (src / "book" / "run_report.md").write_text(run_report_markdown(report))
    (src / "_static").mkdir(exist_ok=True)
    (src / "_vendor").mkdir(exist_ok=True)  # html_extra_path: MathJax, copied to the HTML root
    stage_downloads(build_dir, src)  # html_extra_path _outputs: tables/, figures/; Downloads
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


def run_book(
    profile: str,
    parameters: list,
    data: str | None,
    build_dir: Path,
    only: list[str] | None = None,
    execute: bool = True,
) -> int:
    """``ecgrepro book``: execute the pages, stage the book and build its HTML.

    Everything the user typed is checked before the data root is looked for or a page runs.

    Parameters
    ----------
    profile : str
        A profile of ``ecgrepro/profiles.yml``.
    parameters : list of (str, str)
        The ``-p NAME VALUE`` pairs as typed (read by :func:`ecgrepro.overrides.parse_parameter`).
    data : str, optional
        The data root (:func:`ecgrepro.config.find_data_root`; None: the default).
    build_dir : pathlib.Path
        The build folder; its HTML goes to ``build_dir / "_build" / "html"`` unless it is the
        default (``<repo>/_build``, whose HTML goes to ``<repo>/_build/html``).
    only : list of str, optional
        Execute only these pages (notebook stems).
    execute : bool
        False: rebuild the HTML from the last executed copies.

    Returns
    -------
    int
        0.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        For a bad profile, ``--only`` page or parameter (before any data is read).
    ecgrepro.config.DataNotFoundError
        If no data root is found.
    """
    t0 = time.perf_counter()
    # everything the user typed is checked before the data root is looked for or a page runs
    check_profile(profile, load_profiles())
    check_pages(only)
    overrides = validate({k: parse_parameter(k, v) for k, v in parameters})
    data_root = find_data_root(data)
    print(f"data root: {data_root}; profile: {profile}", flush=True)
    if execute:
        execute_notebooks(profile, overrides, data_root, build_dir, only)
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


def run_pdf(build_dir: Path) -> int:
    """``ecgrepro pdf``: the whole book as one PDF from the executed notebooks, then checked.

    Every executed page is at least a chapter of its own and every figure is embedded
    (:func:`ecgrepro.book.report.check_pdf`).

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder (:func:`build_pdf` writes ``build_dir / "pdf" / "book.pdf"``).

    Returns
    -------
    int
        0.
    """
    t0 = time.perf_counter()
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
