"""Training as the published code: BCEWithLogits, Adam, batch 32, augmentation,
best-validation-mean-F1 checkpoint (METHODS.md, "Input and training").
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ecgrepro.data import ECGDataset
from ecgrepro.metrics import f1_optimal_thresholds, per_class_metrics

#: Probability that each augmentation is applied to a record: P(N(0, 1) > 0.5).
AUGMENT_PROBABILITY = 0.3085375387259869


@dataclass
class Samples:
    """Records drawn from one or more datasets' signal arrays, without copying them.

    Attributes
    ----------
    parts : list of numpy.ndarray, each shape (n_i, 12, n_samples), float32, mV
        Signal arrays (memory-mapped caches).
    part : numpy.ndarray, shape (n,), int
        Which array each sample comes from.
    row : numpy.ndarray, shape (n,), int
        Row of the sample in its array.
    y : numpy.ndarray, shape (n, 9), float32
        Multi-hot labels.
    augment : numpy.ndarray, shape (n,), bool
        Whether training augmentation applies to the sample (the published
        Ours_2 code augmented only the PTB-XL records).
    n_valid : numpy.ndarray, shape (n,), int, optional
        Samples of each record that are signal, not padding: the record
        occupies the last ``n_valid`` samples, the rest is zero-padding at the
        front. None: every sample is signal.
    """

    parts: list[np.ndarray]
    part: np.ndarray
    row: np.ndarray
    y: np.ndarray
    augment: np.ndarray
    n_valid: np.ndarray | None = None

    def __post_init__(self):
        if self.n_valid is None:
            length = self.parts[0].shape[-1] if self.parts else 0
            self.n_valid = np.full(len(self.row), length, dtype=np.int64)

    @classmethod
    def from_dataset(cls, ds: ECGDataset, split: str, augment: bool = True) -> Samples:
        """The records of one split (``train``, ``val``, ``test`` or ``all``) of a dataset.

        Each record's valid length comes from ``ds.records["n_valid"]`` when the
        dataset carries it (else the whole input counts as signal).
        """
        idx, y = ds.subset(split)
        if "n_valid" in ds.records:
            n_valid = ds.records["n_valid"].to_numpy(dtype=np.int64)[idx]
        else:
            n_valid = np.full(len(idx), ds.n_samples, dtype=np.int64)
        return cls(
            [ds.signals], np.zeros(len(idx), int), idx, y, np.full(len(idx), augment), n_valid
        )

    def __len__(self) -> int:
        return len(self.row)

    def __add__(self, other: Samples) -> Samples:
        offset = len(self.parts)
        return Samples(
            self.parts + other.parts,
            np.concatenate([self.part, other.part + offset]),
            np.concatenate([self.row, other.row]),
            np.concatenate([self.y, other.y]),
            np.concatenate([self.augment, other.augment]),
            np.concatenate([self.n_valid, other.n_valid]),
        )

    def signals(self, idx: np.ndarray) -> np.ndarray:
        """Signals of samples ``idx``: shape (len(idx), 12, n_samples), float32, mV (a copy)."""
        idx = np.asarray(idx)
        first = self.parts[self.part[idx[0]]] if len(idx) else self.parts[0]
        out = np.empty((len(idx),) + first.shape[1:], dtype=np.float32)
        for p in np.unique(self.part[idx]):
            sel = self.part[idx] == p
            rows = self.row[idx][sel]
            order = np.argsort(rows)  # ascending rows read a memory map sequentially
            block = np.empty((len(rows),) + first.shape[1:], dtype=np.float32)
            block[order] = self.parts[p][rows[order]]
            out[sel] = block
        return out


def augment(
    x: np.ndarray, rng: np.random.Generator, n_valid: np.ndarray | None = None
) -> np.ndarray:
    """The published code's training augmentation, per record, on the signal only.

    With probability P(N(0,1) > 0.5) ~ 0.31 each: every lead scaled by its own
    factor from N(1, 0.1); every lead shifted by its own constant offset drawn
    uniformly from {-20, ..., 19} / 1000 mV. The published code augments the
    record as read, before it is zero-padded to the input length (METHODS.md,
    "Input and training"), so the padding stays exactly 0: here the offset is
    added to the last ``n_valid`` samples only (scaling leaves zeros at 0).

    Parameters
    ----------
    x : numpy.ndarray, shape (batch, 12, n_samples), float32, mV
        Modified in place.
    rng : numpy.random.Generator
    n_valid : numpy.ndarray, shape (batch,), int, optional
        Samples of each record that are signal (the rest, at the front, is
        padding). None: all ``n_samples``.

    Returns
    -------
    numpy.ndarray
        ``x``.
    """
    b, leads, length = x.shape
    scale = rng.standard_normal(b) > 0.5
    if scale.any():
        x[scale] *= rng.normal(1.0, 0.1, size=(int(scale.sum()), leads, 1)).astype(np.float32)
    shift = rng.standard_normal(b) > 0.5
    if shift.any():
        offset = (rng.integers(-20, 20, size=(int(shift.sum()), leads, 1)) / 1000).astype(
            np.float32
        )
        if n_valid is None:
            x[shift] += offset
        else:
            first = length - np.asarray(n_valid)[shift]  # first valid sample of each record
            signal = np.arange(length)[None, :] >= first[:, None]
            x[shift] += offset * signal[:, None, :]
    return x


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op CPU threads, then restore the previous number.

    An LSTM's thousand small sequential steps run faster on one thread than on
    two (measured: ~0.6 s against ~1 s per batch of 32 records of 1,000 steps,
    2 cores), and much faster when another process shares the cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def select_device(device: str = "auto") -> torch.device:
    """``"auto"`` gives CUDA when present, else CPU; any other value is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def predict_scores(
    model: nn.Module, samples: Samples, batch_size: int = 64, device: torch.device | str = "cpu"
) -> np.ndarray:
    """Sigmoid outputs of ``model`` for every sample, in order.

    Returns
    -------
    numpy.ndarray, shape (len(samples), n_classes), float32, in [0, 1]
    """
    device = torch.device(device)
    model.eval().to(device)
    out = []
    for start in range(0, len(samples), batch_size):
        idx = np.arange(start, min(start + batch_size, len(samples)))
        x = torch.from_numpy(samples.signals(idx)).to(device)
        out.append(torch.sigmoid(model(x).float()).cpu().numpy())
    n_out = model.fc.out_features if hasattr(model, "fc") else 0
    return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)


