"""What a profile's book trains: every artifact, its key, and whether it is stored.

``ecgrepro plan --profile P`` prints :func:`training_plan`'s table; ``ecgrepro
train --model NAME`` trains one row of it. The rows come from
:data:`ecgrepro.catalogue.PAGE_MODELS` and each page's parameters in
``ecgrepro/profiles.yml``; the keys are those :meth:`ecgrepro.pipeline.Pipeline.model`
computes, so a row marked stored is one the book reuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pandas as pd

from ecgrepro.catalogue import DERIVED, PAGE_MODELS, SETUP_PARAMETERS, model_entry
from ecgrepro.config import load_profiles
from ecgrepro.parameters import check_profile, validate


def model_parameters(name: str) -> tuple[str, ...]:
    """The parameters beyond :data:`SETUP_PARAMETERS` that a catalogue model reads.

    Those of its spec and of the derived datasets it trains on (found by making
    the spec from the defaults profile).
    """
    entry = model_entry(name)
    spec = entry.spec(load_profiles()["paper"][entry.page])
    own = list(entry.parameters)
    for d in spec.train_on:
        own += DERIVED[d].parameters if d in DERIVED else ()
    return tuple(dict.fromkeys(p for p in own if p not in SETUP_PARAMETERS))


def declared_parameters(page: str) -> set[str]:
    """The parameters the book passes a page (:func:`ecgrepro.parameters.page_declared`)."""
    from ecgrepro.parameters import page_declared

    return set(page_declared(page))


def page_parameters(profile: str, page: str, overrides: Mapping | None = None) -> dict:
    """A page's parameters under a profile, with ``overrides``, checked.

    Only the parameters the page's notebook declares are kept, as the book runner
    passes them (:func:`ecgrepro.book.runner.execute_notebooks`): a ``-p amp bf16`` that no
    page declares changes no page's model, so it changes no row of the plan either.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        For an unknown profile, or a value a parameter does not allow.
    """
    profiles = load_profiles()
    check_profile(profile, profiles)
    declared = declared_parameters(page)
    params = {k: v for k, v in profiles[profile][page].items() if k != "profile"}
    params.update(overrides or {})
    params = {k: v for k, v in params.items() if k in declared}
    return validate(params, page=page, check_device=False)


def open_pipeline(
    params: Mapping,
    data_root: str,
    build_dir: str,
    opened: dict | None = None,
    device: str | None = None,
):
    """The pipeline a page with ``params`` opens (:func:`ecgrepro.pipeline.setup`).

    ``opened`` memoises pipelines by their setup parameters, so the data is read
    once per distinct setting; the extra parameters are added to the pipeline's.
    ``device`` (``cpu`` or ``cuda``): compute the artifact keys for that device,
    present here or not (a Slurm job's GPU, planned on a login node); the data
    is read on the CPU. Such a pipeline is for keys only, never for training.
    """
    import torch

    from ecgrepro.pipeline import setup

    args = {k: params[k] for k in SETUP_PARAMETERS if k in params}
    if device:
        args["device"] = "cpu"
    key = json.dumps([args, device], sort_keys=True, default=str)
    opened = {} if opened is None else opened
    if key not in opened:
        opened[key] = setup(data_root, build_dir, **args)
        if device:
            opened[key].device = torch.device(device)
    pipe = opened[key]
    pipe.params.update({k: v for k, v in params.items() if k not in SETUP_PARAMETERS})
    return pipe


def full_size_ratio(pipe, dataset: str) -> float:
    """How many times more records a dataset would hold on the full data than on this data root.

    The full data is every record the label files list: PTB-XL's
    ``ptbxl_database.csv`` (those the label mapping keeps) and CPSC's
    ``REFERENCE.csv``, which the sample holds whole (21,799 and 6,877 rows)
    while its signals are a tenth and 2% of them. The projection assumes the
    missing records split into train, validation and test as the present ones
    do. A derived dataset (:data:`ecgrepro.catalogue.DERIVED`) grows as its base,
    up to the size its ``size_parameter`` fixes.

    Parameters
    ----------
    pipe : ecgrepro.pipeline.Pipeline
    dataset : str
        ``"ptbxl"``, ``"cpsc"`` or a :data:`ecgrepro.catalogue.DERIVED` name.

    Returns
    -------
    float
        Full-size records / records used here (1.0 when the data root is complete).
    """
    from ecgrepro.catalogue import DERIVED

    if dataset in DERIVED:
        entry = DERIVED[dataset]
        ratio = full_size_ratio(pipe, entry.base)
        held = len(pipe.dataset(dataset).records)
        size = int(pipe.params.get(entry.size_parameter, 0)) if entry.size_parameter else 0
        if size > 0 and held:
            base_full = ratio * len(pipe.dataset(entry.base).records)
            return min(size, base_full) / held
        return ratio
    inv = pipe.dataset(dataset).inventory
    full = inv.get("kept_by_mapping", inv["listed"] - inv.get("label_errors", 0))
    return full / max(inv["used"], 1)


def training_plan(
    profile: str,
    data_root: str = "",
    build_dir: str = "",
    overrides: Mapping | None = None,
    pages: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    device: str | None = None,
) -> pd.DataFrame:
    """Every model artifact a profile's book needs, one row each.

    Parameters
    ----------
    profile : str
        A profile of ``ecgrepro/profiles.yml``.
    data_root, build_dir : str
        As :func:`ecgrepro.pipeline.setup` (empty: the defaults).
    overrides : mapping, optional
        ``-p NAME VALUE`` parameters, for every page.
    pages : list of str, optional
        Only these pages (default: every page of :data:`ecgrepro.catalogue.PAGE_MODELS`).
    log : callable, optional
        Receives a line per page.
    device : {"cpu", "cuda"}, optional
        The device the trainings will run on, for the keys; default: the pages'
        ``device`` parameter resolved here (:func:`open_pipeline`).

    Returns
    -------
    pandas.DataFrame
        One row per artifact (pages sharing one are listed together), in
        training order (a parent before its child): ``model`` (catalogue name),
        ``artifact`` (folder name), ``replicate``, ``label_mapping`` (of the
        first page asking; a model trained on CPSC alone is the same under both),
        ``train_on``, ``epochs``, ``train_records`` (records of its training
        folds), ``records_seen`` (epochs x train records), ``key``, ``stored``
        (the artifact passes :func:`ecgrepro.artifacts.check_artifact`), ``parent``
        (the artifact it starts from, or empty), ``pages``, and the projection to
        the full datasets (:func:`full_size_ratio`): ``full_train_records``,
        ``full_records_seen``.

    Raises
    ------
    ecgrepro.parameters.ParameterError
        For an unknown profile or a bad parameter value.
    KeyError
        For a page without an entry in :data:`ecgrepro.catalogue.PAGE_MODELS`.
    """
    from ecgrepro.artifacts import ArtifactError, check_artifact

    opened: dict = {}
    rows: dict[str, dict] = {}

    def add(pipe, name: str, k: int, mapping: str, page: str) -> str:
        spec = pipe.spec(name, k)
        parent = add(pipe, spec.init_from, k, mapping, page) if spec.init_from else ""
        key = pipe.key(name, k)
        folder = pipe.artifacts / f"{spec.name}-{key}"
        if folder.name in rows:
            if page not in rows[folder.name]["pages"]:
                rows[folder.name]["pages"].append(page)
            return folder.name
        try:
            check_artifact(folder)
            stored = True
        except ArtifactError:
            stored = False
        per_dataset = {
            d: int((pipe.dataset(d).records.split == "train").sum()) for d in spec.train_on
        }
        n_train = sum(per_dataset.values())
        n_full = round(sum(n * full_size_ratio(pipe, d) for d, n in per_dataset.items()))
        rows[folder.name] = {
            "model": name,
            "artifact": folder.name,
            "replicate": k,
            "label_mapping": mapping,
            "train_on": "+".join(spec.train_on),
            "epochs": spec.epochs,
            "train_records": n_train,
            "records_seen": spec.epochs * n_train,
            "full_train_records": n_full,
            "full_records_seen": spec.epochs * n_full,
            "key": key,
            "stored": stored,
            "parent": parent,
            "pages": [page],
        }
        return folder.name

    for page in pages or list(PAGE_MODELS):
        params = page_parameters(profile, page, overrides)
        needs = [n for n in PAGE_MODELS[page] if not n.when or params[n.when]]
        if log and needs:
            log(f"[plan] {page}: {', '.join(n.model for n in needs)}")
        for need in needs:
            n = params[need.replicates] if isinstance(need.replicates, str) else need.replicates
            for mapping in need.mappings or (params["label_mapping"],):
                pipe = open_pipeline(
                    {**params, "label_mapping": mapping}, data_root, build_dir, opened, device
                )
                for k in range(n):
                    add(pipe, need.model, k, mapping, page)
    table = pd.DataFrame(list(rows.values()))
    if len(table):
        table["pages"] = table["pages"].map(", ".join)
    return table
