"""Where and how training runs, apart from what it computes.

CPU threads (:func:`torch_threads`), the device (:func:`select_device`), mixed
precision (:data:`AMP_MODES`, :func:`check_amp`, :func:`autocast`), torch's
deterministic algorithms (:func:`deterministic_algorithms`) and the processes
of a distributed training (:class:`DistContext`, :func:`init_distributed`,
:func:`shard_bounds`, :func:`rank_seed`, :func:`resolve_sync_bn`). The
published training recipe that runs under them is :mod:`ecgrepro.train`; this
module imports nothing from the package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch


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


#: Mixed-precision modes: ``off`` (float32, the published code) or ``bf16`` (bfloat16 autocast).
AMP_MODES = ("off", "bf16")

#: cuBLAS workspace setting that makes its matmuls deterministic (CUDA >= 10.2); see
#: https://docs.nvidia.com/cuda/cublas/index.html#results-reproducibility
CUBLAS_DETERMINISTIC = ":4096:8"


def check_amp(amp: str | bool) -> str:
    """The mixed-precision mode as one of :data:`AMP_MODES` (True/False: ``bf16``/``off``).

    Raises
    ------
    ValueError
        For any other value.
    """
    if isinstance(amp, bool):
        return "bf16" if amp else "off"
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    return amp


def autocast(device: torch.device | str, amp: str | bool = "off") -> torch.autocast:
    """bfloat16 autocast on ``device``'s type when ``amp`` is ``bf16``, else a no-op context.

    Under autocast torch's op lists decide the precision op by op: the
    convolutions and the linear layer run in bfloat16 (and batch norm on their
    bfloat16 outputs, accumulating in float32), the loss in float32; weights,
    gradients and the optimiser's state stay float32. Not in the published code.
    """
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=check_amp(amp) == "bf16")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter; the CPU for a model without parameters."""
    return next(model.parameters(), torch.empty(0)).device


def arithmetic(amp: str | bool = "off", compile: bool = False, deterministic: bool = True) -> str:
    """The speed options in words, for a page's run line: which arithmetic ran.

    Returns
    -------
    str
        ``"float32"`` for the faithful settings; else e.g. ``"bf16 autocast, torch.compile,
        cuDNN autotuned (not deterministic)"``.
    """
    words = ["bf16 autocast" if check_amp(amp) == "bf16" else "float32"]
    if compile:
        words.append("torch.compile")
    if not deterministic:
        words.append("cuDNN autotuned (not deterministic)")
    return ", ".join(words)


@contextmanager
def deterministic_algorithms(enabled: bool = True, warn_only: bool = True) -> Iterator[None]:
    """Run a block with torch's deterministic algorithms, then restore the previous settings.

    Sets :func:`torch.use_deterministic_algorithms`, cuDNN's ``deterministic``
    (and ``benchmark`` off: autotuning may pick other kernels run to run) and
    oneDNN's ``deterministic``; on CUDA it sets ``CUBLAS_WORKSPACE_CONFIG`` to
    :data:`CUBLAS_DETERMINISTIC` if unset (cuBLAS reads it when the process
    first uses it, so set it before any CUDA work to be sure).

    Parameters
    ----------
    enabled : bool
        False: the block runs with cuDNN's autotuning on (``benchmark``: the fastest
        kernels for each shape, chosen anew in each process), everything else as found.
    warn_only : bool
        True: an operation with no deterministic implementation warns instead
        of raising. On CUDA this model has one: the backward of
        ``AdaptiveMaxPool1d`` (its head), which scatters gradients with atomic
        adds; with an output of length 1 each (record, channel) adds once into
        one sample, so the sum cannot be reordered (an inference from the
        kernel, not measured here). On the CPU every operation of the training
        loop has a deterministic implementation.
    """
    if not enabled:
        benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = benchmark
        return
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.mkldnn.deterministic,
    )
    env_before = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if torch.cuda.is_available() and env_before is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.mkldnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:4]
        torch.backends.mkldnn.deterministic = before[4]
        if env_before is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a :mod:`torch.distributed` training.

    Attributes
    ----------
    rank : int
        This process's rank (0: the one that validates and writes).
    world_size : int
        Number of processes; 1: no process group.
    local_rank : int
        Rank on this machine (the CUDA device index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (nothing without a process group)."""
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()


def init_distributed(device: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    ``torchrun --nproc_per_node N`` sets ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the group is
    initialised from them (``env://``) with NCCL on CUDA devices (process
    ``LOCAL_RANK`` on device ``cuda:LOCAL_RANK``) and gloo on CPUs. Without
    ``WORLD_SIZE`` no group is made: a plain single process.

    Parameters
    ----------
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.

    Returns
    -------
    DistContext
    torch.device
        The device this process trains on.
    """
    dev = select_device(device)
    if "WORLD_SIZE" not in os.environ:
        return DistContext(), dev
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(
            backend, init_method="env://", rank=rank, world_size=world
        )
    return DistContext(rank, world, local), dev


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """This rank's contiguous part ``[lo, hi)`` of a global batch of ``n`` records.

    Parts differ in size by at most one (``numpy.array_split``'s rule); a rank
    may get none when ``n < world_size`` (the last batch of an epoch).
    """
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def rank_seed(seed: int, rank: int) -> int:
    """Seed of torch's generator (dropout) on ``rank``: ``seed`` on rank 0, an independent
    stream (:class:`numpy.random.SeedSequence` of ``(seed, rank)``) on the others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


def resolve_sync_bn(sync_bn: bool | None, device: torch.device, world_size: int) -> bool:
    """Whether batch norm is synchronised across processes.

    ``None`` (auto): on CUDA with more than one process. torch's
    :class:`torch.nn.SyncBatchNorm` runs on GPUs only.

    Raises
    ------
    ValueError
        If ``sync_bn`` is True for CPU processes.
    """
    if world_size < 2:
        return False
    if sync_bn is None:
        return device.type == "cuda"
    if sync_bn and device.type != "cuda":
        raise ValueError("sync_bn: torch's SyncBatchNorm runs on GPUs only (gloo/CPU: use False)")
    return bool(sync_bn)