def train_step(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    criterion: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: bool = False,
) -> torch.Tensor:
    """One forward/backward/optimiser step on a batch; returns the (detached) loss.

    x : (batch, 12, n_samples) float32, mV; y : (batch, 9) float32 in {0, 1}.
    """
    optimiser.zero_grad()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = criterion(model(x), y)
    loss.backward()
    optimiser.step()
    return loss.detach()


def train_one_epoch(
    model: nn.Module,
    train: Samples,
    optimiser: torch.optim.Optimizer,
    criterion: nn.Module,
    rng: np.random.Generator,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    amp: bool = False,
    timings: dict | None = None,
    max_batches: int | None = None,
    desc: str = "train",
) -> float:
    """One pass over the shuffled training records.

    Parameters
    ----------
    model, train, optimiser, criterion
        As :func:`train_model`.
    rng : numpy.random.Generator
        Draws the shuffle, then the augmentation of each batch.
    batch_size : int
    device : torch.device or str
    amp : bool
        bf16 autocast (CUDA).
    timings : dict, optional
        If given, ``timings["data"]`` and ``timings["step"]`` accumulate the
        seconds spent gathering/augmenting/transferring batches and in
        forward/backward/optimiser steps (the device is synchronised).
    max_batches : int, optional
        Stop after this many batches (benchmarks).
    desc : str
        Progress-bar label.

    Returns
    -------
    float
        Mean training loss over the records seen.
    """
    device = torch.device(device)
    model.train()
    order = rng.permutation(len(train))
    total, seen = 0.0, 0
    batches = list(range(0, len(order), batch_size))[:max_batches]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for start in tqdm(batches, desc=desc, disable=None, leave=False):
        t0 = time.perf_counter()
        idx = order[start : start + batch_size]
        x = train.signals(idx)
        aug = train.augment[idx]
        if aug.any():
            x[aug] = augment(x[aug], rng, train.n_valid[idx][aug])
        xb = torch.from_numpy(x).to(device)
        yb = torch.from_numpy(train.y[idx]).to(device)
        if timings is not None:
            sync()
            t1 = time.perf_counter()
        loss = train_step(model, optimiser, criterion, xb, yb, amp)
        total += loss.item() * len(idx)
        seen += len(idx)
        if timings is not None:
            sync()
            timings["data"] = timings.get("data", 0.0) + t1 - t0
            timings["step"] = timings.get("step", 0.0) + time.perf_counter() - t1
    return total / max(seen, 1)


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`.

    Attributes
    ----------
    log : pandas.DataFrame
        One row per epoch: ``epoch, train_loss, val_loss, val_mean_f1,
        val_macro_auc, seconds``.
    best_epoch : int
        Epoch (1-based) of the kept checkpoint (highest validation mean F1).
    state_dict : dict
        The kept weights (on CPU); the model is left holding them.
    """

    log: pd.DataFrame
    best_epoch: int
    state_dict: dict


def train_model(
    model: nn.Module,
    train: Samples,
    val: Samples,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 1e-4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = print,
    amp: bool = False,
) -> TrainResult:
    """Train with BCEWithLogits and Adam, keeping the best validation mean-F1 weights.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (batch, 12, n_samples) float32 mV to (batch, 9) logits.
    train, val : Samples
        Training records (augmented where ``augment`` is set) and validation records.
    epochs : int
        30 in the paper.
    batch_size : int
        32 in the paper.
    lr : float
        Adam learning rate, 1e-4 in the paper.
    seed : int
        Seeds torch, the shuffling and the augmentation: the same seed gives
        the same weights on CPU.
    device : torch.device or str
    log : callable, optional
        Receives one line per epoch; None for silence.
    amp : bool
        bf16 autocast for forward and loss (CUDA; not in the published code).

    Returns
    -------
    TrainResult

    Notes
    -----
    Validation mean F1 is the mean over classes of the best F1 over the
    threshold grid, as the published code's ``cal_f1s``.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = torch.device(device)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.BCEWithLogitsLoss()
    rows, best_f1, best_epoch, best_state = [], -1.0, 0, None
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        total = train_one_epoch(
            model,
            train,
            optimiser,
            criterion,
            rng,
            batch_size,
            device,
            amp,
            desc=f"epoch {epoch}/{epochs}",
        )
        scores = predict_scores(model, val, device=device)
        val_loss = float(
            criterion(
                torch.logit(torch.from_numpy(scores).double().clamp(1e-7, 1 - 1e-7)),
                torch.from_numpy(val.y).double(),
            )
        )
        _, f1s = f1_optimal_thresholds(val.y, scores)
        columns = tuple(str(j) for j in range(val.y.shape[1]))  # 9 classes, or 5 superclasses
        table = per_class_metrics(val.y, scores, np.full(len(columns), 0.5), columns)
        auc = table.loc["AVG", "auc"]
        row = {
            "epoch": epoch,
            "train_loss": total,
            "val_loss": val_loss,
            "val_mean_f1": float(f1s.mean()),
            "val_macro_auc": float(auc),
            "seconds": time.perf_counter() - t0,
        }
        rows.append(row)
        if row["val_mean_f1"] > best_f1:
            best_f1, best_epoch = row["val_mean_f1"], epoch
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        if log:
            log(
                f"epoch {epoch:3d}  train loss {row['train_loss']:.4f}  val loss {val_loss:.4f}  "
                f"val mean F1 {row['val_mean_f1']:.3f}  val macro AUC {auc:.3f}  "
                f"{row['seconds']:.1f} s" + ("  *best" if best_epoch == epoch else "")
            )
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(pd.DataFrame(rows), best_epoch, best_state or {})
