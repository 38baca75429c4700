"""The downloader against a local HTTP server on 127.0.0.1 (PhysioNet is unreachable here).

The server serves a copy of part of the real sample with its SHA256SUMS.txt, supports
HTTP Range, drops the connection half-way through one file once, and serves one file
whose bytes do not match its published hash. Its request log shows what pooch retried
and what our downloader resumed. Pooch pauses 1 s before each retry, so the tests ask
for one retry at most.
"""

import contextlib
import hashlib
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ecgrepro.cli import main
from ecgrepro.download import (
    REFERENCE,
    REFERENCE_FROM_HEADERS,
    REFERENCE_SKIPPED,
    SOURCES,
    DownloadError,
    download,
    fetch,
    parse_sums,
    sha256_of,
    write_reference_from_headers,
)

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


@contextlib.contextmanager
def _serve(site: Path, drops: dict | None = None):
    """Serve ``site`` on 127.0.0.1; yields ``(http://127.0.0.1:<port>/, handler class)``."""
    handler = type("H", (Handler,), {"root": site, "drops": drops or {}, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _release(folder: Path, served: dict[str, bytes], listed: dict[str, str]) -> None:
    """Write the files ``served`` under ``folder`` and a SHA256SUMS.txt of ``listed``
    (checksum entry -> hash), as a release root on the server."""
    for rel, data in served.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SHA256SUMS.txt").write_text("".join(f"{h}  {p}\n" for p, h in listed.items()))


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
    with _serve(tmp_path / "site", {f"ptb-xl/1.0.3/{DROP}": 1}) as (url, handler):
        yield url + "ptb-xl/1.0.3/", handler, data_root


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


COLUMNS = "Recording,First_label,Second_label,Third_label\n"
CPSC_RELEASE = "challenge-2020/1.0.2"
CPSC_PREFIX = SOURCES["cpsc"].prefix


def _files_outside(tmp_path: Path, inside: Path) -> list[str]:
    """Files (or links) under ``tmp_path`` that are neither the served site nor under ``inside``."""
    out = []
    for folder, dirs, files in os.walk(tmp_path):  # links are listed, not followed
        for name in files + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            path = Path(folder) / name
            if not (path.is_relative_to(tmp_path / "site") or path.is_relative_to(inside)):
                out.append(str(path.relative_to(tmp_path)))
    return sorted(out)


@pytest.mark.parametrize("dataset", ["ptbxl", "cpsc"])
def test_checksum_entries_leaving_the_data_root_are_refused(tmp_path, data_root, capsys, dataset):
    root = tmp_path / "data"
    dest = root / SOURCES[dataset].dest
    (tmp_path / "outside").mkdir()
    dest.mkdir(parents=True)
    (dest / "link").symlink_to(tmp_path / "outside")  # a link in the data root pointing out
    good_rel = "wfdb-2020/A0001.hea"
    good = (data_root / "cpsc2018" / good_rel).read_bytes()
    evil = b"written outside the data root"
    prefix = SOURCES[dataset].prefix
    release = "ptb-xl/1.0.3" if dataset == "ptbxl" else CPSC_RELEASE
    hostile = [
        prefix + "../../x.txt",  # the tester's training/cpsc_2018/../../x.txt
        prefix + "records100/../../../y.txt",
        prefix + str(tmp_path / "abs.txt"),  # absolute once the prefix is stripped
        prefix + "..\\w.txt",
        prefix + "link/z.txt",
    ]
    if dataset == "ptbxl":
        hostile.append(str(tmp_path / "abs2.txt"))  # absolute as listed
    listed = {prefix + good_rel: _sha(good)} | {entry: _sha(evil) for entry in hostile}
    # the hostile bytes are served wherever a request for them could land
    served = {prefix + good_rel: good} | {
        os.path.normpath(entry).lstrip("/"): evil for entry in hostile
    }
    _release(tmp_path / "site" / release, served, listed)
    log = []
    with _serve(tmp_path / "site") as (url, handler):
        report = download(dataset, root, base_url=url + release, retries=0, log=log.append)
        rc = main(["download", str(root), "--dataset", dataset, "--base-url", url + release])
    # nothing requested but the list and the good file; nothing written outside the folder
    assert sorted(rel for rel, _ in handler.requests) == sorted(
        [f"{release}/SHA256SUMS.txt"] * 2 + [f"{release}/{prefix}{good_rel}"]
    )
    assert _files_outside(tmp_path, dest) == []
    assert list((tmp_path / "outside").iterdir()) == []
    assert report.fetched == [prefix + good_rel]
    assert (dest / good_rel).read_bytes() == good
    assert [p for p, _ in report.failed] == hostile
    for entry, why in report.failed:
        assert why.startswith(f"{entry}: path leaves the data root (") and "not fetched" in why
        assert f"failed: {why}" in log
    assert "'..' component" in report.failed[0][1]
    assert "absolute path" in report.failed[2][1]
    assert "backslash" in report.failed[3][1]
    assert f"resolves to {tmp_path / 'outside' / 'z.txt'}" in report.failed[4][1]
    # the CLI prints each failed entry with its reason, one line each, and exits 1
    assert rc == 1
    printed = capsys.readouterr().out.splitlines()
    for _, why in report.failed:
        assert f"{dataset}: failed: {why}" in printed
    if dataset == "cpsc":  # files failed, so no label file
        assert not (dest / REFERENCE).exists() and not (dest / REFERENCE_FROM_HEADERS).exists()


def _cpsc_root_with_reference(tmp_path: Path, data_root: Path) -> tuple[Path, bytes]:
    """A data root whose REFERENCE.csv labels A1980, held only in the original .mat form."""
    cpsc = tmp_path / "data" / "cpsc2018"
    (cpsc / "original").mkdir(parents=True)
    shutil.copy(data_root / "cpsc2018" / "original" / "A1980.mat", cpsc / "original")
    before = (COLUMNS + "A0001,5,,\nA1980,6,,\n").encode()
    (cpsc / REFERENCE).write_bytes(before)
    return cpsc, before


def test_cpsc_with_failed_files_writes_no_label_file(tmp_path, data_root):
    cpsc, before = _cpsc_root_with_reference(tmp_path, data_root)
    headers = {
        r: (data_root / "cpsc2018" / "wfdb-2020" / f"{r}.hea").read_bytes()
        for r in ("A0001", "A0002", "A0003")
    }
    served = {
        f"{CPSC_PREFIX}wfdb-2020/A0001.hea": headers["A0001"],
        f"{CPSC_PREFIX}wfdb-2020/A0002.hea": b"corrupted" + headers["A0002"],  # hash mismatch
    }  # A0003.hea is listed but not served: HTTP 404
    listed = {f"{CPSC_PREFIX}wfdb-2020/{r}.hea": _sha(h) for r, h in headers.items()}
    _release(tmp_path / "site" / CPSC_RELEASE, served, listed)
    log = []
    with _serve(tmp_path / "site") as (url, _):
        report = download(
            "cpsc", tmp_path / "data", base_url=url + CPSC_RELEASE, retries=0, log=log.append
        )
    assert (cpsc / REFERENCE).read_bytes() == before  # A1980's label kept
    assert sorted(p.name for p in cpsc.iterdir()) == ["REFERENCE.csv", "original", "wfdb-2020"]
    assert report.fetched == [f"{CPSC_PREFIX}wfdb-2020/A0001.hea"]
    (mismatch, why_mismatch), (missing, why_missing) = report.failed
    assert mismatch.endswith("A0002.hea") and "A0002.hea: SHA-256 mismatch" in why_mismatch
    assert missing.endswith("A0003.hea") and "A0003.hea: HTTP 404" in why_missing
    note = (
        f"cpsc: 2 file(s) failed, so {cpsc / REFERENCE} was not (re)written from the headers; "
        "rerun the download to fetch them"
    )
    assert report.notes == [note] and log[-1] == note


def _header_with_dx(data_root: Path, form: str, record: str, dx: str | None = None) -> str:
    text = (data_root / "cpsc2018" / form / f"{record}.hea").read_text()
    if dx is None:
        return text
    return "".join(
        f"#Dx: {dx}\n" if line.startswith("#Dx") else line for line in text.splitlines(True)
    )


def test_duplicate_headers_give_one_row_and_disagreeing_ones_none(tmp_path, data_root):
    cpsc = tmp_path / "cpsc2018"
    for form in ("wfdb-2020", "wfdb-snomed"):
        (cpsc / form).mkdir(parents=True)
        (cpsc / form / "A0001.hea").write_text(_header_with_dx(data_root, form, "A0001"))
    (cpsc / "wfdb-2020" / "A0002.hea").write_text(_header_with_dx(data_root, "wfdb-2020", "A0002"))
    (cpsc / "wfdb-snomed" / "A0002.hea").write_text(
        _header_with_dx(data_root, "wfdb-snomed", "A0002", dx="164889003")  # AF, not Normal
    )
    path, message = write_reference_from_headers(cpsc)
    assert path == cpsc / REFERENCE
    # A0001 (RBBB in both forms) once; A0002 (SNR in one copy, AF in the other) left out
    assert path.read_text() == COLUMNS + "A0001,5,,\n"
    skipped = (
        "record A0002: headers disagree (wfdb-2020/A0002.hea: SNR; wfdb-snomed/A0002.hea: AF); "
        "left out\n"
    )
    assert (cpsc / REFERENCE_SKIPPED).read_text() == skipped
    assert message == (
        f"cpsc: wrote {path} from the WFDB headers (1 recording(s); 1 left out, listed in "
        f"{cpsc / REFERENCE_SKIPPED})"
    )
    # atomic writes leave no temporary file behind
    assert sorted(p.name for p in cpsc.iterdir()) == [
        REFERENCE,
        REFERENCE_SKIPPED,
        "wfdb-2020",
        "wfdb-snomed",
    ]


def test_cpsc_download_never_overwrites_a_different_reference(tmp_path, data_root):
    cpsc, before = _cpsc_root_with_reference(tmp_path, data_root)
    served = {
        f"{CPSC_PREFIX}{form}/{r}.hea": _header_with_dx(data_root, form, r).encode()
        for form in ("wfdb-2020", "wfdb-snomed")
        for r in ("A0001", "A0002")
    }
    _release(tmp_path / "site" / CPSC_RELEASE, served, {p: _sha(b) for p, b in served.items()})
    from_headers = COLUMNS + "A0001,5,,\nA0002,1,,\n"  # one row per recording, 4 headers
    log = []
    with _serve(tmp_path / "site") as (url, _):
        base = url + CPSC_RELEASE
        report = download("cpsc", tmp_path / "data", base_url=base, retries=0, log=log.append)
        assert not report.failed and len(report.fetched) == 4
        assert (cpsc / REFERENCE).read_bytes() == before
        assert (cpsc / REFERENCE_FROM_HEADERS).read_text() == from_headers
        assert not (cpsc / REFERENCE_SKIPPED).exists()
        note = (
            f"cpsc: {cpsc / REFERENCE} differs from the WFDB headers' labels and was left "
            f"untouched; the header labels (2 recording(s)) are in {cpsc / REFERENCE_FROM_HEADERS}:"
            " to use them, replace REFERENCE.csv with it (records without a header then lose "
            "their labels)"
        )
        assert report.notes == [note] and log[-1] == note
        # into an empty root: REFERENCE.csv is written; a second run finds it identical
        fresh = tmp_path / "fresh"
        first = download("cpsc", fresh, base_url=base, retries=0, log=None)
        ref = fresh / "cpsc2018" / REFERENCE
        assert ref.read_text() == from_headers
        assert first.notes == [f"cpsc: wrote {ref} from the WFDB headers (2 recording(s))"]
        stat = ref.stat()
        again = download("cpsc", fresh, base_url=base, retries=0, log=None)
    assert again.notes == [f"cpsc: {ref} already matches the WFDB headers; left as it is"]
    assert (ref.stat().st_ino, ref.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert not (fresh / "cpsc2018" / REFERENCE_FROM_HEADERS).exists()
