"""What a reader of one page would trip over: issue #25 ("Done when", first bullet).

:func:`reader_checks` runs once per page, inside :func:`ecgrepro.book.pagechecks._check_page`,
after the images have loaded. One in-page script (:data:`_READER_JS`) looks at the page's
article (``article.bd-article``, else ``article``, ``main``, ``body``) as laid out at 1280 CSS
pixels; the text checks run here, in Python. It returns ``(kind, detail)`` pairs:

- ``nan``: a visible table cell whose whole text is a missing value (:data:`MISSING_TEXTS`);
- ``index``: a pandas table (``table.dataframe``, or a Styler's ``table#T_...``) whose first
  column shows unnamed row headers 0, 1, 2, ..., n-1 (a default ``RangeIndex``; pandas'
  ``...`` row of a truncated frame allowed);
- ``overflow``: a visible table, image, SVG, code block or output area of the article wider
  than the article's content box (its box reaches past it), or one whose content is wider than
  its own clipped or scrolling box (cut off, or a horizontal scroll bar). Only the innermost
  such element is named. Content that sphinx-book-theme lets into the margin (a cell tagged
  ``full-width``, :data:`MARGIN_CLASSES`) is measured against that box instead. Hidden
  elements (a collapsed "Show code cell source") do not count;
- ``citation``: sphinxcontrib-bibtex's mark of an unresolved key (an empty ``[]`` or ``()``
  ``span.bibtex-citation``), and a text citation ("Name et al. YEAR", "Name et al., YEAR",
  "Name et al. (YEAR)", "Name and Name (YEAR)", "Name and Name, YEAR", "Name & Name YEAR")
  whose names and year do not appear together in one entry of the page's own reference list
  (``{footbibliography}``: ``aside.footnote``; ``{bibliography}``: ``div.citation``). Code,
  math and the list itself are not read;
- ``image``: a visible image of the article not inside an ``<a href>`` to an image file (its
  full-size PNG); a broken image is left to the broken-image check;
- ``path``: an absolute machine path in the visible text: one of :class:`MachinePaths`
  (project root, build folder, data roots) or any ``/home/``, ``/root/``, ``/tmp/``,
  ``/work/``, ``/Users/``, ``C:\\`` path (:data:`ABSOLUTE_PATH`).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

#: Whole-cell texts that show a missing value (pandas: ``nan``, ``NaN``, ``<NA>``, ``NaT``).
MISSING_TEXTS = ("nan", "NaN", "<NA>", "NaT")
#: Tolerance of the width comparisons, in CSS pixels (sub-pixel layout, borders).
OVERFLOW_TOLERANCE_PX = 2
#: Link targets that count as a full-size image file.
#: sphinx-book-theme's classes of content that may reach into the margin (``full-width`` tag).
MARGIN_CLASSES = ".full-width, .tag_full-width, .margin, .tag_margin, aside.sidebar"
IMAGE_FILE = re.compile(r"\.(?:png|jpe?g|gif|svg|webp|avif|bmp|tiff?|pdf)$", re.IGNORECASE)

_STOP = "/\\s'\"`<>()\\[\\]{},;|"
_PATH_TAIL = re.compile(f"[^{_STOP[1:]}]*")
#: Generic absolute machine paths (POSIX home, root, temporary and work folders; Windows drives).
ABSOLUTE_PATH = re.compile(
    rf"(?<![\w.~:/\\-])/(?:home|root|tmp|work|Users)(?=$|[{_STOP}])(?:/[^{_STOP[1:]}]*)*"
    rf"|(?<![\w.~/\\-])[A-Za-z]:\\[^{_STOP[1:]}]*"
    rf"|(?<=file://)/[^{_STOP[1:]}]+"
)

_NAME = r"[^\W\d_][\w'’\-]*"
_YEAR = r"(?:1[6-9]|20)\d\d[a-z]?"
_SEP = r"(?:\s*,\s*|\s+)"
#: Text citations read on a page; each match has ``names`` and ``year``.
CITATION_FORMS = (
    re.compile(rf"(?P<a>{_NAME})\s+et\s+al\.?{_SEP}(?:\((?P<y1>{_YEAR})\)|(?P<y2>{_YEAR})\b)"),
    re.compile(rf"(?P<a>{_NAME})\s+(?:and|&)\s+(?P<b>{_NAME}){_SEP}\((?P<y1>{_YEAR})\)"),
    re.compile(rf"(?P<a>{_NAME})\s+(?:and|&)\s+(?P<b>{_NAME})\s*,\s*(?P<y1>{_YEAR})\b"),
    re.compile(rf"(?P<a>{_NAME})\s*&\s*(?P<b>{_NAME})\s+(?P<y1>{_YEAR})\b"),
)
#: Capitalised words that are not author names ("Table and Figure (2018)").
NOT_NAMES = frozenset(
    "The This That These In On See And Or Table Tables Figure Figures Fig Section Page Part "
    "Challenge Companion Appendix Chapter Eq Equation Ours Original Paper".split()
)

_READER_JS = """
(opts) => {
  const root = document.querySelector("article.bd-article") || document.querySelector("article")
    || document.querySelector("main") || document.body;
  const clean = (s) => (s || "").replace(/\\s+/g, " ").trim();
  const short = (s, n) => { s = clean(s); return s.length > n ? s.slice(0, n - 1) + "…" : s; };
  const visible = (el) => el.checkVisibility
    ? el.checkVisibility({visibilityProperty: true}) && el.getClientRects().length > 0
    : el.getClientRects().length > 0;
  const heading = (el) => {
    const h = document.evaluate("preceding::*[self::h1 or self::h2 or self::h3 or self::h4]"
      + "[1]", el, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
    const text = h ? clean(h.textContent).replace(/\\s*#$/, "") : "";
    return text ? ` under "${short(text, 60)}"` : "";
  };
  const tables = Array.from(root.querySelectorAll("table"));
  const tableLabel = (t) => {
    const head = t.tHead && t.tHead.rows.length ? t.tHead.rows[0] : t.rows[0];
    const cols = head ? Array.from(head.cells, (c) => clean(c.textContent)).filter(Boolean) : [];
    const shown = cols.slice(0, 3).map((c) => short(c, 24)).join(", ");
    const more = cols.length > 3 ? ", …" : "";
    return `table ${tables.indexOf(t) + 1}${heading(t)}` + (shown ? ` (${shown}${more})` : "");
  };
  const label = (el) => {
    if (el.tagName === "TABLE") return tableLabel(el);
    if (el.tagName === "IMG") {
      const src = el.getAttribute("src") || "";
      const name = src.startsWith("data:") ? "(embedded data: URI)" : src.split("/").pop();
      return `image ${short(name, 50)}${heading(el)}`;
    }
    if (el.tagName === "PRE") return `code block "${short(el.textContent, 40)}"${heading(el)}`;
    const what = el.matches(".cell_output, .output") ? "output area" : el.tagName.toLowerCase();
    return `${what}${heading(el)}`;
  };

  const grid = (t) => {
    const g = [];
    Array.from(t.rows).forEach((row, r) => {
      g[r] = g[r] || [];
      let c = 0;
      for (const cell of row.cells) {
        while (g[r][c]) c += 1;
        for (let i = 0; i < (cell.rowSpan || 1); i++)
          for (let j = 0; j < (cell.colSpan || 1); j++) (g[r + i] = g[r + i] || [])[c + j] = cell;
        c += cell.colSpan || 1;
      }
    });
    return g;
  };
  const join = (cells, self) => Array.from(new Set(cells)).filter((x) => x && x !== self)
    .map((x) => short(x.textContent, 30)).filter(Boolean).join(" / ");
  const missing = new Set(opts.missing);
  const nan = [];
  for (const t of tables) {
    const hits = [];
    let g = null;
    for (const cell of t.querySelectorAll("td, th")) {
      if (cell.closest("table") !== t || !missing.has(clean(cell.textContent))) continue;
      if (!visible(cell)) continue;
      g = g || grid(t);
      const r = cell.parentElement.rowIndex, c = g[r].indexOf(cell);
      const nHead = t.tHead ? t.tHead.rows.length : 0;
      const rowCells = g[r].slice(0, c).filter((x) => x.tagName === "TH");
      const row = join(rowCells.length ? rowCells : g[r].slice(0, 1), cell);
      const col = join(g.slice(0, nHead).map((cells) => cells[c]), cell);
      const at = [row ? `row "${row}"` : "", col ? `column "${col}"` : ""];
      hits.push(at.filter(Boolean).join(", ") || clean(cell.textContent));
    }
    if (hits.length) nan.push({table: tableLabel(t), n: hits.length, first: hits[0]});
  }

  const index = [];
  for (const t of tables) {
    if (!(t.classList.contains("dataframe") || /^T_/.test(t.id)) || !visible(t)) continue;
    const named = t.tHead && Array.from(t.tHead.rows)
      .some((r) => r.cells.length && clean(r.cells[0].textContent) !== "");
    if (named) continue;
    const rows = Array.from(t.tBodies).flatMap((b) => Array.from(b.rows));
    let expect = 0, gap = false, ok = rows.length > 0, last = -1, shown = 0;
    for (const r of rows) {
      const c = r.cells[0];
      const text = c ? clean(c.textContent) : "";
      if (!c || c.tagName !== "TH") { ok = false; break; }
      if (text === "..." || text === "…") {
        if (gap || shown === 0) { ok = false; break; }
        gap = true; expect = null; continue;
      }
      if (!/^\\d+$/.test(text)) { ok = false; break; }
      const v = Number(text);
      if (expect !== null ? v !== expect : v <= last) { ok = false; break; }
      last = v; expect = v + 1; shown += 1;
    }
    if (ok) index.push({table: tableLabel(t), last, rows: shown});
  }

  const inner = (el) => {
    const cs = getComputedStyle(el), b = el.getBoundingClientRect();
    return [b.left + parseFloat(cs.paddingLeft) + parseFloat(cs.borderLeftWidth),
            b.right - parseFloat(cs.paddingRight) - parseFloat(cs.borderRightWidth)];
  };
  const [left, right] = inner(root);
  const tol = opts.tolerance;
  const wide = [];
  const candidates = root.querySelectorAll("table, img, svg, pre, div.highlight, .cell_output, "
    + ".output, figure, video, iframe, canvas, .pst-scrollable-table-container, .table-wrapper");
  for (const el of candidates) {
    if (el.closest("mjx-container") || !visible(el)) continue;
    const r = el.getBoundingClientRect();
    // sphinx-book-theme's full-width cells and margin content may use the margin
    const margin = el.closest(opts.marginClasses);
    const [lo, hi] = margin && root.contains(margin) ? inner(margin) : [left, right];
    const over = Math.max(r.right - hi, lo - r.left);
    const ox = getComputedStyle(el).overflowX;
    const clips = ox !== "visible" && el.clientWidth > 0
      && el.scrollWidth > el.clientWidth + tol;
    if (over > tol) {
      let how = "spills";
      for (let a = el.parentElement; a && a !== root.parentElement; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== "visible") { how = "is cut off or scrolls"; break; }
      }
      wide.push({el, detail: `${label(el)} is ${Math.round(r.width)} px wide and ${how} `
        + `${Math.round(over)} px past the ${Math.round(hi - lo)} px content column`});
    } else if (clips) {
      const how = ox === "hidden" || ox === "clip" ? "is cut off" : "needs a horizontal scroll bar";
      wide.push({el, detail: `${label(el)} ${how}: its content is ${el.scrollWidth} px wide `
        + `in a ${el.clientWidth} px box (content column ${Math.round(hi - lo)} px)`});
    }
  }
  const overflow = wide.filter((w) => !wide.some((o) => o !== w && w.el.contains(o.el)))
    .map((w) => w.detail);

  const images = [];
  for (const img of root.querySelectorAll("img")) {
    if (!visible(img)) continue;
    const a = img.closest("a[href]");
    const href = a ? a.getAttribute("href") : "";
    const file = href.split(/[?#]/)[0];
    if (!a) images.push({src: img.currentSrc || img.src, has: !!img.getAttribute("src"),
                         detail: `${label(img)} is not linked to its full-size file`});
    else if (!new RegExp(opts.imageFile, "i").test(file))
      images.push({src: img.currentSrc || img.src, has: !!img.getAttribute("src"),
                   detail: `${label(img)} links to ${short(href, 60)}, not to an image file`});
  }

  const unresolved = [];
  for (const el of root.querySelectorAll(".bibtex-citation")) {
    const text = clean(el.textContent);
    if (!el.querySelector("a") || /^[\\[(]\\s*[\\])]$/.test(text))
      unresolved.push(`unresolved citation mark "${short(text, 40)}"${heading(el)}`);
  }
  const refSel = "aside.footnote, div.citation, dl.citation > dd, dl.footnote > dd, "
    + "table.footnote td.label + td, table.citation td.label + td";
  const refs = Array.from(root.querySelectorAll(refSel), (e) => clean(e.textContent));
  const hide = Array.from(root.querySelectorAll("pre, code, .highlight, .cell_input, "
    + "mjx-container, .math, script, style, .footnote-list, .citation-list, " + refSel));
  const saved = hide.map((e) => e.getAttribute("style"));
  hide.forEach((e) => e.style.setProperty("display", "none", "important"));
  const prose = root.innerText;
  hide.forEach((e, i) => saved[i] === null
    ? e.removeAttribute("style") : e.setAttribute("style", saved[i]));
  return {nan, index, overflow, images, unresolved, refs, prose};
}
"""


@dataclass(frozen=True)
class MachinePaths:
    """The absolute paths of this machine that a page must not show, each with its name.

    Attributes
    ----------
    roots : tuple of (str, str)
        ``(path, name)`` pairs, longest path first: ``("/work/shared/ecg-data", "the data
        root")``.
    """

    roots: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of_book(cls, html_dir: str | os.PathLike) -> MachinePaths:
        """The paths known for a built book.

        Parameters
        ----------
        html_dir : str or path-like
            The built book's HTML folder (``<project>/_build/html``).

        Returns
        -------
        MachinePaths
            The project root (:data:`ecgrepro.config.REPO_ROOT`, and the folder above a
            ``_build`` holding ``html_dir``), the build folder and the HTML folder, the data
            roots (``$ECGREPRO_DATA``, :func:`ecgrepro.config.candidate_data_roots`, and the
            ``data_root`` each page's run recorded in ``_build/run/*.json``), each as given and
            resolved. ``/`` and relative paths are left out.
        """
        from ecgrepro.config import REPO_ROOT, candidate_data_roots

        html = Path(html_dir).absolute()
        found: list[tuple[Path, str]] = [(REPO_ROOT, "the project root"), (html, "the HTML folder")]
        if html.parent.name == "_build":
            found += [(html.parent, "the build folder"), (html.parent.parent, "the project root")]
        found += [(root, "the data root") for root in candidate_data_roots()]
        for run in sorted((html.parent / "run").glob("*.json")):
            try:
                data_root = json.loads(run.read_text(encoding="utf-8")).get("data_root")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(data_root, str) and data_root:
                found.append((Path(data_root), "the data root"))
        roots: dict[str, str] = {}
        for path, name in found:
            for form in (path, path.resolve()):
                text = str(form).rstrip("/\\")
                if form.is_absolute() and len(text) > 1:
                    roots.setdefault(text, name)
        return cls(tuple(sorted(roots.items(), key=lambda kv: -len(kv[0]))))

    def name(self, path: str) -> str:
        """Name the known root that holds a path.

        Parameters
        ----------
        path : str
            An absolute path found in a page's text.

        Returns
        -------
        str
            The name of the longest root that is ``path`` or holds it ("the data root");
            ``""`` when none does.
        """
        for root, name in self.roots:
            if path == root or path.startswith((root + "/", root + "\\")):
                return name
        return ""


def find_paths(text: str, paths: MachinePaths = MachinePaths()) -> dict[str, tuple[int, str]]:
    """Find the absolute machine paths in a page's visible text.

    Parameters
    ----------
    text : str
        The page's visible text (``document.body.innerText``).
    paths : MachinePaths, optional
        This machine's own roots, matched wherever they are (CI checkouts live anywhere).

    Returns
    -------
    dict
        ``{path: (times seen, text around the first)}`` in first-seen order; a trailing ``.``,
        ``:`` or ``,`` of a sentence is not part of a path.
    """
    spans = [(m.start(), m.end()) for m in ABSOLUTE_PATH.finditer(text)]
    for root, _ in paths.roots:
        pattern = rf"(?<![\w.~/\\-]){re.escape(root)}(?=$|[{_STOP}:.])"
        for m in re.finditer(pattern, text):
            if not any(lo <= m.start() < hi for lo, hi in spans):
                spans.append((m.start(), _PATH_TAIL.match(text, m.end()).end()))
    found: dict[str, tuple[int, str]] = {}
    for lo, hi in sorted(spans):
        path = text[lo:hi].rstrip(".:,")
        if path in found:
            found[path] = (found[path][0] + 1, found[path][1])
        else:
            found[path] = (1, " ".join(text[max(0, lo - 40) : hi + 20].split()))
    return found


def _fold(text: str) -> str:
    """Lower case without accents, for matching names against reference entries."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _is_name(word: str) -> bool:
    return word[:1].isupper() and any(c.islower() for c in word) and word not in NOT_NAMES


def find_citations(prose: str) -> list[tuple[str, tuple[str, ...], str]]:
    """Find the author-year text citations in a page's prose.

    Parameters
    ----------
    prose : str
        The page's visible prose, code, math and reference list left out.

    Returns
    -------
    list of (str, tuple of str, str)
        ``(citation as written, surnames, year)`` for each of :data:`CITATION_FORMS`, in
        order of appearance; the surname of "Perez Alday et al." is its last word, "Alday".
    """
    hits: list[tuple[int, str, tuple[str, ...], str]] = []
    taken: list[tuple[int, int]] = []
    for form in CITATION_FORMS:
        for m in form.finditer(prose):
            if any(lo < m.end() and m.start() < hi for lo, hi in taken):
                continue
            names = tuple(n for n in (m.group("a"), m.groupdict().get("b")) if n)
            names = tuple(n.rstrip("'’-") for n in names)
            if not all(_is_name(n) for n in names):
                continue
            year = m.group("y1") or m.groupdict().get("y2")
            taken.append((m.start(), m.end()))
            hits.append((m.start(), " ".join(m.group(0).split()), names, year[:4]))
    return [(text, names, year) for _, text, names, year in sorted(hits)]


def unlisted_citations(prose: str, entries: list[str]) -> list[str]:
    """The text citations of a page that match no entry of its reference list.

    Parameters
    ----------
    prose : str
        The page's visible prose (see :func:`find_citations`).
    entries : list of str
        The text of each entry of the page's reference list.

    Returns
    -------
    list of str
        One ``citation`` problem detail per distinct citation whose surnames and year do not
        appear together in one entry (names matched as whole words, case and accents ignored).
    """
    folded = [_fold(e) for e in entries]
    out: list[str] = []
    for text, names, year in find_citations(prose):
        pats = [re.compile(rf"(?<!\w){re.escape(_fold(n))}(?!\w)") for n in names]
        if any(
            re.search(rf"(?<!\d){year}(?!\d)", e) and all(p.search(e) for p in pats) for e in folded
        ):
            continue
        where = "its reference list" if entries else "a reference list (the page has none)"
        detail = f'"{text}": no entry with {" and ".join(names)} and {year} in {where}'
        if detail not in out:
            out.append(detail)
    return out


def reader_checks(page, text: str, broken: set[str], paths: MachinePaths) -> list[tuple[str, str]]:
    """Run the reader's checks on a loaded page.

    Parameters
    ----------
    page : playwright.sync_api.Page
        The page, loaded, its math typeset and its images settled.
    text : str
        Its visible text (``document.body.innerText``).
    broken : set of str
        URLs of the images already reported broken (not reported again as unlinked).
    paths : MachinePaths
        This machine's roots, for the ``path`` kind.

    Returns
    -------
    list of (str, str)
        ``(kind, detail)`` for the kinds ``nan``, ``index``, ``overflow``, ``citation``,
        ``image`` and ``path`` (module docstring), issue #25's "Done when".
    """
    found = page.evaluate(
        _READER_JS,
        {
            "missing": list(MISSING_TEXTS),
            "tolerance": OVERFLOW_TOLERANCE_PX,
            "imageFile": IMAGE_FILE.pattern,
            "marginClasses": MARGIN_CLASSES,
        },
    )
    out: list[tuple[str, str]] = []
    for hit in found["nan"]:
        cells = "a cell" if hit["n"] == 1 else f"{hit['n']} cells"
        out.append(("nan", f"{hit['table']} shows a missing value in {cells} ({hit['first']})"))
    for hit in found["index"]:
        out.append(
            (
                "index",
                f"{hit['table']} shows a pandas index column 0 ... {hit['last']} "
                f"({hit['rows']} rows)",
            )
        )
    out += [("overflow", detail) for detail in found["overflow"]]
    out += [("citation", detail) for detail in found["unresolved"]]
    out += [("citation", detail) for detail in unlisted_citations(found["prose"], found["refs"])]
    out += [
        ("image", hit["detail"])
        for hit in found["images"]
        if hit["has"] and hit["src"] not in broken
    ]
    for path, (times, around) in find_paths(text, paths).items():
        name = paths.name(path)
        named = f" ({name})" if name else ""
        again = f" ({times} times)" if times > 1 else ""
        out.append(("path", f'absolute path {path}{named} in the text{again}: "...{around}..."'))
    return out
