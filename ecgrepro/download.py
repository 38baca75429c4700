"""Fetch PTB-XL v1.0.3 and the CPSC 2018 training set from PhysioNet, verified.

Each file listed in the release's ``SHA256SUMS.txt`` is downloaded to
``<name>.part``, resumed with an HTTP ``Range`` request after a dropped
connection, checked against its published SHA-256 and only then renamed into
place, so an interrupted or corrupted download never leaves a half-written file
under its real name. Files already present with the right hash are skipped. A
file that keeps failing is reported and skipped; the batch goes on.

Layout written (the data root :func:`ecgrepro.config.find_data_root` expects)::

    <root>/ptb-xl/...        PTB-XL v1.0.3 as published
    <root>/cpsc2018/...      PhysioNet/CinC Challenge 2020 ``training/cpsc_2018/``

PhysioNet's copy of CPSC 2018 has no ``REFERENCE.csv``; one is written from the
headers' ``#Dx:`` SNOMED CT codes (:func:`write_reference_from_headers`), so for
such a download the header labels are the labels.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import wfdb

from ecgrepro.config import CLASSES
from ecgrepro.data.errors import RecordError
from ecgrepro.data.labels import header_dx_classes


@dataclass(frozen=True)
class Source:
    """Where a dataset lives on PhysioNet.

    Attributes
    ----------
    base_url : str
        Release root, ending in ``/``.
    sums : str
        Checksum file under ``base_url``.
    prefix : str
        Only files under this path of the release are fetched; it is
        stripped from the local path.
    dest : str
        Folder under the data root.
    """

    base_url: str
    sums: str
    prefix: str
    dest: str


SOURCES = {
    "ptbxl": Source("https://physionet.org/files/ptb-xl/1.0.3/", "SHA256SUMS.txt", "", "ptb-xl"),
    "cpsc": Source(
        "https://physionet.org/files/challenge-2020/1.0.2/",
        "SHA256SUMS.txt",
        "training/cpsc_2018/",
        "cpsc2018",
    ),
}


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its SHA-256 check; the message names it."""


