"""One file from an HTTP server, verified by :mod:`pooch` and resumed after a dropped connection.

:func:`fetch` gets one file; :func:`ecgrepro.download.download` gets every file of
a release the same way, from a :mod:`pooch` registry made of its checksum list
(``sha256:<hex>`` per file), with :meth:`pooch.Pooch.fetch`. What pooch does for
us (checked against pooch 1.9.0's ``pooch/core.py``):

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

Every public name here is re-exported by :mod:`ecgrepro.download`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pooch
import requests
import urllib3


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its SHA-256 check; the message names it."""


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
