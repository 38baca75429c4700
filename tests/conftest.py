"""Shared fixtures: the real data sample, small corrupted copies of it, and a guard
that keeps the test session out of the repository's ``_build/``.

The signal cache of every loader called without ``cache_dir`` goes to a
session temporary folder (``$ECGREPRO_CACHE``, :func:`ecgrepro.data.default_cache_dir`).
An audit hook (:func:`sys.addaudithook`) makes any write of this process
under ``<repo>/_build`` (opening a file for writing, mkdir, rename, remove,
copy) raise :class:`BuildWriteError` at the offending call, and the session
fails at its end if one was attempted (even if the exception was swallowed).
Other processes (a concurrent ``make book``) are not affected or counted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecgrepro.config import REPO_ROOT, find_data_root
from ecgrepro.data import CACHE_ENV, load_cpsc, load_ptbxl

#: The repository's build folder, which tests must not write into.
BUILD_DIR = REPO_ROOT / "_build"

_BUILD_PATHS = tuple({str(BUILD_DIR), os.path.realpath(BUILD_DIR)})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_WRITE_EVENTS = {
    "os.mkdir",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.truncate",
    "os.symlink",
    "os.link",
    "os.chmod",
    "os.utime",
    "shutil.copyfile",
    "shutil.copytree",
    "shutil.move",
    "shutil.rmtree",
}
_guard = {"on": False, "hits": []}


class BuildWriteError(RuntimeError):
    """A test tried to write into the repository's ``_build/``."""


def _under_build(path) -> bool:
    if isinstance(path, int) or path is None:
        return False
    try:
        full = os.path.abspath(os.fsdecode(path))
    except TypeError:
        return False
    return any(full == b or full.startswith(b + os.sep) for b in _BUILD_PATHS)


def _audit(event: str, args: tuple) -> None:
    if not _guard["on"]:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if mode else bool((flags or 0) & _WRITE_FLAGS)
        paths = (path,) if writes else ()
    elif event in _WRITE_EVENTS:
        paths = args[:2]
    else:
        return
    for p in paths:
        if _under_build(p):
            msg = f"test session tried to write into the repository's _build/: {event} {p!r}"
            _guard["hits"].append(msg)
            raise BuildWriteError(msg)


sys.addaudithook(_audit)


@pytest.fixture(scope="session", autouse=True)
def signal_cache_dir(tmp_path_factory) -> Path:
    """Point ``$ECGREPRO_CACHE`` at a session temporary folder and forbid writes in ``_build/``."""
    path = tmp_path_factory.mktemp("signal-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(path))
        _guard["on"] = True
        try:
            yield path
        finally:
            _guard["on"] = False
    if _guard["hits"]:
        hits = "\n  ".join(_guard["hits"])
        pytest.fail(f"the test session wrote (or tried to write) into {BUILD_DIR}:\n  {hits}")


@pytest.fixture()
def build_write_guard():
    """The guard against writes into ``_build/``, for tests that check it.

    A test that provokes a write on purpose must remove the hits it caused
    (``del guard.hits[n:]``), or the session fails.
    """
    return SimpleNamespace(
        error=BuildWriteError, hits=_guard["hits"], build_dir=BUILD_DIR, paused=_guard_paused
    )


@contextlib.contextmanager
def _guard_paused():
    """Let this process write into ``_build/`` (a test's own clean-up of a failed check)."""
    was, _guard["on"] = _guard["on"], False
    try:
        yield
    finally:
        _guard["on"] = was


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real sample (or $ECGREPRO_DATA); fails with the finder's message if absent."""
    return find_data_root()


@pytest.fixture(scope="session")
def sample_ptbxl(data_root: Path, signal_cache_dir: Path):
    """PTB-XL of the real sample at 100 Hz, 1,000 samples (decoded once per session)."""
    return load_ptbxl(data_root, 100, 1000, cache_dir=signal_cache_dir)


@pytest.fixture(scope="session")
def sample_cpsc(data_root: Path, signal_cache_dir: Path):
    """CPSC 2018 of the real sample at 100 Hz, 1,000 samples, seed 0 (decoded once per session)."""
    return load_cpsc(data_root, 100, 1000, seed=0, cache_dir=signal_cache_dir)


@pytest.fixture()
def mini_root(tmp_path: Path, data_root: Path) -> Path:
    """A tiny data root: 3 PTB-XL records at 100 Hz, 4 CPSC records in two forms."""
    ptb = tmp_path / "ptb-xl"
    (ptb / "records100" / "00000").mkdir(parents=True)
    shutil.copy(data_root / "ptb-xl" / "ptbxl_database.csv", ptb)
    for i in (1, 2, 3):
        for ext in (".hea", ".dat"):
            name = f"{i:05d}_lr{ext}"
            shutil.copy(
                data_root / "ptb-xl" / "records100" / "00000" / name, ptb / "records100" / "00000"
            )
    cpsc = tmp_path / "cpsc2018"
    (cpsc / "wfdb").mkdir(parents=True)
    (cpsc / "original").mkdir()
    shutil.copy(data_root / "cpsc2018" / "REFERENCE.csv", cpsc)
    for rec in ("A0001", "A0002", "A0003"):
        for ext in (".hea", ".mat"):
            shutil.copy(data_root / "cpsc2018" / "wfdb-2020" / f"{rec}{ext}", cpsc / "wfdb")
    shutil.copy(data_root / "cpsc2018" / "original" / "A1980.mat", cpsc / "original")
    return tmp_path


@pytest.fixture(scope="session")
def trained(tmp_path_factory, sample_cpsc, sample_ptbxl):
    """The Original trained for one epoch on the sample at 100 Hz, and its datasets.

    One artifact per session (``<tmp>/artifacts*/original-<key>``), shared by the tests of
    broken artifacts and of releases; tests copy it before changing anything.
    """
    from ecgrepro.pipeline import get_model, paper_specs

    artifacts = tmp_path_factory.mktemp("artifacts")
    spec = paper_specs(epochs=1)["original"]
    datasets = {"cpsc": sample_cpsc, "ptbxl": sample_ptbxl}
    model = get_model(spec, datasets, artifacts, "cpu", log=None)
    before = {p.name: p.stat().st_size for p in model.folder.iterdir()}
    yield model, datasets
    after = {p.name: p.stat().st_size for p in model.folder.iterdir()}
    # a test that wrote into the shared artifact would make others depend on the test order
    assert after == before, f"a test changed the shared artifact {model.folder}: {before}, {after}"


@pytest.fixture()
def build_with_sample_cache(tmp_path, sample_cpsc, sample_ptbxl, signal_cache_dir) -> Path:
    """A build folder whose signal cache is the session's (the sample at 100 Hz, decoded once)."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "cache").symlink_to(signal_cache_dir, target_is_directory=True)
    return build
