"""The data path from the signal caches to the device: every training and scoring batch (#26).

Three ways to deliver a batch, chosen by :func:`batch_source` from the device and its memory:

- **resident** (CUDA, when the signal arrays fit in half the device's free memory): the arrays
  are copied to the device once per process (:func:`resident_parts`) and a batch is gathered
  there with ``index_select``; nothing crosses the host bus per step but the row indices;
- **prefetch** (CUDA otherwise): a background thread gathers the next batches from the
  memory-mapped caches (:meth:`ecgrepro.train.Samples.signals`) into pinned memory while the
  current step runs; they are copied with ``non_blocking``;
- **inline** (the CPU, or ``prefetch=0``): gathered when asked, in the caller's thread.

The augmentation is drawn on the host, in the published order
(:func:`ecgrepro.augment.draw_augmentation`: the generator is called exactly as before, batch
after batch), and applied on the batch's device as tensor operations
(:func:`augment_tensor`), which give on the CPU the bytes that
:func:`ecgrepro.augment.apply_augmentation` gives. So on the CPU every source trains
bit-identical weights; on CUDA the resident and the prefetch source deliver the same batches.
"""

from __future__ import annotations

import queue
import threading
import warnings
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ecgrepro.augment import AugmentDraw, draw_augmentation
from ecgrepro.runtime import shard_bounds

#: Batches the prefetch thread gathers ahead of the step.
PREFETCH_DEPTH = 2

#: The signal arrays held on a device, by (array identity, device): see :func:`resident_parts`.
_RESIDENT: dict[tuple, torch.Tensor] = {}


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host array on ``device``: on CUDA through pinned memory, without a host sync.

    A copy from pageable memory makes the host wait; from pinned memory with ``non_blocking``
    it is queued on the stream like a kernel, so the step never waits for it on the host.
    """
    t = torch.as_tensor(array)
    if torch.device(device).type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def augment_tensor(
    x: torch.Tensor, draw: AugmentDraw, n_valid: np.ndarray | torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`ecgrepro.augment.apply_augmentation` on a tensor, in place, on its device.

    The same operations in the same order (scale the chosen records' leads, then add each
    shifted record's offsets to its signal samples only, the padding at the front staying 0),
    so that on the CPU the result is bit for bit the numpy function's.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, 12, n_samples), float32, mV
        Modified in place.
    draw : ecgrepro.augment.AugmentDraw
        Of the same ``batch`` records (numpy arrays, moved to ``x``'s device here).
    n_valid : numpy.ndarray or torch.Tensor, shape (batch,), int, optional
        Samples of each record that are signal (the last ``n_valid``); None: all.

    Returns
    -------
    torch.Tensor
        ``x``.

    Raises
    ------
    ValueError
        If ``draw`` holds another number of records than ``x``.
    """
    if len(draw.scale) != len(x):
        raise ValueError(f"the draw holds {len(draw.scale)} records, the batch {len(x)}")
    device, length = x.device, x.shape[-1]
    if draw.scale.any():
        rows = to_device(np.flatnonzero(draw.scale), device)
        x[rows] = x[rows] * to_device(draw.factors[draw.scale], device)
    if draw.shift.any():
        rows = to_device(np.flatnonzero(draw.shift), device)
        offset = to_device(draw.offsets[draw.shift], device)
        if n_valid is None:
            x[rows] = x[rows] + offset
        else:
            valid = to_device(np.asarray(n_valid), device)[rows]
            signal = torch.arange(length, device=device)[None, :] >= (length - valid)[:, None]
            x[rows] = x[rows] + offset * signal[:, None, :]
    return x


