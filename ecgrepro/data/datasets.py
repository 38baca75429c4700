"""The dataset class and the two loaders, :func:`load_ptbxl` and :func:`load_cpsc`.

Each loader returns an :class:`ECGDataset` whose signals are decoded once into
an on-disk cache (:func:`ecgrepro.data.signals.cached_signals`) and whose every
skipped record is listed with its problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from ecgrepro.config import CLASSES, REPO_ROOT
from ecgrepro.data import cpsc, ptbxl
from ecgrepro.data.errors import EmptySplitError, SkipReport
from ecgrepro.data.labels import SUPERCLASSES, multi_hot, ptbxl_superclasses
from ecgrepro.data.records import read_wfdb
from ecgrepro.data.sample import missing_records_note, sample_manifest
from ecgrepro.data.signals import cached_signals
from ecgrepro.data.splits import TEST_FOLD, TRAIN_FOLDS, VALIDATION_FOLD, split_of, stratified_folds

__all__ = ["CACHE_ENV", "ECGDataset", "default_cache_dir", "load_cpsc", "load_ptbxl"]

#: Environment variable naming the signal cache folder (overrides ``<repo>/_build/cache``).
CACHE_ENV = "ECGREPRO_CACHE"

_SPLITS = ("train", "val", "test")


def default_cache_dir() -> Path:
    """Where decoded signals are cached when a loader is given no ``cache_dir``.

    Returns
    -------
    pathlib.Path
        ``$ECGREPRO_CACHE`` when that environment variable is set and not
        empty (the tests point it at a temporary folder); otherwise
        ``<repo>/_build/cache``. The book's notebooks pass their own
        ``cache_dir`` (``<build>/cache``) and do not use this default.
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return REPO_ROOT / "_build" / "cache"


