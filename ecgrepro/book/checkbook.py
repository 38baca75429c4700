"""Check the built HTML book in headless Chromium: ``python -m ecgrepro.book.checkbook [HTML_DIR]``.

Every page of the built book is opened from disk (``file://``) in one headless Chromium
(Debian's ``chromium``, driven by Playwright; no browser is downloaded) and fails the check
when it

- logs a console error or throws an uncaught exception (kinds ``console``, ``pageerror``);
- asks for anything off this machine (kind ``request``): only ``file:``, ``data:``, ``blob:``,
  ``about:`` and ``http(s)``/``ws(s)`` to ``localhost``, ``127.0.0.1`` or ``::1`` may load. Every
  other request is aborted before it is sent (``context.route``), and the host resolver maps
  every other name to nothing, so nothing leaves the machine while checking either;
- fails to load a local resource, a script or a style sheet (kind ``resource``);
- shows a broken image: ``<img>`` without ``src``, or loaded with no pixels (kind ``image``);
- leaves math untypeset (kind ``math``): an element of class ``math`` (Jupyter Book 1.x writes
  ``<span class="math notranslate nohighlight">\\(x\\)</span>``) with no ``mjx-container``
  inside after MathJax 3 has finished, a MathJax TeX error (``data-mjx-error``), or raw TeX in
  the visible text outside ``<script>``, ``<code>``, ``<pre>``, code cells and math (``$$``,
  ``\\(``, ``\\[``, ``\\begin{``, or ``$...$`` around a backslash command; a lone dollar
  amount does not count);
- does not load within :data:`~ecgrepro.book.pagechecks.LOAD_TIMEOUT_MS`, or cannot be
  photographed (kind ``load``);
- links to a page that does not exist, to a ``#fragment`` that matches no ``id`` (or ``name``)
  in its target, or out of the book (kind ``link``). Relative and ``file:`` links are checked;
  ``http(s):``, ``mailto:`` and bare ``#`` are not. Fragments are looked up in the live DOM
  of the page itself and in the HTML source of other pages;
- shows a missing glued value (kind ``glue``): "glue key not found", or one of myst-nb 1.4's
  glue warnings ("No key 'k' found in glue data for this document.", "Glue reference 'k' not
  found in doc 'd'", ...). With ``execute_notebooks: "off"`` myst-nb renders *nothing* for a
  missing key and logs the warning (the build's ``-W`` turns it into an error); the text only
  reaches the page as a docutils system message when ``keep_warnings`` is on, which is why
  system messages and ``problematic`` nodes are reported too (kind ``docutils``);
- makes a reader stumble (issue #25; :mod:`ecgrepro.book.readerchecks` gives the rules): a
  table cell showing "nan", "NaN" or "<NA>" (kind ``nan``); a pandas table showing its default
  index 0, 1, ..., n-1 (kind ``index``); a visible table, image, code block or output area
  wider than the content column, cut off or scrolling sideways (kind ``overflow``); an
  unresolved citation: sphinxcontrib-bibtex's empty mark, or an author-year citation in the
  text ("Name et al. 2020") with no matching entry in the page's reference list (kind
  ``citation``); an image not linked to its full-size file (kind ``image``); an absolute
  machine path in the visible text: the project root, the build folder, the data root, or any
  ``/home/``, ``/root/``, ``/tmp/``, ``/work/``, ``/Users/``, ``C:\\`` path (kind ``path``).

Which files are pages: every ``*.html`` under the HTML folder except Sphinx's generated
``genindex.html``, ``search.html`` and ``py-modindex.html`` at its top, and anything under
``_static/``, ``_sources/``, ``_images/`` or ``_downloads/`` (theme templates, copied
sources, assets). A page that only redirects (Jupyter Book's ``index.html``,
``<meta http-equiv="refresh">``) is checked without a browser: its target must exist.

A full-page PNG of each page is saved under the screenshot folder, at the page's relative
path (``notebooks/table2_generalisation.png``), 1280 CSS pixels wide. A page taller than
:data:`MAX_SCREENSHOT_HEIGHT_PX` is captured down to that height only (Chromium's largest
texture is 16,384 px, and a taller capture costs seconds and megabytes for no review value);
the report lists those pages.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from ecgrepro.book.pagechecks import Problem, _check_page, _collapse, _LinkChecker
from ecgrepro.book.readerchecks import MachinePaths

#: Chromium executables tried, in order, after ``$CHROMIUM``.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: Names looked up on ``$PATH`` last.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
#: Environment variable naming the Chromium executable.
CHROMIUM_ENV = "CHROMIUM"

#: Folders of the built book that hold no pages.
SKIP_DIRS = frozenset({"_static", "_sources", "_images", "_downloads"})
#: Sphinx's generated pages at the top of the book (index, search, module index).
SKIP_PAGES = frozenset({"genindex.html", "search.html", "py-modindex.html"})

#: URL schemes that never leave the machine.
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})
#: Hosts that ``http(s)`` and ``ws(s)`` may reach.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

VIEWPORT = {"width": 1280, "height": 900}
#: Screenshots are cut at this height, in CSS pixels.
MAX_SCREENSHOT_HEIGHT_PX = 16000

_REFRESH = re.compile(
    r"<meta\s+http-equiv=[\"']?refresh[\"']?\s+content=[\"']\s*\d+\s*;\s*url=([^\"']+)[\"']",
    re.IGNORECASE,
)


class ChromiumNotFoundError(FileNotFoundError):
    """No Chromium executable was found (``$CHROMIUM``, ``/usr/bin/chromium``, ``$PATH``)."""


@dataclass
class Report:
    """What :func:`check_book` found.

    Attributes
    ----------
    html_dir : pathlib.Path
        The HTML folder checked.
    pages : list of str
        The pages checked, relative to ``html_dir``.
    problems : list of Problem
        Every problem, in page order; empty when the book passes.
    blocked : list of str
        The URLs of the requests aborted because they would have left the machine.
    seconds : float
        Wall time of the check, browser start included, in seconds.
    screenshots : list of pathlib.Path
        The PNG files written.
    truncated : list of str
        Pages whose screenshot was cut at :data:`MAX_SCREENSHOT_HEIGHT_PX`.
    """

    html_dir: Path
    pages: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    screenshots: list[Path] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no page has a problem."""
        return not self.problems

    def kinds(self, page: str | None = None) -> set[str]:
        """The kinds of problem found, on one page or on all.

        Parameters
        ----------
        page : str, optional
            A page relative to ``html_dir``; all pages when omitted.

        Returns
        -------
        set of str
        """
        return {p.kind for p in self.problems if page is None or p.page == page}