def epoch_draws(
    aug: np.ndarray, batches: Sequence[np.ndarray], rng: np.random.Generator, leads: int = 12
) -> list[AugmentDraw | None]:
    """Each batch's augmentation draw, made now, in the order the loop used to make them.

    Parameters
    ----------
    aug : numpy.ndarray, shape (n,), bool
        Whether each training record is augmented (:attr:`ecgrepro.train.Samples.augment`).
    batches : sequence of numpy.ndarray of int
        The epoch's global batches, in order.
    rng : numpy.random.Generator
        Called exactly as before: one :func:`ecgrepro.augment.draw_augmentation` per batch
        holding an augmented record, for its augmented records, nothing otherwise.
    leads : int

    Returns
    -------
    list of AugmentDraw or None
        One per batch (None: no record of it is augmented).
    """
    out = []
    for idx in batches:
        mask = aug[idx]
        out.append(draw_augmentation(rng, int(mask.sum()), leads) if mask.any() else None)
    return out


def resident_parts(parts: Sequence[np.ndarray], device: torch.device) -> list | None:
    """The signal arrays on ``device``, copied once per process; None if they do not fit.

    They fit when the arrays not yet on the device take at most half of its free memory
    (:func:`torch.cuda.mem_get_info`), the other half left to the model and its activations.
    Arrays already copied are kept (keyed by the array object and the device, and dropped when
    the array is) for the next training of the same process; when a new set does not fit, the
    old ones are let go first (:func:`clear_resident`).

    Parameters
    ----------
    parts : sequence of numpy.ndarray, each shape (n_i, 12, n_samples), float32
    device : torch.device
        CUDA; any other device gets None (a CPU batch is gathered from the memory map).

    Returns
    -------
    list of torch.Tensor or None
    """
    if device.type != "cuda":
        return None
    device = torch.device("cuda", device.index if device.index is not None else 0)
    keys = [(id(p), p.shape, str(device)) for p in parts]
    need = sum(p.nbytes for p, k in zip(parts, keys, strict=True) if k not in _RESIDENT)
    if need and need > torch.cuda.mem_get_info(device)[0] // 2:
        clear_resident()
        need = sum(p.nbytes for p in parts)
        if need > torch.cuda.mem_get_info(device)[0] // 2:
            return None
    for p, k in zip(parts, keys, strict=True):
        if k not in _RESIDENT:
            with warnings.catch_warnings():  # a read-only memory map: read, never written
                warnings.simplefilter("ignore", UserWarning)
                _RESIDENT[k] = torch.from_numpy(np.ascontiguousarray(p)).to(device)
            # the entry dies with the array, so that a new array given its id never finds it
            weakref.finalize(p, _RESIDENT.pop, k, None)
    return [_RESIDENT[k] for k in keys]


