"""Broken inputs (issue #23): every bad record, label file, cache and artifact is named, and
nothing wrong is used.

One test per class of breakage: headers that disagree with their data or their dataset, label
files with bad rows or in another format, caches that were truncated or edited, two processes
filling one cache, a stored model that is truncated or a crafted pickle. Each asserts that the
message names the record, file or entry. (Bad parameters: ``test_parameters.py``; hostile
download lists: ``test_download.py``.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch

from ecgrepro.artifacts import ArtifactError, _load_artifact
from ecgrepro.data import RecordError, cpsc, load_cpsc, load_ptbxl, ptbxl
from ecgrepro.data.errors import CorruptCacheWarning, LabelFileError
from ecgrepro.data.records import read_cpsc_original
from ecgrepro.explain.store import cached
from ecgrepro.pipeline import build_model, get_model
from ecgrepro.train import Samples

# mini_root lacks almost every listed record: the warning is tested in test_data_loaders.py
pytestmark = pytest.mark.filterwarnings("ignore::ecgrepro.data.MissingRecordsWarning")


def ptb_path(root: Path, i: int) -> Path:
    return root / "ptb-xl" / "records100" / "00000" / f"{i:05d}_lr"


def edit(path: Path, old: str, new: str, count: int = -1) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, count))


# --- headers that disagree with their data or their dataset --------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # fs: the data's 1,000 samples are 10 s at 100 Hz; the header claims 500 Hz
        (
            "00001_lr 12 100 1000",
            "00001_lr 12 500 1000",
            r"header says 500 Hz, but PTB-XL records100/ records are 100 Hz",
        ),
        # length: the header promises twice the samples the .dat holds
        (
            "00001_lr 12 100 1000",
            "00001_lr 12 100 2000",
            r"truncated signal: header says 2,000 samples \(20 s at 100 Hz\), but .*00001_lr\.dat "
            r"holds 1,000",
        ),
        # fewer samples than the data: would silently drop the record's end
        (
            "00001_lr 12 100 1000",
            "00001_lr 12 100 500",
            r"header says 500 samples .* holds 1,000 samples per lead",
        ),
        # gain: 200 adu/mV where the data is stored at 1000, amplitudes 5x
        (
            "1000.0(0)/mV 16 0 -119",
            "200.0(0)/mV 16 0 -119",
            r"header gives lead I a gain of 200 adu/mV .* 1000 adu/mV, "
            r"so its amplitudes would be 5x",
        ),
        # units
        ("(0)/mV", "(0)/uV", r"header gives units \['uV'\]; PTB-XL records100/ records are in mV"),
    ],
    ids=["fs", "longer", "shorter", "gain", "units"],
)
def test_a_ptbxl_header_that_disagrees_is_named_and_skipped(mini_root, tmp_path, old, new, message):
    edit(ptb_path(mini_root, 1).with_suffix(".hea"), old, new)
    with pytest.raises(RecordError, match=r"record ptbxl:1: " + message):
        ptbxl.read_record(mini_root, ptbxl.load_metadata(mini_root)[0], 1, 100)
    ds = load_ptbxl(mini_root, 100, 1000, cache_dir=tmp_path / "cache")
    assert list(ds.records.record) == ["2", "3"]  # the record is skipped, the batch goes on
    (record, problem), *_ = ds.skipped.skipped
    assert record == "ptbxl:1" and re.search(message, problem)
    assert ds.inventory["signal_errors"] == 1


def cpsc_wfdb(root: Path, name: str = "A0001") -> Path:
    return root / "cpsc2018" / "wfdb" / name


def test_a_wfdb_mat_with_a_renamed_variable_is_named(mini_root):
    mat = cpsc_wfdb(mini_root).with_suffix(".mat")
    data = bytearray(mat.read_bytes())
    assert data[20:24] == b"val\0"
    data[20:24] = b"vxl\0"  # same length: wfdb alone would read the samples unchanged
    mat.write_bytes(bytes(data))
    with pytest.raises(RecordError, match=r"record A0001: .*A0001\.mat holds the variable 'vxl'"):
        cpsc.read_record("A0001", "wfdb", cpsc_wfdb(mini_root))


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("4", r"stores 'val' as float64; the header's format 16 means int16"),
        ("5", r"is not a MATLAB v4 file"),
    ],
    ids=["v4-double", "v5"],
)
def test_a_wfdb_mat_saved_again_in_another_type_is_named(mini_root, fmt, message):
    mat = cpsc_wfdb(mini_root).with_suffix(".mat")
    val = scipy.io.loadmat(str(mat))["val"].astype(np.float64)
    scipy.io.savemat(str(mat), {"val": val}, format=fmt)
    with pytest.raises(RecordError, match=r"record A0001: .*" + message):
        cpsc.read_record("A0001", "wfdb", cpsc_wfdb(mini_root))


def test_a_cpsc_header_at_another_fs_is_named(mini_root):
    hea = cpsc_wfdb(mini_root).with_suffix(".hea")
    first = hea.read_text().splitlines()[0]  # "A0001 12 500 7500 ..."
    edit(hea, first, first.replace(" 500 ", " 1000 ", 1))
    with pytest.raises(RecordError, match=r"record A0001: header says 1000 Hz, but CPSC 2018"):
        cpsc.read_record("A0001", "wfdb", cpsc_wfdb(mini_root))


def original_with(root: Path, data) -> Path:
    src = root / "cpsc2018" / "original" / "A1980.mat"
    mat = scipy.io.loadmat(str(src))
    mat["ECG"]["data"][0, 0] = data(mat["ECG"]["data"][0, 0])
    scipy.io.savemat(str(src), {"ECG": mat["ECG"]})
    return src


@pytest.mark.parametrize(
    ("cut", "message"),
    [(300, r"only 300 samples \(0\.6 s at 500 Hz\)"), (1, r"only 1 samples \(0\.002 s")],
)
def test_a_record_too_short_to_fill_the_window_is_named(mini_root, tmp_path, cut, message):
    original_with(mini_root, lambda d: d[:, :cut])
    with pytest.raises(RecordError, match=r"record A1980: " + message + r".* shorter than 5 s"):
        read_cpsc_original(mini_root / "cpsc2018" / "original" / "A1980.mat")
    ds = load_cpsc(mini_root, 100, 1000, cache_dir=tmp_path / "cache")
    assert "A1980" not in set(ds.records.record)
    assert "shorter than 5 s" in dict(ds.skipped.skipped)["A1980"]


def test_an_original_record_saved_again_as_integers_is_named(mini_root):
    path = original_with(mini_root, lambda d: np.round(d * 1000).astype(np.int16))
    with pytest.raises(RecordError, match=r"record A1980: .*ECG.data is stored as int16"):
        read_cpsc_original(path)


# --- label files ---------------------------------------------------------------------------


def ptb_database(root: Path) -> Path:
    return root / "ptb-xl" / "ptbxl_database.csv"


def test_bad_rows_of_ptbxl_database_are_skipped_and_named(mini_root, tmp_path):
    path = ptb_database(mini_root)
    meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    meta.loc[meta.ecg_id == "1", "scp_codes"] = "{'NORM': 'high'}"
    meta.loc[meta.ecg_id == "4", "strat_fold"] = "11"
    meta.loc[meta.ecg_id == "5", "strat_fold"] = ""
    meta = pd.concat([meta, meta[meta.ecg_id == "3"]])  # ecg_id 3 listed twice
    meta.to_csv(path, index=False)
    table, report = ptbxl.load_metadata(mini_root)
    problems = dict(report.skipped)
    assert problems["1"] == (
        "ptbxl_database.csv line 2, column scp_codes: scp_codes gives 'NORM' the likelihood "
        "'high', not a number (%)"
    )
    assert problems["4"] == "ptbxl_database.csv line 5, column strat_fold: 11 is not a fold 1-10"
    assert problems["5"] == (
        "ptbxl_database.csv line 6, column strat_fold: (empty) is not a fold 1-10"
    )
    assert problems["3"].startswith("ptbxl_database.csv column ecg_id: 3 is listed 2 times")
    assert "none of them is used" in problems["3"]
    assert not {1, 3, 4, 5} & set(table.index) and 2 in table.index
    assert len(table) == 21_799 - 4
    ds = load_ptbxl(mini_root, 100, 1000, cache_dir=tmp_path / "cache")
    assert list(ds.records.record) == ["2"]  # 1 and 3 are named in the skip report
    assert {"1", "3"} <= {r for r, _ in ds.skipped.skipped}


@pytest.mark.parametrize("column", ["strat_fold", "scp_codes", "filename_hr"])
def test_ptbxl_database_without_a_column_stops_with_one_line(mini_root, column):
    path = ptb_database(mini_root)
    pd.read_csv(path).drop(columns=column).to_csv(path, index=False)
    with pytest.raises(LabelFileError) as err:
        ptbxl.load_metadata(mini_root)
    assert str(err.value).startswith(f"{path}: no column {column};")
    assert "\n" not in str(err.value)


def reference(root: Path) -> Path:
    return root / "cpsc2018" / "REFERENCE.csv"


def test_a_recording_listed_twice_in_reference_is_skipped_and_named(mini_root, tmp_path):
    ref = reference(mini_root)
    ref.write_bytes(ref.read_bytes() + b"A0002,2,,\r\n")
    labels, report = cpsc.load_reference(mini_root)
    assert "A0002" not in labels.index and len(labels) == 6_876
    (record, problem), *_ = report.skipped
    assert record == "A0002"
    assert problem == (
        "REFERENCE.csv column Recording: A0002 is listed 2 times (lines 3, 6879); "
        "none of them is used"
    )
    ds = load_cpsc(mini_root, 100, 1000, cache_dir=tmp_path / "cache")
    assert list(ds.records.record) == ["A0001", "A0003", "A1980"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda text: text.split("\n", 1)[1],  # the header line removed
            r"its first line 'A0001,5,,' is a record, not the header line; CPSC 2018's "
            r"REFERENCE.csv starts with 'Recording,First_label,Second_label,Third_label'",
        ),
        (
            lambda text: text.replace(",", ";"),
            r"its columns are separated by ';'; REFERENCE.csv is comma-separated",
        ),
        (lambda text: "", r"cannot be read as CSV"),
    ],
    ids=["no-header", "semicolons", "empty"],
)
def test_a_reference_file_in_another_format_stops_with_one_line(mini_root, change, message):
    ref = reference(mini_root)
    ref.write_bytes(change(ref.read_bytes().decode()).encode())
    with pytest.raises(LabelFileError, match=r"^" + str(ref) + ": " + message) as err:
        cpsc.load_reference(mini_root)
    assert "\n" not in str(err.value)


def test_an_unknown_code_names_the_line_and_column(mini_root):
    ref = reference(mini_root)
    ref.write_text(ref.read_text().replace("A0003,2,,", "A0003,2,12,"))
    _, report = cpsc.load_reference(mini_root)
    assert dict(report.skipped)["A0003"] == (
        "REFERENCE.csv line 4, column Second_label: unknown label code(s) ['12'] (codes 1-9)"
    )


# --- caches --------------------------------------------------------------------------------


def cache_folders(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_a_truncated_signal_cache_is_moved_aside_and_rebuilt(mini_root, tmp_path):
    cache = tmp_path / "cache"
    a = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    expected = np.array(a.signals)
    (folder,) = cache_folders(cache)
    data = folder / "signals.f32"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.warns(CorruptCacheWarning, match=r"signals.f32 holds 72,000 bytes; 3 records"):
        b = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    np.testing.assert_array_equal(b.signals, expected)
    names = [p.name for p in cache_folders(cache)]
    assert names[0] == folder.name and names[1].startswith(folder.name + ".corrupt-")
    load_ptbxl(mini_root, 100, 1000, cache_dir=cache)  # healed: no warning (filterwarnings)


def test_an_edited_records_list_is_caught(mini_root, tmp_path):
    cache = tmp_path / "cache"
    load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    (folder,) = cache_folders(cache)
    meta = json.loads((folder / "records.json").read_text())
    meta["records"], meta["n_valid"] = meta["records"][:2], meta["n_valid"][:2]
    (folder / "records.json").write_text(json.dumps(meta))
    with pytest.warns(CorruptCacheWarning, match=r"records.json was changed after it was written"):
        ds = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    assert list(ds.records.record) == ["1", "2", "3"]  # not trained on fewer records


def test_the_same_data_elsewhere_reuses_the_cache(mini_root, tmp_path):
    cache = tmp_path / "cache"
    a = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    moved = tmp_path / "elsewhere" / "root"
    shutil.copytree(mini_root / "ptb-xl", moved / "ptb-xl")  # new paths, inodes, mtimes
    b = load_ptbxl(moved, 100, 1000, cache_dir=cache)
    assert b.cache_key == a.cache_key and b.data_key == a.data_key
    assert len(cache_folders(cache)) == 1  # no second cache, so no retraining either


def test_a_replacement_with_the_same_size_and_mtime_is_seen(mini_root, tmp_path):
    cache = tmp_path / "cache"
    a = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    dat2, dat3 = (ptb_path(mini_root, i).with_suffix(".dat") for i in (2, 3))
    st = dat3.stat()
    os.chmod(dat3, 0o644)
    with open(dat3, "r+b") as fh:  # in place: same inode, same size
        fh.write(dat2.read_bytes())
    os.utime(dat3, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old modification time back
    assert (dat3.stat().st_size, dat3.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    b = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    assert b.cache_key != a.cache_key
    np.testing.assert_array_equal(b.signals[2], a.signals[1])


FILL = textwrap.dedent(
    """
    import sys, numpy as np
    from pathlib import Path
    from ecgrepro.data import load_ptbxl
    ds = load_ptbxl(Path(sys.argv[1]), 100, 1000, cache_dir=Path(sys.argv[2]))
    np.save(sys.argv[3], np.asarray(ds.signals))
    print(len(ds.records))
    """
)


def test_two_processes_filling_one_cache_give_one_correct_copy(tmp_path, data_root):
    root = tmp_path / "root"
    src = data_root / "ptb-xl"
    (root / "ptb-xl" / "records100").mkdir(parents=True)
    shutil.copy(src / "ptbxl_database.csv", root / "ptb-xl")
    shutil.copytree(src / "records100" / "00000", root / "ptb-xl" / "records100" / "00000")
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FILL, str(root), str(cache), str(tmp_path / f"out{k}.npy")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (0, 1)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    assert outs[0][0] == outs[1][0] and int(outs[0][0]) > 900
    a, b = (np.load(tmp_path / f"out{k}.npy") for k in (0, 1))
    np.testing.assert_array_equal(a, b)
    assert (np.abs(a).reshape(len(a), -1).max(axis=1) > 0).all()  # no all-zero record
    (folder,) = cache_folders(cache)
    assert sorted(p.name for p in folder.iterdir()) == ["records.json", "signals.f32"]


# --- stored models and explanations --------------------------------------------------------


def copy_artifact(trained, tmp_path) -> Path:
    folder = tmp_path / "artifacts" / trained.folder.name
    shutil.copytree(trained.folder, folder)
    return folder


def fresh_model(m):
    ds_fs, n = 100, 1000
    return build_model(m.spec.arch, ds_fs, n, 9)


def test_a_stored_model_is_checked_before_use(trained, tmp_path):
    m, _ = trained
    assert sorted(m.meta["files"]) == ["log.csv", "model.pt"]
    folder = copy_artifact(m, tmp_path)
    reloaded = _load_artifact(m.spec, fresh_model(m), m.key, folder, "cpu", None)
    for k, v in m.model.state_dict().items():
        torch.testing.assert_close(reloaded.model.state_dict()[k], v, rtol=0, atol=0)
    model_pt = folder / "model.pt"
    size = model_pt.stat().st_size
    model_pt.write_bytes(model_pt.read_bytes()[: size // 2])
    with pytest.raises(ArtifactError, match=rf"model.pt holds {size // 2:,} bytes; meta.json says"):
        _load_artifact(m.spec, fresh_model(m), m.key, folder, "cpu", None)
    (folder / "meta.json").write_text((folder / "meta.json").read_text()[:40])
    with pytest.raises(ArtifactError, match=r"meta.json cannot be read \(JSONDecodeError"):
        _load_artifact(m.spec, fresh_model(m), m.key, folder, "cpu", None)


class Payload:
    """A pickle that creates a folder when unpickled with pickle's full powers."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_crafted_model_file_runs_nothing(trained, tmp_path, monkeypatch):
    m, _ = trained
    folder = copy_artifact(m, tmp_path)
    marker = tmp_path / "payload-ran"
    torch.save({"conv1.weight": Payload(marker)}, folder / "model.pt")
    meta = json.loads((folder / "meta.json").read_text())  # the sums made to match
    from ecgrepro.data.signals import file_sha256

    meta["files"]["model.pt"] = {
        "bytes": (folder / "model.pt").stat().st_size,
        "sha256": file_sha256(folder / "model.pt"),
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ArtifactError, match=r"model.pt or log.csv cannot be read safely"):
        _load_artifact(m.spec, fresh_model(m), m.key, folder, "cpu", None)
    assert not marker.exists()


