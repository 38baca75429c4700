"""Trained models as a release: export a build's models, import someone else's.

``ecgrepro export DIR`` writes every model artifact stored under
``<build>/artifacts/`` (:func:`ecgrepro.pipeline.get_model`) that passes its
check (:func:`ecgrepro.artifacts.check_artifact`) into ``DIR/<name>-<key>/``:

- ``model.safetensors``: the weights, as :mod:`safetensors` tensors (no pickle);
- ``meta.json``: the artifact's metadata (spec, key, parent key, best epoch,
  records trained and validated on, device, creation time);
- ``log.csv``: the per-epoch log;
- ``scores-<dataset>-<split>-<data key>.npy``: the sigmoid outputs the book
  computed per record of each split scored (float32, one row per record in the
  split's order, one column per class), and ``labels-...npy`` beside them (the
  records' labels, float32 0/1, same shape) where the build stored them;
- ``metrics-<dataset>-test-<data key>.csv``: the per-class precision, recall, F1,
  AUC and accuracy on each stored test split, at the F1-optimal validation
  thresholds (:func:`model_results`);

plus ``DIR/manifest.json``: every file's size and SHA-256, per model its records
trained and validated on, thresholds and test metrics (``results``), the profiles
the build's pages ran with, the data's record counts (listed, used, skipped per
dataset), the project's commit and the versions of Python, torch, numpy and
safetensors. ``ecgrepro import
DIR`` verifies every sum first, then installs each model into
``<build>/artifacts/`` as the artifact :func:`~ecgrepro.pipeline.get_model`
looks up by key, so a ``make book`` with the same profile and data trains none
of them. The key hashes the data's contents and paths relative to the data root
(:func:`ecgrepro.data.signals.cached_signals`), so a release made on one
machine is found on another holding the same data. Nothing is unpickled: the
weights are safetensors, the arrays load with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from ecgrepro.artifacts import ArtifactError, check_artifact, store_artifact
from ecgrepro.config import REPO_ROOT
from ecgrepro.data.signals import file_sha256, lock_for

#: Format of ``manifest.json``; bumped when the layout changes.
RELEASE_FORMAT = 1
#: An artifact folder's name: the model's name and its 16-digit key.
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9_.+-]+-[0-9a-f]{16}$")
#: Files of a released model besides its scores.
_MODEL_FILES = ("model.safetensors", "meta.json", "log.csv")
_SCORES = re.compile(r"^(scores|labels)-[A-Za-z0-9_.+-]+\.npy$")
_METRICS = re.compile(r"^metrics-[A-Za-z0-9_.+-]+\.csv$")
#: A stored split's file name: what, dataset, split, data key.
_SPLIT_FILE = re.compile(r"^(scores|labels)-([A-Za-z0-9_.+]+)-([a-z]+)-([A-Za-z0-9_.+-]+)\.npy$")


class ReleaseError(ValueError):
    """A release cannot be exported or imported; the message names the file and the problem."""


@dataclass
class ReleaseReport:
    """What :func:`export_models` or :func:`import_models` did.

    Attributes
    ----------
    models : list of str
        Artifact folder names written (``<name>-<key>``).
    skipped : list of (str, str)
        Artifact folders left out, with why (a failed check).
    """

    models: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _commit() -> str:
    """The project's git commit, or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _versions() -> dict[str, str]:
    import safetensors

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


def build_profiles(build_dir: Path) -> list[str]:
    """The profiles a build folder's pages ran with (``tables/run_report.csv``); [] if none."""
    path = Path(build_dir) / "tables" / "run_report.csv"
    if not path.is_file():
        return []
    return sorted(pd.read_csv(path, usecols=["profile"]).profile.dropna().astype(str).unique())


def build_data(build_dir: Path) -> dict[str, dict]:
    """The data the build's pages read: per dataset, the records listed, used and skipped.

    Read from the pages' run facts (``run/<page>.json``,
    :func:`ecgrepro.book.report.write_run_facts`); the last page's inventory of a dataset
    wins (they agree within one build).
    """
    out: dict[str, dict] = {}
    for path in sorted((Path(build_dir) / "run").glob("*.json")):
        for name, inv in json.loads(path.read_text()).get("datasets", {}).items():
            out[name] = {k: inv[k] for k in ("listed", "used", "skipped") if k in inv}
    return out


