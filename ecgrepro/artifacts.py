"""Trained models as stored artifacts: their keys, folders and checks.

A trained model's artifact (weights, per-epoch log, scores) is stored under
``<build>/artifacts/<name>-<key>/``, where the key (:func:`artifact_key`)
hashes everything that determines the weights: the data the model sees
(records, labels, splits, decoded-signal cache key of each dataset it trains
and validates on), the training parameters, the parent model's key (Ours_1
continues from the Original) and :data:`TRAIN_CODE_VERSION`.

This module holds the key, :class:`TrainedModel` (a model with its artifact),
the writing (:func:`store_artifact`) and checking (:func:`check_artifact`) of
an artifact's folder, and the reading back (:func:`_load_artifact`) or
training and storing (:func:`_train_and_store`) of one, between which
:func:`ecgrepro.pipeline.get_model` chooses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ecgrepro.catalogue import TrainingSpec
from ecgrepro.data import ECGDataset
from ecgrepro.data.signals import file_sha256, lock_for, move_aside, publish
from ecgrepro.models import LeadLSTM, ResNet1d
from ecgrepro.train import Samples, TrainResult, predict_scores, train_model

#: Bump when a change to data preparation, the model or the training loop changes the weights.
TRAIN_CODE_VERSION = 2  # 2: augmentation offsets leave the zero-padding at 0


def artifact_key(
    spec: TrainingSpec,
    datasets: dict[str, ECGDataset],
    device: str,
    parent_key: str | None = None,
    local_bn_records: int | None = None,
) -> str:
    """Hash of everything that determines a model's weights.

    Parameters
    ----------
    spec : TrainingSpec
        Its ``amp``, ``compile`` and ``deterministic`` enter the key only when not
        ``off`` / False / True, so the models trained before they existed keep their keys.
    datasets : dict of str -> ECGDataset
        Only the datasets in ``spec.train_on`` enter the key.
    device : str
        Device type (``cpu``/``cuda``): kernels differ, so do the weights.
    parent_key : str, optional
        Key of ``spec.init_from``'s artifact.
    local_bn_records : int, optional
        Set when a distributed training normalises each process's shard
        apart (no synchronised batch norm): the records per shard. A
        distributed training with synchronised batch norm computes what one
        process does, up to floating-point order, and shares its key.

    Returns
    -------
    str
        16 hexadecimal digits.
    """
    used = {
        n: (datasets[n].data_key, datasets[n].fs_hz, datasets[n].n_samples) for n in spec.train_on
    }
    spec_fields = asdict(spec)
    if spec_fields["arch"] == "resnet34":
        del spec_fields["arch"]  # ResNet artifacts keep the keys they had before arch existed
    for name, faithful in (("amp", "off"), ("compile", False), ("deterministic", True)):
        if spec_fields[name] == faithful:
            del spec_fields[name]  # likewise for the models trained before these existed
    payload = {
        "spec": spec_fields,
        "data": used,
        "device": device,
        "parent": parent_key,
        "code": TRAIN_CODE_VERSION,
        "torch": torch.__version__.split("+")[0],
    }
    if local_bn_records is not None:
        payload["local_bn_records"] = local_bn_records
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainedModel:
    """A trained model and where it came from.

    Attributes
    ----------
    spec : TrainingSpec
    model : ResNet1d or LeadLSTM
        In eval mode, holding the best-validation weights.
    key : str
        Artifact key (:func:`artifact_key`).
    folder : pathlib.Path
        Artifact folder.
    log : pandas.DataFrame
        Per-epoch log (see :class:`ecgrepro.train.TrainResult`).
    best_epoch : int
    reused : bool
        True when loaded from an existing artifact.
    meta : dict
        What was stored beside the weights (key inputs, training time).
    """

    spec: TrainingSpec
    model: ResNet1d | LeadLSTM
    key: str
    folder: Path
    log: pd.DataFrame
    best_epoch: int
    reused: bool
    meta: dict = field(default_factory=dict)

    def scores(self, name: str, samples: Samples, data_key: str, device="cpu") -> np.ndarray:
        """Sigmoid outputs on ``samples``, cached in the artifact folder by ``data_key``.

        A stored file that cannot be read or has another number of rows is
        moved aside (:func:`ecgrepro.data.signals.move_aside`) and scored anew;
        a new one goes to a unique temporary name and is renamed into place.
        Scored with the spec's ``amp`` and ``compile`` (:func:`ecgrepro.train.predict_scores`).
        The samples' labels are stored beside them (``labels-<name>-<data_key>.npy``), so
        that a release (:mod:`ecgrepro.release`) can give the model's thresholds and metrics
        without the data.

        Returns
        -------
        numpy.ndarray, shape (len(samples), 9), float32
        """
        path = self.folder / f"scores-{name}-{data_key}.npy"
        labels = self.folder / f"labels-{name}-{data_key}.npy"
        if not labels.is_file():
            _save_atomic(labels, np.asarray(samples.y, dtype=np.float32))
        if path.is_file():
            try:
                stored = np.load(path, allow_pickle=False)
                if stored.ndim == 2 and stored.shape[0] == len(samples):
                    return stored
                problem = f"holds shape {stored.shape}, not ({len(samples)}, n_classes)"
            except (OSError, ValueError, EOFError) as exc:
                problem = f"cannot be read ({type(exc).__name__}: {exc})"
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                move_aside(path, problem)
        s = predict_scores(
            self.model, samples, device=device, amp=self.spec.amp, compile=self.spec.compile
        )
        _save_atomic(path, s)
        return s


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a unique temporary name in the folder, then renamed into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _train_and_store(spec, model, key, folder, train, val, device, parent, log, dist, sync):
    """Train ``model`` on ``train``, validated on ``val``, as ``spec`` says; store it in
    ``folder`` (see :func:`ecgrepro.pipeline.get_model`)."""
    if parent is not None:
        model.load_state_dict(parent.model.state_dict())
    if log:
        procs = f", {dist.world_size} processes" if dist.world_size > 1 else ""
        log(
            f"{spec.name}: training on {len(train)} records ({'+'.join(spec.train_on)}), "
            f"validating on {len(val)}, {spec.epochs} epochs{procs}, key {key}"
        )
    t0 = time.perf_counter()
    result: TrainResult = train_model(
        model,
        train,
        val,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        lr=spec.lr,
        seed=spec.seed,
        device=device,
        log=log,
        amp=spec.amp,
        compile=spec.compile,
        deterministic=spec.deterministic,
        dist=dist,
        sync_bn=sync,
    )
    if not dist.is_main:
        dist.barrier()  # rank 0 writes the artifact; then read it, as if reused
        return replace(_load_artifact(spec, model, key, folder, device, None), reused=False)
    expected = set(model.state_dict())
    if not result.state_dict or set(result.state_dict) != expected:
        raise RuntimeError(
            f"{spec.name}: training returned {len(result.state_dict or {})} weights for a model "
            f"of {len(expected)}; nothing is stored"
        )
    meta = {
        "spec": asdict(spec),
        "key": key,
        "parent": parent.key if parent else None,
        "best_epoch": result.best_epoch,
        "train_seconds": time.perf_counter() - t0,
        "n_train": len(train),
        "n_val": len(val),
        "device": device.type,
        "world_size": dist.world_size,
        "sync_bn": sync,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    # one process already holds the artifact's lock (get_model); rank 0 of several takes it
    # around the swap only, so no page reads a half-replaced folder meanwhile
    swap_lock = lock_for(folder) if dist.world_size > 1 else contextlib.nullcontext()
    store_artifact(folder, result.state_dict, result.log, meta, swap_lock=swap_lock)
    dist.barrier()
    return TrainedModel(spec, model.eval(), key, folder, result.log, result.best_epoch, False, meta)


def store_artifact(
    folder: Path,
    state: dict,
    log_csv: pd.DataFrame | Path,
    meta: dict,
    extra_files: tuple[Path, ...] = (),
    swap_lock=None,
) -> None:
    """Write a model artifact into a temporary folder beside ``folder``, then rename it there.

    Parameters
    ----------
    folder : pathlib.Path
        ``<build>/artifacts/<name>-<key>``; an existing one is replaced.
    state : dict of str -> torch.Tensor
        The weights, saved as ``model.pt``.
    log_csv : pandas.DataFrame or pathlib.Path
        The per-epoch log, written (a frame) or copied (a file) as ``log.csv``.
    meta : dict
        Written as ``meta.json`` with ``files`` added: the size and SHA-256 of
        each of :data:`ARTIFACT_FILES` (``meta`` is updated in place).
    extra_files : tuple of pathlib.Path
        Copied in beside them (an imported model's stored scores).
    swap_lock : context manager, optional
        Held around the removal of the old folder and the rename only. The
        caller holds the artifact's lock otherwise (:func:`ecgrepro.pipeline.get_model`).

    Notes
    -----
    The folder gets normal permissions (``mkdtemp`` makes it owner-only); after
    an error, nothing is left but what was there before.
    """
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        torch.save(state, tmp / "model.pt")
        if isinstance(log_csv, pd.DataFrame):
            log_csv.to_csv(tmp / "log.csv", index=False)
        else:
            shutil.copy2(log_csv, tmp / "log.csv")
        for path in extra_files:
            shutil.copy2(path, tmp / Path(path).name)
        meta["files"] = {
            name: {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
            for name in ARTIFACT_FILES
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        tmp.chmod(0o755)
        with swap_lock or contextlib.nullcontext():
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: The files of a model artifact whose size and SHA-256 ``meta.json`` records.
ARTIFACT_FILES = ("model.pt", "log.csv")
#: Fields of an artifact's ``meta.json`` that its readers use.
ARTIFACT_META = ("spec", "key", "best_epoch", "created", "files")


class ArtifactError(ValueError):
    """A stored model artifact fails its check on read; the message says what is wrong."""


def check_artifact(folder: Path) -> dict:
    """Read a model artifact's ``meta.json`` and check its files against it.

    Parameters
    ----------
    folder : pathlib.Path
        ``<build>/artifacts/<name>-<key>``.

    Returns
    -------
    dict
        ``meta.json``'s content.

    Raises
    ------
    ArtifactError
        ``meta.json`` missing, unreadable, without a field of
        :data:`ARTIFACT_META`, or naming another key than the folder's; a file
        of :data:`ARTIFACT_FILES` missing, unreadable, or of another size or
        SHA-256 than ``meta.json`` records.
    """
    try:
        meta = json.loads((folder / "meta.json").read_text())
        files = meta["files"]
        missing = [k for k in ARTIFACT_META if k not in meta]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"meta.json cannot be read ({type(exc).__name__}: {exc})") from exc
    if missing:
        raise ArtifactError(f"meta.json lacks {', '.join(missing)}")
    if not folder.name.endswith(f"-{meta['key']}"):
        raise ArtifactError(f"meta.json names key {meta['key']!r}; the folder is {folder.name}")
    for name in ARTIFACT_FILES:
        path = folder / name
        want = files.get(name) if isinstance(files, dict) else None
        if not path.is_file() or not isinstance(want, dict):
            raise ArtifactError(f"{name} is missing, or not listed in meta.json")
        try:
            size = path.stat().st_size
            if size != want.get("bytes"):
                raise ArtifactError(
                    f"{name} holds {size:,} bytes; meta.json says {want.get('bytes')}"
                )
            if file_sha256(path) != want.get("sha256"):
                raise ArtifactError(f"{name}'s SHA-256 differs from the one meta.json records")
        except OSError as exc:  # moved or removed while being checked
            raise ArtifactError(f"{name} cannot be read ({type(exc).__name__}: {exc})") from exc
    return meta


def _load_artifact(
    spec: TrainingSpec, model: torch.nn.Module, key: str, folder: Path, device, log
) -> TrainedModel:
    """A stored artifact's weights loaded into ``model`` (on ``device``, eval mode).

    The artifact is checked first (:func:`check_artifact`) and the weights are
    read with ``torch.load(..., weights_only=True)``, which unpickles nothing
    but tensors and containers (whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
    says); they must hold exactly the model's parameters and buffers, with
    their shapes, before ``model`` is touched.

    Raises
    ------
    ArtifactError
        If the check fails, the weights cannot be read safely or do not fit the model.
    """
    meta = check_artifact(folder)
    try:
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        log_frame = pd.read_csv(folder / "log.csv")
    except Exception as exc:  # torch raises many types for a bad or hostile file
        raise ArtifactError(
            f"model.pt or log.csv cannot be read safely ({type(exc).__name__}: {exc})"
        ) from exc
    own = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(own):
        raise ArtifactError(
            f"model.pt holds {len(state) if isinstance(state, dict) else 0} weights that are not "
            f"the {len(own)} of a {spec.arch} model"
        )
    wrong = [
        k for k, v in own.items() if not torch.is_tensor(state[k]) or state[k].shape != v.shape
    ]
    if wrong:
        raise ArtifactError(f"model.pt's {wrong[0]} has another shape than the model's")
    model.load_state_dict(state)
    if log:
        log(f"{spec.name}: reusing artifact {folder.name} (trained {meta['created']})")
    return TrainedModel(
        spec,
        model.to(device).eval(),
        key,
        folder,
        log_frame,
        meta["best_epoch"],
        True,
        meta,
    )
