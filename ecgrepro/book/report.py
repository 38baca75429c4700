"""The book's run report and the page furniture that states how each page was made.

* :func:`write_run_facts` (called by :func:`ecgrepro.pipeline.setup`) leaves, for the page being
  executed, the device and the data inventory in ``<build>/run/<page>.json``;
* :func:`run_report` gathers, for every executed page, its profile, every parameter value, its
  wall time (papermill's own record in the executed notebook), the device, the data root and
  inventory, the git commit and the versions of the libraries the numbers depend on;
  :func:`write_run_report` writes it as ``tables/run_report.csv`` (``page,profile,parameter,value``)
  and :func:`run_report_markdown` as the book's appendix page;
* :func:`page_parameters` and :func:`figure_caption` are what a notebook shows: the parameters it
  ran with (the injected-parameters cell itself is hidden) and a caption under each figure;
* :func:`run_cost` states, in the page's "About this page" box, what this run of the page cost
  (measured from :func:`page_parameters`, its first code cell, to its last cell), never a typed
  number;
* :func:`shown_path` is how a page and the run report show a folder: relative to the project,
  ``$ECGREPRO_DATA`` or its name, never a machine's absolute path (issue #25).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from ecgrepro.config import DATA_ENV, REPO_ROOT

#: Libraries whose versions the report lists (distribution names).
VERSIONED = (
    "torch",
    "numpy",
    "scikit-learn",
    "shap",
    "captum",
    "zennit",
    "wfdb",
    "neurokit2",
    "papermill",
    "jupyter-book",
)

#: Environment variable naming the page being executed (set by the book runner).
PAGE_ENV = "ECGREPRO_PAGE"
#: When each page's first code cell ran (:func:`page_parameters`), ``time.perf_counter()`` s.
_PAGE_STARTED: dict[str, float] = {}


#: Run report rows holding a folder: shown by :func:`shown_path` (the run facts keep it absolute).
PATH_ROWS = ("data_root", "build_dir", "run.data_root")


def shown_path(path: str | os.PathLike, project: Path = REPO_ROOT) -> str:
    """A folder as a reader is shown it: never the machine's absolute path (issue #25, item 5).

    Parameters
    ----------
    path : str or path-like
        A data root, a build folder, a log file. Empty: ``""``.
    project : pathlib.Path
        The project root (the repository).

    Returns
    -------
    str
        In the order tried: relative to the project (``_build``, ``_build/logs/x.log``); beside
        it, one level up (``../shared/ecg-data``, the default data root); under
        ``$ECGREPRO_DATA`` (``$ECGREPRO_DATA``, ``$ECGREPRO_DATA/ptb-xl``); else the folder's
        name (``ecg-data``). POSIX separators.
    """
    if not str(path):
        return ""
    target = _forms(path)
    for root in _forms(project):
        for t in target:
            if t == root or root in t.parents:
                return t.relative_to(root).as_posix() or "."
    for root in _forms(project):
        beside = root.parent
        for t in target:
            if beside != Path(beside.anchor) and beside in t.parents:  # not all under "/"
                return "../" + t.relative_to(beside).as_posix()
    env = os.environ.get(DATA_ENV)
    for data in _forms(env) if env else ():
        for t in target:
            if t == data or data in t.parents:
                return "/".join((f"${DATA_ENV}", *t.relative_to(data).parts))
    return target[0].name or "."


def _forms(path: str | os.PathLike) -> tuple[Path, ...]:
    """A path made absolute as written, then with its links resolved (if that differs)."""
    written = Path(os.path.abspath(Path(path).expanduser()))
    resolved = written.resolve()
    return (written,) if resolved == written else (written, resolved)


def write_run_facts(build: Path, facts: dict) -> Path | None:
    """Record run facts (device, data inventory) of the page being executed.

    The book runner sets ``$ECGREPRO_PAGE`` to the page's stem before executing it; outside a
    book build (a notebook run by hand, a test) nothing is written. Facts from several calls on
    one page (the labels page sets up both label mappings) are merged; the runner removes a page's
    facts (:func:`clear_run_facts`) before executing it.

    Parameters
    ----------
    build : pathlib.Path
        The build folder; the facts go to ``build / "run" / "<page>.json"``.
    facts : dict
        JSON-serialisable; nested ``datasets`` dicts are merged by dataset name.

    Returns
    -------
    pathlib.Path or None
        The file written, or None outside a book build.
    """
    page = os.environ.get(PAGE_ENV)
    if not page:
        return None
    path = Path(build) / "run" / f"{page}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.is_file() else {}
    datasets = {**old.get("datasets", {}), **facts.get("datasets", {})}
    merged = {**old, **facts, "datasets": datasets}
    path.write_text(json.dumps(merged, indent=1, default=str) + "\n")
    return path


def clear_run_facts(build: Path, page: str) -> None:
    """Remove a page's run facts before it is executed again (so none are stale)."""
    (Path(build) / "run" / f"{page}.json").unlink(missing_ok=True)


