"""The signal cache folder: ``$ECGREPRO_CACHE``, and tests never write into ``<repo>/_build``."""

import pytest

from ecgrepro.config import REPO_ROOT
from ecgrepro.data import CACHE_ENV, default_cache_dir, load_ptbxl


def test_tests_cache_outside_the_repository_build(signal_cache_dir):
    cache = default_cache_dir().resolve()
    assert cache == signal_cache_dir.resolve()
    assert not cache.is_relative_to((REPO_ROOT / "_build").resolve())
    assert not cache.is_relative_to(REPO_ROOT.resolve())


def test_cache_env_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv(CACHE_ENV, "")
    assert default_cache_dir() == REPO_ROOT / "_build" / "cache"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir() == REPO_ROOT / "_build" / "cache"


def test_guard_stops_writes_into_build(build_write_guard):
    probe = build_write_guard.build_dir / "guard-probe.txt"
    n = len(build_write_guard.hits)
    try:
        with pytest.raises(build_write_guard.error, match="_build"):
            probe.write_text("must not be written")
        assert len(build_write_guard.hits) == n + 1
    finally:
        del build_write_guard.hits[n:]
        if probe.exists():  # the guard failed: clean up, then fail
            with build_write_guard.paused():
                probe.unlink()
            pytest.fail(f"{probe} was written")


@pytest.mark.filterwarnings("ignore::ecgrepro.data.MissingRecordsWarning")
def test_guard_catches_a_loader_using_the_repository_cache(
    mini_root, monkeypatch, build_write_guard
):
    # without $ECGREPRO_CACHE, a loader given no cache_dir would decode into <repo>/_build/cache
    monkeypatch.delenv(CACHE_ENV)
    n = len(build_write_guard.hits)
    try:
        with pytest.raises(build_write_guard.error, match=r"_build.*cache"):
            load_ptbxl(mini_root, 100, 1000)
    finally:
        del build_write_guard.hits[n:]
