"""Command line: execute the notebooks with papermill and build the Jupyter Book.

``ecgrepro book --profile quick`` (what ``make book`` runs):

1. checks that the data root exists (one clear message if not);
2. executes every notebook named in ``_toc.yml`` with papermill, with the
   profile's parameters (``ecgrepro/profiles.yml``) plus any ``-p NAME VALUE``
   overrides, into ``_build/src/`` (the executed copies);
3. builds the HTML book from those copies with ``execute_notebooks: "off"``
   and warnings as errors, into ``_build/html``.

A failing notebook stops the build with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ecgrepro.config import REPO_ROOT, DataNotFoundError, find_data_root, load_profiles


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


def parse_value(text: str):
    """A ``-p`` value as YAML (so ``5`` is an int, ``1e-4`` a float, ``cpu`` a string)."""
    value = yaml.safe_load(text)
    return text if value is None else value


def execute_notebooks(
    profile: str, overrides: dict, data_root: Path, build_dir: Path, only: list[str] | None = None
) -> list[Path]:
    """Execute the book's notebooks with papermill into ``build_dir / "src"``.

    Parameters
    ----------
    profile : str
        A profile of ``ecgrepro/profiles.yml``.
    overrides : dict
        Parameters that replace the profile's, for every notebook that declares them.
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
    KeyError
        For an unknown profile.
    papermill.PapermillExecutionError
        If a notebook fails.
    """
    import papermill as pm

    profiles = load_profiles()
    if profile not in profiles:
        raise KeyError(f"unknown profile {profile!r}; known: {sorted(profiles)}")
    src = build_dir / "src"
    done = []
    for name in toc_notebooks(REPO_ROOT / "_toc.yml"):
        stem = Path(name).name
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
        nb_out = src / "notebooks" / f"{stem}.ipynb"
        nb_out.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{stem}] executing with {params}", flush=True)
        t0 = time.perf_counter()
        pm.execute_notebook(
            str(nb_in),
            str(nb_out),
            parameters=params,
            cwd=str(REPO_ROOT),
            kernel_name="python3",
            progress_bar=False,
            log_output=True,
        )
        seconds = time.perf_counter() - t0
        print(f"[{stem}] done in {seconds:.0f} s", flush=True)
        record_page_time(build_dir / "tables" / "page_times.csv", stem, seconds)
        done.append(nb_out)
    return done


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


def stage_book(build_dir: Path, mathjax: bool = True) -> Path:
    """Copy the book's sources beside the executed notebooks; vendor MathJax.

    Also writes ``book/page_times.md`` into the staged sources: the time per
    page from ``tables/page_times.csv``, which the reproduction notes include.

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
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "book", src / "book", dirs_exist_ok=True)
    pages = [Path(n).name for n in toc_notebooks(REPO_ROOT / "_toc.yml")]
    times = page_times_markdown(read_page_times(build_dir / "tables" / "page_times.csv"), pages)
    (src / "book" / "page_times.md").write_text(times)
    (src / "_static").mkdir(exist_ok=True)
    if not mathjax:
        return src
    vendored = build_dir / "vendor" / "mathjax" / "es5"
    if not (vendored / "tex-svg.js").is_file():
        raise FileNotFoundError(
            f"vendored MathJax not found at {vendored}; run `make vendor` (npm pack mathjax@3)"
        )
    shutil.copytree(vendored, src / "_static" / "mathjax", dirs_exist_ok=True)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ecgrepro`` command."""
    parser = argparse.ArgumentParser(prog="ecgrepro", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="execute the notebooks and build the HTML book")
    book.add_argument("--profile", default="quick", help="profile of ecgrepro/profiles.yml")
    book.add_argument(
        "--data", default=None, help="data root (default: $ECGREPRO_DATA, then ../shared/ecg-data)"
    )
    book.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override one notebook parameter, e.g. -p epochs 5",
    )
    book.add_argument("--only", nargs="*", help="execute only these notebooks (stems)")
    book.add_argument(
        "--no-execute", action="store_true", help="rebuild HTML from the last executed copies"
    )
    dl = sub.add_parser(
        "download", help="fetch PTB-XL v1.0.3 and CPSC 2018 from PhysioNet, verified"
    )
    dl.add_argument("root", help="data root to fill (ptb-xl/ and cpsc2018/ are created under it)")
    dl.add_argument("--dataset", nargs="*", default=["ptbxl", "cpsc"], choices=["ptbxl", "cpsc"])
    dl.add_argument("--base-url", default=None, help="mirror replacing the PhysioNet release root")
    args = parser.parse_args(argv)
    if args.command == "download":
        from ecgrepro.download import download

        failed = 0
        for name in args.dataset:
            report = download(name, Path(args.root), base_url=args.base_url)
            print(
                f"{name}: {len(report.fetched)} fetched, {len(report.present)} already present, "
                f"{len(report.failed)} failed"
            )
            failed += len(report.failed)
        return 1 if failed else 0

    t0 = time.perf_counter()
    build_dir = REPO_ROOT / "_build"
    try:
        data_root = find_data_root(args.data)
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"data root: {data_root}; profile: {args.profile}", flush=True)
    overrides = {k: parse_value(v) for k, v in args.parameter}
    if not args.no_execute:
        execute_notebooks(args.profile, overrides, data_root, build_dir, args.only)
    src = stage_book(build_dir)
    print("time per page (" + str(build_dir / "tables" / "page_times.csv") + "):", flush=True)
    print((src / "book" / "page_times.md").read_text(), flush=True)
    build_html(src, REPO_ROOT)
    minutes, seconds = divmod(time.perf_counter() - t0, 60)
    print(f"book built in {int(minutes)} min {seconds:.0f} s: {build_dir / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    raise SystemExit(main())