@dataclass
class DownloadReport:
    """Outcome of :func:`download`: files fetched, already present, and failed with why."""

    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def parse_sums(text: str) -> list[tuple[str, str]]:
    """``(sha256, path)`` pairs from a ``sha256sum``-style file (``HASH  path`` per line)."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2 and len(parts[0]) == 64:
            out.append((parts[0].lower(), parts[1].lstrip("*").strip()))
    return out


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_TRANSIENT = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    socket.timeout,
    TimeoutError,
)


def fetch(
    url: str,
    dest: Path,
    sha256: str,
    retries: int = 3,
    timeout_s: float = 60.0,
    backoff_s: float = 0.5,
    chunk: int = 1 << 16,
) -> bool:
    """Download one file to ``dest`` through ``dest.part``, resuming and verifying.

    Parameters
    ----------
    url : str
    dest : pathlib.Path
        Final path; written only once the SHA-256 matches.
    sha256 : str
        Expected hex digest.
    retries : int
        Attempts after the first; a dropped connection resumes from the
        bytes already in ``.part``; a hash mismatch restarts from zero.
    timeout_s : float
        Socket timeout per attempt, s.
    backoff_s : float
        Pause between attempts, s (doubled each time).
    chunk : int
        Bytes per read.

    Returns
    -------
    bool
        True if fetched, False if ``dest`` was already present and correct.

    Raises
    ------
    DownloadError
        After the last attempt, naming the file and the last problem.
    """
    dest = Path(dest)
    if dest.is_file() and sha256_of(dest) == sha256:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    problem = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        start = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=timeout_s
            ) as resp:
                if start and resp.status != 206:  # server ignored the range: start over
                    start = 0
                expected = int(resp.headers.get("Content-Length") or -1)
                received = 0
                with open(part, "ab" if start else "wb") as fh:
                    try:
                        while block := resp.read(chunk):
                            fh.write(block)
                            received += len(block)
                    except http.client.IncompleteRead as exc:
                        fh.write(exc.partial)  # keep what arrived; the next attempt resumes
                        raise
                if 0 <= received < expected:  # the server closed before the whole body
                    raise ConnectionError(f"{received} of {expected} bytes received")
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # range past the end: the .part is complete or wrong
                pass
            else:
                problem = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break
                continue
        except _TRANSIENT as exc:
            have = part.stat().st_size if part.is_file() else 0
            problem = f"connection lost after {have} bytes ({type(exc).__name__})"
            continue
        got = sha256_of(part)
        if got == sha256:
            os.replace(part, dest)
            return True
        problem = f"SHA-256 mismatch (expected {sha256[:12]}..., got {got[:12]}...)"
        part.unlink()
    if part.is_file() and problem.startswith("HTTP"):
        part.unlink()
    raise DownloadError(f"{url}: {problem}")


def download(
    dataset: str, root: Path, base_url: str | None = None, retries: int = 3, log=print
) -> DownloadReport:
    """Fetch every file of a dataset listed in its ``SHA256SUMS.txt``.

    Parameters
    ----------
    dataset : {"ptbxl", "cpsc"}
    root : pathlib.Path
        Data root; files land under ``root / SOURCES[dataset].dest``.
    base_url : str, optional
        Replaces the PhysioNet release root (a mirror, or a test server).
    retries : int
        Per file, as :func:`fetch`.
    log : callable, optional

    Returns
    -------
    DownloadReport

    Raises
    ------
    DownloadError
        If the checksum file itself cannot be fetched.
    """
    src = SOURCES[dataset]
    base = base_url or src.base_url
    base = base if base.endswith("/") else base + "/"
    try:
        with urllib.request.urlopen(base + src.sums, timeout=60) as resp:
            sums = parse_sums(resp.read().decode())
    except (urllib.error.URLError, *_TRANSIENT) as exc:
        raise DownloadError(f"{base + src.sums}: cannot fetch the checksum list ({exc})") from exc
    wanted = [(h, p) for h, p in sums if p.startswith(src.prefix)]
    report = DownloadReport()
    dest_root = Path(root) / src.dest
    for i, (digest, path) in enumerate(wanted, 1):
        local = dest_root / path[len(src.prefix) :]
        try:
            if fetch(base + path, local, digest, retries=retries):
                report.fetched.append(path)
            else:
                report.present.append(path)
        except DownloadError as err:
            report.failed.append((path, str(err)))
            if log:
                log(f"failed: {err}")
        if log and (i % 500 == 0 or i == len(wanted)):
            log(
                f"{dataset}: {i}/{len(wanted)} files ({len(report.fetched)} fetched, "
                f"{len(report.present)} present, {len(report.failed)} failed)"
            )
    if dataset == "cpsc":
        write_reference_from_headers(dest_root)
    return report


def write_reference_from_headers(cpsc_root: Path) -> Path:
    """Write ``REFERENCE.csv`` from the WFDB headers' ``#Dx:`` lines.

    Parameters
    ----------
    cpsc_root : pathlib.Path
        Folder searched recursively for ``A*.hea``.

    Returns
    -------
    pathlib.Path
        The file, in the original release's format
        (``Recording,First_label,Second_label,Third_label``, codes 1-9). Headers
        that cannot be read or carry a code outside the 9 classes are left out
        and listed in ``REFERENCE_skipped.txt`` beside it.
    """
    code = {c: str(i + 1) for i, c in enumerate(CLASSES)}
    rows, skipped = [], []
    for hea in sorted(Path(cpsc_root).rglob("*.hea")):
        try:
            classes = header_dx_classes(hea.stem, wfdb.rdheader(str(hea.with_suffix(""))).comments)
        except RecordError as err:
            skipped.append(str(err))
            continue
        except Exception as exc:  # an unreadable header
            skipped.append(f"record {hea.stem}: unreadable header ({exc})")
            continue
        if not classes:
            skipped.append(f"record {hea.stem}: no Dx line")
            continue
        labels = [code[c] for c in classes][:3]
        rows.append(",".join([hea.stem] + labels + [""] * (3 - len(labels))))
    out = Path(cpsc_root) / "REFERENCE.csv"
    out.write_text("Recording,First_label,Second_label,Third_label\n" + "\n".join(rows) + "\n")
    (Path(cpsc_root) / "REFERENCE_skipped.txt").write_text(
        "\n".join(skipped) + ("\n" if skipped else "")
    )
    return out