def versions() -> dict[str, str]:
    """Installed versions of :data:`VERSIONED` (``"not installed"`` where absent)."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(repo: Path = REPO_ROOT) -> str:
    """``HEAD``'s hash, ``+changes`` if tracked files differ from it; ``unknown`` without git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def run_report(build: Path, pages: list[str]) -> pd.DataFrame:
    """Every executed page's profile, parameters, time, device, data and software, in long form.

    Parameters
    ----------
    build : pathlib.Path
        The build folder: executed notebooks in ``build/src/notebooks``, run facts in
        ``build/run``.
    pages : list of str
        Page stems in the book's order; pages never executed in this build folder get one row
        ``run.seconds = not executed``.

    Returns
    -------
    pandas.DataFrame
        Columns ``page, profile, parameter, value`` (all str). ``parameter`` is a notebook
        parameter's name, or ``run.seconds`` (papermill's duration), ``run.started``,
        ``run.device`` (the torch device the page's models ran on), ``run.data_root``,
        ``run.records.<dataset>.<count>`` (the inventory: ``used``, ``skipped``, ...),
        ``run.warnings`` and ``run.log`` (the warnings the page sent to its log file, and
        the file; :meth:`ecgrepro.book.page.Page.finish`), ``run.commit`` or
        ``version.<library>``. The folders (:data:`PATH_ROWS`) are shown as :func:`shown_path`
        gives them, never absolute (issue #25); the run facts keep them absolute.
    """
    build = Path(build)
    common = {"run.commit": git_commit(), **{f"version.{k}": v for k, v in versions().items()}}
    rows = []
    for page in pages:
        nb_path = build / "src" / "notebooks" / f"{page}.ipynb"
        if not nb_path.is_file():
            rows.append((page, "", "run.seconds", "not executed"))
            continue
        pm = json.loads(nb_path.read_text()).get("metadata", {}).get("papermill", {})
        params = pm.get("parameters", {})
        profile = str(params.get("profile", ""))
        values = {k: v for k, v in params.items() if k != "profile"}
        duration = pm.get("duration")
        values["run.seconds"] = "" if duration is None else f"{float(duration):.1f}"
        values["run.started"] = pm.get("start_time", "")
        facts_path = build / "run" / f"{page}.json"
        facts = json.loads(facts_path.read_text()) if facts_path.is_file() else {}
        values["run.device"] = facts.get("device", "no model (no torch device used)")
        values["run.data_root"] = facts.get("data_root", params.get("data_root", ""))
        for name, counts in facts.get("datasets", {}).items():
            for key, count in counts.items():
                values[f"run.records.{name}.{key}"] = count
        if "warnings" in facts:
            values["run.warnings"] = facts["warnings"]
        if "log" in facts:  # inside the build folder, whose row says where that is
            log = Path(facts["log"])
            values["run.log"] = log.relative_to(build) if log.is_relative_to(build) else log.name
        values.update(common)
        for key, value in values.items():
            text = json.dumps(value) if isinstance(value, list | dict | bool) else str(value)
            rows.append((page, profile, key, shown_path(text) if key in PATH_ROWS else text))
    return pd.DataFrame(rows, columns=["page", "profile", "parameter", "value"])


def write_run_report(report: pd.DataFrame, tables: Path) -> Path:
    """Write :func:`run_report` to ``tables/run_report.csv``; returns the path."""
    path = Path(tables) / "run_report.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    report.to_csv(path, index=False)
    return path


def _cell(value: str) -> str:
    return str(value).replace("|", "\\|")


