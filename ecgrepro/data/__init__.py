"""Records, labels, splits and the signal cache for PTB-XL and CPSC 2018.

The two entry points are :func:`load_ptbxl` and :func:`load_cpsc` (defined in
:mod:`ecgrepro.data.datasets`); each returns an :class:`ECGDataset` whose
signals are decoded once into an on-disk cache (``$ECGREPRO_CACHE``, default
``<repo>/_build/cache``) and whose every skipped record is listed with its
problem.
"""

from __future__ import annotations

from ecgrepro.data.datasets import (
    CACHE_ENV,
    ECGDataset,
    default_cache_dir,
    load_cpsc,
    load_ptbxl,
)
from ecgrepro.data.errors import (
    EmptySplitError,
    MissingRecordsWarning,
    RecordError,
    SkipReport,
)
from ecgrepro.data.signals import prepare_signal

__all__ = [
    "CACHE_ENV",
    "ECGDataset",
    "EmptySplitError",
    "MissingRecordsWarning",
    "RecordError",
    "SkipReport",
    "load_ptbxl",
    "load_cpsc",
    "default_cache_dir",
    "prepare_signal",
]
