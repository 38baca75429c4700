"""Fetch PTB-XL v1.0.3 and the CPSC 2018 training set from PhysioNet, verified.

The files listed in a release's ``SHA256SUMS.txt`` become a :mod:`pooch` registry
(``sha256:<hex>`` per file), and :meth:`pooch.Pooch.fetch` gets each one. What pooch
does for us (checked against pooch 1.9.0's ``pooch/core.py``):

* **hash check**: every download is checked against its published SHA-256
  (``hash_matches(..., strict=True)``); a mismatch deletes it and raises;
* **atomic placement**: the bytes go to a temporary file in the destination
  folder and are moved (``shutil.move``, a same-filesystem rename) to the real
  name only after the hash matches, so an interrupted or corrupted download
  never leaves a half-written file under its real name;
* **retries**: a connection error (any ``requests`` exception) or a hash mismatch
  is retried ``retry_if_failed`` times, pausing 1 s, 2 s, 3 s, ... (capped at
  10 s; pooch's fixed schedule, not configurable);
* **skipping**: a file already present with the right hash is not downloaded
  again (pooch's ``"fetch"`` action, which :func:`fetch` reports as present).

What we keep ourselves, and why: **resumption**. Pooch starts every attempt from
zero in a fresh temporary file and never sends an HTTP ``Range`` request, so after
a dropped connection it would re-download the whole file. :class:`ResumingDownloader`
(the downloader pooch calls) therefore streams into ``<name>.part``, which survives
a failed attempt, and on the next attempt (a pooch retry or a later run) asks for
``Range: bytes=<size of .part>-``; once the body is complete it moves ``.part``
into pooch's temporary file, and pooch hashes it and renames it into place. It
also stops pooch from retrying errors that cannot heal (HTTP 4xx other than 408,
429): pooch would retry a 404 like a dropped connection.

A file that keeps failing is reported and skipped; the batch goes on.

The checksum list is not trusted with paths: an entry that is absolute, has a
``..`` component, a backslash or a NUL byte, or resolves (symbolic links
followed) outside the dataset's folder ``<root>/<dest>`` is never fetched; it
is reported as failed, "path leaves the data root" (:func:`unsafe_path`).

Layout written (the data root :func:`ecgrepro.config.find_data_root` expects)::

    <root>/ptb-xl/...        PTB-XL v1.0.3 as published
    <root>/cpsc2018/...      PhysioNet/CinC Challenge 2020 ``training/cpsc_2018/``

PhysioNet's copy of CPSC 2018 has no ``REFERENCE.csv``; after a CPSC download a
label table is derived from the headers' ``#Dx:`` lines
(:func:`reference_from_headers`; a recording whose header copies disagree is left
out and named in ``REFERENCE_skipped.txt``) and placed by
:func:`write_reference_from_headers`, which never overwrites a label file:

* only if every file of the download verified; otherwise no label file is written
  and the log says how many files failed;
* ``REFERENCE.csv`` is written only where there is none; one that differs from
  the headers (say, the original CPSC release's, which also labels records held
  only as original ``.mat`` files, without a header) is left untouched and the
  header labels go to ``REFERENCE_from_headers.csv`` beside it;
* every file is written atomically (a temporary file beside it, then
  :func:`os.replace`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pooch
import requests
import urllib3
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


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, by :func:`pooch.file_hash`.

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    str
        64 lower-case hex digits.
    """
    return pooch.file_hash(str(path), alg="sha256")


def _permanent(status: int) -> bool:
    """HTTP statuses that a retry cannot fix (client errors other than timeout/rate limit)."""
    return 400 <= status < 500 and status not in (408, 429)


