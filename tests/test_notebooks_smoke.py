"""Every page of the book runs end to end through papermill on tiny parameters.

Marked ``notebooks`` (part of ``make test``; deselect with ``-m "not notebooks"``). The pages
run in the book's order into one temporary build folder, so later pages reuse the models the
earlier ones trained, as in ``make book``; nothing is written into the repository's ``_build``.
The data root is a slice of the real sample (links, not copies): every CPSC record and the first
:data:`N_PTBXL` PTB-XL records at 100 Hz, with the complete metadata, so that a smoke run of all
pages costs minutes, not the book's hour.
"""

from __future__ import annotations

import time

import pytest

from ecgrepro.cli import build_html, stage_book, toc_notebooks
from ecgrepro.config import REPO_ROOT

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

#: Small enough for a few minutes on 2 cores, large enough to reach every code path
#: (two training seeds exercise the pooled intervals).
TINY = {
    "fs_hz": 100,
    "window_s": 3,
    "epochs": 1,
    "epochs_ours": 1,
    "n_seeds": 2,
    "n_seeds_ours": 2,
    "n_boot": 20,
    "n_background": 6,
    "n_explained": 6,
    "nsamples": 4,
    "n_per_class": 1,
    "exact_per_panel": 1,
    "n_steps": 2,
    "n_per_group": 1,
    "n_iter": 3,
    "lstm_epochs": 1,
    "ks": [2, 3],
    "k_seeds": 2,
    "max_fit_steps": 500,
    "n_wave_records": 6,
    "n_estimators": 10,
    "n_records": 2,
    "n_curve_steps": 2,
    "n_random_records": 2,
    "randomise_exact12": False,
    "planted_records": 0,
    "planted_epochs": 1,
    "n_planted_explain": 1,
    "exact12_records": 1,
    "device": "cpu",
}

#: Files each page must (re)write.
WRITES = {
    "table1_dataset": ("table1.csv",),
    "table2_generalisation": ("table2.csv", "table2_threshold_flags.csv"),
    "table3_retraining": ("table3.csv", "table3_threshold_flags.csv"),
    "labels_and_the_gap": ("label_audit.csv", "table2_labels.csv", "table3_rhythm_aware.csv"),
    "fig2-5_shap_per_lead": ("shap_per_lead.csv",),
    "fig6-8_gradcam": ("gradcam_cases.csv",),
    "companion_a_relevance": (
        "relevance_classes.csv",
        "relevance_leads.csv",
        "relevance_beats.csv",
        "companion_a_classes.png",
    ),
    "companion_b_deletion_mask": ("deletion_mask_cases.csv", "companion_b_lstm.png"),
    "companion_c_clusters": (
        "clusters_waves.csv",
        "surrogate_forest.csv",
        "companion_c_k_sweep.png",
    ),
    "faithfulness": (
        "faithfulness.csv",
        "faithfulness_ranks.csv",
        "faithfulness_curves.png",
        "faithfulness_randomisation.png",
        "faithfulness_planted.png",
    ),
}

#: PTB-XL records (ecg_id 1..N_PTBXL) in the smoke data root; folds 1-10 all occur among them.
N_PTBXL = 150

PAGES = [name.split("/")[-1] for name in toc_notebooks(REPO_ROOT / "_toc.yml")]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke_build")


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory, data_root):
    """A data root of links into the sample: all of CPSC 2018, PTB-XL's first records at 100 Hz."""
    root = tmp_path_factory.mktemp("smoke_data")
    (root / "cpsc2018").symlink_to(data_root / "cpsc2018", target_is_directory=True)
    ptb = root / "ptb-xl"
    ptb.mkdir()
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        (ptb / name).symlink_to(data_root / "ptb-xl" / name)
    for ecg_id in range(1, N_PTBXL + 1):
        folder = f"{ecg_id // 1000 * 1000:05d}"
        (ptb / "records100" / folder).mkdir(parents=True, exist_ok=True)
        for ext in (".hea", ".dat"):
            name = f"{ecg_id:05d}_lr{ext}"
            source = data_root / "ptb-xl" / "records100" / folder / name
            if source.exists():
                (ptb / "records100" / folder / name).symlink_to(source)
    return root


@pytest.mark.parametrize("stem", PAGES)
def test_page_runs_on_tiny_parameters(stem, build, smoke_root):
    import papermill as pm

    nb = REPO_ROOT / "notebooks" / f"{stem}.ipynb"
    declared = pm.inspect_notebook(str(nb))
    params = {k: v for k, v in TINY.items() if k in declared}
    params.update(data_root=str(smoke_root), build_dir=str(build), profile="smoke test")
    out = build / "src" / "notebooks" / f"{stem}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pm.execute_notebook(
        str(nb),
        str(out),
        parameters=params,
        cwd=str(REPO_ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    assert "smoke test" in out.read_text()  # the page names the parameters it ran with
    written = {p.name for p in build.rglob("*.*") if p.is_file() and p.stat().st_mtime >= t0 - 1}
    missing = [f for f in WRITES.get(stem, ()) if f not in written]
    assert not missing, f"{stem} did not write {missing}"


def test_the_book_builds_with_warnings_as_errors(build):
    """``jupyter-book build -W`` on the pages just executed: what fails ``make book`` after an
    hour (a broken cross-page glue, a missing figure) fails here in a minute."""
    executed = [build / "src" / "notebooks" / f"{stem}.ipynb" for stem in PAGES]
    if not all(nb.is_file() for nb in executed):
        pytest.skip("runs after every page of this module has executed")
    src = stage_book(build, mathjax=False)
    build_html(src, build)  # raises CalledProcessError on any warning
    assert (build / "_build" / "html" / "book" / "intro.html").is_file()