def _split_files(folder: Path) -> dict[tuple[str, str, str], dict[str, Path]]:
    """(dataset, split, data key) -> {"scores": path, "labels": path} of a model folder."""
    out: dict[tuple[str, str, str], dict[str, Path]] = {}
    for path in folder.glob("*.npy"):
        m = _SPLIT_FILE.match(path.name)
        if m:
            out.setdefault((m.group(2), m.group(3), m.group(4)), {})[m.group(1)] = path
    return out


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def model_results(folder: Path, meta: dict) -> dict:
    """A released model's thresholds and test metrics, from its stored scores and labels.

    Thresholds maximise F1 per class on the validation folds of the datasets the model
    trained on (:func:`ecgrepro.metrics.f1_optimal_thresholds`, as
    :func:`ecgrepro.pipeline.validation_thresholds`); each stored test split is scored with
    them (:func:`ecgrepro.metrics.per_class_metrics`), and the per-class table is written as
    ``metrics-<dataset>-test-<data key>.csv`` in ``folder``.

    Parameters
    ----------
    folder : pathlib.Path
        The model's release folder, holding ``scores-*`` and ``labels-*`` files.
    meta : dict
        The artifact's metadata (``spec.train_on``, ``n_train``, ``n_val``).

    Returns
    -------
    dict
        ``n_train``, ``n_val``, ``thresholds`` (list of float, or None with ``why``),
        ``metrics``: ``<dataset>-test-<data key>`` -> the AVG row (precision, recall, F1,
        AUC, accuracy); keyed by the data key too, as a model may be scored on one dataset
        under two label mappings.
    """
    from ecgrepro.config import CLASSES
    from ecgrepro.metrics import f1_optimal_thresholds, per_class_metrics

    splits = _split_files(folder)
    out = {"n_train": meta.get("n_train"), "n_val": meta.get("n_val"), "thresholds": None}
    val = [
        files
        for (dataset, split, _), files in sorted(splits.items())
        if split == "val" and dataset in meta["spec"]["train_on"] and len(files) == 2
    ]
    if len(val) < len(meta["spec"]["train_on"]):
        out["why"] = "validation scores or labels not stored (a build before labels were kept)"
        return out
    y = np.concatenate([_load(f["labels"]) for f in val])
    thresholds, _ = f1_optimal_thresholds(y, np.concatenate([_load(f["scores"]) for f in val]))
    out["thresholds"] = [float(t) for t in thresholds]
    out["metrics"] = {}
    for (dataset, split, key), files in sorted(splits.items()):
        if split != "test" or len(files) != 2:
            continue
        scores = _load(files["scores"])
        classes = CLASSES if scores.shape[1] == len(CLASSES) else tuple(
            f"class {k}" for k in range(scores.shape[1])
        )
        table = per_class_metrics(_load(files["labels"]), scores, thresholds, classes)
        table.to_csv(folder / f"metrics-{dataset}-test-{key}.csv")
        avg = table.loc["AVG"]
        out["metrics"][f"{dataset}-test-{key}"] = {
            k: (None if pd.isna(v) else float(v)) for k, v in avg.items()
        }
    return out