def clear_resident() -> None:
    """Let go of every signal array held on a device by :func:`resident_parts`."""
    _RESIDENT.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class BatchSource:
    """Batches of a :class:`ecgrepro.train.Samples` delivered on a device (module docstring).

    Parameters
    ----------
    samples : ecgrepro.train.Samples
    device : torch.device or str
    prefetch : int, optional
        Batches gathered ahead in a background thread (0: inline). None: :data:`PREFETCH_DEPTH`
        on CUDA, inline on the CPU (``make bench``, 2 cores, 12 x 15,000: the data path alone
        delivers 7,358 records/s inline, 4,761 with the thread competing for the cores).
    resident : bool
        Allow the signals on the device (CUDA, when they fit).

    Attributes
    ----------
    mode : {"resident", "prefetch", "inline"}
    """

    def __init__(self, samples, device, prefetch: int | None = None, resident: bool = True):
        self.samples = samples
        self.device = torch.device(device)
        if prefetch is None:  # on the CPU a thread would compete with torch's for the same cores
            prefetch = PREFETCH_DEPTH if self.device.type == "cuda" else 0
        self.parts = resident_parts(samples.parts, self.device) if resident else None
        self.prefetch = prefetch
        resident = self.parts is not None
        self.mode = "resident" if resident else ("prefetch" if prefetch > 0 else "inline")

    def _host(self, idx: np.ndarray) -> torch.Tensor | None:
        """Records ``idx`` gathered on the host (pinned for CUDA); None for a resident source."""
        if self.parts is not None or not len(idx):
            return None
        shape = (len(idx), *self.samples.parts[0].shape[1:])
        out = torch.empty(shape, dtype=torch.float32, pin_memory=self.device.type == "cuda")
        self.samples.signals(idx, out=out.numpy())
        return out

    def _device(self, idx: np.ndarray, host: torch.Tensor | None) -> torch.Tensor:
        """Records ``idx`` on the device: from ``host``, or gathered from the resident arrays."""
        if host is not None:
            return host.to(self.device, non_blocking=True)
        if not len(idx):
            return torch.zeros((0, *self.samples.parts[0].shape[1:]), device=self.device)
        part_of = self.samples.part[idx]
        rows = to_device(self.samples.row[idx], self.device)
        if (part_of == part_of[0]).all():
            return self.parts[int(part_of[0])].index_select(0, rows)
        out = torch.empty((len(idx), *self.parts[0].shape[1:]), device=self.device)
        for p in np.unique(part_of):
            sel = to_device(np.flatnonzero(part_of == p), self.device)
            out[sel] = self.parts[int(p)].index_select(0, rows[sel])
        return out

    def batches(
        self,
        batches: Sequence[np.ndarray],
        draws: Sequence[AugmentDraw | None] | None = None,
        rank: int = 0,
        world_size: int = 1,
        labels: bool = True,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, int]]:
        """Yield each batch's shard ``(x, y, records in the global batch)`` on the device.

        The host work (reading the memory map) runs ahead in the prefetch thread; the copy to
        the device and the augmentation run in the caller's thread, in order.

        Parameters
        ----------
        batches : sequence of numpy.ndarray of int
            Global batches (records of the samples), in order.
        draws : sequence of AugmentDraw or None, optional
            From :func:`epoch_draws` (one per batch, drawn for the batch's augmented records);
            None: no augmentation (scoring).
        rank, world_size : int
            This process's shard of each batch (:func:`ecgrepro.runtime.shard_bounds`).
        labels : bool
            Also deliver the labels (float32, shape (shard, n_classes)); else ``y`` is None.

        Yields
        ------
        x : torch.Tensor, shape (shard, 12, n_samples), float32, mV
        y : torch.Tensor or None
        n : int
            Records in the global batch.
        """
        s = self.samples
        shards = []
        for idx in batches:
            lo, hi = shard_bounds(len(idx), rank, world_size)
            shards.append((idx, lo, hi))
        def host(shard):
            idx, lo, hi = shard
            return self._host(idx[lo:hi])

        hosts = self._ahead(host, shards) if self.mode == "prefetch" else map(host, shards)
        for i, ((idx, lo, hi), xh) in enumerate(zip(shards, hosts, strict=True)):
            mine = idx[lo:hi]
            x = self._device(mine, xh)
            draw = draws[i] if draws is not None else None
            if draw is not None:
                aug = s.augment[idx]
                local = aug[lo:hi]
                if local.any():
                    rows = (np.cumsum(aug) - 1)[lo:hi][local]  # their rows in the batch's draw
                    where = to_device(np.flatnonzero(local), self.device)
                    x[where] = augment_tensor(x[where], draw.take(rows), s.n_valid[mine][local])
            y = to_device(s.y[mine], self.device) if labels else None
            yield x, y, len(idx)

    def _ahead(self, make, jobs):
        """``map(make, jobs)``, computed up to :attr:`prefetch` items ahead in a thread."""
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def work():
            try:
                for job in jobs:
                    if stop.is_set():
                        return
                    q.put(("ok", make(job)))
                q.put(("end", None))
            except BaseException as err:  # re-raised in the consumer's thread
                q.put(("error", err))

        thread = threading.Thread(target=work, name="ecgrepro-batches", daemon=True)
        thread.start()
        try:
            while True:
                kind, item = q.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(0.01)
