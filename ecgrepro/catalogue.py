"""Every model the book trains and every dataset derived for one, declared in one place.

Three tables:

- :data:`MODELS`: each model by name, the page whose parameters define it, the
  parameters its :class:`TrainingSpec` reads and the function that makes the spec;
- :data:`DERIVED`: each dataset made from another for one model (PTB-XL with its
  superclasses, with shuffled labels, with planted markers), built on first use;
- :data:`PAGE_MODELS`: which models each page uses, with how many replicates and
  under which label mappings; :func:`ecgrepro.pipeline.plan` reads it to list
  what a profile's book needs.

Pages and commands ask :meth:`ecgrepro.pipeline.Pipeline.model` for a model by
its name here; nothing else adds models or datasets. Adding a model means one
entry in :data:`MODELS` (and, where it needs one, in :data:`DERIVED`), and its
pages in :data:`PAGE_MODELS`.

The specs are those the pages built before the catalogue existed, field for
field, so every artifact keeps its key (:func:`ecgrepro.artifacts.artifact_key`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

#: Parameters of :func:`ecgrepro.pipeline.setup` read from a page's parameters.
SETUP_PARAMETERS = (
    "fs_hz",
    "window_s",
    "seed",
    "device",
    "label_mapping",
    "epochs",
    "epochs_ours",
    "batch_size",
    "lr",
    "augment_cpsc_in_ours2",
    "retrain",
    "amp",
    "compile",
    "deterministic",
)

#: Parameters of :func:`paper_specs`, read from a page's parameters.
PAPER_PARAMETERS = (
    "epochs",
    "epochs_ours",
    "batch_size",
    "lr",
    "seed",
    "augment_cpsc_in_ours2",
    "amp",
    "compile",
)


@dataclass(frozen=True)
class TrainingSpec:
    """What one model is trained on and how.

    Attributes
    ----------
    name : str
        The artifact's name: a :data:`MODELS` name, except the LSTM's
        ``lstm_<lead>`` (e.g. ``lstm_II``).
    train_on : tuple of str
        Datasets whose train folds it trains on (and whose validation folds
        select the checkpoint).
    init_from : str or None
        Name of the model whose weights it starts from.
    augment : tuple of str
        Datasets whose training records are augmented.
    epochs, batch_size, lr, seed
        As :func:`ecgrepro.train.train_model`.
    arch : str
        ``resnet34`` (the paper's model) or ``lstm_<lead>`` (Companion B's
        :class:`ecgrepro.models.LeadLSTM` on one lead, e.g. ``lstm_II``).
    amp : {"off", "bf16"}
        Mixed precision of training and scoring (:func:`ecgrepro.runtime.autocast`);
        ``off`` is the published code's float32.
    compile : bool
        Train and score :func:`torch.compile` d copies of the model.
    deterministic : bool
        Train under torch's deterministic algorithms (True, the default: bit-identical
        weights run to run on one machine); False lets cuDNN autotune its kernels
        (:func:`ecgrepro.runtime.deterministic_algorithms`).
    """

    name: str
    train_on: tuple[str, ...]
    init_from: str | None = None
    augment: tuple[str, ...] = ("cpsc", "ptbxl")
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    seed: int = 0
    arch: str = "resnet34"
    amp: str = "off"
    compile: bool = False
    deterministic: bool = True


def paper_specs(
    epochs: int = 30,
    epochs_ours: int = 30,
    batch_size: int = 32,
    lr: float = 1e-4,
    seed: int = 0,
    augment_cpsc_in_ours2: bool = False,
    amp: str = "off",
    compile: bool = False,
    deterministic: bool = True,
) -> dict[str, TrainingSpec]:
    """The paper's three models plus the PTB-XL-only model, in training order.

    Parameters
    ----------
    epochs : int
        Epochs of the Original (30 in the paper).
    epochs_ours : int
        Epochs of Ours_1, Ours_2 and the PTB-XL-only model (30 in the paper).
    batch_size, lr, seed
        Shared by all.
    augment_cpsc_in_ours2 : bool
        False (faithful): Ours_2 augments only its PTB-XL records.
    amp, compile, deterministic
        As :class:`TrainingSpec`, shared by all.

    Returns
    -------
    dict of str -> TrainingSpec
    """
    common = {
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "amp": amp,
        "compile": compile,
        "deterministic": deterministic,
    }
    both = ("cpsc", "ptbxl")
    return {
        "original": TrainingSpec("original", ("cpsc",), epochs=epochs, **common),
        "ours1": TrainingSpec(
            "ours1", ("ptbxl",), init_from="original", epochs=epochs_ours, **common
        ),
        "ours2": TrainingSpec(
            "ours2",
            both,
            augment=both if augment_cpsc_in_ours2 else ("ptbxl",),
            epochs=epochs_ours,
            **common,
        ),
        "ptbxl_only": TrainingSpec("ptbxl_only", ("ptbxl",), epochs=epochs_ours, **common),
    }


def lstm_spec(
    lead: str = "II", epochs: int = 30, batch_size: int = 32, lr: float = 1e-3, seed: int = 0
) -> TrainingSpec:
    """Companion B's kind of model: an LSTM over one lead, trained on the same data as Ours_2.

    It trains on the CPSC 2018 and PTB-XL train folds, augmenting the PTB-XL
    records as Ours_2 does, with its own epochs and learning rate (an LSTM
    learns slowly at the ResNet's 1e-4). Its artifact's name is ``lstm_<lead>``;
    the catalogue's name is ``lstm``.

    Returns
    -------
    TrainingSpec
    """
    name = f"lstm_{lead}"
    return TrainingSpec(
        name, ("cpsc", "ptbxl"), None, ("ptbxl",), epochs, batch_size, lr, seed, arch=name
    )


def superclass_spec(
    epochs: int = 30, batch_size: int = 32, lr: float = 1e-4, seed: int = 0
) -> TrainingSpec:
    """Our ResNet-34 on PTB-XL's 5 diagnostic superclasses (Companion C's label set).

    Trained like the PTB-XL-only model (folds 1-8, checkpoint on fold 9,
    augmented) on the derived dataset ``ptbxl_super`` (:data:`DERIVED`).

    Returns
    -------
    TrainingSpec
    """
    return TrainingSpec(
        "resnet34_super", ("ptbxl_super",), None, ("ptbxl_super",), epochs, batch_size, lr, seed
    )


def replicate(spec: TrainingSpec, k: int) -> TrainingSpec:
    """The same training with seed ``spec.seed + k``: replicate ``k`` of a model (0: itself).

    Only the training seed changes (initial weights, shuffling, augmentation);
    the data and its splits stay as they are, so replicates measure training
    variance alone.
    """
    return replace(spec, seed=spec.seed + k)


@dataclass(frozen=True)
class ModelEntry:
    """One model the book trains.

    Attributes
    ----------
    name : str
        Its name for :meth:`ecgrepro.pipeline.Pipeline.model` and ``ecgrepro train --model``.
    label : str
        How the book names it.
    page : str
        The page (a section of ``ecgrepro/profiles.yml``) whose parameters define it;
        ``ecgrepro train --model`` and ``ecgrepro plan`` read them from there.
    parameters : tuple of str
        The parameters :attr:`make_spec` reads.
    make_spec : callable
        ``make_spec(params) -> TrainingSpec`` for replicate 0.
    description : str
        What it is trained on, and what for.
    """

    name: str
    label: str
    page: str
    parameters: tuple[str, ...]
    make_spec: Callable[[Mapping], TrainingSpec]
    description: str

    def spec(self, params: Mapping) -> TrainingSpec:
        """Replicate 0's spec from ``params`` (a page's parameters).

        Raises
        ------
        KeyError
            Naming the model and the parameters it needs that ``params`` lacks.
        """
        missing = [p for p in self.parameters if p not in params]
        if missing:
            raise KeyError(
                f"model {self.name!r} needs the parameter(s) {', '.join(missing)} "
                f"(those of the page {self.page})"
            )
        return replace(self.make_spec(params), **speed_options(params))


#: The speed options (not in the published code), with their faithful values: every model the
#: book trains takes them from its page's parameters (``profiles.yml``; ``paper-fast`` sets them).
SPEED_OPTIONS = {"amp": "off", "compile": False, "deterministic": True}


def speed_options(params: Mapping) -> dict:
    """The :data:`SPEED_OPTIONS` in ``params``, the faithful value where one is absent."""
    return {k: params.get(k, v) for k, v in SPEED_OPTIONS.items()}


def _paper(name: str) -> Callable[[Mapping], TrainingSpec]:
    return lambda p: paper_specs(*(p[k] for k in PAPER_PARAMETERS))[name]


def _shuffled_spec(p: Mapping) -> TrainingSpec:
    return TrainingSpec(
        name="shuffled_labels",
        train_on=("ptbxl_shuffled",),
        augment=("ptbxl_shuffled",),
        epochs=p["epochs_ours"],
        batch_size=p["batch_size"],
        lr=p["lr"],
        seed=p["seed"],
    )


def _planted_spec(p: Mapping) -> TrainingSpec:
    return TrainingSpec(
        name="planted",
        train_on=("ptbxl_planted",),
        augment=(),
        epochs=p["planted_epochs"],
        batch_size=p["planted_batch"],
        lr=p["planted_lr"],
        seed=p["seed"],
    )


_PAPER_ENTRIES = (
    (
        "original",
        "Original",
        "trained on CPSC 2018 (Zhang et al.'s model as the paper retrains it)",
    ),
    ("ours1", "Ours_1", "the Original trained further on PTB-XL (paper, section 4)"),
    ("ours2", "Ours_2", "a fresh model trained on CPSC 2018 and PTB-XL (paper, section 4)"),
    ("ptbxl_only", "PTB-XL only", "a fresh model trained on PTB-XL (completes train x test)"),
)

#: Every model the book trains, by name.
MODELS: dict[str, ModelEntry] = {
    **{
        name: ModelEntry(name, label, "table3_retraining", PAPER_PARAMETERS, _paper(name), text)
        for name, label, text in _PAPER_ENTRIES
    },
    "lstm": ModelEntry(
        "lstm",
        "LSTM over one lead",
        "companion_b_deletion_mask",
        ("lstm_lead", "lstm_epochs", "batch_size", "lstm_lr", "seed"),
        lambda p: lstm_spec(
            p["lstm_lead"], p["lstm_epochs"], p["batch_size"], p["lstm_lr"], p["seed"]
        ),
        "Companion B's recurrent model on one lead, trained on Ours_2's data",
    ),
    "resnet34_super": ModelEntry(
        "resnet34_super",
        "ResNet-34, PTB-XL superclasses",
        "companion_c_clusters",
        ("epochs_ours", "batch_size", "lr", "seed"),
        lambda p: superclass_spec(p["epochs_ours"], p["batch_size"], p["lr"], p["seed"]),
        "the paper's network on PTB-XL's 5 diagnostic superclasses (Companion C's label set)",
    ),
    "shuffled_labels": ModelEntry(
        "shuffled_labels",
        "shuffled labels",
        "faithfulness",
        ("epochs_ours", "batch_size", "lr", "seed"),
        _shuffled_spec,
        "PTB-XL-only's training on permuted labels (data randomisation, Adebayo et al. 2018)",
    ),
    "planted": ModelEntry(
        "planted",
        "planted-marker detector",
        "faithfulness",
        ("planted_epochs", "planted_batch", "planted_lr", "seed"),
        _planted_spec,
        "a ResNet-34 that must find notches planted before the QRS complexes",
    ),
}


@dataclass(frozen=True)
class Derived:
    """A derived dataset and what was made with it.

    Attributes
    ----------
    dataset : ecgrepro.data.ECGDataset
    extras : dict
        Anything else its builder returns (the planted set's ``window`` and ``problems``).
    """

    dataset: object
    extras: dict


@dataclass(frozen=True)
class DerivedEntry:
    """A dataset made from the pipeline's data for one model.

    Attributes
    ----------
    name : str
        Its name in :attr:`ecgrepro.pipeline.Pipeline.datasets` and in a spec's ``train_on``.
    parameters : tuple of str
        The page parameters :attr:`build` reads.
    build : callable
        ``build(pipe, params) -> Derived``.
    description : str
    base : str
        The pipeline dataset it is made from (for the full-size projection of
        :func:`ecgrepro.plan.training_plan`).
    size_parameter : str, optional
        The page parameter that fixes how many records it holds, if any (0: all).
    """

    name: str
    parameters: tuple[str, ...]
    build: Callable[[object, Mapping], Derived]
    description: str
    base: str = "ptbxl"
    size_parameter: str | None = None


def _superclasses(pipe, p: Mapping) -> Derived:
    from ecgrepro.data import load_ptbxl

    ds = load_ptbxl(
        pipe.root, pipe.fs_hz, pipe.n_samples, pipe.build / "cache", label_set="superclasses"
    )
    return Derived(ds, {})


def _shuffled(pipe, p: Mapping) -> Derived:
    import dataclasses

    import numpy as np

    ds = pipe.datasets["ptbxl"]
    y = ds.y[np.random.default_rng(p["seed"]).permutation(len(ds.y))]
    return Derived(dataclasses.replace(ds, name="ptbxl_shuffled", y=y), {})


def _planted(pipe, p: Mapping) -> Derived:
    from ecgrepro.explain.faithfulness import planted_dataset

    ds, window, problems = planted_dataset(
        pipe.datasets["ptbxl"], p["planted_records"], depth_mv=p["planted_depth_mv"], seed=p["seed"]
    )
    return Derived(ds, {"window": window, "problems": problems})


#: Datasets derived from the pipeline's two, by name.
DERIVED: dict[str, DerivedEntry] = {
    "ptbxl_super": DerivedEntry(
        "ptbxl_super",
        (),
        _superclasses,
        "PTB-XL labelled with its 5 diagnostic superclasses, its own signal cache",
    ),
    "ptbxl_shuffled": DerivedEntry(
        "ptbxl_shuffled",
        ("seed",),
        _shuffled,
        "PTB-XL with its label rows permuted (seed); signals and splits unchanged",
    ),
    "ptbxl_planted": DerivedEntry(
        "ptbxl_planted",
        ("planted_records", "planted_depth_mv", "seed"),
        _planted,
        "PTB-XL records given planted markers, held in memory (planted_records of them)",
        size_parameter="planted_records",
    ),
}


@dataclass(frozen=True)
class PageNeed:
    """Models one page uses.

    Attributes
    ----------
    model : str
        A :data:`MODELS` name.
    replicates : int or str
        How many replicates (0 .. n-1): a number, or the page parameter that gives it.
    mappings : tuple of str, optional
        The label mappings it is used under; None: the page's ``label_mapping``.
    when : str, optional
        A boolean page parameter without which the page does not use it.
    """

    model: str
    replicates: int | str = 1
    mappings: tuple[str, ...] | None = None
    when: str | None = None


_BOTH = ("published", "rhythm-aware")

#: The models each page uses (what ``ecgrepro plan`` lists for a profile).
PAGE_MODELS: dict[str, tuple[PageNeed, ...]] = {
    "table1_dataset": (),
    "table2_generalisation": (PageNeed("original", "n_seeds"),),
    "table3_retraining": (
        PageNeed("original", "n_seeds"),
        PageNeed("ours1", "n_seeds_ours"),
        PageNeed("ours2", "n_seeds_ours"),
        PageNeed("ptbxl_only"),
    ),
    "labels_and_the_gap": (
        PageNeed("original", 1, ("published",)),
        *(PageNeed(m, 1, _BOTH) for m in ("ours1", "ours2", "ptbxl_only")),
    ),
    "fig2-5_shap_per_lead": (PageNeed("original"), PageNeed("ours2")),
    "companion_a_relevance": (PageNeed("original"), PageNeed("ours2")),
    "fig6-8_gradcam": (PageNeed("ours2"),),
    "companion_b_deletion_mask": (PageNeed("ours2"), PageNeed("lstm")),
    "companion_c_clusters": (PageNeed("ours2"), PageNeed("resnet34_super")),
    "faithfulness": (
        PageNeed("original"),
        PageNeed("ours2"),
        PageNeed("ptbxl_only", when="data_randomisation"),
        PageNeed("shuffled_labels", when="data_randomisation"),
        PageNeed("planted"),
    ),
}


def model_entry(name: str) -> ModelEntry:
    """The catalogue's entry of one model.

    Raises
    ------
    KeyError
        Naming the unknown model and the known ones.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
