"""Companion A's relevance_summary and the method table (issue #24).

``relevance_summary`` calls IG and LRP itself rather than through
:func:`ecgrepro.explain.methods.explain`: the table's maps agree with its own on the valid
samples, but come with the padding zeroed and without IG's convergence delta or LRP's
starting logit, which the summary's ``check`` and ``padding`` columns measure.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ecgrepro.explain.methods import explain
from ecgrepro.explain.relevance import record_means, relevance_summary
from ecgrepro.models import resnet34


def _padded_resnet():
    torch.manual_seed(0)
    model = resnet34()
    for module in model.modules():  # BatchNorm statistics as after training, not the identity
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    x = np.random.default_rng(0).normal(0, 0.3, (2, 12, 300)).astype(np.float32)
    x[1, :, :100] = 0.0  # record 1: 100 samples of front padding
    return model.eval(), x, np.array([300, 200])


def test_ig_through_the_table_gives_the_summarys_averages():
    model, x, n_valid = _padded_resnet()
    summary = relevance_summary(model, x, n_valid, ["a", "b"], 100, {"AF": 1}, ("ig",), 4, chunk=2)
    # ig_map halves batch_size: 2 records per call, as chunk=2 above
    rel = explain("ig", model, x, 1, n_valid=n_valid, ig_steps=4, batch_size=4)
    per_record, per_lead = record_means(rel, n_valid)
    np.testing.assert_array_equal(summary["ig.AF.record"], per_record)
    np.testing.assert_array_equal(summary["ig.AF.lead"], per_lead)
    np.testing.assert_array_equal(summary["ig.AF.abs"], record_means(np.abs(rel), n_valid)[0])
    assert np.all(summary["ig.AF.padding"] == 0)  # IG: nothing in the padding to lose


def test_lrp_through_the_table_loses_the_padding_the_summary_measures():
    model, x, n_valid = _padded_resnet()
    name = "lrp_epsilon_plus_flat"
    summary = relevance_summary(model, x, n_valid, ["a", "b"], 100, {"AF": 1}, (name,), chunk=2)
    bounds = {"low": float(x.min()), "high": float(x.max())}  # the summary's z-box bounds
    rel = explain(name, model, x, 1, n_valid=n_valid, batch_size=8, **bounds)
    np.testing.assert_array_equal(summary[f"{name}.AF.lead"], record_means(rel, n_valid)[1])
    assert np.all(rel[1, :, :100] == 0)  # the table zeroes the padding ...
    assert summary[f"{name}.AF.padding"][1] > 0  # ... whose share of |relevance| the summary gives