def find_chromium(explicit: str | os.PathLike | None = None) -> Path:
    """Locate a Chromium executable.

    Parameters
    ----------
    explicit : str or path-like, optional
        Used as is when given.

    Returns
    -------
    pathlib.Path
        ``explicit``, else ``$CHROMIUM``, else the first of :data:`CHROMIUM_CANDIDATES` that
        exists, else the first of :data:`CHROMIUM_NAMES` on ``$PATH``.

    Raises
    ------
    ChromiumNotFoundError
        If none is found, or if ``explicit`` or ``$CHROMIUM`` names a missing file.
    """
    for source, value in (
        ("argument", explicit),
        (f"${CHROMIUM_ENV}", os.environ.get(CHROMIUM_ENV)),
    ):
        if value:
            path = Path(value)
            if not path.is_file():
                raise ChromiumNotFoundError(f"Chromium from the {source} not found: {path}")
            return path
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ChromiumNotFoundError(
        f"No Chromium found (${CHROMIUM_ENV}, {', '.join(CHROMIUM_CANDIDATES)}, "
        f"{', '.join(CHROMIUM_NAMES)} on $PATH). Install Debian's: "
        "sudo apt-get install chromium chromium-driver (or set $CHROMIUM)."
    )


def find_pages(html_dir: str | os.PathLike) -> list[str]:
    """List the pages of a built book.

    Parameters
    ----------
    html_dir : str or path-like
        The HTML folder (``_build/html``).

    Returns
    -------
    list of str
        Every ``*.html`` below ``html_dir``, relative and in POSIX form, sorted, without
        :data:`SKIP_PAGES` at the top nor anything under :data:`SKIP_DIRS`.
    """
    root = Path(html_dir)
    pages = []
    for path in root.rglob("*.html"):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or (len(rel.parts) == 1 and rel.name in SKIP_PAGES):
            continue
        pages.append(rel.as_posix())
    return sorted(pages)


