"""The synthetic data root of the full-size rehearsal (:mod:`ecgrepro.rehearsal`, issue #27).

:func:`synthetic_root` writes a data root with the full datasets' layout, its counts scaled by
a fraction: the real label files restricted to the chosen records (:func:`choose_records`),
each record written by :func:`wfdb.wrsamp` as the releases write them (12 leads, format 16,
1000 adu/mV), its signal one of the sample's own records, so beats and QRS detection behave
(its labels do not describe it: nothing learnt on it means anything).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

#: Least PTB-XL records per ``strat_fold`` and CPSC records in all, so every split keeps some.
MIN_PER_FOLD, MIN_CPSC = 4, 20
#: Share of CPSC records cut to 6-10 s (the sample's recordings last 10-60 s; CPSC's 6-60 s).
SHORT_SHARE, SHORT_S = 0.05, (6.0, 10.0)
#: CPSC 2018's sampling frequency, Hz.
CPSC_FS = 500


def _systematic(order: np.ndarray, k: int) -> np.ndarray:
    """``k`` evenly spaced entries of ``order`` (all when ``k >= len(order)``)."""
    return order if k >= len(order) else order[((np.arange(k) + 0.5) * len(order) / k).astype(int)]


def choose_records(fraction: float, source: Path, seed: int = 0) -> tuple[list[int], list[str]]:
    """The records of a synthetic root: PTB-XL ``ecg_id`` s and CPSC recording names.

    Parameters
    ----------
    fraction : float
        In (0, 1]; 1.0: every record the label files of ``source`` list.
    source : pathlib.Path
        A data root holding the real ``ptbxl_database.csv`` and ``REFERENCE.csv``.
    seed : int
        Orders the records within a stratum.

    Returns
    -------
    ptbxl : list of int
        ``max(MIN_PER_FOLD, round(fraction * n))`` of each ``strat_fold``'s n records, evenly
        spaced over them sorted by first CPSC class (published mapping; "none" if dropped).
    cpsc : list of str
        ``max(MIN_CPSC, round(fraction * n))`` of the n recordings, evenly spaced over them
        sorted by first label.

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1].
    """
    from ecgrepro.data import cpsc, ptbxl

    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    meta, _ = ptbxl.load_metadata(source)
    first = meta.classes.map(lambda c: c[0] if c else "none")
    ids: list[int] = []
    for _, fold in meta.groupby("strat_fold"):
        key = first[fold.index].to_numpy(dtype=str)
        order = fold.index.to_numpy()[np.lexsort((rng.random(len(fold)), key))]
        ids += _systematic(order, max(MIN_PER_FOLD, round(fraction * len(fold)))).tolist()
    labels, _ = cpsc.load_reference(source)
    names = labels.index.to_numpy()
    key = labels.classes.map(lambda c: c[0]).to_numpy(dtype=str)
    order = names[np.lexsort((rng.random(len(names)), key))]
    chosen = set(_systematic(order, max(MIN_CPSC, round(fraction * len(names)))))
    return sorted(ids), [n for n in names if n in chosen]


def _read(path: str, memo: dict) -> tuple[np.ndarray, list[str], list[str]]:
    """A sample record as stored (int16 at 1000 adu/mV), its lead names and comments, read once."""
    import wfdb

    if path not in memo:
        rec = wfdb.rdrecord(path, physical=False, return_res=16)
        d = rec.d_signal
        if list(rec.adc_gain) != [1000.0] * 12 or any(rec.baseline):
            d = np.round(rec.dac() * 1000).astype(np.int16)  # the releases' 1000 adu/mV
        memo[path] = (d, list(rec.sig_name), list(rec.comments))
    return memo[path]


def _write(folder: Path, name: str, fs: int, d: np.ndarray, names, comments=()) -> None:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=list(names), d_signal=d,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                comments=list(comments), write_dir=str(folder))


def synthetic_root(out: Path, fraction: float, source: Path | None = None, seed: int = 0) -> dict:
    """Write a data root with the full datasets' layout, its record counts scaled by ``fraction``.

    Parameters
    ----------
    out : pathlib.Path
        The root to write (``ptb-xl/``, ``cpsc2018/``, ``README.md``); absent or empty.
    fraction : float
        In (0, 1] (:func:`choose_records`); 1.0: 21,799 PTB-XL and 6,877 CPSC records.
    source : pathlib.Path, optional
        The sample (:func:`ecgrepro.config.find_data_root`): its label files and the records
        recycled.
    seed : int
        Which records (:func:`choose_records`) and which CPSC records are cut short.

    Returns
    -------
    dict
        ``ptbxl`` and ``cpsc``: records written; ``ptbxl_recycled``, ``cpsc_recycled``: of
        them, those whose signal is another record's; ``root``: ``out``.

    Raises
    ------
    FileExistsError
        If ``out`` holds anything.
    ValueError
        If ``fraction`` is not in (0, 1].

    Notes
    -----
    PTB-XL: each ``ecg_id`` at ``filename_lr`` and ``filename_hr``, its signal the sample's
    record of that id and frequency, else the one at ``ecg_id mod n`` of the n there. CPSC:
    CinC 2020's layout (``cpsc2018/g1/A0001.hea``, 1,000 a folder) as ``.hea``/``.dat``,
    ``#Dx:`` from ``REFERENCE.csv``, the signal one of the sample's Challenge-form records
    (10-60 s), a seeded :data:`SHORT_SHARE` of them cut to 6-10 s.
    """
    from ecgrepro.config import find_data_root
    from ecgrepro.data import cpsc, ptbxl
    from ecgrepro.data.labels import DX_TO_CLASS

    out, source = Path(out), find_data_root(source)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; the rehearsal writes a new data root")
    ids, names = choose_records(fraction, source, seed)
    sources: dict = {}
    ptbxl.ptbxl_dir(out).mkdir(parents=True, exist_ok=True)
    src_dir, out_dir = ptbxl.ptbxl_dir(source), ptbxl.ptbxl_dir(out)
    raw = pd.read_csv(src_dir / "ptbxl_database.csv", dtype=str, keep_default_na=False)
    raw[raw.ecg_id.astype(int).isin(ids)].to_csv(out_dir / "ptbxl_database.csv", index=False)
    meta = raw.set_index(raw.ecg_id.astype(int))  # the file names, as the loaders read them
    shutil.copyfile(src_dir / "scp_statements.csv", out_dir / "scp_statements.csv")
    recycled = {"ptbxl": 0, "cpsc": 0}
    for fs, col in ptbxl.FILENAME_COLUMN.items():
        pool = meta.index[ptbxl.present(source, meta, fs)].to_numpy()
        held = set(pool.tolist())
        for e in ids:
            src = e if e in held else int(pool[e % len(pool)])
            recycled["ptbxl"] += src != e and fs == 100
            d, leads, _ = _read(str(ptbxl.record_path(source, meta, src, fs)), sources)
            target = out_dir / meta.at[e, col]
            _write(target.parent, target.name, fs, d, leads)
    labels, _ = cpsc.load_reference(source)
    index = cpsc.index_records(source)
    pool = index[(index.form == "wfdb") & index.path.map(lambda p: Path(p + ".mat").is_file())]
    pool = pool.drop_duplicates("record").set_index("record").path
    dx = {c: abbr for abbr, c in DX_TO_CLASS.items() if not abbr.isdigit()}
    rng = np.random.default_rng(seed)
    short = rng.random(len(names)) < SHORT_SHARE
    short_s = rng.uniform(*SHORT_S, len(names))
    ref = (cpsc.cpsc_dir(source) / "REFERENCE.csv").read_bytes().decode().splitlines(True)
    cpsc.cpsc_dir(out).mkdir(parents=True, exist_ok=True)
    keep = set(names)
    rows = [line for line in ref[1:] if line.split(",")[0].strip() in keep]
    (cpsc.cpsc_dir(out) / "REFERENCE.csv").write_text(ref[0] + "".join(rows), newline="")
    for i, name in enumerate(names):
        number = int(name.lstrip("A"))
        src = name if name in pool.index else pool.index[number % len(pool)]
        recycled["cpsc"] += src != name
        d, leads, comments = _read(pool[src], sources)
        n = min(len(d), round(short_s[i] * CPSC_FS)) if short[i] else len(d)
        kept = [c for c in comments if c.split(":")[0].strip() in ("Age", "Sex")]
        codes = ",".join(dx[c] for c in labels.at[name, "classes"])
        extra = [f"Dx: {codes}", "Rx: Unknown", "Hx: Unknown", "Sx: Unknown"]
        folder = cpsc.cpsc_dir(out) / f"g{(number - 1) // 1000 + 1}"
        _write(folder, name, CPSC_FS, d[:n], leads, kept + extra)
    (out / "README.md").write_text(f"# Synthetic data root of the ecgrepro rehearsal (fraction "
                                   f"{fraction:g}, seed {seed}), from {source}\n")
    return {"ptbxl": len(ids), "cpsc": len(names), "ptbxl_recycled": recycled["ptbxl"],
            "cpsc_recycled": recycled["cpsc"], "root": str(out)}