def run_report_summary(report: pd.DataFrame) -> str:
    """One Markdown row per page: profile, wall time, device, records used/skipped.

    Parameters
    ----------
    report : pandas.DataFrame
        :func:`run_report`.

    Returns
    -------
    str
        A Markdown table, also printed in the build log. ``warnings``: how many the page sent
        to its log file (``-``: not recorded).
    """
    lines = [
        "| page | profile | seconds | device | records used (skipped) | warnings |",
        "|---|---|---:|---|---|---:|",
    ]
    total = 0.0
    for page, rows in report.groupby("page", sort=False):
        v = dict(zip(rows.parameter, rows.value, strict=True))
        seconds = v.get("run.seconds", "")
        try:
            total += float(seconds)
            seconds = f"{float(seconds):,.0f}"
        except ValueError:
            pass
        used = []
        for key in v:
            if key.startswith("run.records.") and key.endswith(".used"):
                name = key[len("run.records.") : -len(".used")]
                skipped = v.get(f"run.records.{name}.skipped", "?")
                used.append(f"{name} {int(v[key]):,} ({skipped})")
        lines.append(
            f"| `{page}` | {_cell(rows.profile.iloc[0]) or '-'} | {seconds} | "
            f"{v.get('run.device', '-')} | {'; '.join(used) or 'metadata only'} | "
            f"{v.get('run.warnings', '-')} |"
        )
    lines.append(f"| **all pages** | | **{total:,.0f}** | | | |")
    return "\n".join(lines) + "\n"


def run_report_markdown(report: pd.DataFrame) -> str:
    """The run report as the book's appendix page (MyST Markdown).

    Parameters
    ----------
    report : pandas.DataFrame
        :func:`run_report`.

    Returns
    -------
    str
    """
    common = report[report.parameter.str.startswith(("run.commit", "version."))]
    first = common.drop_duplicates("parameter")
    software = "\n".join(
        f"| {p.removeprefix('version.')} | `{v}` |"
        for p, v in zip(first.parameter, first.value, strict=True)
        if p.startswith("version.")
    )
    commit = first.loc[first.parameter == "run.commit", "value"]
    out = [
        "# Run report",
        "",
        "Generated when the book was built, from the executed notebooks (papermill records each "
        "page's parameters and duration) and from what each page's setup recorded (the torch "
        "device and the data inventory). The same rows are in `_build/tables/run_report.csv` "
        "(`page,profile,parameter,value`) and the build log prints the summary. A page run by "
        "an earlier build (`ecgrepro book --only ...` re-executes only some pages) keeps that "
        "build's row.",
        "",
        f"**Commit:** `{commit.iloc[0] if len(commit) else 'unknown'}`",
        "",
        "## Pages",
        "",
        run_report_summary(report),
        "Records used: the records whose signals the page's models saw, per dataset (PTB-XL "
        "under each label mapping the page uses); skipped: records listed but unreadable or "
        "unlabelled, each named with its problem on the page itself. Warnings: the Python "
        "warnings raised while the page ran; they are written, with the training and cache "
        "lines, to the page's log file (`run.log` below), not shown on the page.",
        "",
        "## Software",
        "",
        "| library | version |",
        "|---|---|",
        software,
        "",
        *parameter_sections(report),
    ]
    return "\n".join(out) + "\n"


#: Short page names of the run report's page x parameter matrix (a page not listed: its stem).
PAGE_LABELS = {
    "table1_dataset": "T1",
    "table2_generalisation": "T2",
    "table3_retraining": "T3",
    "labels_and_the_gap": "Labels",
    "fig2-5_shap_per_lead": "SHAP",
    "fig6-8_gradcam": "Grad-CAM",
    "companion_a_relevance": "A",
    "companion_b_deletion_mask": "B",
    "companion_c_clusters": "C",
    "faithfulness": "Faith.",
}


