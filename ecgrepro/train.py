"""Training as the published code: BCEWithLogits, Adam, batch 32, augmentation,
best-validation-mean-F1 checkpoint (METHODS.md, "Input and training").
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ecgrepro.augment import apply_augmentation, draw_augmentation
from ecgrepro.batches import BatchSource, epoch_draws
from ecgrepro.data import ECGDataset
from ecgrepro.metrics import f1_optimal_thresholds, per_class_metrics
from ecgrepro.runtime import (
    DistContext,
    autocast,
    check_amp,
    deterministic_algorithms,
    rank_seed,
    resolve_sync_bn,
    shard_bounds,
)


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

    def signals(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Signals of samples ``idx``: shape (len(idx), 12, n_samples), float32, mV (a copy).

        Each record is copied once, from its memory map straight into its row of the result,
        in ascending row order per array (a memory map is then read sequentially).

        Parameters
        ----------
        idx : numpy.ndarray, shape (k,), int
        out : numpy.ndarray, shape (k, 12, n_samples), float32, optional
            Filled and returned (e.g. a pinned buffer, :mod:`ecgrepro.batches`).
        """
        idx = np.asarray(idx)
        first = self.parts[self.part[idx[0]]] if len(idx) else self.parts[0]
        if out is None:
            out = np.empty((len(idx),) + first.shape[1:], dtype=np.float32)
        part, row = self.part[idx], self.row[idx]
        for i in np.lexsort((row, part)):  # by array, then ascending row
            out[i] = self.parts[part[i]][row[i]]
        return out


@torch.no_grad()
def predict_scores(
    model: nn.Module,
    samples: Samples,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    amp: str = "off",
    compile: bool = False,
) -> np.ndarray:
    """Sigmoid outputs of ``model`` for every sample, in order.

    The batches come through :class:`ecgrepro.batches.BatchSource` (on the device when the
    signals fit there, else gathered ahead in a thread).

    Parameters
    ----------
    model : torch.nn.Module
        (batch, 12, n_samples) float32 mV -> (batch, n_classes) logits; put in eval mode.
    samples : Samples
    batch_size : int
    device : torch.device or str
    amp : {"off", "bf16"}
        ``bf16``: bfloat16 autocast (:func:`autocast`); the logits are cast back to float32.
    compile : bool
        Run a :func:`torch.compile` d copy (the last batch is zero-padded to
        ``batch_size`` so that one shape is compiled; in eval mode records do
        not interact, so the padding changes no score).

    Returns
    -------
    numpy.ndarray, shape (len(samples), n_classes), float32, in [0, 1]
    """
    device = torch.device(device)
    model.eval().to(device)
    net = torch.compile(model, dynamic=False) if compile else model
    out = []
    starts = range(0, len(samples), batch_size)
    batches = [np.arange(a, min(a + batch_size, len(samples))) for a in starts]
    with closing(BatchSource(samples, device).batches(batches, labels=False)) as delivered:
        for x, _, n in delivered:
            if compile and n < batch_size:
                x = torch.cat([x, x.new_zeros((batch_size - n,) + tuple(x.shape[1:]))])
            with autocast(device, amp):
                logits = net(x)[:n]
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    n_out = model.fc.out_features if hasattr(model, "fc") else 0
    return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)


