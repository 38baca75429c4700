"""Each page's tables and figures, as files a reader can download (issue #25, item 8).

A page writes its tables as ``<build>/tables/*.csv`` and its figures as ``<build>/figures/*.png``
(:meth:`ecgrepro.book.page.Page.savefig`, ``DataFrame.to_csv``). The book runner
(:mod:`ecgrepro.book.runner`) records, for each page it executes, which of those files the page
wrote: :func:`output_stamps` before the page runs, :func:`record_outputs` after, into
``<build>/run/<page>.outputs.json``. A file counts as written when it is new or its modification
time or size changed while the page ran; every page writes its CSVs and figures on every run,
also when its models and explanations are re-read from the artifact store, so a re-run lists
the same files.

When the book is staged, :func:`stage_downloads` copies those files into the staged sources'
``_outputs/`` folder, which ``_config.yml`` lists in ``html_extra_path``: the HTML then holds
``tables/<name>.csv`` and ``figures/<name>.png`` at its root. It also ends each staged notebook
(the executed copy in ``<build>/src/notebooks``, never the source notebook) with a "Downloads"
cell, before its references, that links to those copies with their sizes
(:func:`downloads_markdown`). The links are inline HTML, so the PDF, which has no such files,
lists the names and sizes without links.
"""

from __future__ import annotations

import json
import posixpath
import shutil
from pathlib import Path

#: The folders of a build whose files a page's Downloads list links to, and their patterns.
OUTPUT_FOLDERS = {"tables": "*.csv", "figures": "*.png"}
#: The staged folder copied to the HTML root (``html_extra_path`` in ``_config.yml``).
STAGED_OUTPUTS = "_outputs"
#: Id and tag of the Downloads cell in a staged notebook (replaced, never repeated, on restaging).
DOWNLOADS_CELL = "ecgrepro-downloads"
#: Between a size's number and unit, so that the two stay on one line.
NBSP = "\u00a0"
#: Tables the runner itself writes (not a page): copied into the HTML too.
RUNNER_TABLES = ("page_times.csv", "run_report.csv", "claims.csv")


def output_stamps(build_dir: Path) -> dict[str, tuple[int, int]]:
    """The build's tables and figures with their modification time and size.

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder (``tables/*.csv``, ``figures/*.png``).

    Returns
    -------
    dict of str -> (int, int)
        Path relative to ``build_dir`` (POSIX, e.g. ``"tables/table2.csv"``) -> (modification
        time in ns, size in bytes).
    """
    stamps = {}
    for folder, pattern in OUTPUT_FOLDERS.items():
        for path in sorted((Path(build_dir) / folder).glob(pattern)):
            if path.is_file():
                stat = path.stat()
                stamps[f"{folder}/{path.name}"] = (stat.st_mtime_ns, stat.st_size)
    return stamps


def outputs_path(build_dir: Path, page: str) -> Path:
    """Where a page's outputs manifest lives.

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder.
    page : str
        The page's notebook stem.

    Returns
    -------
    pathlib.Path
        ``<build>/run/<page>.outputs.json`` (beside the run facts, ``<page>.json``).
    """
    return Path(build_dir) / "run" / f"{page}.outputs.json"


def clear_outputs(build_dir: Path, page: str) -> None:
    """Remove a page's outputs manifest before it is executed again (so none is stale)."""
    outputs_path(build_dir, page).unlink(missing_ok=True)


def record_outputs(build_dir: Path, page: str, before: dict[str, tuple[int, int]]) -> Path:
    """Write the manifest of the tables and figures a page wrote while it ran.

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder.
    page : str
        The page's notebook stem.
    before : dict
        :func:`output_stamps` taken just before the page ran.

    Returns
    -------
    pathlib.Path
        ``<build>/run/<page>.outputs.json``: ``{"page": page, "files": [...]}``, the paths
        relative to ``build_dir`` of the files that are new or whose modification time or size
        changed, in the order they were written.
    """
    after = output_stamps(build_dir)
    written = sorted((stamp, name) for name, stamp in after.items() if before.get(name) != stamp)
    path = outputs_path(build_dir, page)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"page": page, "files": [name for _, name in written]}
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def read_outputs(build_dir: Path, page: str) -> list[str] | None:
    """The files a page wrote (:func:`record_outputs`).

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder.
    page : str
        The page's notebook stem.

    Returns
    -------
    list of str or None
        Paths relative to ``build_dir``, in the order written; None if the page has no manifest.
    """
    path = outputs_path(build_dir, page)
    if not path.is_file():
        return None
    return list(json.loads(path.read_text())["files"])