def parameter_sections(report: pd.DataFrame) -> list[str]:
    """The run report's parameters: a page x parameter matrix, then each page's own and its facts.

    Parameters
    ----------
    report : pandas.DataFrame
        :func:`run_report`.

    Returns
    -------
    list of str
        Markdown lines: "Parameters shared by pages" (the page x parameter matrix folded to
        fit the column: a row per parameter that two or more pages take and per value, with
        the pages, :data:`PAGE_LABELS`, that ran with it),
        "Each page's own parameters" (one row per page) and "What each page's run recorded"
        (device, data root, records, warnings, log, start: one row per page).
    """
    rows = report[~report.parameter.str.startswith(("run.commit", "version."))]
    pages = list(dict.fromkeys(rows.page))
    label = {p: PAGE_LABELS.get(p, p) for p in pages}
    params = rows[~rows.parameter.str.startswith("run.")]
    facts = rows[rows.parameter.str.startswith("run.")]
    takers = params.groupby("parameter", sort=False).page.nunique()
    shared = [p for p in takers.index if takers[p] > 1]
    value = params.set_index(["parameter", "page"]).value
    out = [
        "## Parameters shared by pages",
        "",
        "The page x parameter matrix, folded so that it fits the page: one row per parameter that "
        "two or more pages take and per value it has, with the pages that ran with that value ("
        + ", ".join(f"{label[p]}: `{p}`" for p in pages)
        + "). A parameter on two rows is one that pages ran with different values (an earlier "
        "build's page, or `--only` with `-p`).",
        "",
        "| parameter | value | pages |",
        "|---|---|---|",
    ]
    for name in shared:
        by_value: dict[str, list[str]] = {}
        for p in pages:
            if (name, p) in value.index:
                by_value.setdefault(str(value[(name, p)]), []).append(label[p])
        for v, takers in by_value.items():
            out.append(f"| `{name}` | {_cell(v) or ' '} | {', '.join(takers)} |")
    out += ["", "## Each page's own parameters", "", "| page | parameters |", "|---|---|"]
    for page in pages:
        own = params[(params.page == page) & ~params.parameter.isin(shared)]
        pairs = zip(own.parameter, own.value, strict=True)
        text = "; ".join(f"`{k}` = {_cell(v)}" for k, v in pairs)
        out.append(f"| `{page}` | {text or '-'} |")
    out += ["", "## What each page's run recorded", "", "| page | facts |", "|---|---|"]
    for page in pages:
        mine = facts[facts.page == page]
        pairs = zip(mine.parameter, mine.value, strict=True)
        text = "; ".join(f"{k.removeprefix('run.')} {_cell(v)}" for k, v in pairs)
        out.append(f"| `{page}` | {text or '-'} |")
    return [*out, ""]


def parameter_names(page: str, notebooks: Path = REPO_ROOT / "notebooks") -> list[str]:
    """Every parameter of a page, in order: its shared ones and its notebook's own.

    As :func:`ecgrepro.parameters.page_declared` (whose errors it raises).
    """
    from ecgrepro.parameters import page_declared

    return list(page_declared(page, notebooks))


def page_parameters(page: str, namespace: dict) -> str:
    """The parameters a page ran with, as one Markdown paragraph for its front matter.

    Papermill's injected-parameters cell is removed from the rendered page; this shows the
    values in force instead (the profile's, any override, or the notebook's defaults).

    Parameters
    ----------
    page : str
        The notebook's stem.
    namespace : dict
        The notebook's ``globals()``.

    Returns
    -------
    str
        Markdown: ``**Parameters** (profile quick): fs_hz = 100, ...``.

    Notes
    -----
    Also starts the page's clock for :func:`run_cost`.
    """
    _PAGE_STARTED[page] = time.perf_counter()
    names = [n for n in parameter_names(page) if n in namespace]
    shown = [n for n in names if n not in ("profile", "data_root", "build_dir")]
    values = ", ".join(f"`{n} = {namespace[n]!r}`" for n in shown)
    return (
        f"**Parameters this page ran with** (profile *{namespace.get('profile', '?')}*): {values}."
    )


