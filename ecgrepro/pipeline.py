"""The training step as cached artifacts: each model is trained once per key.

A trained model's artifact (weights, per-epoch log, scores) is stored under
``<build>/artifacts/<name>-<key>/``, where the key hashes everything that
determines the weights: the data the model sees (records, labels, splits,
decoded-signal cache key of each dataset it trains and validates on), the
training parameters, the parent model's key (Ours_1 continues from the
Original) and :data:`~ecgrepro.artifacts.TRAIN_CODE_VERSION`. A rebuild with
the same key reuses the artifact; any change of those inputs, or
``retrain=True``, trains anew. The key and the artifact's storage are
:mod:`ecgrepro.artifacts`; here, which model is trained on what
(:func:`get_model`, :class:`Pipeline`, :func:`setup`).

Models (METHODS.md, "Input and training"):

- ``original``: trained on CPSC 2018 (train folds), validated on its validation fold;
- ``ours1``: the Original's weights trained further on PTB-XL;
- ``ours2``: a fresh model trained on CPSC + PTB-XL; the published code augmented
  only the PTB-XL records (``augment=("ptbxl",)``, the faithful default);
- ``ptbxl_only``: a fresh model trained on PTB-XL (beyond the paper: it
  completes the train x test matrix).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ecgrepro.artifacts import (
    ArtifactError,
    TrainedModel,
    _load_artifact,
    _train_and_store,
    artifact_key,
)
from ecgrepro.catalogue import (  # re-exported: pages and tests import them from here
    DERIVED,
    Derived,
    TrainingSpec,
    lstm_spec,  # noqa: F401 (re-exported)
    model_entry,
    paper_specs,
    replicate,
    superclass_spec,  # noqa: F401 (re-exported)
)
from ecgrepro.config import REPO_ROOT, find_data_root
from ecgrepro.data import ECGDataset, load_cpsc, load_ptbxl
from ecgrepro.data.signals import lock_for, move_aside
from ecgrepro.metrics import f1_optimal_thresholds
from ecgrepro.models import LeadLSTM, resnet34
from ecgrepro.runtime import DistContext, resolve_sync_bn, select_device
from ecgrepro.train import Samples

#: :meth:`Pipeline.model`'s ``log`` when its caller names none: the pipeline's own.
_OWN_LOG = object()


def build_model(arch: str, fs_hz: float, n_samples: int, num_classes: int) -> torch.nn.Module:
    """A fresh model of one architecture (see :attr:`TrainingSpec.arch`).

    Raises
    ------
    ValueError
        For an unknown architecture.
    """
    if arch == "resnet34":
        return resnet34(fs_hz=fs_hz, n_samples=n_samples, num_classes=num_classes)
    if arch.startswith("lstm_"):
        lead = arch.removeprefix("lstm_")
        return LeadLSTM(fs_hz, lead, num_classes=num_classes, n_samples=n_samples)
    raise ValueError(f"unknown architecture {arch!r}: resnet34 or lstm_<lead>")


def samples_for(
    datasets: dict[str, ECGDataset],
    names: tuple[str, ...],
    split: str,
    augment: tuple[str, ...] = (),
) -> Samples:
    """The records of ``split`` from several datasets, augmentation flagged per dataset."""
    parts = [Samples.from_dataset(datasets[n], split, augment=n in augment) for n in names]
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def get_model(
    spec: TrainingSpec,
    datasets: dict[str, ECGDataset],
    artifacts_dir: Path,
    device: torch.device | str = "cpu",
    parent: TrainedModel | None = None,
    retrain: bool = False,
    log=print,
    dist: DistContext | None = None,
    sync_bn: bool | None = None,
) -> TrainedModel:
    """Load a model's artifact if its key exists, else train it and store the artifact.

    Parameters
    ----------
    spec : TrainingSpec
    datasets : dict of str -> ECGDataset
        Must hold every dataset in ``spec.train_on``.
    artifacts_dir : pathlib.Path
        ``<build>/artifacts``.
    device : torch.device or str
    parent : TrainedModel, optional
        Required when ``spec.init_from`` is set.
    retrain : bool
        Train even if the artifact exists (the old one is replaced).
    log : callable, optional
        Receives progress lines.
    dist : ecgrepro.runtime.DistContext, optional
        A distributed training (``ecgrepro train`` under ``torchrun``): every
        process trains its shard; rank 0 alone validates and writes the
        artifact, once, while the others wait, then read it back. None: one
        process.
    sync_bn : bool, optional
        As :func:`ecgrepro.train.train_model`. Without synchronised batch norm
        a distributed training's key differs from one process's
        (:func:`artifact_key`'s ``local_bn_records``), so the book does not
        mistake it for the model it would train.

    Returns
    -------
    TrainedModel

    Raises
    ------
    ValueError
        If ``spec.init_from`` is set and ``parent`` is not that model.
    RuntimeError
        If training returns no weights, or not the model's (nothing is stored).

    Warns
    -----
    ecgrepro.data.CorruptCacheWarning
        When a stored artifact fails its check (:func:`_load_artifact`): it is
        moved aside (``<folder>.corrupt-<time>-<pid>``) and the model trained anew.

    Notes
    -----
    One process at a time checks, trains and writes an artifact
    (:func:`ecgrepro.data.signals.lock_for`), so two processes asking
    for the same model produce one artifact: the second waits and reuses it.
    The artifact is written into a unique temporary folder beside it, with the
    size and SHA-256 of each file in ``meta.json``, and renamed into place.
    """
    device = torch.device(device)
    dist = dist or DistContext()
    if spec.init_from and (parent is None or parent.spec.name != spec.init_from):
        raise ValueError(f"{spec.name} starts from {spec.init_from}; pass that model as parent")
    ref = datasets[spec.train_on[0]]
    sync = resolve_sync_bn(sync_bn, device, dist.world_size)
    local_bn = spec.batch_size // dist.world_size if dist.world_size > 1 and not sync else None
    key = artifact_key(spec, datasets, device.type, parent.key if parent else None, local_bn)
    folder = Path(artifacts_dir) / f"{spec.name}-{key}"
    torch.manual_seed(spec.seed)  # the initial weights, when training
    model = build_model(spec.arch, ref.fs_hz, ref.n_samples, ref.y.shape[1])
    if not Path(artifacts_dir).is_dir():
        Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
    # One process trains and writes an artifact while any other asking for it waits; under
    # torchrun every rank trains together (a lock would deadlock them) and rank 0 writes.
    lock = lock_for(folder) if dist.world_size == 1 else contextlib.nullcontext()
    with lock:
        if not retrain and folder.exists():
            try:
                return _load_artifact(spec, model, key, folder, device, log)
            except ArtifactError as err:
                with contextlib.suppress(FileNotFoundError):  # another rank moved it first
                    move_aside(folder, str(err), log)
        train = samples_for(datasets, spec.train_on, "train", spec.augment)
        val = samples_for(datasets, spec.train_on, "val")
        return _train_and_store(
            spec, model, key, folder, train, val, device, parent, log, dist, sync
        )


def split_scores(
    m: TrainedModel, datasets: dict[str, ECGDataset], name: str, split: str, device="cpu"
) -> tuple[Samples, np.ndarray]:
    """A model's sigmoid outputs on one split of one dataset, cached in its artifact.

    Parameters
    ----------
    m : TrainedModel
    datasets : dict of str -> ECGDataset
    name : str
        The dataset (a key of ``datasets``).
    split : {"train", "val", "test", "all"}
    device : str or torch.device

    Returns
    -------
    samples : Samples
        The split's records, labels in ``samples.y``.
    scores : numpy.ndarray, shape (len(samples), 9), float32
        Cached under the dataset's ``data_key``, so the same records under
        another label mapping (another key) are scored apart.
    """
    samples = samples_for(datasets, (name,), split)
    return samples, m.scores(f"{name}-{split}", samples, datasets[name].data_key, device)


def validation_thresholds(
    m: TrainedModel, datasets: dict[str, ECGDataset], device="cpu"
) -> np.ndarray:
    """Per-class thresholds maximising F1 on the validation folds of the model's training data.

    Follows the published code (METHODS.md, "Thresholds and metrics"); the
    validation records are those of every dataset in ``m.spec.train_on``
    (Original: CPSC; Ours_1 and PTB-XL-only: PTB-XL; Ours_2: both).

    Returns
    -------
    numpy.ndarray, shape (9,), float
    """
    parts = [split_scores(m, datasets, d, "val", device) for d in m.spec.train_on]
    y = np.concatenate([s.y for s, _ in parts])
    thresholds, _ = f1_optimal_thresholds(y, np.concatenate([sc for _, sc in parts]))
    return thresholds


@dataclass
class Pipeline:
    """What every results page sets up: data, build folders, device and models.

    Made by :func:`setup`. Models are named in :data:`ecgrepro.catalogue.MODELS`
    and made from the page's parameters (:attr:`params`); they are trained (or
    loaded from their artifacts) on first use and kept. Replicate ``k`` of a
    model is trained with seed ``seed + k`` (:func:`replicate`), and Ours_1's
    replicate ``k`` continues from the Original's replicate ``k``. A dataset
    a model trains on that is not one of the two (:data:`ecgrepro.catalogue.DERIVED`)
    is built on first use and added to :attr:`datasets`.

    Attributes
    ----------
    root : pathlib.Path
        Data root.
    build : pathlib.Path
        Build folder (tables, figures, artifacts, cache below it).
    device : torch.device
    fs_hz : float
        Model input sampling frequency, Hz.
    window_s : float
        Input window, s.
    n_samples : int
        ``round(fs_hz * window_s)``.
    datasets : dict of str -> ECGDataset
        ``cpsc`` and ``ptbxl``, then any derived dataset a model asked for.
    specs : dict of str -> TrainingSpec
        :func:`paper_specs` for the page's parameters (replicate 0); read only
        (the catalogue makes every spec from :attr:`params`).
    retrain : bool
    dist : ecgrepro.runtime.DistContext, optional
        Set by ``ecgrepro train`` under ``torchrun``: models are trained by
        all its processes (:func:`get_model`). None: one process.
    sync_bn : bool, optional
        As :func:`get_model`.
    params : dict
        The page's parameters: :func:`setup`'s and its ``extra`` ones, which the
        catalogue's models and derived datasets read.
    log : callable or None
        Where :meth:`model` sends its progress lines (reusing or training an artifact, one
        line per epoch) when its caller names none: ``print`` at a console; a book page's
        log file when :meth:`ecgrepro.book.page.Page.pipeline` opened it (issue #25: no
        log lines on the pages); None: silent.
    """

    root: Path
    build: Path
    device: torch.device
    fs_hz: float
    window_s: float
    n_samples: int
    datasets: dict[str, ECGDataset]
    specs: dict[str, TrainingSpec]
    retrain: bool = False
    dist: DistContext | None = None
    sync_bn: bool | None = None
    params: dict = field(default_factory=dict)
    log: Callable[[str], None] | None = print
    _models: dict = field(default_factory=dict, repr=False)
    _derived: dict = field(default_factory=dict, repr=False)

    @property
    def artifacts(self) -> Path:
        """``<build>/artifacts``: trained models and explanation results."""
        return self.build / "artifacts"

    def run_facts(self) -> dict:
        """What the book's run report records of this pipeline: device, data root, inventories.

        Returns
        -------
        dict
            ``device``, ``data_root`` and, per dataset (PTB-XL named with its label
            mapping), its inventory plus ``skipped``: the records left out.
        """
        mapping = self.params.get("label_mapping", "published")
        return {
            "device": str(self.device),
            "data_root": str(self.root),
            "datasets": {
                (ds.name if ds.name == "cpsc" else f"{ds.name} ({mapping})"): {
                    **ds.inventory,
                    "skipped": len(ds.skipped),
                }
                for key, ds in self.datasets.items()
                if key in ("cpsc", "ptbxl")
            },
        }

    def spec(self, name: str, k: int = 0) -> TrainingSpec:
        """Replicate ``k``'s spec of a catalogue model, from :attr:`params`.

        Raises
        ------
        KeyError
            For a name not in :data:`ecgrepro.catalogue.MODELS`, or a parameter
            the model needs that :attr:`params` lacks.
        """
        return replicate(model_entry(name).spec(self.params), k)

    def derived(self, name: str) -> Derived:
        """A derived dataset (:data:`ecgrepro.catalogue.DERIVED`) and its extras.

        Built on first use, and again only when a parameter it reads has changed
        in :attr:`params`; it is also put in :attr:`datasets` under its name.

        Raises
        ------
        KeyError
            For an unknown name, or a parameter it needs that :attr:`params` lacks.
        """
        entry = DERIVED[name]
        used = tuple(self.params[p] for p in entry.parameters)
        if self._derived.get(name, (None,))[0] != used:
            self._derived[name] = (used, entry.build(self, self.params))
        got = self._derived[name][1]
        self.datasets[name] = got.dataset
        return got

    def dataset(self, name: str) -> ECGDataset:
        """One of :attr:`datasets`, or a derived one built on first use (:meth:`derived`)."""
        if name in DERIVED:
            return self.derived(name).dataset
        return self.datasets[name]

    def _ready(self, spec: TrainingSpec) -> None:
        for d in spec.train_on:
            self.dataset(d)

    def key(self, name: str, k: int = 0) -> str:
        """Replicate ``k``'s artifact key, without training (for ``ecgrepro plan``).

        Builds the derived datasets the model trains on. The folder is
        ``<build>/artifacts/<spec.name>-<key>`` (:func:`get_model`).

        Raises
        ------
        KeyError
            As :meth:`spec`.
        """
        spec = self.spec(name, k)
        self._ready(spec)
        parent = self.key(spec.init_from, k) if spec.init_from else None
        return artifact_key(spec, self.datasets, self.device.type, parent)

    def model(self, name: str, k: int = 0, log=_OWN_LOG) -> TrainedModel:
        """Replicate ``k`` of a catalogue model (:data:`ecgrepro.catalogue.MODELS`).

        ``original``, ``ours1``, ``ours2``, ``ptbxl_only``, ``lstm``,
        ``resnet34_super``, ``shuffled_labels``, ``planted``.

        Parameters
        ----------
        name : str
        k : int
            The replicate (seed ``seed + k``).
        log : callable or None, optional
            Receives the progress lines (:func:`get_model`); not given: :attr:`log`, the
            pipeline's own; None: silent.

        Returns
        -------
        TrainedModel

        Raises
        ------
        KeyError
            For an unknown model name, or a parameter it needs that the page did
            not pass (:meth:`spec`).
        """
        log = self.log if log is _OWN_LOG else log
        spec = self.spec(name, k)
        self._ready(spec)
        # the spec and the parameters of any derived dataset it trains on (planted_records, ...)
        memo = (spec, tuple(self._derived[d][0] for d in spec.train_on if d in self._derived))
        if memo not in self._models:
            parent = self.model(spec.init_from, k, log) if spec.init_from else None
            self._models[memo] = get_model(
                spec,
                self.datasets,
                self.artifacts,
                self.device,
                parent,
                self.retrain,
                log,
                self.dist,
                self.sync_bn,
            )
        return self._models[memo]

    def thresholds(self, name: str, k: int = 0) -> np.ndarray:
        """Validation thresholds of replicate ``k`` of ``name`` (:func:`validation_thresholds`)."""
        return validation_thresholds(self.model(name, k), self.datasets, self.device)

    def test_scores(
        self, name: str, k: int = 0, test_set: str = "combined"
    ) -> tuple[Samples, np.ndarray]:
        """Test records and scores of replicate ``k`` of ``name`` on one test set.

        ``test_set``: ``cpsc``, ``ptbxl`` or ``combined`` (CPSC's test fold, then PTB-XL's).

        Returns
        -------
        samples : Samples
        scores : numpy.ndarray, shape (len(samples), 9), float32
        """
        parts = ("cpsc", "ptbxl") if test_set == "combined" else (test_set,)
        got = [
            split_scores(self.model(name, k), self.datasets, d, "test", self.device) for d in parts
        ]
        samples = samples_for(self.datasets, parts, "test")
        return samples, np.concatenate([sc for _, sc in got])

    def data_notes(self) -> list[str]:
        """The datasets' notes that change what a page shows.

        A release fallback (``resampled``) and records missing from the data root (the
        sentence of :class:`ecgrepro.data.MissingRecordsWarning`, which a book page sends
        to its log file rather than showing it; issue #25).
        """
        return [
            n
            for ds in self.datasets.values()
            for n in ds.notes
            if "resampled" in n or "are missing under" in n
        ]


def setup(
    data_root: str = "",
    build_dir: str = "",
    fs_hz: float = 500,
    window_s: float = 30,
    seed: int = 0,
    device: str = "auto",
    label_mapping: str = "published",
    epochs: int = 30,
    epochs_ours: int = 30,
    batch_size: int = 32,
    lr: float = 1e-4,
    augment_cpsc_in_ours2: bool = False,
    retrain: bool = False,
    amp: str = "off",
    compile: bool = False,
    deterministic: bool = True,
    extra: dict | None = None,
    log: Callable[[str], None] | None = print,
) -> Pipeline:
    """The setup every results page repeats: data root, build folders, both datasets, model specs.

    Parameters
    ----------
    data_root : str
        Empty: ``$ECGREPRO_DATA``, then ``../shared/ecg-data``
        (:func:`ecgrepro.config.find_data_root`).
    build_dir : str
        Empty: ``<repo>/_build``. ``tables/``, ``figures/`` and ``artifacts/``
        are created below it; the signal cache is ``<build>/cache``.
    fs_hz, window_s : float
        Model input sampling frequency (Hz) and window (s); the paper: 500, 30.
    seed : int
        Seeds the CPSC folds and the training of replicate 0.
    device : str
        ``auto``: CUDA when present, else CPU.
    label_mapping : {"published", "rhythm-aware"}
        PTB-XL labels (:mod:`ecgrepro.data.labels`).
    epochs, epochs_ours, batch_size, lr, augment_cpsc_in_ours2
        As :func:`paper_specs`.
    retrain : bool
        Train even where an artifact has the same key.
    amp : {"off", "bf16"}
        Mixed precision of training and scoring (:class:`TrainingSpec`); ``off`` is faithful.
    compile : bool
        :func:`torch.compile` for training and scoring (:class:`TrainingSpec`).
    deterministic : bool
        Train under torch's deterministic algorithms (:class:`TrainingSpec`); True is faithful.
    extra : dict, optional
        The page's other parameters that its catalogue models or derived datasets
        read (:data:`ecgrepro.catalogue.MODELS`), e.g. ``lstm_lead``; checked too.
    log : callable or None
        The pipeline's progress lines (:attr:`Pipeline.log`): ``print`` by default; a book
        page passes its log file's writer (:meth:`ecgrepro.book.page.Page.pipeline`).

    Returns
    -------
    Pipeline

    Raises
    ------
    ecgrepro.parameters.ParameterError
        If a parameter has a value it does not allow, or ``device`` is absent
        (:func:`ecgrepro.parameters.validate`): one line, before any data is read.
    ecgrepro.config.DataNotFoundError
        If no data root is found.
    """
    from ecgrepro.parameters import validate  # a notebook run by hand is checked here

    checked = validate(
        {
            **(extra or {}),
            "data_root": data_root or "",
            "build_dir": build_dir or "",
            "fs_hz": fs_hz,
            "window_s": window_s,
            "seed": seed,
            "device": device,
            "label_mapping": label_mapping,
            "epochs": epochs,
            "epochs_ours": epochs_ours,
            "batch_size": batch_size,
            "lr": lr,
            "augment_cpsc_in_ours2": augment_cpsc_in_ours2,
            "retrain": retrain,
            "amp": amp,
            "compile": compile,
            "deterministic": deterministic,
        }
    )
    data_root, build_dir, fs_hz, window_s, seed, device, label_mapping = (
        checked[k]
        for k in ("data_root", "build_dir", "fs_hz", "window_s", "seed", "device", "label_mapping")
    )
    epochs, epochs_ours, batch_size, lr = (
        checked[k] for k in ("epochs", "epochs_ours", "batch_size", "lr")
    )
    augment_cpsc_in_ours2, retrain, amp, compile, deterministic = (
        checked[k]
        for k in ("augment_cpsc_in_ours2", "retrain", "amp", "compile", "deterministic")
    )
    root = find_data_root(data_root or None)
    build = Path(build_dir or REPO_ROOT / "_build")
    for sub in ("tables", "figures", "artifacts"):
        (build / sub).mkdir(parents=True, exist_ok=True)
    n_samples = int(round(fs_hz * window_s))
    cache = build / "cache"
    datasets = {
        "cpsc": load_cpsc(root, fs_hz, n_samples, seed=seed, cache_dir=cache),
        "ptbxl": load_ptbxl(root, fs_hz, n_samples, cache_dir=cache, label_mapping=label_mapping),
    }
    specs = paper_specs(
        epochs, epochs_ours, batch_size, lr, seed, augment_cpsc_in_ours2, amp, compile,
        deterministic,
    )
    torch_device = select_device(device)
    return Pipeline(
        root,
        build,
        torch_device,
        fs_hz,
        window_s,
        n_samples,
        datasets,
        specs,
        retrain,
        params=dict(checked),
        log=log,
    )
