"""The checks run on one page of the built book, once headless Chromium has loaded it.

:func:`_check_page` opens one page in a Playwright browser context, waits for MathJax and the
images, runs the in-page JavaScript below and turns what it finds into :class:`Problem` rows:
console errors and uncaught exceptions, failed resources, broken images, untypeset math and
raw TeX, missing glued values, docutils system messages and broken links or anchors (resolved
on disk by :class:`_LinkChecker`), then what a reader would trip over (missing values and
pandas indexes in tables, elements wider than the column, unresolved citations, images without
a full-size link, absolute machine paths: :mod:`ecgrepro.book.readerchecks`, issue #25).
:func:`_collapse` merges repeats of one problem. Launching the browser, the network guard, the
screenshots, the report and the command live in :mod:`ecgrepro.book.checkbook`, whose
docstring describes every kind of problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from ecgrepro.book.readerchecks import MachinePaths, reader_checks

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


class Problem(NamedTuple):
    """One problem of one page.

    Attributes
    ----------
    page : str
        The page's path relative to the HTML folder, POSIX form (``notebooks/x.html``).
    kind : str
        ``console``, ``pageerror``, ``request``, ``resource``, ``image``, ``math``, ``link``,
        ``glue``, ``docutils``, ``load``, or a reader's kind: ``nan``, ``index``, ``overflow``,
        ``citation``, ``path`` (``image`` too: not linked to its full-size file).
    detail : str
        What went wrong, with the URL, text or target concerned.
    """

    page: str
    kind: str
    detail: str


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


@dataclass
class _PageResult:
    page: object | None
    problems: list[Problem]
    height: int = 0


def _check_page(
    context,
    path: Path,
    name: str,
    links: _LinkChecker,
    error_type,
    paths: MachinePaths | None = None,
) -> _PageResult:
    """Load one page and run every in-page check; ``paths``: the roots the page must not show."""
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
        image_urls = {b["src"] for b in broken}
        readers = reader_checks(page, dom["text"], image_urls, paths or MachinePaths())
    except error_type as exc:
        problems.append(Problem(name, "load", f"{type(exc).__name__}: {exc}".splitlines()[0]))
        page.close()
        return _PageResult(None, problems)

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
    problems.extend(Problem(name, kind, detail) for kind, detail in readers)
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