def is_local_url(url: str) -> bool:
    """Whether loading ``url`` stays on this machine.

    Parameters
    ----------
    url : str

    Returns
    -------
    bool
        True for ``file:``, ``data:``, ``blob:``, ``about:`` and ``http(s)``/``ws(s)`` URLs
        whose host is in :data:`LOCAL_HOSTS`.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES:
        return True
    return scheme in ("http", "https", "ws", "wss") and (parts.hostname or "") in LOCAL_HOSTS


def _redirect_target(path: Path) -> str | None:
    """The ``url=`` of a page whose only job is a ``<meta http-equiv="refresh">``, else None."""
    if path.stat().st_size > 2048:
        return None
    match = _REFRESH.search(path.read_text(encoding="utf-8", errors="replace"))
    return match.group(1).strip() if match else None


def check_book(
    html_dir: str | os.PathLike = "_build/html",
    screenshot_dir: str | os.PathLike | None = None,
    chromium: str | os.PathLike | None = None,
    pages: list[str] | None = None,
) -> Report:
    """Open every page of a built book in headless Chromium and collect its problems.

    Parameters
    ----------
    html_dir : str or path-like
        The built book (Jupyter Book 1.x, ``_build/html``).
    screenshot_dir : str or path-like, optional
        Where to save one full-page PNG per page, mirroring the pages' relative paths. No
        screenshots when omitted.
    chromium : str or path-like, optional
        The Chromium executable; :func:`find_chromium` when omitted.
    pages : list of str, optional
        Pages to check, relative to ``html_dir``; :func:`find_pages` when omitted. Links
        from them into the rest of the book are still checked against the files on disk.

    Returns
    -------
    Report
        The pages checked, the problems (kinds listed in the module docstring), the blocked
        requests and the wall time.

    Raises
    ------
    FileNotFoundError
        If ``html_dir`` is not a folder, or a page given in ``pages`` does not exist.
    ChromiumNotFoundError
        If no Chromium executable is found.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    root = Path(html_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"no built book at {root} (run `make book` first)")
    executable = find_chromium(chromium)
    names = find_pages(root) if pages is None else [Path(p).as_posix() for p in pages]
    for name in names:
        if not (root / name).is_file():
            raise FileNotFoundError(f"no page {name} under {root}")
    shots = Path(screenshot_dir) if screenshot_dir is not None else None
    report = Report(html_dir=root, pages=list(names))
    links = _LinkChecker(root)
    machine = MachinePaths.of_book(root)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(executable),
            headless=True,
            args=[
                "--no-sandbox",
                # belt and braces: a request that escaped the route below resolves nowhere
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , "
                "EXCLUDE ::1",
                "--disable-background-networking",
                "--disable-component-update",
                "--dns-prefetch-disable",
                "--no-pings",
            ],
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, service_workers="block")
            current = {"page": ""}

            def guard(route) -> None:
                url = route.request.url
                if is_local_url(url):
                    route.fallback()
                    return
                report.blocked.append(url)
                report.problems.append(
                    Problem(current["page"], "request", f"request blocked: {url}")
                )
                route.abort("blockedbyclient")

            context.route("**/*", guard)
            if hasattr(context, "route_web_socket"):

                def guard_ws(ws) -> None:
                    if is_local_url(ws.url):
                        ws.connect_to_server()
                        return
                    report.blocked.append(ws.url)
                    report.problems.append(
                        Problem(current["page"], "request", f"request blocked: {ws.url}")
                    )
                    ws.close()

                context.route_web_socket(re.compile(".*"), guard_ws)

            for name in names:
                current["page"] = name
                path = (root / name).resolve()
                target = _redirect_target(path)
                if target is not None:
                    why = links.check(path, target, urljoin(path.as_uri(), target), set())
                    if why:
                        report.problems.append(Problem(name, "link", f"redirect: {why}"))
                    continue
                found = _check_page(context, path, name, links, PlaywrightError, machine)
                report.problems.extend(found.problems)
                if shots is not None and found.page is not None:
                    out = shots / Path(name).with_suffix(".png")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    kwargs = {}
                    if found.height > MAX_SCREENSHOT_HEIGHT_PX:
                        kwargs["clip"] = {
                            "x": 0,
                            "y": 0,
                            "width": VIEWPORT["width"],
                            "height": MAX_SCREENSHOT_HEIGHT_PX,
                        }
                        report.truncated.append(name)
                    try:
                        found.page.screenshot(
                            path=str(out), full_page=True, animations="disabled", **kwargs
                        )
                        report.screenshots.append(out)
                    except PlaywrightError as exc:
                        report.problems.append(Problem(name, "load", f"screenshot failed: {exc}"))
                if found.page is not None:
                    found.page.close()
        finally:
            browser.close()
    report.problems = _collapse(report.problems)
    report.seconds = time.perf_counter() - start
    return report


