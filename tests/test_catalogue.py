"""The model catalogue (#24, item 1): one place declares every model, `plan` lists them."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from ecgrepro import cli
from ecgrepro.catalogue import DERIVED, MODELS, PAGE_MODELS, TrainingSpec, model_entry
from ecgrepro.config import REPO_ROOT, load_profiles
from ecgrepro.pipeline import setup
from ecgrepro.plan import model_parameters, training_plan

ONE_EPOCH = {"epochs": 1, "device": "cpu"}


def test_every_spec_is_the_one_its_page_built_before_the_catalogue():
    """Field for field as the pages wrote them, so that every artifact keeps its key; the speed
    options (faithful values except in ``paper-fast``) reach every model."""
    for profile, pages in load_profiles().items():
        t3, b = pages["table3_retraining"], pages["companion_b_deletion_mask"]
        c, f = pages["companion_c_clusters"], pages["faithfulness"]
        common = {"batch_size": t3["batch_size"], "lr": t3["lr"], "seed": t3["seed"]}
        speed = {p: {k: pages[p][k] for k in ("amp", "compile", "deterministic")} for p in pages}
        amp = speed["table3_retraining"]
        want = {
            "original": TrainingSpec("original", ("cpsc",), epochs=t3["epochs"], **common, **amp),
            "ours1": TrainingSpec(
                "ours1", ("ptbxl",), "original", epochs=t3["epochs_ours"], **common, **amp
            ),
            "ours2": TrainingSpec(
                "ours2", ("cpsc", "ptbxl"), None, ("ptbxl",), t3["epochs_ours"], **common, **amp
            ),
            "ptbxl_only": TrainingSpec(
                "ptbxl_only", ("ptbxl",), epochs=t3["epochs_ours"], **common, **amp
            ),
            "lstm": TrainingSpec(
                f"lstm_{b['lstm_lead']}", ("cpsc", "ptbxl"), None, ("ptbxl",), b["lstm_epochs"],
                b["batch_size"], b["lstm_lr"], b["seed"], arch=f"lstm_{b['lstm_lead']}",
                **speed["companion_b_deletion_mask"],
            ),
            "resnet34_super": TrainingSpec(
                "resnet34_super", ("ptbxl_super",), None, ("ptbxl_super",), c["epochs_ours"],
                c["batch_size"], c["lr"], c["seed"], **speed["companion_c_clusters"],
            ),
            "shuffled_labels": TrainingSpec(
                name="shuffled_labels", train_on=("ptbxl_shuffled",), augment=("ptbxl_shuffled",),
                epochs=f["epochs_ours"], batch_size=f["batch_size"], lr=f["lr"], seed=f["seed"],
                **speed["faithfulness"],
            ),
            "planted": TrainingSpec(
                name="planted", train_on=("ptbxl_planted",), augment=(), epochs=f["planted_epochs"],
                batch_size=f["planted_batch"], lr=f["planted_lr"], seed=f["seed"],
                **speed["faithfulness"],
            ),
        }  # fmt: skip
        assert set(want) == set(MODELS)
        for name, entry in MODELS.items():
            assert entry.spec(pages[entry.page]) == want[name], (profile, name)


def test_every_page_and_model_is_in_the_plan_tables():
    toc = [p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb")]
    assert sorted(PAGE_MODELS) == sorted(n.removesuffix(".ipynb") for n in toc)
    used = {need.model for needs in PAGE_MODELS.values() for need in needs}
    assert used == set(MODELS)
    for entry in MODELS.values():  # the datasets each model trains on exist or are derived
        spec = entry.spec(load_profiles()["paper"][entry.page])
        assert all(d in ("cpsc", "ptbxl") or d in DERIVED for d in spec.train_on), entry.name
    with pytest.raises(KeyError, match="unknown model 'nope'; known: original, ours1"):
        model_entry("nope")
    with pytest.raises(KeyError, match=r"'lstm' needs the parameter\(s\) lstm_lead, lstm_epochs"):
        MODELS["lstm"].spec({"seed": 0, "batch_size": 32})


def test_a_page_asks_only_for_models_its_plan_entry_lists():
    """Every literal model name a notebook passes to the pipeline is planned for that page."""
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        named = set(re.findall(r"\.model\(\"(\w+)\"", code))
        named |= set(re.findall(r"\.(?:test_scores|thresholds)\(\"(\w+)\"", code))
        named |= {"lstm"} if 'lstm_name = "lstm"' in code else set()
        planned = {need.model for need in PAGE_MODELS[path.stem]}
        assert named <= planned, (path.stem, named - planned)
        assert "pipe.specs[" not in code and "get_model(" not in code, path.stem


def test_model_parameters_are_those_beyond_setup():
    assert model_parameters("original") == ()
    assert model_parameters("lstm") == ("lstm_lead", "lstm_epochs", "lstm_lr")
    assert model_parameters("planted") == (
        "planted_epochs",
        "planted_batch",
        "planted_lr",
        "planted_records",
        "planted_depth_mv",
    )


def test_plan_lists_a_pages_artifacts_and_marks_the_trained_one_stored(
    build_with_sample_cache, data_root
):
    build = str(build_with_sample_cache)
    pages = ["table2_generalisation", "table3_retraining"]
    one = {**ONE_EPOCH, "epochs_ours": 1}
    plan = training_plan("quick", str(data_root), build, one, pages)
    quick = load_profiles()["quick"]["table3_retraining"]
    n, n_ours = quick["n_seeds"], quick["n_seeds_ours"]
    assert plan.model.value_counts().to_dict() == {
        "original": n,
        "ours1": n_ours,
        "ours2": n_ours,
        "ptbxl_only": 1,
    }
    first = plan.set_index(["model", "replicate"]).loc[("original", 0)]
    assert first.pages == "table2_generalisation, table3_retraining"  # one artifact, both pages
    assert not plan.stored.any()
    assert list(plan.model[:2]) == ["original", "original"]  # a parent before its child
    # the numbers a GPU run is sized by
    assert (plan.records_seen == plan.epochs * plan.train_records).all()
    assert first.train_records == 128 and first.epochs == 1
    # the model a page trains has the key the plan gave
    pipe = setup(str(data_root), build, 100, 10, 0, "cpu", "published", 1, 1)
    # projected to the full data: every record the label files list, split as the sample's
    cpsc, ptb = (pipe.datasets[d].inventory for d in ("cpsc", "ptbxl"))
    assert cpsc["listed"] == 6877 and ptb["listed"] == 21799  # the sample's label files are whole
    cpsc_ratio = (cpsc["listed"] - cpsc["label_errors"]) / cpsc["used"]
    assert first.full_train_records == round(128 * cpsc_ratio) > 40 * 128
    ours2 = plan.set_index(["model", "replicate"]).loc[("ours2", 0)]
    n_ptb = ours2.train_records - 128
    ptb_ratio = ptb["kept_by_mapping"] / ptb["used"]
    assert ours2.full_train_records == round(128 * cpsc_ratio + n_ptb * ptb_ratio)
    assert (plan.full_records_seen == plan.epochs * plan.full_train_records).all()
    ours1 = pipe.model("ours1", 0, log=None)
    row = plan.set_index(["model", "replicate"]).loc[("ours1", 0)]
    assert ours1.folder.name == row.artifact and ours1.key == row.key
    again = training_plan("quick", str(data_root), build, one, pages)
    assert sorted(again.artifact[again.stored]) == sorted(
        [ours1.folder.name, pipe.model("original", 0, log=None).folder.name]
    )


def test_train_command_trains_a_catalogue_model_with_its_pages_parameters(
    build_with_sample_cache, data_root, capsys
):
    build = build_with_sample_cache
    base = ["--data", str(data_root), "--build-dir", str(build), "--profile", "quick"]
    # a model beyond the paper's, on a derived dataset (PTB-XL with permuted labels)
    args = ["train", "--model", "shuffled_labels", *base, "-p", "epochs_ours", "1"]
    assert cli.main([*args, "-p", "device", "cpu"]) == 0
    (folder,) = (build / "artifacts").glob("shuffled_labels-*")
    overrides = {"epochs_ours": 1, "data_randomisation": True, "planted_records": 60}
    plan = training_plan("quick", str(data_root), str(build), overrides, ["faithfulness"])
    assert plan.set_index("model").loc["shuffled_labels"].artifact == folder.name
    assert plan.set_index("model").loc["shuffled_labels"].stored
    assert cli.main(["train", "--model", "nope", *base]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert cli.main(["train", "--model", "lstm", *base, "-p", "planted_epochs", "1"]) == 2
    assert "unknown parameter(s) ['planted_epochs']" in capsys.readouterr().err


def test_plan_command_prints_the_table_and_totals(build_with_sample_cache, data_root, capsys):
    args = ["plan", "--data", str(data_root), "--build-dir", str(build_with_sample_cache)]
    csv = build_with_sample_cache / "plan.csv"
    only = ["--only", "faithfulness", "-p", "planted_records", "60", "--csv", str(csv)]
    assert cli.main([*args, *only]) == 0
    out = capsys.readouterr().out
    # quick: no data randomisation, so neither the shuffled-label model nor its reference
    assert "[plan] faithfulness: original, ours2, planted\n" in out
    assert re.search(r"profile quick: 3 artifacts, 0 stored, 3 to train; [\d,]+ records", out)
    full = r"on the full datasets .*: [\d,]+ records seen in training; at 437 records/s"
    assert re.search(full, out)
    assert cli.main([*args, *only, "--rate", "0"]) == 2
    assert "--rate must be > 0" in capsys.readouterr().err
    assert list(pd.read_csv(csv).model) == ["original", "ours2", "planted"]
    assert cli.main([*args, *only, "-p", "data_randomisation", "true"]) == 0
    assert "ptbxl_only, shuffled_labels, planted" in capsys.readouterr().out