def human_size(n_bytes: int) -> str:
    """A file size as a reader reads it, in SI units.

    Parameters
    ----------
    n_bytes : int
        Size in bytes.

    Returns
    -------
    str
        ``812 B``, ``4.2 kB``, ``1.3 MB`` (one decimal from 1 kB on).
    """
    if n_bytes < 1000:
        return f"{n_bytes} B"
    if n_bytes < 1000**2:
        return f"{n_bytes / 1000:.1f} kB"
    return f"{n_bytes / 1000**2:.1f} MB"


def downloads_markdown(files: list[tuple[str, int]], page_path: str) -> str:
    """A page's "Downloads" section (Markdown with inline HTML links).

    Parameters
    ----------
    files : list of (str, int)
        Each file's path relative to the HTML root (``tables/<name>.csv``,
        ``figures/<name>.png``) and its size in bytes, in the order the page wrote them.
    page_path : str
        The page's path relative to the HTML root without suffix (``notebooks/table2``): the
        links are relative to it, so the book opens from any folder.

    Returns
    -------
    str
        A ``## Downloads`` heading and one item per kind (tables, figures), each file linked
        as ``<a href="../tables/table2.csv">table2.csv</a> (4.2 kB)`` (a no-break space before
        the unit); empty if ``files`` is.
    """
    if not files:
        return ""
    kinds = {"tables": "Tables (CSV, full precision)", "figures": "Figures (PNG, full size)"}
    here = posixpath.dirname(page_path) or "."
    lines = [
        "## Downloads",
        "",
        "The files this page wrote, as they were when the book was built:",
        "",
    ]
    for folder, label in kinds.items():
        links = [
            f'<a href="{posixpath.relpath(name, here)}">{posixpath.basename(name)}</a>'
            f" ({human_size(size).replace(' ', NBSP)})"
            for name, size in files
            if name.split("/", 1)[0] == folder
        ]
        if links:
            lines.append(f"- {label}: " + ", ".join(links))
    return "\n".join(lines) + "\n"


def set_downloads_cell(nb_path: Path, markdown: str) -> bool:
    """Put the Downloads cell into an executed notebook, before its references.

    The cell goes before the first Markdown cell that starts with ``## References`` (the page's
    ``{footbibliography}``), or at the end; a Downloads cell from an earlier staging is replaced.

    Parameters
    ----------
    nb_path : pathlib.Path
        A staged, executed notebook (``<build>/src/notebooks/<page>.ipynb``).
    markdown : str
        :func:`downloads_markdown`; empty: only remove an earlier Downloads cell.

    Returns
    -------
    bool
        Whether a Downloads cell was written.
    """
    nb = json.loads(Path(nb_path).read_text())
    cells = [c for c in nb["cells"] if DOWNLOADS_CELL not in c.get("metadata", {}).get("tags", [])]
    if markdown:
        cell = {"cell_type": "markdown", "metadata": {"tags": [DOWNLOADS_CELL]}, "source": markdown}
        if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
            cell = {"id": DOWNLOADS_CELL, **cell}
        at = next(
            (
                i
                for i, c in enumerate(cells)
                if c["cell_type"] == "markdown"
                and "".join(c["source"]).lstrip().startswith("## References")
            ),
            len(cells),
        )
        cells.insert(at, cell)
    nb["cells"] = cells
    Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return bool(markdown)


def stage_downloads(build_dir: Path, src: Path) -> list[str]:
    """Copy each staged page's tables and figures into the HTML; end the page with Downloads.

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder (``tables/``, ``figures/``, ``run/<page>.outputs.json``).
    src : pathlib.Path
        The staged sources (``<build>/src``): the executed notebooks are in ``src/notebooks``;
        ``src/_outputs`` is emptied and refilled with the files the pages wrote (and the
        runner's :data:`RUNNER_TABLES`), to become ``tables/`` and ``figures/`` at the HTML root.

    Returns
    -------
    list of str
        The staged pages without an outputs manifest (executed by an older runner), which get
        no Downloads section; one line names them.
    """
    build_dir, src = Path(build_dir), Path(src)
    staged = src / STAGED_OUTPUTS
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    copied: set[str] = set()

    def copy(name: str) -> int | None:
        source = build_dir / name
        if not source.is_file():
            return None
        if name not in copied:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staged / name)
            copied.add(name)
        return source.stat().st_size

    unrecorded = []
    for nb_path in sorted((src / "notebooks").glob("*.ipynb")):
        written = read_outputs(build_dir, nb_path.stem)
        if written is None:
            unrecorded.append(nb_path.stem)
            written = []
        files = [(name, size) for name in written if (size := copy(name)) is not None]
        set_downloads_cell(nb_path, downloads_markdown(files, f"notebooks/{nb_path.stem}"))
    for name in RUNNER_TABLES:
        copy(f"tables/{name}")
    if unrecorded:
        print("no record of the files written (no Downloads section): " + ", ".join(unrecorded))
    return unrecorded
