"""Fetch PTB-XL v1.0.3 and the CPSC 2018 training set from PhysioNet, verified.

The files listed in a release's ``SHA256SUMS.txt`` become a :mod:`pooch` registry
(``sha256:<hex>`` per file), and each one is fetched by :mod:`ecgrepro.http_fetch`:
hash-checked, placed atomically and retried by pooch, and resumed after a dropped
connection by :class:`ResumingDownloader` (see that module for what pooch does and
what we add).

A file that keeps failing is reported and skipped; the batch goes on.

The checksum list is not trusted with paths: an entry that is absolute, has a
``..`` component, a backslash or a NUL byte, or resolves (symbolic links
followed) outside the dataset's folder ``<root>/<dest>`` is never fetched; it
is reported as failed, "path leaves the data root" (:func:`unsafe_path`).

Layout written (the data root :func:`ecgrepro.config.find_data_root` expects)::

    <root>/ptb-xl/...        PTB-XL v1.0.3 as published
    <root>/cpsc2018/...      PhysioNet/CinC Challenge 2020 ``training/cpsc_2018/``

PhysioNet's copy of CPSC 2018 has no ``REFERENCE.csv``; after a CPSC download in
which every file verified, a label table is derived from the headers' ``#Dx:``
lines and placed, never overwriting a label file, by
:func:`write_reference_from_headers` (:mod:`ecgrepro.cpsc_reference`); if a file
failed, no label file is written and the log says how many files failed.

The public names of :mod:`ecgrepro.http_fetch` and :mod:`ecgrepro.cpsc_reference`
are re-exported here, so this stays the module to import from.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pooch
import requests

from ecgrepro.cpsc_reference import (
    REFERENCE,
    REFERENCE_FROM_HEADERS,
    REFERENCE_SKIPPED,
    reference_from_headers,
    write_atomic,
    write_reference_from_headers,
)
from ecgrepro.http_fetch import DownloadError, ResumingDownloader, _get, fetch, sha256_of

__all__ = [
    "REFERENCE",
    "REFERENCE_FROM_HEADERS",
    "REFERENCE_SKIPPED",
    "SOURCES",
    "DownloadError",
    "DownloadReport",
    "ResumingDownloader",
    "Source",
    "download",
    "fetch",
    "parse_sums",
    "reference_from_headers",
    "sha256_of",
    "unsafe_path",
    "write_atomic",
    "write_reference_from_headers",
]


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


@dataclass
class DownloadReport:
    """Outcome of :func:`download`.

    Attributes
    ----------
    fetched : list of str
        Release paths downloaded and verified in this run.
    present : list of str
        Release paths already on disk with the right SHA-256.
    failed : list of tuple of (str, str)
        ``(release path, message)``; the message names the file (its URL, or the
        checksum entry) and why it failed.
    notes : list of str
        Lines about the label file (CPSC only): written, left untouched, or not
        written because files failed.
    """

    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_sums(text: str) -> list[tuple[str, str]]:
    """Read a ``sha256sum``-style checksum file.

    Parameters
    ----------
    text : str
        Contents, one ``HASH  path`` (or ``HASH *path``) per line, as PhysioNet's
        ``SHA256SUMS.txt``; other lines are ignored.

    Returns
    -------
    list of tuple of (str, str)
        ``(sha256, path)`` pairs, the hash in lower-case hex. (Pooch's own
        :meth:`pooch.Pooch.load_registry` reads ``path hash``, the other order.)
    """
    out = []
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2 and len(parts[0]) == 64:
            out.append((parts[0].lower(), parts[1].lstrip("*").strip()))
    return out


def unsafe_path(entry: str, local: str, dest_root: Path) -> str | None:
    """Why a checksum entry must not be fetched, or None if it may be.

    Parameters
    ----------
    entry : str
        The path as the checksum list gives it (for the message).
    local : str
        Its path under ``dest_root`` (``entry`` less the source's prefix).
    dest_root : pathlib.Path
        The dataset's folder, ``root / SOURCES[dataset].dest``; it need not exist.

    Returns
    -------
    str or None
        ``"<entry>: path leaves the data root (<why>); not fetched"`` (a NUL
        byte in ``<entry>`` shown as ``\\0``), where
        ``<why>`` is a NUL byte, a backslash (a separator on Windows), an absolute
        path, a ``..`` component, or the resolved path (symbolic links followed)
        lying outside ``dest_root`` or being ``dest_root`` itself; None for a
        path that stays inside.
    """
    if "\0" in entry:
        why = "NUL byte"
    elif "\\" in entry:
        why = "backslash, a path separator on Windows"
    elif PurePosixPath(local).is_absolute():
        why = "absolute path"
    elif ".." in PurePosixPath(local).parts:
        why = "'..' component"
    else:
        base = Path(dest_root).resolve()
        target = (base / local).resolve()
        if target == base or not target.is_relative_to(base):
            why = f"resolves to {target}, not a file under {base}"
        else:
            return None
    shown = entry.replace("\0", "\\0")  # a NUL byte written out, not sent to the terminal
    return f"{shown}: path leaves the data root ({why}); not fetched"


def download(
    dataset: str, root: Path, base_url: str | None = None, retries: int = 3, log=print
) -> DownloadReport:
    """Fetch every file of a dataset listed in its ``SHA256SUMS.txt``.

    The checksum list becomes a pooch registry; each file is fetched as in
    :func:`fetch`. Sources: PTB-XL v1.0.3 and PhysioNet/CinC Challenge 2020 v1.0.2
    (``training/cpsc_2018/``) on physionet.org, see :data:`SOURCES`. An entry
    whose path would leave ``root / SOURCES[dataset].dest`` (:func:`unsafe_path`)
    is not fetched and is reported as failed. For ``"cpsc"`` the label table is
    then placed by :func:`write_reference_from_headers`, but only if no file
    failed; otherwise no label file is written or rewritten.

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
        Called with a progress line every 500 files, with each failure
        (``failed: <message>``) and with each line of
        :attr:`DownloadReport.notes`; None for silence.

    Returns
    -------
    DownloadReport
        Release paths fetched, already present, and failed (with a message
        naming the file and why), and the lines about the label file.

    Raises
    ------
    KeyError
        If ``dataset`` is not a key of :data:`SOURCES`.
    DownloadError
        If the checksum file itself cannot be fetched or is not UTF-8 text.
    """
    src = SOURCES[dataset]
    base = base_url or src.base_url
    base = base if base.endswith("/") else base + "/"
    buf = io.BytesIO()
    try:
        pooch.HTTPDownloader(timeout=60)(base + src.sums, buf, None)
    except requests.RequestException as exc:
        raise DownloadError(f"{base + src.sums}: cannot fetch the checksum list ({exc})") from exc
    try:
        text = buf.getvalue().decode()
    except UnicodeDecodeError as exc:
        raise DownloadError(f"{base + src.sums}: checksum list is not UTF-8 text ({exc})") from exc
    listed = [(h, p) for h, p in parse_sums(text) if p.startswith(src.prefix)]
    dest_root = Path(root) / src.dest
    local = {p: p[len(src.prefix) :] for _, p in listed}
    refused = {p: unsafe_path(p, local[p], dest_root) for _, p in listed}
    wanted = [(h, p) for h, p in listed if refused[p] is None]
    pup = pooch.create(
        path=dest_root,
        base_url=base,
        registry={local[p]: f"sha256:{h}" for h, p in wanted},
        urls={local[p]: base + p for _, p in wanted},
        retry_if_failed=retries,
    )
    report = DownloadReport()
    for i, (_, path) in enumerate(listed, 1):
        try:
            if refused[path] is not None:
                raise DownloadError(refused[path])
            if _get(pup, local[path], timeout_s=60.0, chunk=1 << 16):
                report.fetched.append(path)
            else:
                report.present.append(path)
        except DownloadError as err:
            report.failed.append((path, str(err)))
            if log:
                log(f"failed: {err}")
        if log and (i % 500 == 0 or i == len(listed)):
            log(
                f"{dataset}: {i}/{len(listed)} files ({len(report.fetched)} fetched, "
                f"{len(report.present)} present, {len(report.failed)} failed)"
            )
    if dataset == "cpsc":
        if report.failed:
            note = (
                f"cpsc: {len(report.failed)} file(s) failed, so "
                f"{dest_root / REFERENCE} was not (re)written from the headers; "
                "rerun the download to fetch them"
            )
        else:
            note = write_reference_from_headers(dest_root)[1]
        report.notes.append(note)
        if log:
            log(note)
    return report