def train_step(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    criterion: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: str | bool = "off",
    n_global: int | None = None,
    world_size: int = 1,
) -> torch.Tensor:
    """One forward/backward/optimiser step on a batch; returns the (detached) loss.

    Parameters
    ----------
    model : torch.nn.Module
        The model, or its :class:`torch.nn.parallel.DistributedDataParallel` wrapper.
    optimiser, criterion
        As :func:`train_model` (``criterion`` averages over its input).
    x : torch.Tensor, shape (batch, 12, n_samples), float32, mV
        This process's records (its shard of the global batch).
    y : torch.Tensor, shape (batch, 9), float32 in {0, 1}
    amp : {"off", "bf16"}
        bfloat16 autocast for the forward pass and the loss.
    n_global : int, optional
        Records in the global batch (all processes); None: ``len(x)``.
    world_size : int
        Processes. DDP averages the processes' gradients, so each process's
        loss is scaled by ``len(x) * world_size / n_global``: the gradient is
        then the gradient of the mean over the global batch, even when the
        shards differ in size (a process with no records contributes 0).

    Returns
    -------
    torch.Tensor
        The scaled loss (one process: the mean over ``x``).
    """
    n_global = len(x) if n_global is None else n_global
    optimiser.zero_grad()
    with autocast(x.device, amp):
        out = model(x)
        if world_size == 1 and n_global == len(x):
            loss = criterion(out, y)
        elif len(x):
            loss = criterion(out, y) * (len(x) * world_size / n_global)
        else:
            loss = out.sum() * 0.0  # keeps this process in DDP's gradient all-reduce
    loss.backward()
    optimiser.step()
    return loss.detach()


