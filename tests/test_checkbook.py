"""``make check-book``: the headless-Chromium check of the built book, on tiny hand-written books.

One clean book must pass; one book holds a page per defect, each of which must fail with
its kind and only its kind, the reader's kinds of issue #25 included (a NaN cell, a pandas
index, an element wider than the column, an unresolved citation, an image without its
full-size link, an absolute path). Requests that would leave the machine are aborted by the check
before they are sent: a server on 127.0.0.2 (a loopback address that is not in the allowed
list) must never see the one addressed to it. The last test checks one page of the real
build (read in place; the test session may not write under ``_build/``, not even a symlink).
All browser tests are skipped where no Chromium is installed.
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ecgrepro.book.checkbook import (
    ChromiumNotFoundError,
    check_book,
    find_chromium,
    find_pages,
    format_report,
    is_local_url,
    main,
)
from ecgrepro.book.readerchecks import (
    MachinePaths,
    find_citations,
    find_paths,
    unlisted_citations,
)
from ecgrepro.config import REPO_ROOT

pytest.importorskip("playwright.sync_api")

try:
    CHROMIUM = find_chromium()
except ChromiumNotFoundError as exc:
    CHROMIUM, NO_CHROMIUM = None, str(exc)
else:
    NO_CHROMIUM = ""
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium: {NO_CHROMIUM}")

MATHJAX = REPO_ROOT / "_build" / "vendor" / "mathjax" / "es5" / "tex-svg.js"


def page(title: str, body: str, head: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
        f"<body><h1 id='top'>{title}</h1>{body}</body></html>"
    )


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 4), (200, 30, 30)).save(path)


CLEAN_READER = (
    # the article: a named index, a dash for a missing value, citations its list resolves, a
    # long code line and a NaN hidden in a collapsed cell, a full-width figure in the margin
    "<article class='bd-article' style='width: 600px'>"
    "<table class='dataframe'><thead><tr><th></th><th>auc</th></tr>"
    "<tr><th>seed</th><th></th></tr></thead>"
    "<tbody><tr><th>0</th><td>0.81</td></tr><tr><th>1</th><td>-</td></tr></tbody></table>"
    "<table class='dataframe'><thead><tr><th>class</th><th>n</th></tr></thead>"
    "<tbody><tr><td>AF</td><td>3</td></tr></tbody></table>"
    "<p>As Smith et al. (2020) and Fong &amp; Vedaldi 2017 showed, on CPSC and PTB-XL (2018); "
    "Table and Figure (2018); Zhang et al.'s network; paths like a/tmp/b and "
    "https://example.org/home/x are not machine paths.</p>"
    "<details><summary>Show code cell source</summary><pre>" + "x = 1  # " * 400 + "</pre>"
    "<table><tr><td>NaN</td></tr></table><img alt='hidden' src='_images/dot.png'></details>"
    "<div class='cell tag_full-width' style='margin-right: -300px'>"
    "<a href='_images/dot.png'><img alt='wide' src='_images/dot.png' style='width: 850px'></a>"
    "</div>"
    "<aside class='footnote-list'><aside class='footnote' id='footcite-smith2020'>"
    "<p>Alice Smith and Bob Jones. A title. <em>A Journal</em>, 2020.</p></aside>"
    "<aside class='footnote' id='footcite-fong2017'><p>Ruth C. Fong and Andrea Vedaldi. "
    "Interpretable explanations. In ICCV, 2017.</p></aside></aside></article>"
)


def clean_book(root: Path) -> Path:
    """A book that passes: links, anchors, linked images, dollar amounts, TeX inside code."""
    write(root, "index.html", '<meta http-equiv="Refresh" content="0; url=intro.html" />\n')
    write_png(root / "_images" / "dot.png")
    write(
        root,
        "intro.html",
        page(
            "Intro",
            "<p>It cost $5 and then $10; see <a href='chapter/results.html'>results</a>, "
            "<a href='chapter/results.html#auc'>the AUC</a>, <a href='#top'>top</a>, "
            "<a href='#'>nothing</a>, <a href='https://example.org/x'>a site</a>, "
            "<a href='mailto:a@b.c'>mail</a>.</p>"
            "<a href='_images/dot.png'><img alt='dot' src='_images/dot.png'></a>"
            "<pre>\\begin{equation} x^2 \\end{equation} $$y$$</pre>"
            "<p><code>$\\alpha$</code> and <a name='old-anchor'>an old anchor</a></p>"
            + CLEAN_READER,
        ),
    )
    write(
        root,
        "chapter/results.html",
        page(
            "Results",
            "<h2 id='auc'>AUC</h2><p>Back to <a href='../intro.html#old-anchor'>intro</a>.</p>"
            "<a href='../_images/dot.png'><img alt='dot' src='../_images/dot.png'></a>",
        ),
    )
    # not pages: these would fail if they were checked
    bad = page("not a page", "<script>console.error('checked by mistake')</script>")
    for rel in ("genindex.html", "search.html", "_static/t.html", "_sources/s.html"):
        write(root, rel, bad)
    return root


@contextlib.contextmanager
def recording_server(host: str):
    """An HTTP server on ``host`` serving a tiny script; yields (server, paths it was asked for)."""
    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.end_headers()
            self.wfile.write(b"window.served = true;")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def leak_server():
    """A server on 127.0.0.2, a loopback address the check does not allow; None if unavailable."""
    try:
        context = recording_server("127.0.0.2")
        served = context.__enter__()
    except OSError:  # no 127.0.0.2 (not Linux): the blocked list alone is checked
        yield None
        return
    try:
        yield served
    finally:
        context.__exit__(None, None, None)


BAD_PAGES = {
    "image.html": "<img alt='gone' src='_images/missing.png'><img alt='no source'>",
    "remote.html": "<script src='https://cdn.example.com/x.js'></script>{leak}",
    "glue.html": "<p>The AUC is <span class='pasted-text'>Glue key not found: auc</span>.</p>",
    "glue_mystnb.html": (
        "<div class='system-message'><p class='system-message-title'>System Message: "
        "WARNING/2 (table2.ipynb, line 3)</p>"
        "<p>No key 'auc' found in glue data for this document.</p></div>"
    ),
    "links.html": (
        "<p id='here'><a href='nowhere.html'>gone</a> <a href='clean.html#no-such-anchor'>x</a> "
        "<a href='#missing-here'>y</a> <a href='#here'>fine</a> <a href='clean.html'>ok</a></p>"
    ),
    "console.html": "<script>console.error('boom')</script>",
    "pageerror.html": "<script>throw new Error('kaboom')</script>",
    "math.html": "<p>Squares: <span class='math notranslate nohighlight'>\\(x^2\\)</span></p>",
    "rawtex.html": "<p>We minimise $\\sum_i x_i$ over the records.</p>",
    "nan.html": (
        "<table><thead><tr><th>class</th><th>auc</th><th>f1</th></tr></thead><tbody>"
        "<tr><th>AF</th><td>nan</td><td>NaN</td></tr><tr><th>SNR</th><td>0.8</td><td>&lt;NA&gt;"
        "</td></tr><tr><th>RBBB</th><td>a nan b</td><td>0.7</td></tr></tbody></table>"
    ),
    "pandas_index.html": (
        "<h2>Per record</h2><table class='dataframe'><thead><tr><th></th><th>record</th></tr>"
        "</thead><tbody><tr><th>0</th><td>A0001</td></tr><tr><th>1</th><td>A0002</td></tr>"
        "<tr><th>...</th><td>...</td></tr><tr><th>1496</th><td>A1497</td></tr></tbody></table>"
        "<table id='T_ab12'><thead><tr><th class='blank level0'></th><th>auc</th></tr></thead>"
        "<tbody><tr><th class='row_heading'>0</th><td>0.8</td></tr></tbody></table>"
        "<table class='dataframe'><tbody><tr><th>3</th><td>x</td></tr></tbody></table>"
    ),
    "overflow.html": (
        "<article class='bd-article' style='width: 600px'>"
        "<h2>Wide</h2><table style='width: 3000px'><tr><td>wide</td></tr></table>"
        "<pre style='width: 400px; overflow-x: auto'>" + "lead II " * 200 + "</pre>"
        "<a href='_images/dot.png'><img alt='dot' src='_images/dot.png' style='width: 850px'></a>"
        "</article>"
    ),
    "citation.html": (
        "<p>Known <span class='bibtex-citation'>[]</span>; as Smith et al. (2019) and Fong "
        "&amp; Vedaldi 2017 found, and Petsiuk et al., 2018 agrees; Jones and Lee (2021).</p>"
        "<pre>Arras et al. 2022</pre>"
        "<aside class='footnote-list'><aside class='footnote' id='footcite-smith2020'>"
        "<p>Alice Smith and others. A title, 2020.</p></aside>"
        "<aside class='footnote' id='footcite-fong2017'><p>Ruth C. Fong and Andrea Vedaldi. "
        "Interpretable explanations. In ICCV, 2017.</p></aside>"
        "<aside class='footnote' id='footcite-jones'><p>Jones, Lee. 2021.</p></aside></aside>"
    ),
    "unlinked.html": (
        "<h2>Figures</h2><img alt='dot' src='_images/dot.png'>"
        "<a href='clean.html'><img alt='dot' src='_images/dot.png'></a>"
        "<a href='_images/dot.png'><img alt='dot' src='_images/dot.png'></a>"
    ),
    "path.html": (
        "<p>Data root: /home/alice/ecg-data; outputs in C:\\Users\\bob\\out and {root}/x.csv, "
        "/home/alice/ecg-data again; https://example.org/home/x and /homework are fine.</p>"
    ),
    "clean.html": "<p>Nothing wrong here.</p>",
}


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory, leak_server):
    """One check over a book with one page per defect."""
    root = tmp_path_factory.mktemp("bad-book")
    leak = ""
    if leak_server is not None:
        port = leak_server[0].server_port
        leak = f"<script src='http://127.0.0.2:{port}/leak.js'></script>"
    write_png(root / "_images" / "dot.png")
    for name, body in BAD_PAGES.items():
        write(root, name, page(name, body.replace("{leak}", leak).replace("{root}", str(root))))
    return check_book(root, tmp_path_factory.mktemp("bad-shots"), chromium=CHROMIUM)


def details(report, page_name: str, kind: str) -> list[str]:
    return [p.detail for p in report.problems if p.page == page_name and p.kind == kind]


def test_pages_skip_sphinx_generated_pages_and_asset_folders(tmp_path):
    clean_book(tmp_path)
    assert find_pages(tmp_path) == ["chapter/results.html", "index.html", "intro.html"]


def test_only_local_urls_may_load():
    for url in (
        "file:///tmp/a.html",
        "data:image/png;base64,AAAA",
        "blob:file:///1234",
        "about:blank",
        "http://localhost:8000/x.js",
        "https://127.0.0.1/x",
        "ws://localhost:1/",
    ):
        assert is_local_url(url), url
    for url in (
        "https://cdn.example.com/x.js",
        "http://127.0.0.2/x",
        "https://localhost.example.com/",
        "ftp://localhost/x",
        "chrome-extension://abc/x.js",
    ):
        assert not is_local_url(url), url


def test_a_missing_chromium_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(ChromiumNotFoundError, match="no-chromium"):
        find_chromium()
    monkeypatch.delenv("CHROMIUM")
    monkeypatch.setattr("ecgrepro.book.checkbook.CHROMIUM_CANDIDATES", (str(tmp_path / "x"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ChromiumNotFoundError, match="apt-get install chromium chromium-driver"):
        find_chromium()


@needs_chromium
def test_a_clean_book_passes_and_is_photographed(tmp_path):
    root = clean_book(tmp_path / "html")
    report = check_book(root, tmp_path / "shots", chromium=CHROMIUM)
    assert report.problems == [], format_report(report)
    assert report.ok and report.blocked == []
    assert report.pages == ["chapter/results.html", "index.html", "intro.html"]
    # the redirect page is checked on disk, without a screenshot
    shots = sorted(p.relative_to(tmp_path / "shots").as_posix() for p in report.screenshots)
    assert shots == ["chapter/results.png", "intro.png"]
    for shot in report.screenshots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.seconds > 0


@needs_chromium
def test_localhost_may_load(tmp_path):
    with recording_server("127.0.0.1") as (server, seen):
        port = server.server_port
        body = (
            f"<script src='http://127.0.0.1:{port}/a.js'></script>"
            f"<script src='http://localhost:{port}/b.js'></script>"
            "<script>if (!window.served) console.error('local script not run');</script>"
        )
        write(tmp_path / "html", "index.html", page("local", body))
        report = check_book(tmp_path / "html", chromium=CHROMIUM)
    assert report.problems == [], format_report(report)
    assert sorted(seen) == ["/a.js", "/b.js"]


@needs_chromium
def test_the_command_returns_1_on_problems_and_0_on_a_clean_book(tmp_path, capsys):
    root = clean_book(tmp_path / "html")
    assert main([str(root), "--no-screenshots"]) == 0
    assert "3 pages checked, 0 requests blocked, 0 problems" in capsys.readouterr().out
    write(root, "intro.html", page("Intro", "<img alt='gone' src='gone.png'>"))
    assert main([str(root), "--screenshots", str(tmp_path / "shots")]) == 1
    out = capsys.readouterr().out
    assert "intro.html: 1 problem(s)" in out and "[image] did not load: gone.png" in out
    assert main([str(tmp_path / "nothing")]) == 2


@needs_chromium
def test_each_defect_fails_with_its_kind_only(bad_report):
    expected = {
        "image.html": {"image"},
        "remote.html": {"request"},
        "glue.html": {"glue"},
        "glue_mystnb.html": {"glue"},
        "links.html": {"link"},
        "console.html": {"console"},
        "pageerror.html": {"pageerror"},
        "math.html": {"math"},
        "rawtex.html": {"math"},
        "nan.html": {"nan"},
        "pandas_index.html": {"index"},
        "overflow.html": {"overflow"},
        "citation.html": {"citation"},
        "unlinked.html": {"image"},
        "path.html": {"path"},
        "clean.html": set(),
    }
    assert {name: bad_report.kinds(name) for name in expected} == expected, format_report(
        bad_report
    )
    assert len(bad_report.screenshots) == len(BAD_PAGES)


@needs_chromium
def test_broken_images(bad_report):
    found = details(bad_report, "image.html", "image")
    assert found == ["did not load: _images/missing.png", "<img> without src: no source"]


@needs_chromium
def test_remote_requests_are_aborted_before_they_leave(bad_report, leak_server):
    assert "https://cdn.example.com/x.js" in bad_report.blocked
    assert "request blocked: https://cdn.example.com/x.js" in details(
        bad_report, "remote.html", "request"
    )
    # aborted by the check (net::ERR_BLOCKED_BY_CLIENT), not failed on DNS: no "resource" kind
    assert details(bad_report, "remote.html", "resource") == []
    if leak_server is not None:
        server, seen = leak_server
        assert f"http://127.0.0.2:{server.server_port}/leak.js" in bad_report.blocked
        assert seen == []  # the server never saw it


@needs_chromium
def test_missing_glue_values(bad_report):
    assert "Glue key not found: auc" in details(bad_report, "glue.html", "glue")[0]
    (mystnb,) = details(bad_report, "glue_mystnb.html", "glue")
    assert "No key 'auc' found in glue data" in mystnb


@needs_chromium
def test_broken_links_and_anchors(bad_report):
    assert details(bad_report, "links.html", "link") == [
        "link 'nowhere.html': no such file nowhere.html",
        "link 'clean.html#no-such-anchor': no id 'no-such-anchor' in clean.html",
        "link '#missing-here': no id 'missing-here' in links.html",
    ]


@needs_chromium
def test_console_errors_and_uncaught_exceptions(bad_report):
    assert details(bad_report, "console.html", "console")[0].startswith("boom")
    assert "kaboom" in details(bad_report, "pageerror.html", "pageerror")[0]


@needs_chromium
def test_untypeset_math_and_raw_tex(bad_report):
    assert details(bad_report, "math.html", "math") == ["untypeset math: \\(x^2\\)"]
    (raw,) = details(bad_report, "rawtex.html", "math")
    assert raw.startswith("raw TeX in the text:") and "$\\sum_i x_i$" in raw


@needs_chromium
@pytest.mark.skipif(not MATHJAX.is_file(), reason="no vendored MathJax (make vendor)")
def test_math_typeset_by_the_vendored_mathjax_passes(tmp_path):
    head = f"<script defer src='{MATHJAX.as_uri()}'></script>"
    body = (
        "<p>Squares: <span class='math notranslate nohighlight'>\\(x^2\\)</span></p>"
        "<div class='math notranslate nohighlight'>\\[\\frac{TP_c}{TP_c + FP_c}\\]</div>"
    )
    write(tmp_path / "html", "index.html", page("math", body, head))
    report = check_book(tmp_path / "html", chromium=CHROMIUM)
    assert report.problems == [], format_report(report)


@needs_chromium
def test_missing_values_in_table_cells(bad_report):
    (found,) = details(bad_report, "nan.html", "nan")
    assert found == (
        'table 1 under "nan.html" (class, auc, f1) shows a missing value in 3 cells '
        '(row "AF", column "auc")'
    )


@needs_chromium
def test_pandas_range_indexes(bad_report):
    assert details(bad_report, "pandas_index.html", "index") == [
        'table 1 under "Per record" (record) shows a pandas index column 0 ... 1496 (3 rows)',
        'table 2 under "Per record" (auc) shows a pandas index column 0 ... 0 (1 rows)',
    ]


@needs_chromium
def test_elements_wider_than_the_column(bad_report):
    table, pre, image = details(bad_report, "overflow.html", "overflow")
    assert table.startswith('table 1 under "Wide" (wide) is 3000 px wide and spills')
    assert pre.startswith('code block "lead II lead II') and "needs a horizontal scroll bar" in pre
    assert image.startswith("image dot.png") and "past the 600 px content column" in image


@needs_chromium
def test_unresolved_citations(bad_report):
    assert details(bad_report, "citation.html", "citation") == [
        'unresolved citation mark "[]" under "citation.html"',
        '"Smith et al. (2019)": no entry with Smith and 2019 in its reference list',
        '"Petsiuk et al., 2018": no entry with Petsiuk and 2018 in its reference list',
    ]


@needs_chromium
def test_images_without_a_full_size_link(bad_report):
    assert details(bad_report, "unlinked.html", "image") == [
        'image dot.png under "Figures" is not linked to its full-size file',
        'image dot.png under "Figures" links to clean.html, not to an image file',
    ]


@needs_chromium
def test_absolute_paths_in_the_text(bad_report):
    home, windows, own = details(bad_report, "path.html", "path")
    assert home.startswith("absolute path /home/alice/ecg-data in the text (2 times): ")
    assert windows.startswith("absolute path C:\\Users\\bob\\out in the text: ")
    assert own.startswith(f"absolute path {bad_report.html_dir}/x.csv (the HTML folder) in")


def test_paths_found_and_named(tmp_path, monkeypatch):
    html = tmp_path / "proj" / "_build" / "html"
    (html.parent / "run").mkdir(parents=True)
    (html.parent / "run" / "t2.json").write_text('{"data_root": "/srv/ecg"}')
    monkeypatch.setenv("ECGREPRO_DATA", "/mnt/other-data")
    paths = MachinePaths.of_book(html)
    assert paths.name("/srv/ecg/ptb-xl") == "the data root"
    assert paths.name("/mnt/other-data") == "the data root"
    assert paths.name(f"{html}/x.html") == "the HTML folder"
    assert paths.name(f"{tmp_path}/proj/_build/tables/t.csv") == "the build folder"
    assert paths.name(f"{tmp_path}/proj/README.md") == "the project root"
    assert paths.name(str(REPO_ROOT / "ecgrepro")) == "the project root"
    assert paths.name("/srv/ecgother") == ""
    text = "Data: /srv/ecg/ptb-xl. Stored in /tmp/a b; file:///root/x.html, and /srv/ecg."
    assert {p: n for p, (n, _) in find_paths(text, paths).items()} == {
        "/srv/ecg/ptb-xl": 1,
        "/tmp/a": 1,
        "/root/x.html": 1,
        "/srv/ecg": 1,
    }
    assert find_paths("see https://host.org/home/x, ~/work/y, a/tmp/b and /homework") == {}


def test_text_citations_and_their_entries():
    prose = (
        "(Samek et al. 2017; Petsiuk et al. 2018 [1]) Fong & Vedaldi (2017), Reyna et al., "
        "2021 and Perez Alday et al. (2020a); Table and Figure (2018); CPSC and PTB-XL (2018); "
        "Bender et al. compare; Zhang et al.'s 2018 model; Lundberg and Lee, 2017."
    )
    assert [(names, year) for _, names, year in find_citations(prose)] == [
        (("Samek",), "2017"),
        (("Petsiuk",), "2018"),
        (("Fong", "Vedaldi"), "2017"),
        (("Reyna",), "2021"),
        (("Alday",), "2020"),
        (("Lundberg", "Lee"), "2017"),
    ]
    entries = [
        "[1] Wojciech Samek and others. Evaluating. 2017.",
        "Ruth C. Fong and Andrea Vedaldi. Explanations. 2017.",
        "Erick A. Pérez Alday and others. Classification. 2020.",
        "Matthew A. Reyna. Will two do? 20210.",
        "Scott M. Lundberg and Su-In Lee. A unified approach. 2017.",
    ]
    assert unlisted_citations(prose, entries) == [
        '"Petsiuk et al. 2018": no entry with Petsiuk and 2018 in its reference list',
        '"Reyna et al., 2021": no entry with Reyna and 2021 in its reference list',
    ]
    assert unlisted_citations("as Fong & Vedaldi 2017 showed", []) == [
        '"Fong & Vedaldi 2017": no entry with Fong and Vedaldi and 2017 in a reference list '
        "(the page has none)"
    ]
