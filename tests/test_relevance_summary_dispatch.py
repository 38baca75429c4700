"""Companion A's relevance_summary goes through the method table (issue #24).

``relevance_summary`` calls IG and LRP through :func:`ecgrepro.explain.methods.explain`,
asking for the padding kept (the summary measures the share of |relevance| that falls in
it) and for the method's own diagnostic (IG's convergence delta, LRP's conservation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.explain.methods import METHODS, explain
from ecgrepro.explain.relevance import (
    RELEVANCE_METHODS,
    integrated_gradients,
    lrp,
    record_means,
    relevance_summary,
)
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


def test_every_relevance_method_has_a_check_in_the_table():
    for name in RELEVANCE_METHODS:
        assert METHODS[name].check, name


def test_ig_through_the_table_gives_the_summarys_values_and_delta():
    model, x, n_valid = _padded_resnet()
    summary = relevance_summary(model, x, n_valid, ["a", "b"], 100, {"AF": 1}, ("ig",), 4, chunk=2)
    # ig_map takes batch_size // 2 records per call: 2, as chunk=2 above
    rel, delta = explain("ig", model, x, 1, n_valid=n_valid, ig_steps=4, batch_size=4,
                         with_check=True)
    per_record, per_lead = record_means(rel, n_valid)
    np.testing.assert_array_equal(summary["ig.AF.record"], per_record)
    np.testing.assert_array_equal(summary["ig.AF.lead"], per_lead)
    np.testing.assert_array_equal(summary["ig.AF.abs"], record_means(np.abs(rel), n_valid)[0])
    np.testing.assert_array_equal(summary["ig.AF.check"], delta)
    # the delta is captum's, for the same call
    np.testing.assert_array_equal(delta, integrated_gradients(model, x, 1, 4, 2)[1])
    assert np.all(summary["ig.AF.padding"] == 0)  # IG: 0 mV in, nothing in the padding


def test_lrp_keeps_the_padding_the_summary_measures_only_when_asked():
    model, x, n_valid = _padded_resnet()
    name = "lrp_epsilon_plus_flat"
    summary = relevance_summary(model, x, n_valid, ["a", "b"], 100, {"AF": 1}, (name,), chunk=2)
    bounds = {"low": float(x.min()), "high": float(x.max())}  # the summary's z-box bounds
    kept, check = explain(name, model, x, 1, n_valid=n_valid, batch_size=8, keep_padding=True,
                          with_check=True, **bounds)
    rel, logit = lrp(model, x, 1, "epsilon_plus_flat", **bounds)
    np.testing.assert_array_equal(kept, rel)
    np.testing.assert_array_equal(check, rel.reshape(2, -1).sum(1) / logit)
    np.testing.assert_array_equal(summary[f"{name}.AF.check"], check)
    share = (np.abs(kept[1, :, :100]).sum() / np.abs(kept[1]).sum())
    assert summary[f"{name}.AF.padding"][1] == pytest.approx(share, rel=1e-6) and share > 0
    zeroed = explain(name, model, x, 1, n_valid=n_valid, batch_size=8, **bounds)
    assert np.all(zeroed[1, :, :100] == 0)  # by default the table zeroes the padding
    np.testing.assert_array_equal(summary[f"{name}.AF.lead"], record_means(zeroed, n_valid)[1])


def test_with_check_on_a_method_without_one_is_refused():
    model, x, n_valid = _padded_resnet()
    with pytest.raises(ValueError, match="no diagnostic"):
        explain("saliency", model, x, 1, n_valid=n_valid, with_check=True)