class ResumingDownloader:
    """A pooch downloader that resumes ``<dest>.part`` with an HTTP ``Range`` request.

    Pooch calls it as ``downloader(url, output_file, pooch)`` once per attempt
    (see "downloaders" in pooch's documentation) and then checks the hash of
    ``output_file`` and moves it into place; this class only adds what pooch
    lacks, resumption of a partial file.

    Parameters
    ----------
    part : pathlib.Path
        The partial file, kept between attempts and between runs.
    timeout_s : float
        Connect and read timeout of each request, s.
    chunk : int
        Bytes per read.
    """

    def __init__(self, part: Path, timeout_s: float = 60.0, chunk: int = 1 << 16):
        self.part = Path(part)
        self.timeout_s = timeout_s
        self.chunk = chunk

    def __call__(self, url: str, output_file: str, pooch_instance=None) -> None:
        """Bring ``.part`` up to the whole body, then move it to ``output_file``.

        Parameters
        ----------
        url : str
        output_file : str
            Pooch's temporary file; replaced by the completed ``.part``.
        pooch_instance : pooch.Pooch, optional
            The caller (unused).

        Raises
        ------
        requests.RequestException
            The connection dropped, timed out, or the server answered 5xx, 408 or
            429; ``.part`` keeps what arrived and pooch retries.
        DownloadError
            The server answered another 4xx (not retried by pooch; a 416 only
            when no range was asked); ``.part`` is removed.
        """
        start = self.part.stat().st_size if self.part.is_file() else 0
        # identity: a Range counts bytes of the file as stored, not of a gzip stream
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout_s) as resp:
            if resp.status_code == 416 and start:  # range past the end: .part complete or wrong
                os.replace(self.part, output_file)
                return
            if _permanent(resp.status_code):
                self.part.unlink(missing_ok=True)
                raise DownloadError(f"{url}: HTTP {resp.status_code}")
            resp.raise_for_status()
            if resp.status_code != 206:  # no range asked, or the server ignored it
                start = 0
            expected = int(resp.headers.get("Content-Length") or -1)
            received = 0
            with open(self.part, "ab" if start else "wb") as fh:
                try:
                    for block in resp.raw.stream(self.chunk, decode_content=False):
                        fh.write(block)
                        received += len(block)
                except urllib3.exceptions.HTTPError as exc:  # as requests' iter_content does
                    raise requests.ConnectionError(exc) from exc
        if 0 <= received < expected:  # the server closed before the whole body
            raise requests.ConnectionError(f"{received} of {expected} bytes received")
        os.replace(self.part, output_file)


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's INFO lines (one per file downloaded, and one per retry)."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _get(pup: pooch.Pooch, name: str, timeout_s: float, chunk: int) -> bool:
    """Fetch registry entry ``name`` of ``pup``; True if downloaded, False if present."""
    url = pup.get_url(name)
    part = pup.abspath / (name + ".part")
    downloader = ResumingDownloader(part, timeout_s=timeout_s, chunk=chunk)
    try:
        with _quiet_pooch():
            action = pup.fetch(name, downloader=downloader, processor=lambda _path, act, _pup: act)
    except ValueError as exc:  # pooch's hash check, after its last retry
        raise DownloadError(f"{url}: SHA-256 mismatch ({exc})") from exc
    except requests.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: HTTP {exc.response.status_code}") from exc
    except requests.RequestException as exc:
        have = part.stat().st_size if part.is_file() else 0
        raise DownloadError(
            f"{url}: connection lost after {have} bytes ({type(exc).__name__})"
        ) from exc
    return action != "fetch"


def fetch(
    url: str,
    dest: Path,
    sha256: str,
    retries: int = 3,
    timeout_s: float = 60.0,
    chunk: int = 1 << 16,
) -> bool:
    """Download one file to ``dest``, verified by pooch and resumed by :class:`ResumingDownloader`.

    Parameters
    ----------
    url : str
    dest : pathlib.Path
        Final path; written (renamed into place by pooch) only once the SHA-256
        matches.
    sha256 : str
        Expected hex digest, as in the release's ``SHA256SUMS.txt``.
    retries : int
        Attempts after the first (pooch's ``retry_if_failed``; pauses 1 s, 2 s,
        ... between them). A dropped connection resumes from the bytes already
        in ``dest.part``; a hash mismatch restarts from zero.
    timeout_s : float
        Connect and read timeout per request, s.
    chunk : int
        Bytes per read.

    Returns
    -------
    bool
        True if fetched, False if ``dest`` was already present and correct.

    Raises
    ------
    DownloadError
        After the last attempt (at once for HTTP 4xx other than 408, 429), naming
        the URL, hence the file, and the last problem: ``HTTP <code>``,
        ``SHA-256 mismatch`` or ``connection lost after <n> bytes``.
    """
    dest = Path(dest)
    pup = pooch.create(
        path=dest.parent,
        base_url=url.rsplit("/", 1)[0] + "/",
        registry={dest.name: f"sha256:{sha256}"},
        urls={dest.name: url},
        retry_if_failed=retries,
    )
    return _get(pup, dest.name, timeout_s, chunk)


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


