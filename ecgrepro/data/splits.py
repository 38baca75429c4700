"""Train / validation / test splits.

PTB-XL: the official ``strat_fold`` (1-8 train, 9 validation, 10 test), which
keeps all records of a patient in one fold. CPSC 2018: the published code used
an unseeded permutation into 10 folds (8/1/1) that cannot be recreated
(METHODS.md, "split"); here the folds are seeded and stratified by the first
label.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

TRAIN_FOLDS = tuple(range(1, 9))
VALIDATION_FOLD = 9
TEST_FOLD = 10


def stratified_folds(first_labels: pd.Series, seed: int, n_folds: int = 10) -> pd.Series:
    """Seeded folds 1..n_folds stratified by each record's first label.

    Parameters
    ----------
    first_labels : pandas.Series
        First (primary) class per record, indexed by record name.
    seed : int
        Seed of the shuffle; the same seed gives the same folds.
    n_folds : int
        Number of folds (10 in the published code).

    Returns
    -------
    pandas.Series of int
        Fold number 1..n_folds per record, same index.

    Notes
    -----
    Uses :class:`sklearn.model_selection.StratifiedKFold`. A class with fewer
    than ``n_folds`` records cannot appear in every fold; scikit-learn's
    warning about it is silenced here because, on the sample, it is expected.
    With fewer records than folds, or no class with ``n_folds`` records (a toy
    data root, where scikit-learn refuses to stratify), records go to folds
    1..n in a seeded random order.
    """
    counts = first_labels.value_counts()
    if len(first_labels) < n_folds or counts.empty or counts.max() < n_folds:
        order = np.random.default_rng(seed).permutation(len(first_labels))
        return pd.Series(order % n_folds + 1, index=first_labels.index, name="fold")
    folds = np.zeros(len(first_labels), dtype=np.int64)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test_idx) in enumerate(
            skf.split(np.zeros(len(first_labels)), first_labels.values)
        ):
            folds[test_idx] = k + 1
    return pd.Series(folds, index=first_labels.index, name="fold")


def split_of(fold: pd.Series) -> pd.Series:
    """Name the split of each fold: ``train`` (1-8), ``val`` (9), ``test`` (10)."""
    return fold.map(
        lambda f: "test" if f == TEST_FOLD else "val" if f == VALIDATION_FOLD else "train"
    )