def export_models(build_dir: Path, out_dir: Path, log=print) -> ReleaseReport:
    """Write every stored model of a build folder as a release.

    Parameters
    ----------
    build_dir : pathlib.Path
        The build folder (``_build``); its models are in ``artifacts/``.
    out_dir : pathlib.Path
        The release folder; created, and must hold no release yet.
    log : callable, optional
        Receives one line per model and a summary; None for silence.

    Returns
    -------
    ReleaseReport

    Raises
    ------
    ReleaseError
        If ``out_dir`` already holds a ``manifest.json``, or no model passes its check.

    Notes
    -----
    An artifact that fails :func:`ecgrepro.artifacts.check_artifact`, or whose
    weights cannot be read with ``torch.load(..., weights_only=True)``, is left
    out and listed in the report; the release holds only verified models.
    """
    artifacts = Path(build_dir) / "artifacts"
    out_dir = Path(out_dir)
    if (out_dir / "manifest.json").exists():
        raise ReleaseError(f"{out_dir / 'manifest.json'}: a release is already there")
    report = ReleaseReport()
    files: dict[str, dict] = {}
    results: dict[str, dict] = {}
    folders = sorted(p for p in artifacts.glob("*") if p.is_dir() and _ARTIFACT_NAME.match(p.name))
    for folder in folders:
        try:
            meta = check_artifact(folder)
            state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        except ArtifactError as err:
            report.skipped.append((folder.name, str(err)))
            continue
        except Exception as exc:  # torch raises many types for a bad file
            report.skipped.append((folder.name, f"model.pt: {type(exc).__name__}: {exc}"))
            continue
        dest = out_dir / folder.name
        dest.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(dest / "model.safetensors"))
        (dest / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.copy2(folder / "log.csv", dest / "log.csv")
        for scores in sorted([*folder.glob("scores-*.npy"), *folder.glob("labels-*.npy")]):
            np.load(scores, allow_pickle=False)  # only readable score files are released
            shutil.copy2(scores, dest / scores.name)
        results[folder.name] = model_results(dest, meta)
        for f in sorted(dest.iterdir()):
            rel = f"{folder.name}/{f.name}"
            files[rel] = {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
        report.models.append(folder.name)
        if log:
            log(f"export: {folder.name} ({meta['spec']['name']}, best epoch {meta['best_epoch']})")
    if not report.models:
        raise ReleaseError(f"{artifacts}: no model passes its check; nothing to export")
    manifest = {
        "format": RELEASE_FORMAT,
        "models": report.models,
        "results": results,
        "profiles": build_profiles(build_dir),
        "data": build_data(build_dir),
        "files": files,
        "commit": _commit(),
        "versions": _versions(),
        "created": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    total = sum(f["bytes"] for f in files.values())
    if log:
        log(
            f"export: {len(report.models)} models, {total / 2**20:.1f} MiB, into {out_dir}; "
            f"{len(report.skipped)} left out"
            + "".join(f"\n  left out {n}: {why}" for n, why in report.skipped)
        )
    return report


def _safe_member(release: Path, rel: str) -> Path:
    """``release / rel``, refused unless it is ``<artifact>/<file>`` inside the release."""
    parts = rel.split("/")
    if (
        len(parts) != 2
        or not _ARTIFACT_NAME.match(parts[0])
        or not (parts[1] in _MODEL_FILES or _SCORES.match(parts[1]) or _METRICS.match(parts[1]))
    ):
        raise ReleaseError(f"manifest.json lists {rel!r}, which is not a file of a released model")
    return release / parts[0] / parts[1]


def verify_release(release: Path) -> dict:
    """Read a release's manifest and check every file it lists.

    Parameters
    ----------
    release : pathlib.Path
        The folder :func:`export_models` wrote.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ReleaseError
        A missing or unreadable ``manifest.json`` or one of another format; a
        listed path that is not a released model's file (such as ``../x``); a
        file missing, or of another size or SHA-256 than listed; a model
        folder without its weights, metadata or log.
    """
    release = Path(release)
    try:
        manifest = json.loads((release / "manifest.json").read_text())
        files = manifest["files"]
        models = manifest["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"{release / 'manifest.json'}: cannot be read ({exc})") from exc
    if manifest.get("format") != RELEASE_FORMAT:
        raise ReleaseError(
            f"{release / 'manifest.json'}: release format {manifest.get('format')!r}; "
            f"this version reads {RELEASE_FORMAT}"
        )
    for rel, want in files.items():
        path = _safe_member(release, rel)
        if not path.is_file():
            raise ReleaseError(f"{path}: listed in manifest.json but missing")
        if path.stat().st_size != want.get("bytes") or file_sha256(path) != want.get("sha256"):
            raise ReleaseError(f"{path}: its size or SHA-256 differs from manifest.json's")
    for name in models:
        for f in _MODEL_FILES:
            if f"{name}/{f}" not in files:
                raise ReleaseError(f"{release / name}: {f} is not listed in manifest.json")
    return manifest


def import_models(release: Path, build_dir: Path, log=print) -> ReleaseReport:
    """Install a release's models into a build folder, after checking every file.

    Parameters
    ----------
    release : pathlib.Path
        The folder :func:`export_models` wrote.
    build_dir : pathlib.Path
        The build folder; models go to ``artifacts/<name>-<key>/`` as
        :func:`ecgrepro.pipeline.get_model` stores them (``model.pt``,
        ``log.csv``, a ``meta.json`` with their sums), with their scores.
    log : callable, optional
        Receives one line per model; None for silence.

    Returns
    -------
    ReleaseReport
        ``skipped`` lists models already stored in the build folder (kept).

    Raises
    ------
    ReleaseError
        If :func:`verify_release` fails (nothing is installed then), or a
        model's weights are not a flat map of tensors.
    """
    release = Path(release)
    manifest = verify_release(release)
    artifacts = Path(build_dir) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    report = ReleaseReport()
    for name in manifest["models"]:
        folder = artifacts / name
        src = release / name
        with lock_for(folder):
            try:
                check_artifact(folder)
                report.skipped.append((name, "already stored in the build folder"))
                continue
            except ArtifactError:
                pass
            state = load_file(str(src / "model.safetensors"))
            meta = json.loads((src / "meta.json").read_text())
            if meta.get("key") != name.rsplit("-", 1)[1]:
                raise ReleaseError(f"{src / 'meta.json'}: key {meta.get('key')!r} is not {name}'s")
            meta["imported_from"] = {"commit": manifest.get("commit"), "release": str(release)}
            scores = tuple(sorted([*src.glob("scores-*.npy"), *src.glob("labels-*.npy")]))
            store_artifact(folder, state, src / "log.csv", meta, extra_files=scores)
        report.models.append(name)
        if log:
            log(f"import: {name} installed into {artifacts}")
    return report
