"""`ecgrepro train --plan` (#27, item 1): the plan's trainings as local jobs or a Slurm array."""

from __future__ import annotations

import pandas as pd
import pytest

from ecgrepro import schedule
from ecgrepro.pipeline import setup
from ecgrepro.plan import training_plan

QUICK = {"epochs": 1, "n_seeds": 2, "device": "cpu"}
TABLE2 = ["table2_generalisation"]


def row(model, k, parent="", stored=False):
    return {
        "model": model,
        "replicate": k,
        "label_mapping": "published",
        "artifact": f"{model}-{k}",
        "parent": parent,
        "stored": stored,
        "pages": "table3_retraining",
    }


def test_a_missing_parent_and_its_child_are_one_job_and_a_stored_parent_none():
    table = pd.DataFrame(
        [
            row("original", 0),
            row("original", 1, stored=True),
            row("ours1", 0, parent="original-0"),
            row("ours1", 1, parent="original-1"),
            row("ours2", 0),
        ]
    )
    jobs = schedule.plan_jobs(table)
    assert [[r["artifact"] for r in job] for job in jobs] == [
        ["original-0", "ours1-0"],
        ["ours1-1"],
        ["ours2-0"],
    ]
    assert schedule.describe(jobs[0]) == "ours1 #0 <- original #0 (published)"


def test_two_local_jobs_run_side_by_side_and_the_book_then_trains_nothing(
    build_with_sample_cache, data_root
):
    build = str(build_with_sample_cache)
    report = schedule.run_plan(
        "quick", str(data_root), build, QUICK, TABLE2, executor="local", jobs=2, log=None
    )
    assert report.failed == [] and report.already == 0
    plan = training_plan("quick", str(data_root), build, QUICK, TABLE2)
    assert sorted(report.trained) == sorted(plan.artifact) and plan.stored.all()
    (a, a0, a1), (b, b0, b1) = report.spans
    assert a0 < b1 and b0 < a1, report.spans  # both were running at one time
    # a page with the same parameters reuses them: nothing trained
    pipe = setup(str(data_root), build, 100, 10, 0, "cpu", "published", epochs=1)
    assert all(pipe.model("original", k, log=None).reused for k in (0, 1))
    again = schedule.run_plan("quick", str(data_root), build, QUICK, TABLE2, log=None)
    assert again.trained == [] and again.already == 2


def test_a_failed_job_is_reported_and_the_others_still_run(
    build_with_sample_cache, data_root, monkeypatch
):
    def train_chain(profile, rows, *args, **kwargs):
        if rows[0]["replicate"] == 0:
            raise RuntimeError("out of memory on the device (a stand-in)")
        return [r["artifact"] for r in rows]

    monkeypatch.setattr(schedule, "train_chain", train_chain)
    report = schedule.run_plan(
        "quick", str(data_root), str(build_with_sample_cache), QUICK, TABLE2, "inline", log=None
    )
    assert len(report.trained) == 1 and report.trained[0].startswith("original-")
    ((what, why),) = report.failed
    assert what == "original #0 (published)" and "out of memory on the device" in why


def test_on_slurm_the_plan_is_one_job_array(build_with_sample_cache, data_root):
    """Checked on submitit's own mocked Slurm (no cluster): one sbatch, one task per job."""
    pytest.importorskip("submitit")
    from submitit.slurm.test_slurm import mocked_slurm

    build = build_with_sample_cache
    quick = {**QUICK, "n_seeds": 3}
    quick.pop("device")  # a Slurm job trains on its node's GPU: the plan's keys are for CUDA
    with mocked_slurm():
        report = schedule.run_plan(
            "quick",
            str(data_root),
            str(build),
            quick,
            TABLE2,
            executor="slurm",
            jobs=2,
            slurm={"partition": "gpu", "timeout_min": 90},
            wait=False,
            log=None,
        )
    ids = [job.job_id for job in report.submitted]
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{i}" for i in range(3)]
    text = report.submitted[0].paths.submission_file.read_text()  # one file per array
    for line in (
        "#SBATCH --array=0-2%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --time=90",
    ):
        assert line in text, (line, text)


def test_a_job_whose_key_is_not_the_plans_stops_before_training(build_with_sample_cache, data_root):
    """Planned for a GPU (a Slurm plan made on a login node), run on this CPU: refused at once."""
    build = str(build_with_sample_cache)
    cuda = training_plan("quick", str(data_root), build, QUICK, TABLE2, device="cuda")
    cpu = training_plan("quick", str(data_root), build, QUICK, TABLE2)
    assert not set(cuda.key) & set(cpu.key)  # the device is part of the key
    (rows,) = schedule.plan_jobs(cuda.iloc[:1])
    with pytest.raises(RuntimeError, match=r"this job's key is \w+ \(device cpu\), the plan's"):
        schedule.train_chain("quick", rows, str(data_root), build, QUICK)
    assert not (build_with_sample_cache / "artifacts").exists() or not any(
        p.name.startswith("original-") for p in (build_with_sample_cache / "artifacts").iterdir()
    )
    with pytest.raises(ValueError, match="jobs must be >= 0"):
        schedule.run_plan("quick", str(data_root), build, QUICK, TABLE2, jobs=-1, log=None)


def test_a_job_trains_under_the_label_mapping_its_plan_row_names(
    build_with_sample_cache, data_root
):
    """The labels page declares no label_mapping: its rhythm-aware rows still train under it."""
    build, one = str(build_with_sample_cache), {**QUICK, "epochs_ours": 1}
    plan = training_plan("quick", str(data_root), build, one, ["labels_and_the_gap"])
    row = plan[(plan.model == "ptbxl_only") & (plan.label_mapping == "rhythm-aware")]
    (rows,) = schedule.plan_jobs(row)
    trained = schedule.train_chain("quick", rows, str(data_root), build, one)
    assert trained == [row.artifact.item()]