def run_cost(page: str, namespace: dict) -> str:
    """What this run of a page cost: wall time since its first code cell, where, at which commit.

    Parameters
    ----------
    page : str
        The notebook's stem (as given to :func:`page_parameters`).
    namespace : dict
        The notebook's ``globals()``: ``profile``, and ``pipe`` (an
        :class:`ecgrepro.pipeline.Pipeline`) or ``pipes`` (a dict of them) where
        the page opened one.

    Returns
    -------
    str
        E.g. ``"412 s (6.9 min) with the quick profile on cpu in float32, 2 CPU cores, commit
        21e5489"`` (the arithmetic: :func:`ecgrepro.runtime.arithmetic`);
        the page glues it as ``run_cost`` for its "About this page" box.

    Raises
    ------
    RuntimeError
        If :func:`page_parameters` was not called for ``page`` in this kernel.
    """
    if page not in _PAGE_STARTED:
        raise RuntimeError(f"{page}: page_parameters() was not called, so its clock never started")
    seconds = time.perf_counter() - _PAGE_STARTED[page]
    pipes = [namespace.get("pipe"), *dict(namespace.get("pipes") or {}).values()]
    devices = sorted({str(p.device) for p in pipes if p is not None and hasattr(p, "device")})
    device = ", ".join(devices) or "no model"
    if devices:
        from ecgrepro.runtime import arithmetic

        speed = {k: namespace[k] for k in ("amp", "compile", "deterministic") if k in namespace}
        device += f" in {arithmetic(**speed)}"
    minutes = f" ({seconds / 60:.1f} min)" if seconds >= 90 else ""
    commit = git_commit()
    commit = commit[:7] + ("+changes" if commit.endswith("+changes") else "")
    return (
        f"{seconds:.0f} s{minutes} with the {namespace.get('profile', '?')} profile on {device}, "
        f"{os.cpu_count()} CPU cores, commit {commit}"
    )


def figure_caption(number: str, what: str, *, models: str, data: str, profile: str) -> str:
    """A figure's caption: what is plotted (with units), the model(s), the data and the profile.

    Parameters
    ----------
    number : str
        The figure's label on its page, e.g. ``"2.1"`` or ``"Figure 6 (published)"``.
    what : str
        What is plotted, with units.
    models : str
        The model(s) whose outputs or explanations are plotted.
    data : str
        The records (dataset, split, how many).
    profile : str
        The page's ``profile`` parameter.

    Returns
    -------
    str
        Markdown, shown under the figure.
    """
    return (
        f"**Book figure {number}.** {what} *Model:* {models}. *Data:* {data}. "
        f"*Profile:* {profile}."
    )


def data_scope(datasets: dict) -> str:
    """Which records a page's numbers rest on: per dataset, records used of records listed.

    Parameters
    ----------
    datasets : dict of str -> ecgrepro.data.ECGDataset
        A pipeline's datasets (``inventory["used"]`` and ``inventory["listed"]``).

    Returns
    -------
    str
        E.g. ``"CPSC 2018: 160 of 6,877 records; PTB-XL: 1,987 of 21,799 records"``.
    """
    names = {"cpsc": "CPSC 2018", "ptbxl": "PTB-XL"}
    parts = []
    for key, ds in datasets.items():
        if key not in names:
            continue
        used, listed = ds.inventory.get("used", 0), ds.inventory.get("listed", 0)
        parts.append(f"{names[key]}: {used:,} of {listed:,} records")
    return "; ".join(parts)


def figures_in_notebooks(notebooks: list[Path]) -> int:
    """Number of PNG figures the rendered pages show (cells removed by tag not counted)."""
    n = 0
    for path in notebooks:
        for cell in json.loads(Path(path).read_text())["cells"]:
            tags = cell.get("metadata", {}).get("tags", [])
            if cell["cell_type"] != "code" or {"remove-cell", "remove-output"} & set(tags):
                continue
            n += sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
    return n


def check_pdf(path: Path, min_pages: int, min_images: int) -> tuple[int, int]:
    """Check that a PDF has at least ``min_pages`` pages and ``min_images`` embedded images.

    Parameters
    ----------
    path : pathlib.Path
        The PDF (``make pdf`` writes ``_build/pdf/book.pdf``).
    min_pages, min_images : int
        The least that is plausible (e.g. the book's figure count, :func:`figures_in_notebooks`).

    Returns
    -------
    (int, int)
        Pages, and embedded images summed over pages (read with pypdf).

    Raises
    ------
    FileNotFoundError
        If the PDF is missing.
    ValueError
        If it has fewer pages or images than asked.
    """
    from pypdf import PdfReader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no PDF at {path}")
    reader = PdfReader(path)
    pages = len(reader.pages)
    images = sum(len(page.images) for page in reader.pages)
    if pages < min_pages:
        raise ValueError(f"{path}: {pages} pages, expected at least {min_pages}")
    if images < min_images:
        raise ValueError(f"{path}: {images} embedded images, expected at least {min_images}")
    return pages, images
