"""The CPSC 2018 label table, derived from the WFDB headers and placed without overwriting.

PhysioNet's copy of CPSC 2018 has no ``REFERENCE.csv``; after a CPSC download
(:func:`ecgrepro.download.download`) a label table is derived from the headers'
``#Dx:`` lines (:func:`reference_from_headers`; a recording whose header copies
disagree is left out and named in ``REFERENCE_skipped.txt``) and placed by
:func:`write_reference_from_headers`, which never overwrites a label file:

* only if every file of the download verified (the download checks this);
  otherwise no label file is written and the log says how many files failed;
* ``REFERENCE.csv`` is written only where there is none; one that differs from
  the headers (say, the original CPSC release's, which also labels records held
  only as original ``.mat`` files, without a header) is left untouched and the
  header labels go to ``REFERENCE_from_headers.csv`` beside it;
* every file is written atomically (a temporary file beside it, then
  :func:`os.replace`; :func:`write_atomic`).

Every public name here is re-exported by :mod:`ecgrepro.download`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import wfdb

from ecgrepro.config import CLASSES
from ecgrepro.data.errors import RecordError
from ecgrepro.data.labels import header_dx_classes

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
    Every write is atomic (:func:`write_atomic`). :func:`ecgrepro.download.download`
    calls this only when every file verified.

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
