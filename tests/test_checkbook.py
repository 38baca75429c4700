"""``make check-book``: the headless-Chromium check of the built book, on tiny hand-written books.

One clean book must pass; one book holds a page per defect, each of which must fail with
its kind and only its kind. Requests that would leave the machine are aborted by the check
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


def clean_book(root: Path) -> Path:
    """A book that passes: links, anchors, an image, dollar amounts and TeX inside code."""
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
            "<img alt='dot' src='_images/dot.png'>"
            "<pre>\\begin{equation} x^2 \\end{equation} $$y$$</pre>"
            "<p><code>$\\alpha$</code> and <a name='old-anchor'>an old anchor</a></p>",
        ),
    )
    write(
        root,
        "chapter/results.html",
        page(
            "Results",
            "<h2 id='auc'>AUC</h2><p>Back to <a href='../intro.html#old-anchor'>intro</a>.</p>"
            "<img alt='dot' src='../_images/dot.png'>",
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
    for name, body in BAD_PAGES.items():
        write(root, name, page(name, body.replace("{leak}", leak)))
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