def test_a_corrupt_artifact_is_moved_aside_and_retrained(trained, tmp_path):
    m, datasets = trained
    folder = copy_artifact(m, tmp_path)
    (folder / "log.csv").write_text("epoch\n")
    with pytest.warns(CorruptCacheWarning, match=r"log.csv holds 6 bytes; meta.json says"):
        again = get_model(m.spec, datasets, folder.parent, "cpu", log=None)
    assert not again.reused and again.folder == folder
    assert any(p.name.startswith(folder.name + ".corrupt-") for p in folder.parent.iterdir())
    for k, v in m.model.state_dict().items():  # the same training, the same weights
        torch.testing.assert_close(again.model.state_dict()[k], v, rtol=0, atol=0)


def test_truncated_scores_are_scored_anew(trained, tmp_path):
    shared, datasets = trained
    folder = copy_artifact(shared, tmp_path)  # the session's artifact stays as it was
    m = get_model(shared.spec, datasets, folder.parent, "cpu", log=None)
    assert m.reused and m.folder == folder
    samples = Samples.from_dataset(datasets["cpsc"], "val", augment=False)
    first = m.scores("cpsc-val-test", samples, "k")
    path = m.folder / "scores-cpsc-val-test-k.npy"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(CorruptCacheWarning, match=r"scores-cpsc-val-test-k.npy: cannot be read"):
        again = m.scores("cpsc-val-test", samples, "k")
    np.testing.assert_array_equal(again, first)


