"""Check the built HTML book in headless Chromium: ``python -m ecgrepro.checkbook [HTML_DIR]``.

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
- does not load within :data:`LOAD_TIMEOUT_MS`, or cannot be photographed (kind ``load``);
- links to a page that does not exist, to a ``#fragment`` that matches no ``id`` (or ``name``)
  in its target, or out of the book (kind ``link``). Relative and ``file:`` links are checked;
  ``http(s):``, ``mailto:`` and bare ``#`` are not. Fragments are looked up in the live DOM
  of the page itself and in the HTML source of other pages;
- shows a missing glued value (kind ``glue``): "glue key not found", or one of myst-nb 1.4's
  glue warnings ("No key 'k' found in glue data for this document.", "Glue reference 'k' not
  found in doc 'd'", ...). With ``execute_notebooks: "off"`` myst-nb renders *nothing* for a
  missing key and logs the warning (the build's ``-W`` turns it into an error); the text only
  reaches the page as a docutils system message when ``keep_warnings`` is on, which is why
  system messages and ``problematic`` nodes are reported too (kind ``docutils``).

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
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

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
#: Time allowed to load one page, to typeset its math, and to finish loading its images, in ms.
LOAD_TIMEOUT_MS = 60_000
MATHJAX_TIMEOUT_MS = 30_000
IMAGE_TIMEOUT_MS = 10_000

#: myst-nb 1.4's glue warnings (myst_nb/ext/glue/{utils,roles,directives,crossref}.py).
GLUE_PATTERNS = re.compile(
    r"glue key not found"
    r"|no key .{1,200}? found in glue data"
    r"|pending glue reference document not found"
    r"|glue reference .{1,200}? not found in doc"
    r"|no text/(?:plain|markdown|latex) found in .{1,200}? data"
    r"|failed to format text/plain data",
    re.IGNORECASE,
)

_REFRESH = re.compile(
    r"<meta\s+http-equiv=[\"']?refresh[\"']?\s+content=[\"']\s*\d+\s*;\s*url=([^\"']+)[\"']",
    re.IGNORECASE,
)

_FILE_URL = re.compile(r"file://[^\s)]+")

_WAIT_MATHJAX_JS = """
async (timeoutMs) => {
  const mj = window.MathJax;
  if (!mj || !mj.startup || !mj.startup.promise) return "absent";
  const timeout = new Promise((r) => setTimeout(() => r("timeout"), timeoutMs));
  return Promise.race([
    mj.startup.promise.then(() => "done", (e) => "error: " + e),
    timeout,
  ]);
}
"""

_IMAGES_JS = """
async (timeoutMs) => {
  const imgs = Array.from(document.images);
  for (const img of imgs) if (img.loading === "lazy") img.loading = "eager";
  const settle = (img) => img.complete ? null : new Promise((r) => {
    img.addEventListener("load", r, {once: true});
    img.addEventListener("error", r, {once: true});
  });
  await Promise.race([
    Promise.all(imgs.map(settle)),
    new Promise((r) => setTimeout(r, timeoutMs)),
  ]);
  const broken = [];
  for (const img of imgs) {
    const src = img.currentSrc || img.src;
    const label = img.getAttribute("src") || img.getAttribute("alt") || img.outerHTML.slice(0, 80);
    if (!img.getAttribute("src") && !img.getAttribute("srcset")) {
      broken.push({src: "", why: "<img> without src: " + label});
    } else if (!img.complete) {
      broken.push({src, why: "still loading after " + timeoutMs + " ms: " + label});
    } else if (img.naturalWidth === 0) {
      // an SVG without intrinsic size has naturalWidth 0 yet decodes
      const ok = await img.decode().then(() => true, () => false);
      if (!ok) broken.push({src, why: "did not load: " + label});
    }
  }
  return broken;
}
"""

_MATH_JS = """
() => {
  const out = [];
  const short = (s) => s.replace(/\\s+/g, " ").trim().slice(0, 120);
  for (const el of document.querySelectorAll(".math")) {
    if (el.closest("mjx-container") || el.querySelector("mjx-container")) continue;
    if (el.textContent.trim()) out.push("untypeset math: " + short(el.textContent));
  }
  for (const el of document.querySelectorAll("[data-mjx-error]")) {
    out.push("MathJax error: " + short(el.getAttribute("data-mjx-error")));
  }
  const skipTags = new Set(["SCRIPT", "STYLE", "CODE", "PRE", "TEXTAREA", "NOSCRIPT",
                            "TEMPLATE", "KBD", "SAMP", "MJX-CONTAINER"]);
  const skipClasses = ["math", "highlight"];
  const skipped = (el) => skipTags.has(el.tagName)
    || skipClasses.some((c) => el.classList.contains(c));
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement)
        if (skipped(el)) return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  const tex = /\\$\\$|\\\\\\(|\\\\\\[|\\\\begin\\{|\\$[^$\\n]*\\\\[A-Za-z]+[^$\\n]*\\$/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const m = node.data.match(tex);
    if (m) {
      const i = Math.max(0, m.index - 30);
      out.push("raw TeX in the text: " + short(node.data.slice(i, m.index + 60)));
    }
  }
  return out;
}
"""

_DOM_JS = """
() => ({
  text: document.body ? document.body.innerText : "",
  links: Array.from(document.querySelectorAll("a[href]"), (a) => [a.getAttribute("href"), a.href]),
  ids: Array.from(document.querySelectorAll("[id]"), (e) => e.id)
    .concat(Array.from(document.querySelectorAll("[name]"), (e) => e.getAttribute("name"))),
  docutils: Array.from(document.querySelectorAll(".system-message, .problematic"),
                       (e) => e.textContent.replace(/\\s+/g, " ").trim().slice(0, 200)),
  height: Math.max(document.documentElement.scrollHeight,
                   document.body ? document.body.scrollHeight : 0),
})
"""


class ChromiumNotFoundError(FileNotFoundError):
    """No Chromium executable was found (``$CHROMIUM``, ``/usr/bin/chromium``, ``$PATH``)."""


class Problem(NamedTuple):
    """One problem of one page.

    Attributes
    ----------
    page : str
        The page's path relative to the HTML folder, POSIX form (``notebooks/x.html``).
    kind : str
        ``console``, ``pageerror``, ``request``, ``resource``, ``image``, ``math``, ``link``,
        ``glue``, ``docutils`` or ``load``.
    detail : str
        What went wrong, with the URL, text or target concerned.
    """

    page: str
    kind: str
    detail: str


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


class _Anchors(HTMLParser):
    """Collect the ``id`` and ``name`` attributes of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


class _LinkChecker:
    """Resolve ``<a href>`` targets on disk; parse each target page's anchors once."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._anchors: dict[Path, set[str]] = {}

    def anchors(self, path: Path) -> set[str]:
        if path not in self._anchors:
            parser = _Anchors()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            self._anchors[path] = parser.ids
        return self._anchors[path]

    def check(self, page_path: Path, raw: str, resolved: str, live_ids: set[str]) -> str | None:
        """Return why the link is broken, or None."""
        raw = raw.strip()
        if not raw or raw == "#":
            return None
        parts = urlsplit(resolved)
        if parts.scheme.lower() != "file":
            return None  # http(s), mailto, javascript, ...: not ours to check
        target = Path(url2pathname(unquote(parts.path))).resolve()
        fragment = unquote(parts.fragment)
        if target != self.root and self.root not in target.parents:
            return f"link {raw!r} leaves the book ({target})"
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return f"link {raw!r}: no such file {target.relative_to(self.root).as_posix()}"
        if not fragment or fragment.startswith(":~:"):
            return None
        if target == page_path:
            ids = live_ids
        elif target.suffix.lower() in (".html", ".htm"):
            ids = self.anchors(target)
        else:
            return None
        if fragment not in ids:
            where = target.relative_to(self.root).as_posix()
            return f"link {raw!r}: no id {fragment!r} in {where}"
        return None


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
                found = _check_page(context, path, name, links, PlaywrightError)
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


@dataclass
class _PageResult:
    page: object | None
    problems: list[Problem]
    height: int = 0


def _check_page(context, path: Path, name: str, links: _LinkChecker, error_type) -> _PageResult:
    """Load one page and run every in-page check."""
    problems: list[Problem] = []
    failed: list[tuple[str, str]] = []
    page = context.new_page()

    def on_console(msg) -> None:
        # Chromium's own "Failed to load resource" is reported through requestfailed
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            where = msg.location.get("url", "") if msg.location else ""
            line = msg.location.get("lineNumber") if msg.location else None
            at = f" ({where}:{line})" if where else ""
            problems.append(Problem(name, "console", f"{msg.text}{at}"))

    def on_request_failed(request) -> None:
        failure = request.failure or ""
        if "ERR_BLOCKED_BY_CLIENT" not in failure:  # blocked: already a "request" problem
            failed.append((request.url, failure))

    page.on("console", on_console)

    def on_page_error(exc) -> None:
        where = _FILE_URL.search(getattr(exc, "stack", None) or "")
        at = f" ({where.group(0)})" if where else ""
        problems.append(Problem(name, "pageerror", f"{exc}{at}"))

    page.on("pageerror", on_page_error)
    page.on("requestfailed", on_request_failed)
    try:
        page.goto(path.as_uri(), wait_until="load", timeout=LOAD_TIMEOUT_MS)
        state = page.evaluate(_WAIT_MATHJAX_JS, MATHJAX_TIMEOUT_MS)
        if state == "timeout" or state.startswith("error"):
            problems.append(Problem(name, "math", f"MathJax did not finish: {state}"))
        broken = page.evaluate(_IMAGES_JS, IMAGE_TIMEOUT_MS)
        math = page.evaluate(_MATH_JS)
        dom = page.evaluate(_DOM_JS)
    except error_type as exc:
        problems.append(Problem(name, "load", f"{type(exc).__name__}: {exc}".splitlines()[0]))
        page.close()
        return _PageResult(None, problems)

    image_urls = {b["src"] for b in broken}
    problems.extend(Problem(name, "image", b["why"]) for b in broken)
    problems.extend(
        Problem(name, "resource", f"failed to load {url} ({why})")
        for url, why in failed
        if url not in image_urls
    )
    problems.extend(Problem(name, "math", m) for m in math)
    for match in GLUE_PATTERNS.finditer(dom["text"]):
        lo, hi = max(0, match.start() - 40), match.end() + 40
        snippet = " ".join(dom["text"][lo:hi].split())
        problems.append(Problem(name, "glue", f"missing glued value: ...{snippet}..."))
    problems.extend(
        Problem(name, "docutils", text)
        for text in dom["docutils"]
        if not GLUE_PATTERNS.search(text)
    )
    live_ids = set(dom["ids"])
    seen: set[tuple[str, str]] = set()
    for raw, resolved in dom["links"]:
        if (raw, resolved) in seen:
            continue
        seen.add((raw, resolved))
        why = links.check(path, raw, resolved, live_ids)
        if why:
            problems.append(Problem(name, "link", why))
    # file URLs inside the book, as paths relative to it
    base = links.root.as_uri() + "/"
    problems = [p._replace(detail=p.detail.replace(base, "")) for p in problems]
    return _PageResult(page, _collapse(problems), int(dom["height"]))


def _collapse(problems: list[Problem]) -> list[Problem]:
    """Merge repeats of one problem into one, with the count (``(x12)``), in first-seen order."""
    counts: dict[Problem, int] = {}
    for problem in problems:
        counts[problem] = counts.get(problem, 0) + 1
    return [p if n == 1 else p._replace(detail=f"{p.detail} (x{n})") for p, n in counts.items()]


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
        prog="python -m ecgrepro.checkbook", description=__doc__.split("\n\n")[0]
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
