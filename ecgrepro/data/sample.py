"""The shared data sample, and the check for records missing from a data root.

The shared sample (``../shared/ecg-data``; its README.md) holds only some of
the records its label files list: 1,987 of the 21,799 PTB-XL records and 160
of the 6,877 CPSC 2018 records. On it, listed-but-absent records are
expected. Elsewhere (a full download) they mean an incomplete data root, and
the loaders warn with :class:`~ecgrepro.data.errors.MissingRecordsWarning`.

The sample is recognised by what it ships: a ``README.md`` whose first line
is the sample's title and a ``SHA256SUMS`` manifest listing every file. The
manifest also says which records the sample should hold, so a damaged copy of
the sample (a record file deleted) still warns.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ecgrepro.data.errors import MissingRecordsWarning

#: First line of the shared sample's README.md.
SAMPLE_README_TITLE = "# ECG sample data"

#: Largest share of listed records that may be missing without a warning.
MISSING_TOLERANCE = 0.01


def sample_manifest(root: Path) -> frozenset[str] | None:
    """The files the shared sample holds, or None for a root that is not the sample.

    Parameters
    ----------
    root : pathlib.Path
        A data root.

    Returns
    -------
    frozenset of str or None
        Paths relative to ``root`` (POSIX, e.g. ``ptb-xl/records100/00000/00001_lr.hea``)
        listed in ``root/SHA256SUMS``, when ``root/README.md`` starts with
        :data:`SAMPLE_README_TITLE`; None otherwise.
    """
    root = Path(root)
    readme, sums = root / "README.md", root / "SHA256SUMS"
    if not (readme.is_file() and sums.is_file()):
        return None
    with open(readme, encoding="utf-8", errors="replace") as fh:
        if not fh.readline().startswith(SAMPLE_README_TITLE):
            return None
    paths = set()
    for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            paths.add(parts[1].lstrip("*").strip().removeprefix("./"))
    return frozenset(paths)


def is_shared_sample(root: Path) -> bool:
    """Whether ``root`` is the shared data sample (see :func:`sample_manifest`)."""
    return sample_manifest(root) is not None


def missing_records_note(
    dataset: str,
    n_expected: int,
    n_missing: int,
    label_file: Path,
    folder: Path,
    on_sample: bool,
) -> str | None:
    """Warn when more than 1% of the records expected on disk are missing.

    Parameters
    ----------
    dataset : str
        ``"ptbxl"`` or ``"cpsc"``.
    n_expected : int
        Records that should be on disk: every record the label file lists, or,
        on the shared sample, those its ``SHA256SUMS`` lists.
    n_missing : int
        Of those, the ones not found.
    label_file : pathlib.Path
        Where the records are listed (``ptbxl_database.csv``, ``REFERENCE.csv``).
    folder : pathlib.Path
        Where they were looked for.
    on_sample : bool
        Whether the root is the shared sample (changes only the wording).

    Returns
    -------
    str or None
        The sentence also issued as a :class:`MissingRecordsWarning`, or None
        when at most :data:`MISSING_TOLERANCE` of the expected records are missing.
    """
    if n_expected == 0 or n_missing <= MISSING_TOLERANCE * n_expected:
        return None
    share = 100 * n_missing / n_expected
    what = "listed in the sample's SHA256SUMS" if on_sample else f"listed in {label_file}"
    msg = (
        f"{dataset}: {n_missing:,} of the {n_expected:,} records {what} ({share:.1f}%) "
        f"are missing under {folder}; only the {n_expected - n_missing:,} present are used. "
        "The data root looks incomplete (the full datasets: `make data DATA=/path`)."
    )
    warnings.warn(msg, MissingRecordsWarning, stacklevel=3)
    return msg