@dataclass
class ECGDataset:
    """Decoded, labelled records of one dataset, ready for a model.

    Attributes
    ----------
    name : str
        ``"ptbxl"`` or ``"cpsc"``.
    signals : numpy.ndarray, shape (n_records, 12, n_samples), float32, mV
        Memory-mapped from the cache. Records shorter than the window are
        zero-padded at the front (:func:`~ecgrepro.data.signals.prepare_signal`).
    y : numpy.ndarray, shape (n_records, 9), float32
        Multi-hot labels in :data:`ecgrepro.config.CLASSES` order.
    records : pandas.DataFrame
        One row per record in ``signals`` order: ``record``, ``fold`` (1-10),
        ``split`` (train/val/test), ``classes``, ``n_valid`` and, per dataset,
        more columns (PTB-XL: ``scp_codes``, ``age``, ``sex``, ``patient_id``,
        ``label_mapping``; CPSC: ``form``).

        ``n_valid`` (int64) is the number of valid, non-padding samples of the
        record in its window, ``min(resampled length, n_samples)``, computed
        when the cache is built: the record is ``signals[i, :, n_samples -
        n_valid[i]:]`` and the ``n_samples - n_valid[i]`` samples before it
        are zero padding.

        ``patient_id`` (PTB-XL, nullable Int64) is ``ptbxl_database.csv``'s
        ``patient_id``; ``strat_fold`` keeps every patient in one fold, so in
        one split.
    fs_hz : float
        Sampling frequency of ``signals``, Hz.
    n_samples : int
        Samples per record.
    skipped : SkipReport
        Records left out, each with its problem (labels or signal).
    inventory : dict
        Counts: listed, labelled, present, used, skipped, and dataset-specific
        ones (dropped, header disagreements, duplicate forms). PTB-XL also has
        ``source_fs_hz``: the release actually read (100 or 500), which may
        differ from the usual one (see ``notes``).
    notes : list of str
        Human-readable remarks for the pages: header Dx disagreements (CPSC),
        the PTB-XL release read when it is not the usual one, records missing
        from the data root.
    cache_key : str
        Hash of the decoded signals: records, the SHA-256 of their files and
        their paths relative to the data root, fs, length
        (:func:`~ecgrepro.data.signals.cached_signals`); the same data at
        another path has the same key.
    source : str
        The folder the records were read from (PTB-XL: ``.../ptb-xl/records100``
        or ``records500``; CPSC: ``.../cpsc2018``); named by :class:`EmptySplitError`.
    split_expected : dict of str -> str
        For each split, which records it should hold; named by
        :class:`EmptySplitError`.
    """

    name: str
    signals: np.ndarray
    y: np.ndarray
    records: pd.DataFrame
    fs_hz: float
    n_samples: int
    skipped: SkipReport
    inventory: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cache_key: str = ""
    source: str = ""
    split_expected: dict[str, str] = field(default_factory=dict)

    @property
    def data_key(self) -> str:
        """Hash of the signals, the labels and the split: what a trained model depends on."""
        payload = json.dumps(
            [
                self.cache_key,
                list(self.records.record),
                list(self.records.split),
                self.y.astype(int).tolist(),
            ]
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def subset(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Row indices and labels of one split.

        Parameters
        ----------
        split : {"train", "val", "test", "all"}
            ``all``: every record (for a model that saw none of this dataset).

        Returns
        -------
        idx : numpy.ndarray of int, rows of ``signals``
        y : numpy.ndarray, shape (len(idx), 9), float32

        Raises
        ------
        EmptySplitError
            If the split holds no record; the message names the folder the
            records were looked for in, what the split should hold and how
            many records each split has.
        """
        if split == "all":
            idx = np.arange(len(self.records))
        else:
            idx = np.flatnonzero(self.records["split"].to_numpy() == split)
        if len(idx) == 0:
            raise self._empty_split_error(split)
        return idx, self.y[idx]

    def _empty_split_error(self, split: str) -> EmptySplitError:
        split_col = self.records.get("split", pd.Series(dtype=object))
        counts = split_col.value_counts()
        per_split = ", ".join(f"{s} {int(counts.get(s, 0)):,}" for s in _SPLITS)
        expected = self.split_expected.get(
            split,
            "at least one record" if split == "all" else f"the records whose split is {split!r}",
        )
        detail = f"{len(self.records):,} records loaded in all ({per_split})"
        notes = [n for n in self.notes if n.startswith(("PTB-XL:", f"{self.name}:"))]
        if notes:
            detail += "; " + "; ".join(notes)
        return EmptySplitError(self.name, split, self.source or "?", expected, detail)


def _ptbxl_split_expected(
    meta: pd.DataFrame, kept: pd.DataFrame, on_disk: pd.Series, label_mapping: str
) -> dict[str, str]:
    folds = {
        "train": (list(TRAIN_FOLDS), f"folds {TRAIN_FOLDS[0]}-{TRAIN_FOLDS[-1]}"),
        "val": ([VALIDATION_FOLD], f"fold {VALIDATION_FOLD}"),
        "test": ([TEST_FOLD], f"fold {TEST_FOLD}"),
        "all": (list(range(1, 11)), "any fold"),
    }
    out = {}
    for split, (fs, text) in folds.items():
        n_listed = int(meta.strat_fold.isin(fs).sum())
        in_kept = kept.strat_fold.isin(fs)
        n_kept = int(in_kept.sum())
        n_disk = int(on_disk.loc[kept.index[in_kept]].sum())
        out[split] = (
            f"{text} of ptbxl_database.csv (strat_fold): {n_listed:,} listed, {n_kept:,} kept "
            f"by the {label_mapping!r} label mapping, {n_disk:,} of them on disk"
        )
    return out


def load_ptbxl(
    root: Path,
    fs_hz: float,
    n_samples: int,
    cache_dir: Path | None = None,
    source_fs_hz: int | None = None,
    label_mapping: str = "published",
    label_set: str = "cpsc9",
) -> ECGDataset:
    """PTB-XL records present on disk, labelled with the 9 CPSC classes (or the 5 superclasses).

    Parameters
    ----------
    root : pathlib.Path
        Data root holding ``ptb-xl/``.
    fs_hz : float
        Model input sampling frequency, Hz (500 in the paper).
    n_samples : int
        Model input length in samples (15,000 in the paper: 10 s records are
        zero-padded at the front).
    cache_dir : pathlib.Path, optional
        Signal cache folder; defaults to :func:`default_cache_dir`.
    source_fs_hz : {100, 500}, optional
        Which release to read. By default the 100 Hz release when
        ``fs_hz <= 100``, else the 500 Hz one, with a fall-back to the other
        release when the usual one holds none (or, for 100 Hz, fewer than half)
        of the records (:func:`ecgrepro.data.ptbxl.choose_release`); records
        are then resampled with :func:`scipy.signal.resample_poly`. Given
        explicitly, that release is read.
    label_mapping : {"published", "rhythm-aware"}
        The SCP -> CPSC mapping (:mod:`ecgrepro.data.labels`); the paper's
        ``published`` by default. It decides the labels and which records are
        dropped, so it enters :attr:`ECGDataset.data_key`.
    label_set : {"cpsc9", "superclasses"}
        ``cpsc9``: the 9 CPSC classes through ``label_mapping``. ``superclasses``:
        PTB-XL's 5 diagnostic superclasses (:data:`~ecgrepro.data.labels.SUPERCLASSES`,
        :func:`~ecgrepro.data.labels.ptbxl_superclasses`; Companion C's label
        set), records without a diagnostic statement left out; ``y`` then has 5
        columns and ``label_mapping`` is not used.

    Returns
    -------
    ECGDataset
        Folds from ``strat_fold``. Dropped records (no code left after the
        mapping) are not included; records listed but absent from disk are
        counted in ``inventory`` but are not errors (the sample holds only
        some). ``records`` also holds ``scp_codes`` (the raw statements, dict
        code -> likelihood in %), ``patient_id``, ``n_valid`` and
        ``label_mapping``. ``inventory["source_fs_hz"]`` is the release read;
        ``notes`` says why when it is not the usual one.

    Raises
    ------
    FileNotFoundError
        If ``ptbxl_database.csv`` is missing.

    Warns
    -----
    MissingRecordsWarning
        On a data root other than the shared sample, when more than 1% of the
        records listed in ``ptbxl_database.csv`` are missing from the release
        read (also added to ``notes``).

    Notes
    -----
    An empty split is not an error here: :meth:`ECGDataset.subset` raises
    :class:`~ecgrepro.data.errors.EmptySplitError` when it is used.
    """
    if label_set not in ("cpsc9", "superclasses"):
        raise ValueError(f"label_set must be 'cpsc9' or 'superclasses', got {label_set!r}")
    meta, label_skips = ptbxl.load_metadata(root, label_mapping)
    classes = CLASSES
    if label_set == "superclasses":
        statements = ptbxl.load_statements(root)
        meta["classes"] = [ptbxl_superclasses(codes, statements) for codes in meta.scp]
        meta["dropped"] = [len(c) == 0 for c in meta.classes]
        classes, label_mapping = SUPERCLASSES, "superclasses"
    kept = meta[~meta.dropped]
    on_disk_by_fs = {fs: ptbxl.present(root, meta, fs) for fs in ptbxl.FILENAME_COLUMN}
    n_present = {fs: int(d.loc[kept.index].sum()) for fs, d in on_disk_by_fs.items()}
    source_fs_hz, release_note = ptbxl.choose_release(n_present, fs_hz, source_fs_hz)
    notes = [release_note] if release_note else []
    on_disk = on_disk_by_fs[source_fs_hz]
    folder = ptbxl.release_dir(root, source_fs_hz)

    manifest = sample_manifest(root)
    if manifest is None:
        expected = pd.Series(True, index=meta.index)
    else:
        col = ptbxl.FILENAME_COLUMN[source_fs_hz]
        expected = meta[col].map(lambda f: f"ptb-xl/{f}.hea" in manifest)
    missing = missing_records_note(
        "ptbxl",
        int(expected.sum()),
        int((expected & ~on_disk).sum()),
        ptbxl.ptbxl_dir(root) / "ptbxl_database.csv",
        folder,
        on_sample=manifest is not None,
    )
    if missing:
        notes.append(missing)

    usable = kept[on_disk.loc[kept.index]]
    sources = [(str(i), str(ptbxl.record_path(root, meta, i, source_fs_hz))) for i in usable.index]

    def read(record: str, path: str):
        return read_wfdb(path, record=f"ptbxl:{record}", contract=ptbxl.CONTRACTS[source_fs_hz])

    signals, ok, skipped, cache_key, n_valid = cached_signals(
        "ptbxl", sources, read, fs_hz, n_samples, cache_dir or default_cache_dir(), root=root
    )
    skipped.skipped[:0] = label_skips.skipped
    rows = usable.loc[[int(r) for r in ok]]
    patient = rows.patient_id if "patient_id" in rows else pd.Series(np.nan, index=rows.index)
    records = pd.DataFrame(
        {
            "record": rows.index.astype(str),
            "fold": rows.strat_fold.to_numpy(),
            "classes": rows.classes.to_numpy(),
            "scp_codes": rows.scp.to_numpy(),
            "age": rows.age.to_numpy(),
            "sex": rows.sex.map({0: "male", 1: "female"}).to_numpy(),
            "patient_id": pd.array(patient.to_numpy(), dtype="Int64"),
            "n_valid": n_valid,
        }
    )
    records["split"] = split_of(records.fold)
    records["label_mapping"] = label_mapping
    inventory = {
        "listed": len(meta) + len(label_skips),
        "label_errors": len(label_skips),
        "dropped_by_mapping": int(meta.dropped.sum()),
        "kept_by_mapping": len(kept),
        "present_at_100hz": n_present[100],
        "present_at_500hz": n_present[500],
        "source_fs_hz": source_fs_hz,
        "signal_errors": len(skipped) - len(label_skips),
        "used": len(records),
    }
    return ECGDataset(
        "ptbxl",
        signals,
        multi_hot(list(records.classes), classes),
        records,
        fs_hz,
        n_samples,
        skipped,
        inventory,
        notes,
        cache_key,
        source=str(folder),
        split_expected=_ptbxl_split_expected(meta, kept, on_disk, label_mapping),
    )


def load_cpsc(
    root: Path,
    fs_hz: float,
    n_samples: int,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> ECGDataset:
    """CPSC 2018 records present on disk, labelled from ``REFERENCE.csv``.

    Parameters
    ----------
    root : pathlib.Path
        Data root holding ``cpsc2018/``.
    fs_hz : float
        Model input sampling frequency, Hz (records are 500 Hz; others are resampled).
    n_samples : int
        Model input length in samples (the last ``n_samples`` are kept).
    seed : int
        Seed of the stratified 10-fold split.
    cache_dir : pathlib.Path, optional
        Signal cache folder; defaults to :func:`default_cache_dir`.

    Returns
    -------
    ECGDataset
        A record found in several forms is read once (WFDB form first). Each
        WFDB header's ``#Dx:`` is cross-checked against ``REFERENCE.csv``;
        disagreements are listed in ``notes``. ``records`` also holds
        ``form`` and ``n_valid``.

    Raises
    ------
    FileNotFoundError
        If ``REFERENCE.csv`` is missing.

    Warns
    -----
    MissingRecordsWarning
        On a data root other than the shared sample, when more than 1% of the
        records listed in ``REFERENCE.csv`` are in no form on disk (also added
        to ``notes``).
    """
    labels, label_skips = cpsc.load_reference(root)
    index = cpsc.index_records(root)
    chosen = cpsc.choose_forms(index, labels)
    unlabelled = sorted(set(index.record) - set(labels.index))
    notes = [f"{r}: record file present but not in REFERENCE.csv (not used)" for r in unlabelled]
    for name, row in chosen[chosen.form == "wfdb"].iterrows():
        try:
            comments = wfdb.rdheader(row.path).comments
        except Exception:
            continue  # an unreadable header is reported when the signal is decoded
        msg = cpsc.check_header_labels(name, comments, labels.at[name, "classes"])
        if msg:
            notes.append(f"{name}: {msg}")

    manifest = sample_manifest(root)
    if manifest is None:
        expected = set(labels.index)
    else:
        expected = {
            Path(p).stem
            for p in manifest
            if p.startswith("cpsc2018/") and p.endswith((".mat", ".hea"))
        } & set(labels.index)
    missing = missing_records_note(
        "cpsc",
        len(expected),
        len(expected - set(chosen.index)),
        cpsc.cpsc_dir(root) / "REFERENCE.csv",
        cpsc.cpsc_dir(root),
        on_sample=manifest is not None,
    )
    if missing:
        notes.append(missing)

    sources = [(name, row.path) for name, row in chosen.iterrows()]

    def read(record: str, path: str):
        return cpsc.read_record(record, chosen.at[record, "form"], path)

    signals, ok, skipped, cache_key, n_valid = cached_signals(
        "cpsc", sources, read, fs_hz, n_samples, cache_dir or default_cache_dir(), root=root
    )
    skipped.skipped[:0] = label_skips.skipped
    folds = stratified_folds(labels.loc[ok, "classes"].map(lambda c: c[0]), seed)
    records = pd.DataFrame(
        {
            "record": ok,
            "fold": folds.to_numpy(),
            "classes": labels.loc[ok, "classes"].to_numpy(),
            "form": chosen.loc[ok, "form"].to_numpy(),
            "n_valid": n_valid,
        }
    )
    records["split"] = split_of(records.fold)
    inventory = {
        "listed": len(labels) + len(label_skips),
        "label_errors": len(label_skips),
        "present": len(chosen),
        "present_in_several_forms": int((chosen.n_forms > 1).sum()),
        "header_disagreements": sum("header Dx" in n for n in notes),
        "signal_errors": len(skipped) - len(label_skips),
        "used": len(records),
    }
    rule = (
        f"of the seeded (seed {seed}) 10-fold split, stratified by first label, of the "
        f"{len(ok):,} REFERENCE.csv records decoded from disk"
    )
    split_expected = {
        "train": f"folds {TRAIN_FOLDS[0]}-{TRAIN_FOLDS[-1]} {rule}",
        "val": f"fold {VALIDATION_FOLD} {rule}",
        "test": f"fold {TEST_FOLD} {rule}",
        "all": f"any of the {len(labels):,} records listed in REFERENCE.csv, in any form",
    }
    return ECGDataset(
        "cpsc",
        signals,
        multi_hot(list(records.classes)),
        records,
        fs_hz,
        n_samples,
        skipped,
        inventory,
        notes,
        cache_key,
        source=str(cpsc.cpsc_dir(root)),
        split_expected=split_expected,
    )