def test_a_truncated_explanation_is_computed_anew(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"map": np.arange(1000, dtype=np.float32)}

    first = cached(tmp_path, "cam", {"k": 1}, compute)
    (path,) = tmp_path.glob("cam-*.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(CorruptCacheWarning, match=r"cam-[0-9a-f]{16}\.npz: cannot be read"):
        again = cached(tmp_path, "cam", {"k": 1}, compute)
    np.testing.assert_array_equal(again["map"], first["map"])
    assert len(calls) == 2
    assert cached(tmp_path, "cam", {"k": 1}, compute)["map"].shape == (1000,) and len(calls) == 2


def test_an_interrupted_cache_build_is_rebuilt_quietly(mini_root, tmp_path, recwarn):
    cache = tmp_path / "cache"
    a = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    (folder,) = cache_folders(cache)
    (folder / "records.json").unlink()  # as a build killed before its last rename leaves it
    (folder / ".signals.f32.x.tmp").write_bytes(b"half")
    b = load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    np.testing.assert_array_equal(b.signals, a.signals)
    assert not [w for w in recwarn if issubclass(w.category, CorruptCacheWarning)]
    assert [p.name for p in cache_folders(cache)] == [folder.name]  # nothing moved aside
    assert sorted(p.name for p in folder.iterdir()) == ["records.json", "signals.f32"]


def test_a_copied_cache_is_verified_once_and_readable_by_others(mini_root, tmp_path):
    cache = tmp_path / "cache"
    load_ptbxl(mini_root, 100, 1000, cache_dir=cache)
    (folder,) = cache_folders(cache)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("signals.f32", "records.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~umask
    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)  # new inodes and ctimes: the stamps differ
    stamp = json.loads((copy / folder.name / "records.json").read_text())["stamp"]
    load_ptbxl(mini_root, 100, 1000, cache_dir=copy)  # hashed once, found intact
    meta = json.loads((copy / folder.name / "records.json").read_text())
    assert meta["stamp"] != stamp  # the new stamp remembered: the next load does not hash
    assert meta["stamp"][3] == (copy / folder.name / "signals.f32").stat().st_ino


def test_an_artifact_whose_metadata_lacks_a_field_or_names_another_key(trained, tmp_path):
    m, _ = trained
    folder = copy_artifact(m, tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "created"}))
    with pytest.raises(ArtifactError, match=r"meta.json lacks created"):
        _load_artifact(m.spec, fresh_model(m), m.key, folder, "cpu", None)
    (folder / "meta.json").write_text(json.dumps({**meta, "key": "0" * 16}))
    with pytest.raises(ArtifactError, match=r"meta.json names key '0{16}'; the folder is orig"):
        _load_artifact(m.spec, fresh_model(m), m.key, folder, "cpu", None)
