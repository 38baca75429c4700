"""The full-size rehearsal's tooling (issue #27, item 2), at a tiny fraction.

A synthetic root of 40 PTB-XL and 20 CPSC records (fraction 0.002) must have the full
datasets' layout, read through the project's own loaders with no record skipped, and keep
beats a QRS detector finds; :func:`ecgrepro.rehearsal.run` must measure its steps into a
table of the documented columns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgrepro import rehearsal, rehearsal_root
from ecgrepro.config import find_data_root
from ecgrepro.data import load_cpsc, load_ptbxl
from ecgrepro.data.sample import sample_manifest

FRACTION = 0.002


@pytest.fixture(scope="module")
def sample() -> Path:
    return find_data_root()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sample) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("rehearsal") / "data"
    return root, rehearsal_root.synthetic_root(root, FRACTION, sample, seed=0)


def expected_counts(sample: Path, fraction: float) -> tuple[int, int]:
    """PTB-XL and CPSC records of a fraction, counted from the label files themselves."""
    folds = pd.read_csv(sample / "ptb-xl" / "ptbxl_database.csv").strat_fold.value_counts()
    n_ptbxl = sum(max(rehearsal_root.MIN_PER_FOLD, round(fraction * n)) for n in folds)
    n_cpsc = len(pd.read_csv(sample / "cpsc2018" / "REFERENCE.csv"))
    return n_ptbxl, max(rehearsal_root.MIN_CPSC, round(fraction * n_cpsc))


def test_full_fraction_is_every_listed_record(sample):
    ids, names = rehearsal_root.choose_records(1.0, sample)
    assert (len(ids), len(names)) == (21_799, 6_877)
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)


def test_layout_and_counts(tiny, sample):
    root, got = tiny
    n_ptbxl, n_cpsc = expected_counts(sample, FRACTION)
    assert (got["ptbxl"], got["cpsc"]) == (n_ptbxl, n_cpsc) == (40, 20)
    meta = pd.read_csv(root / "ptb-xl" / "ptbxl_database.csv")
    assert len(meta) == n_ptbxl and sorted(meta.strat_fold.unique()) == list(range(1, 11))
    for col, suffix in (("filename_lr", "_lr"), ("filename_hr", "_hr")):
        for name in meta[col]:
            assert name.endswith(suffix)
            assert (root / "ptb-xl" / f"{name}.hea").is_file()
            assert (root / "ptb-xl" / f"{name}.dat").is_file()
    assert len(list((root / "ptb-xl" / "records500").rglob("*.hea"))) == n_ptbxl
    assert (root / "ptb-xl" / "scp_statements.csv").is_file()
    reference = (root / "cpsc2018" / "REFERENCE.csv").read_bytes()
    assert reference.startswith(b"Recording,First_label,Second_label,Third_label\r\n")
    listed = [line.split(b",")[0].decode() for line in reference.splitlines()[1:]]
    found = sorted(p.stem for p in (root / "cpsc2018").rglob("*.hea"))
    assert sorted(listed) == found and len(found) == n_cpsc
    for name in listed:
        folder = root / "cpsc2018" / f"g{(int(name[1:]) - 1) // 1000 + 1}"
        hdr = wfdb.rdheader(str(folder / name))
        assert hdr.fs == 500 and 6 <= hdr.sig_len / hdr.fs <= 60
    assert sample_manifest(root) is None  # not mistaken for the shared sample


def test_reads_through_the_loaders_with_no_skipped_record(tiny, tmp_path):
    root, got = tiny
    for fs in (100, 500):  # each PTB-XL release (records100/, records500/)
        ptb = load_ptbxl(root, fs, 10 * fs, tmp_path, source_fs_hz=fs)
        assert len(ptb.skipped) == 0 and ptb.inventory["listed"] == got["ptbxl"]
        assert ptb.inventory[f"present_at_{fs}hz"] == ptb.inventory["kept_by_mapping"]
        assert ptb.inventory["used"] == ptb.inventory["kept_by_mapping"] > 0
        assert set(ptb.records.split) == {"train", "val", "test"}
    cpsc = load_cpsc(root, 100, 1000, cache_dir=tmp_path)
    assert len(cpsc.skipped) == 0 and cpsc.inventory["used"] == got["cpsc"]
    assert cpsc.inventory["header_disagreements"] == 0 and not cpsc.notes
    assert set(cpsc.records.split) == {"train", "val", "test"}


def test_recycled_records_keep_their_beats(tiny, sample):
    from ecgrepro.beats import r_peaks
    from ecgrepro.data.records import read_wfdb

    root, _ = tiny
    meta = pd.read_csv(root / "ptb-xl" / "ptbxl_database.csv")
    recycled = meta[meta.ecg_id > 1999].iloc[0]  # the sample holds ids 1-1999 only
    rec = read_wfdb(root / "ptb-xl" / recycled.filename_hr)
    peaks = r_peaks(rec.signal[:, 1], rec.fs)  # lead II, 10 s
    assert 4 <= len(peaks) <= 30


def test_refuses_a_bad_fraction_or_a_used_folder(tmp_path, sample):
    with pytest.raises(ValueError, match="fraction"):
        rehearsal_root.synthetic_root(tmp_path / "a", 1.5, sample)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(FileExistsError):
        rehearsal_root.synthetic_root(tmp_path / "b", FRACTION, sample)


def test_measure_sees_memory_and_exit_status(tmp_path):
    code = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
    got = rehearsal.measure([sys.executable, "-c", code + "time.sleep(0.5)"], tmp_path / "a.log")
    assert got["rc"] == 0 and got["peak_rss_mb"] >= 300 and got["peak_anon_mb"] >= 250
    failed = rehearsal.measure([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "b.log")
    # its own peak, not the parent's pages it held between fork and exec (NaN: never sampled)
    assert failed["rc"] == 3 and not failed["peak_rss_mb"] >= 300


def test_run_writes_the_table(tmp_path, sample):
    build = tmp_path / "build"
    table = rehearsal.run((FRACTION,), tmp_path / "work", build, sample, ("data_quick",), log=None)
    written = pd.read_csv(build / "tables" / "rehearsal.csv")
    assert tuple(written.columns) == rehearsal.COLUMNS
    assert list(written.step) == ["root", "data_quick"] and written.ok.all()
    root, data = (written.set_index("step").loc[s] for s in ("root", "data_quick"))
    assert root.records == 2 * 40 + 20 and root.disk_mb > 1 and root.seconds > 0
    assert data.records >= 60 and data.signals_mb > 0 and data.disk_mb > 0
    assert (written.peak_rss_mb > 50).all()
    assert not (tmp_path / "work" / f"fraction-{FRACTION:g}").exists()  # removed, logs kept
    assert (tmp_path / "work" / "logs" / f"fraction-{FRACTION:g}" / "data_quick.log").is_file()
    assert "s @0.002" in rehearsal.summary(table)


def test_summary_says_when_a_step_holds_the_signals():
    rows = [
        {"fraction": 1.0, "step": "data_paper", "seconds": 10.0, "peak_rss_mb": 1.0,
         "disk_mb": 1.0, "peak_anon_mb": 900.0, "signals_mb": 20_000.0},
        {"fraction": 1.0, "step": "plan_paper", "seconds": 10.0, "peak_rss_mb": 1.0,
         "disk_mb": 1.0, "peak_anon_mb": np.nan, "signals_mb": 0.0},
    ]
    assert "no step holds all signals" in rehearsal.summary(pd.DataFrame(rows))
    rows[1]["peak_anon_mb"] = 15_000.0
    assert "HOLDS" in rehearsal.summary(pd.DataFrame(rows))


def test_the_page_step_runs_table2_end_to_end_under_the_quick_shapes(tmp_path):
    cmd = rehearsal._command("page_table2", 0.1, tmp_path / "d", tmp_path / "b", None, 0, 3,
                             tmp_path / "r.json")
    assert cmd[1:] == ["-m", "ecgrepro.cli", "book", "--profile", "quick", "--only",
                       "table2_generalisation", "-p", "n_seeds", "1", "-p", "epochs", "1",
                       "--data", str(tmp_path / "d"), "--build-dir", str(tmp_path / "b")]
    (tmp_path / "b" / "run").mkdir(parents=True)
    (tmp_path / "b" / "tables").mkdir()
    facts = {"datasets": {"cpsc": {"used": 30}, "ptbxl (published)": {"used": 70}}}
    (tmp_path / "b" / "run" / "table2_generalisation.json").write_text(json.dumps(facts))
    pd.DataFrame({"value": [0.5, 0.6]}).to_csv(tmp_path / "b" / "tables" / "table2.csv")
    got = rehearsal._page_facts(tmp_path / "b")
    assert got["records"] == 100 and got["ok"] and "2 rows" in got["note"]
