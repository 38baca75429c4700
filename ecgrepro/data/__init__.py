"""Records, labels, splits and the signal cache for PTB-XL and CPSC 2018.

The two entry points are :func:`load_ptbxl` and :func:`load_cpsc`; each
returns an :class:`ECGDataset` whose signals are decoded once into an on-disk
cache and whose every skipped record is listed with its problem.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from ecgrepro.config import REPO_ROOT
from ecgrepro.data import cpsc, ptbxl
from ecgrepro.data.errors import RecordError, SkipReport
from ecgrepro.data.labels import multi_hot
from ecgrepro.data.records import read_wfdb
from ecgrepro.data.signals import cached_signals, prepare_signal
from ecgrepro.data.splits import split_of, stratified_folds

__all__ = [
    "ECGDataset",
    "RecordError",
    "SkipReport",
    "load_ptbxl",
    "load_cpsc",
    "default_cache_dir",
    "prepare_signal",
]


def default_cache_dir() -> Path:
    """Where decoded signals are cached: ``<repo>/_build/cache``."""
    return REPO_ROOT / "_build" / "cache"


@dataclass
class ECGDataset:
    """Decoded, labelled records of one dataset, ready for a model.

    Attributes
    ----------
    name : str
        ``"ptbxl"`` or ``"cpsc"``.
    signals : numpy.ndarray, shape (n_records, 12, n_samples), float32, mV
        Memory-mapped from the cache.
    y : numpy.ndarray, shape (n_records, 9), float32
        Multi-hot labels in :data:`ecgrepro.config.CLASSES` order.
    records : pandas.DataFrame
        One row per record in ``signals`` order: ``record``, ``fold`` (1-10),
        ``split`` (train/val/test), ``classes``, ``age``, ``sex``.
    fs_hz : float
        Sampling frequency of ``signals``, Hz.
    n_samples : int
        Samples per record.
    skipped : SkipReport
        Records left out, each with its problem (labels or signal).
    inventory : dict
        Counts: listed, labelled, present, used, skipped, and dataset-specific
        ones (dropped, header disagreements, duplicate forms).
    notes : list of str
        Human-readable remarks (e.g. header Dx disagreements).
    cache_key : str
        Hash of the decoded signals (records, file sizes, fs, length).
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
        """
        if split == "all":
            return np.arange(len(self.records)), self.y
        idx = np.flatnonzero(self.records["split"].to_numpy() == split)
        return idx, self.y[idx]


def load_ptbxl(
    root: Path,
    fs_hz: float,
    n_samples: int,
    cache_dir: Path | None = None,
    source_fs_hz: int | None = None,
    label_mapping: str = "published",
) -> ECGDataset:
    """PTB-XL records present on disk, labelled with the 9 CPSC classes.

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
        Which release to read; defaults to 100 Hz when ``fs_hz <= 100``, else 500 Hz.
    label_mapping : {"published", "rhythm-aware"}
        The SCP -> CPSC mapping (:mod:`ecgrepro.data.labels`); the paper's
        ``published`` by default. It decides the labels and which records are
        dropped, so it enters :attr:`ECGDataset.data_key`.

    Returns
    -------
    ECGDataset
        Folds from ``strat_fold``. Dropped records (no code left after the
        mapping) are not included; records listed but absent from disk are
        counted in ``inventory`` but are not errors (the sample holds only
        some). ``records`` also holds ``scp_codes`` (the raw statements, dict
        code -> likelihood in %) and ``label_mapping``.
    """
    source_fs_hz = source_fs_hz or (100 if fs_hz <= 100 else 500)
    meta, label_skips = ptbxl.load_metadata(root, label_mapping)
    on_disk = ptbxl.present(root, meta, source_fs_hz)
    kept = meta[~meta.dropped]
    usable = kept[on_disk.loc[kept.index]]
    sources = [(str(i), str(ptbxl.record_path(root, meta, i, source_fs_hz))) for i in usable.index]

    def read(record: str, path: str):
        return read_wfdb(path, record=f"ptbxl:{record}")

    signals, ok, skipped, cache_key = cached_signals(
        "ptbxl", sources, read, fs_hz, n_samples, cache_dir or default_cache_dir()
    )
    skipped.skipped[:0] = label_skips.skipped
    rows = usable.loc[[int(r) for r in ok]]
    records = pd.DataFrame(
        {
            "record": rows.index.astype(str),
            "fold": rows.strat_fold.to_numpy(),
            "classes": rows.classes.to_numpy(),
            "scp_codes": rows.scp.to_numpy(),
            "age": rows.age.to_numpy(),
            "sex": rows.sex.map({0: "male", 1: "female"}).to_numpy(),
        }
    )
    records["split"] = split_of(records.fold)
    records["label_mapping"] = label_mapping
    inventory = {
        "listed": len(meta) + len(label_skips),
        "label_errors": len(label_skips),
        "dropped_by_mapping": int(meta.dropped.sum()),
        "kept_by_mapping": len(kept),
        f"present_at_{source_fs_hz}hz": int(on_disk.loc[kept.index].sum()),
        "signal_errors": len(skipped) - len(label_skips),
        "used": len(records),
    }
    return ECGDataset(
        "ptbxl",
        signals,
        multi_hot(list(records.classes)),
        records,
        fs_hz,
        n_samples,
        skipped,
        inventory,
        cache_key=cache_key,
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
        disagreements are listed in ``notes``.
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
    sources = [(name, row.path) for name, row in chosen.iterrows()]

    def read(record: str, path: str):
        return cpsc.read_record(record, chosen.at[record, "form"], path)

    signals, ok, skipped, cache_key = cached_signals(
        "cpsc", sources, read, fs_hz, n_samples, cache_dir or default_cache_dir()
    )
    skipped.skipped[:0] = label_skips.skipped
    folds = stratified_folds(labels.loc[ok, "classes"].map(lambda c: c[0]), seed)
    records = pd.DataFrame(
        {
            "record": ok,
            "fold": folds.to_numpy(),
            "classes": labels.loc[ok, "classes"].to_numpy(),
            "form": chosen.loc[ok, "form"].to_numpy(),
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
    )
