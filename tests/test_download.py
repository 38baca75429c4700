"""The downloader against a local HTTP server on 127.0.0.1 (PhysioNet is unreachable here).

The server serves a copy of part of the real sample with its SHA256SUMS.txt, supports
HTTP Range, drops the connection half-way through one file once, and serves one file
whose bytes do not match its published hash. Its request log shows what pooch retried
and what our downloader resumed. Pooch pauses 1 s before each retry, so the tests ask
for one retry at most.
"""

import hashlib
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ecgrepro.download import SOURCES, DownloadError, download, fetch, parse_sums, sha256_of

PTB_FILES = [
    "records100/00000/00001_lr.hea",
    "records100/00000/00001_lr.dat",
    "records100/00000/00002_lr.hea",
    "records100/00000/00002_lr.dat",
    "scp_statements.csv",
]
DROP = "records100/00000/00001_lr.dat"  # connection dropped half-way, once
CORRUPT = "records100/00000/00002_lr.dat"  # served bytes differ from the published hash


class Handler(BaseHTTPRequestHandler):
    root: Path
    drops: dict
    requests: list

    def log_message(self, *args):
        pass

    def do_GET(self):
        rel = self.path.lstrip("/")
        path = self.root / rel
        self.requests.append((rel, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.drops.get(rel, 0) > 0:
            self.drops[rel] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-body
            return
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path, data_root):
    site = tmp_path / "site" / "ptb-xl" / "1.0.3"
    lines = []
    for rel in PTB_FILES:
        src = data_root / "ptb-xl" / rel
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, site / rel)
        lines.append(f"{hashlib.sha256(src.read_bytes()).hexdigest()}  {rel}")
    (site / CORRUPT).write_bytes(b"\0" * 100 + (site / CORRUPT).read_bytes()[100:])
    (site / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    handler = type(
        "H",
        (Handler,),
        {"root": tmp_path / "site", "drops": {f"ptb-xl/1.0.3/{DROP}": 1}, "requests": []},
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ptb-xl/1.0.3/", handler, data_root
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    """Files that are neither a finished download nor expected: .part or pooch's tmp*."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and (p.name.endswith(".part") or p.name.startswith("tmp"))
    )


def test_download_resumes_verifies_and_reports(server, tmp_path):
    base, handler, data_root = server
    root = tmp_path / "data"
    report = download("ptbxl", root, base_url=base, retries=1, log=None)
    dest = root / SOURCES["ptbxl"].dest
    size = (data_root / "ptb-xl" / DROP).stat().st_size
    # dropped half-way, then resumed from the bytes on disk with a Range request
    drop = [rng for rel, rng in handler.requests if rel.endswith(DROP)]
    assert drop == [None, f"bytes={size // 2}-"]
    assert (dest / DROP).read_bytes() == (data_root / "ptb-xl" / DROP).read_bytes()
    # the corrupted file: retried once by pooch, from zero, then reported, never left in place
    assert [rng for rel, rng in handler.requests if rel.endswith(CORRUPT)] == [None, None]
    assert [p for p, _ in report.failed] == [CORRUPT]
    assert "00002_lr.dat: SHA-256 mismatch" in report.failed[0][1]
    assert not (dest / CORRUPT).exists()
    assert _leftovers(root) == []
    assert sorted(report.fetched) == sorted(set(PTB_FILES) - {CORRUPT})
    for rel in report.fetched:
        assert (dest / rel).read_bytes() == (data_root / "ptb-xl" / rel).read_bytes()
    # a second run finds the good files present and asks the server for none of them again
    handler.requests.clear()
    again = download("ptbxl", root, base_url=base, retries=0, log=None)
    assert sorted(again.present) == sorted(report.fetched) and not again.fetched
    assert sorted(rel for rel, _ in handler.requests) == sorted(
        f"ptb-xl/1.0.3/{p}" for p in ("SHA256SUMS.txt", CORRUPT)
    )


def test_fetch_resumes_a_partial_file_from_an_earlier_run(server, tmp_path):
    base, handler, data_root = server
    rel = "records100/00000/00002_lr.hea"
    good = (data_root / "ptb-xl" / rel).read_bytes()
    dest = tmp_path / "dl" / "00002_lr.hea"
    dest.parent.mkdir()
    dest.with_name(dest.name + ".part").write_bytes(good[:100])
    assert fetch(base + rel, dest, sha256_of(data_root / "ptb-xl" / rel), retries=0)
    assert handler.requests == [(f"ptb-xl/1.0.3/{rel}", "bytes=100-")]
    assert dest.read_bytes() == good
    assert _leftovers(dest.parent) == []


def test_fetch_raises_naming_the_file(server, tmp_path):
    base, handler, _ = server
    folder = tmp_path / "dl"
    with pytest.raises(DownloadError, match=r"missing.dat: HTTP 404"):
        fetch(base + "missing.dat", folder / "missing.dat", "0" * 64, retries=1)
    assert len(handler.requests) == 1  # a 404 is not retried
    assert not (folder / "missing.dat").exists() and _leftovers(folder) == []


def test_fetch_rejects_a_wrong_hash_naming_the_file(server, tmp_path):
    base, handler, _ = server
    folder = tmp_path / "dl"
    with pytest.raises(DownloadError, match=r"scp_statements.csv: SHA-256 mismatch"):
        fetch(base + "scp_statements.csv", folder / "scp_statements.csv", "0" * 64, retries=0)
    assert len(handler.requests) == 1
    assert not (folder / "scp_statements.csv").exists() and _leftovers(folder) == []


def test_parse_sums():
    text = "a" * 64 + "  records100/x.hea\n" + "b" * 64 + " *bin.dat\n\nnot a line\n"
    assert parse_sums(text) == [("a" * 64, "records100/x.hea"), ("b" * 64, "bin.dat")]