def format_report(report: Report) -> str:
    """Render a report as the command prints it.

    Parameters
    ----------
    report : Report

    Returns
    -------
    str
        Problems grouped per page, then one summary line.
    """
    lines = []
    by_page: dict[str, list[Problem]] = {}
    for problem in report.problems:
        by_page.setdefault(problem.page, []).append(problem)
    for page, problems in by_page.items():
        lines.append(f"{page}: {len(problems)} problem(s)")
        lines.extend(f"  [{p.kind}] {p.detail}" for p in problems)
    if report.truncated:
        lines.append(
            f"screenshots cut at {MAX_SCREENSHOT_HEIGHT_PX} px: {', '.join(report.truncated)}"
        )
    lines.append(
        f"check-book: {len(report.pages)} pages checked, {len(report.blocked)} requests blocked, "
        f"{len(report.problems)} problems, {len(report.screenshots)} screenshots, "
        f"{report.seconds:.1f} s ({report.html_dir})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Check a built book; print the problems; return 0 only when there are none."""
    parser = argparse.ArgumentParser(
        prog="python -m ecgrepro.book.checkbook", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("html_dir", nargs="?", default="_build/html", help="the built book")
    parser.add_argument(
        "--screenshots", default="_build/screenshots", metavar="DIR", help="PNG folder"
    )
    parser.add_argument("--no-screenshots", action="store_true", help="skip the screenshots")
    parser.add_argument(
        "--page", action="append", metavar="REL", help="check only this page (repeatable)"
    )
    parser.add_argument("--chromium", help="Chromium executable (default: $CHROMIUM, ...)")
    args = parser.parse_args(argv)
    if not (Path(args.html_dir) / "index.html").is_file():
        print(f"check-book: no {args.html_dir}/index.html; run `make book` first", file=sys.stderr)
        return 2
    try:
        report = check_book(
            args.html_dir,
            None if args.no_screenshots else args.screenshots,
            chromium=args.chromium,
            pages=args.page,
        )
    except ChromiumNotFoundError as exc:
        print(f"check-book: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