def shard_batch(
    train: Samples, idx: np.ndarray, rng: np.random.Generator, rank: int = 0, world_size: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """This process's part of a global training batch, read and augmented.

    The augmentation of the whole global batch is drawn (:func:`draw_augmentation`,
    the same generator calls on every process and as one process makes), then
    only the records of this rank's shard (:func:`shard_bounds`) are read and
    augmented; concatenated over the ranks, the shards are the one-process
    batch, bit for bit.

    Parameters
    ----------
    train : Samples
    idx : numpy.ndarray, shape (n,), int
        The global batch: records of ``train``, in order.
    rng : numpy.random.Generator
        Advanced by the batch's augmentation draws (nothing when no record of
        the batch is augmented).
    rank, world_size : int

    Returns
    -------
    x : numpy.ndarray, shape (hi - lo, 12, n_samples), float32, mV
    y : numpy.ndarray, shape (hi - lo, 9), float32
    """
    aug = train.augment[idx]
    shape = train.parts[0].shape[1:]
    draw = draw_augmentation(rng, int(aug.sum()), shape[0]) if aug.any() else None
    lo, hi = shard_bounds(len(idx), rank, world_size)
    mine = idx[lo:hi]
    x = train.signals(mine) if len(mine) else np.zeros((0, *shape), np.float32)
    local = aug[lo:hi]
    if draw is not None and local.any():
        rows = (np.cumsum(aug) - 1)[lo:hi][local]  # their rows in the batch's draw
        x[local] = apply_augmentation(x[local], draw.take(rows), train.n_valid[mine][local])
    return x, train.y[mine]


def train_one_epoch(
    model: nn.Module,
    train: Samples,
    optimiser: torch.optim.Optimizer,
    criterion: nn.Module,
    rng: np.random.Generator,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    amp: str | bool = "off",
    timings: dict | None = None,
    max_batches: int | None = None,
    desc: str = "train",
    dist: DistContext | None = None,
) -> float:
    """One pass over the shuffled training records.

    Parameters
    ----------
    model, train, optimiser, criterion
        As :func:`train_model` (``model`` may be DDP-wrapped).
    rng : numpy.random.Generator
        Draws the shuffle, then the augmentation of each batch. Every process
        of a distributed training holds the same generator and makes the same
        calls: each draws the whole epoch's permutation and each global
        batch's augmentation (:func:`draw_augmentation`), then reads and
        augments only its shard (:func:`shard_bounds`), so that the processes'
        shards together are exactly the one-process batch.
    batch_size : int
        The global batch (all processes together).
    device : torch.device or str
    amp : {"off", "bf16"}
        bfloat16 autocast.
    timings : dict, optional
        If given, ``timings["data"]`` and ``timings["step"]`` accumulate the
        seconds spent waiting for a batch (gathered ahead in a thread, copied, augmented) and
        in forward/backward/optimiser steps (the device is synchronised).
    max_batches : int, optional
        Stop after this many batches (benchmarks).
    desc : str
        Progress-bar label.
    dist : DistContext, optional
        This process's place in a distributed training; None: one process.

    Returns
    -------
    float
        Mean training loss over the records seen (all processes), summed on the device in
        float64 and read once, at the end of the epoch.

    Notes
    -----
    The batches come through :class:`ecgrepro.batches.BatchSource`; the augmentation of the
    whole epoch is drawn first (:func:`ecgrepro.batches.epoch_draws`: the generator's calls
    and their order are those of one draw per batch) and applied on the device.
    """
    device = torch.device(device)
    dist = dist or DistContext()
    model.train()
    order = rng.permutation(len(train))
    batches = [order[a : a + batch_size] for a in range(0, len(order), batch_size)]
    batches = batches[:max_batches]
    draws = epoch_draws(train.augment, batches, rng, train.parts[0].shape[1])
    source = BatchSource(train, device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    bar = tqdm(total=len(batches), desc=desc, disable=None if dist.is_main else True, leave=False)
    t0 = time.perf_counter()
    with closing(source.batches(batches, draws, dist.rank, dist.world_size)) as delivered:
        for xb, yb, n in delivered:  # closed on an error too: the prefetch thread stops
            if timings is not None:
                sync()
                t1 = time.perf_counter()
            loss = train_step(model, optimiser, criterion, xb, yb, amp, n, dist.world_size)
            total += loss.double() * n / dist.world_size  # on the device: no sync per step
            seen += n
            if timings is not None:
                sync()
                timings["data"] = timings.get("data", 0.0) + t1 - t0
                timings["step"] = timings.get("step", 0.0) + time.perf_counter() - t1
            bar.update()
            t0 = time.perf_counter()
    bar.close()
    if dist.world_size > 1:
        torch.distributed.all_reduce(total)
    return float(total.item()) / max(seen, 1)


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`.

    Attributes
    ----------
    log : pandas.DataFrame
        One row per epoch: ``epoch, train_loss, val_loss, val_mean_f1,
        val_macro_auc, seconds`` (empty on ranks other than 0).
    best_epoch : int
        Epoch (1-based) of the kept checkpoint (highest validation mean F1);
        0 on ranks other than 0.
    state_dict : dict
        The kept weights (on CPU); the model is left holding them. Empty on
        ranks other than 0.
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
    amp: str | bool = "off",
    compile: bool = False,
    deterministic: bool = True,
    dist: DistContext | None = None,
    sync_bn: bool | None = None,
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
        32 in the paper: the global batch, split evenly across the processes
        of a distributed training (``batch_size / world_size`` each).
    lr : float
        Adam learning rate, 1e-4 in the paper.
    seed : int
        Seeds torch (dropout), the shuffling and the augmentation: with the
        same initial weights, the same seed gives bit-identical weights on the
        CPU (same machine, same number of threads).
    device : torch.device or str
    log : callable, optional
        Receives one line per epoch; None for silence.
    amp : {"off", "bf16"}
        bfloat16 autocast for training and validation (not in the published
        code; ``off`` is faithful).
    compile : bool
        Train and validate :func:`torch.compile` d copies (same weights).
    deterministic : bool
        Run under :func:`deterministic_algorithms` (restored afterwards).
    dist : DistContext, optional
        A distributed training (:func:`ecgrepro.runtime.init_distributed`): a copy of the
        model is wrapped in :class:`torch.nn.parallel.DistributedDataParallel`, each
        process trains on its shard of every global batch, and only rank 0
        validates and keeps the best checkpoint while the others wait. None:
        one process.
    sync_bn : bool, optional
        Batch norm over the global batch (:class:`torch.nn.SyncBatchNorm` in
        the trained copy) instead of each process's shard.
        None: on CUDA with more than one process (:func:`resolve_sync_bn`).
        With it a distributed training computes what one process does, up to
        floating-point order; without it each process normalises over its
        ``batch_size / world_size`` records and the kept running statistics
        are rank 0's.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        If ``epochs`` or ``batch_size`` is not an integer >= 1, ``batch_size``
        is not a multiple of the number of processes, or ``amp`` is not a mode
        of :data:`ecgrepro.runtime.AMP_MODES`.
    RuntimeError
        If (on rank 0) the kept weights are empty or do not hold the model's
        keys: no model is ever returned, or stored, as trained without weights.

    Notes
    -----
    Validation mean F1 is the mean over classes of the best F1 over the
    threshold grid, as the published code's ``cal_f1s``.
    """
    dist = dist or DistContext()
    amp = check_amp(amp)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if batch_size % dist.world_size:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {dist.world_size} processes"
        )
    device = torch.device(device)
    with deterministic_algorithms(deterministic):
        torch.manual_seed(rank_seed(seed, dist.rank))
        rng = np.random.default_rng(seed)  # the same on every process
        model.to(device)
        net = model
        if dist.world_size > 1:  # a copy is wrapped: the model is left without DDP's hooks
            net = copy.deepcopy(model)
            if resolve_sync_bn(sync_bn, device, dist.world_size):
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        core = net.module if dist.world_size > 1 else net  # validated, checkpointed
        train_net = torch.compile(net) if compile else net
        optimiser = torch.optim.Adam(net.parameters(), lr=lr)
        criterion = nn.BCEWithLogitsLoss()
        rows, best_f1, best_epoch, best_state = [], -1.0, 0, None
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            total = train_one_epoch(
                train_net,
                train,
                optimiser,
                criterion,
                rng,
                batch_size,
                device,
                amp,
                desc=f"epoch {epoch}/{epochs}",
                dist=dist,
            )
            if dist.is_main:
                row = _validate(core, val, criterion, device, amp, compile)
                row = {"epoch": epoch, "train_loss": total, **row}
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                if row["val_mean_f1"] > best_f1:
                    best_f1, best_epoch = row["val_mean_f1"], epoch
                    best_state = copy.deepcopy(
                        {k: v.detach().cpu() for k, v in core.state_dict().items()}
                    )
                if log:
                    log(
                        f"epoch {epoch:3d}  train loss {total:.4f}  val loss "
                        f"{row['val_loss']:.4f}  val mean F1 {row['val_mean_f1']:.3f}  "
                        f"val macro AUC {row['val_macro_auc']:.3f}  {row['seconds']:.1f} s"
                        + ("  *best" if best_epoch == epoch else "")
                    )
            dist.barrier()  # the others wait for rank 0's validation
    if dist.is_main:
        expected, kept = set(model.state_dict()), set(best_state or {})
        if not kept or kept != expected:
            missing, extra = sorted(expected - kept), sorted(kept - expected)
            raise RuntimeError(
                f"training kept no usable weights after {epochs} epoch(s) (best epoch "
                f"{best_epoch}; {len(missing)} of the model's {len(expected)} tensors missing, "
                f"{len(extra)} foreign, e.g. {(missing + extra)[:3]}); nothing is returned or "
                "stored as trained"
            )
        model.load_state_dict(best_state)
    return TrainResult(pd.DataFrame(rows), best_epoch, best_state or {})


def _validate(
    model: nn.Module,
    val: Samples,
    criterion: nn.Module,
    device: torch.device,
    amp: str,
    compile: bool,
) -> dict:
    """Validation loss, mean F1 over the threshold grid and macro AUC of one epoch."""
    scores = predict_scores(model, val, device=device, amp=amp, compile=compile)
    val_loss = float(
        criterion(
            torch.logit(torch.from_numpy(scores).double().clamp(1e-7, 1 - 1e-7)),
            torch.from_numpy(val.y).double(),
        )
    )
    _, f1s = f1_optimal_thresholds(val.y, scores)
    columns = tuple(str(j) for j in range(val.y.shape[1]))  # 9 classes, or 5 superclasses
    table = per_class_metrics(val.y, scores, np.full(len(columns), 0.5), columns)
    return {
        "val_loss": val_loss,
        "val_mean_f1": float(f1s.mean()),
        "val_macro_auc": float(table.loc["AVG", "auc"]),
    }