#: The label table, in the original CPSC 2018 release's name and format.
REFERENCE = "REFERENCE.csv"
#: Where the header labels go when a different ``REFERENCE.csv`` is already there.
REFERENCE_FROM_HEADERS = "REFERENCE_from_headers.csv"
#: Headers left out of the header-derived table, one line each with why.
REFERENCE_SKIPPED = "REFERENCE_skipped.txt"
_REFERENCE_COLUMNS = "Recording,First_label,Second_label,Third_label\n"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step: a reader sees the old file or the new.

    The text goes to a temporary file made by :func:`tempfile.mkstemp` in the
    same folder, is flushed to disk, and is renamed over ``path`` by
    :func:`os.replace`; on any error the temporary file is removed and ``path``
    is as it was.

    Parameters
    ----------
    path : pathlib.Path
        The file; its folder must exist.
    text : str
        Written as UTF-8 with ``\\n`` line ends; the file gets mode 0644.

    Raises
    ------
    OSError
        If the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def reference_from_headers(cpsc_root: Path) -> tuple[str, int, list[str]]:
    """The label table that the WFDB headers' ``#Dx:`` lines give.

    Every ``*.hea`` under ``cpsc_root`` (recursively) is read; a recording is
    named by its header's file stem, so the same recording in several folders
    (say ``wfdb-2020/A0001.hea`` and ``wfdb-snomed/A0001.hea``) is one
    recording. It gets a row only if every copy of its header can be read, has a
    ``#Dx:`` line with codes of the 9 classes only, and gives the same classes
    as the other copies; otherwise it is left out, with a line saying why.

    Parameters
    ----------
    cpsc_root : pathlib.Path
        Folder searched recursively; it need not exist.

    Returns
    -------
    text : str
        ``REFERENCE.csv`` in the original release's format
        (``Recording,First_label,Second_label,Third_label``, codes 1-9 in
        :data:`~ecgrepro.config.CLASSES` order, at most 3 per recording), rows
        sorted by recording.
    n_rows : int
        Recordings in ``text``.
    skipped : list of str
        One line per recording left out, naming it, its header file(s) and why,
        e.g. ``record A0002: headers disagree (wfdb-2020/A0002.hea: SNR;
        wfdb-snomed/A0002.hea: AF); left out``.
    """
    cpsc_root = Path(cpsc_root)
    code = {c: str(i + 1) for i, c in enumerate(CLASSES)}
    copies: dict[str, list[tuple[str, tuple[str, ...] | None, str]]] = {}
    for hea in sorted(cpsc_root.rglob("*.hea")):
        rel = hea.relative_to(cpsc_root).as_posix()
        classes, problem = None, ""
        try:
            found = header_dx_classes(hea.stem, wfdb.rdheader(str(hea.with_suffix(""))).comments)
        except RecordError as err:
            problem = err.problem
        except Exception as exc:  # an unreadable header
            problem = f"unreadable header ({exc})"
        else:
            if found:
                classes = tuple(found)
            else:
                problem = "no Dx line" if found is None else "empty Dx line"
        copies.setdefault(hea.stem, []).append((rel, classes, problem))
    rows, skipped = [], []
    for record in sorted(copies):
        found = copies[record]
        problems = [f"{rel}: {problem}" for rel, _, problem in found if problem]
        if problems:
            skipped.append(f"record {record}: {'; '.join(problems)}; left out")
            continue
        if len({classes for _, classes, _ in found}) > 1:
            each = "; ".join(f"{rel}: {' '.join(classes)}" for rel, classes, _ in found)
            skipped.append(f"record {record}: headers disagree ({each}); left out")
            continue
        labels = [code[c] for c in found[0][1]][:3]
        rows.append(",".join([record] + labels + [""] * (3 - len(labels))))
    return _REFERENCE_COLUMNS + "".join(row + "\n" for row in rows), len(rows), skipped


def write_reference_from_headers(cpsc_root: Path) -> tuple[Path | None, str]:
    """Place the header-derived label table without overwriting a label file.

    The table is :func:`reference_from_headers`'s. Where ``REFERENCE.csv`` is
    missing it is written; where it exists with the same bytes nothing is
    written; where it differs (the original release's, or one edited by hand) it
    is left untouched and the table is written to ``REFERENCE_from_headers.csv``
    instead (unless that file already holds it). The recordings left out are
    listed in ``REFERENCE_skipped.txt`` (rewritten only if its content changes).
    Every write is atomic (:func:`write_atomic`). :func:`download` calls this
    only when every file verified.

    Parameters
    ----------
    cpsc_root : pathlib.Path
        The CPSC folder, ``<root>/cpsc2018``; searched recursively for ``*.hea``.

    Returns
    -------
    path : pathlib.Path or None
        Where the header labels now are, when that is not the existing
        ``REFERENCE.csv``: ``REFERENCE.csv`` (just written, there was none) or
        ``REFERENCE_from_headers.csv`` (``REFERENCE.csv`` differs); None if
        ``REFERENCE.csv`` already matched or no header gave a row (then no label
        file is written).
    message : str
        One line saying which of these happened, for the log.

    Raises
    ------
    OSError
        If a file cannot be written; the file it was replacing is left as it was.
    """
    cpsc_root = Path(cpsc_root)
    text, n_rows, skipped = reference_from_headers(cpsc_root)
    skipped_path = cpsc_root / REFERENCE_SKIPPED
    if skipped or skipped_path.exists():
        body = "".join(line + "\n" for line in skipped)
        if not skipped_path.is_file() or skipped_path.read_text(encoding="utf-8") != body:
            write_atomic(skipped_path, body)
    left_out = f"; {len(skipped)} left out, listed in {skipped_path}" if skipped else ""
    ref = cpsc_root / REFERENCE
    if n_rows == 0:
        return None, f"cpsc: no WFDB header gave labels{left_out}; {ref} not written"
    if not ref.exists():
        write_atomic(ref, text)
        return ref, f"cpsc: wrote {ref} from the WFDB headers ({n_rows} recording(s){left_out})"
    if ref.read_bytes() == text.encode("utf-8"):
        return None, f"cpsc: {ref} already matches the WFDB headers; left as it is"
    alt = cpsc_root / REFERENCE_FROM_HEADERS
    if not alt.is_file() or alt.read_bytes() != text.encode("utf-8"):
        write_atomic(alt, text)
    return alt, (
        f"cpsc: {ref} differs from the WFDB headers' labels and was left untouched; "
        f"the header labels ({n_rows} recording(s){left_out}) are in {alt}: to use them, "
        f"replace {REFERENCE} with it (records without a header then lose their labels)"
    )
