"""Companion A: IG, LRP through zennit, the averages, and the zennit import without torchvision."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.beats import beat_windows, r_peaks
from ecgrepro.explain.relevance import (
    canonizer_check,
    integrated_gradients,
    lead_rank_test,
    lrp,
    outcomes,
    record_means,
    relevance_summary,
    spearman_interval,
)
from ecgrepro.models import resnet34

T = 64


class Linear12(nn.Module):
    """(n, 12, T) -> (n, 3) logits, one weight per input sample and class."""

    def __init__(self, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(12 * T, 3, bias=bias)

    def forward(self, x):
        return self.fc(x.flatten(1))


class SmallReLU(nn.Module):
    """A bias-free ReLU network: conv, ReLU, dense."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(12, 6, kernel_size=5, padding=2, bias=False)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6 * T, 3, bias=False)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(1))


def _resnet(n_samples=300):
    torch.manual_seed(0)
    model = resnet34()
    for module in model.modules():  # BatchNorm statistics as after training, not the identity
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    x = np.random.default_rng(0).normal(0, 0.3, (2, 12, n_samples)).astype(np.float32)
    return model.eval(), x


def test_ig_of_a_linear_model_is_weight_times_input_minus_baseline():
    torch.manual_seed(0)
    model = Linear12().eval()
    x = np.random.default_rng(1).normal(0, 1, (3, 12, T)).astype(np.float32)
    attr, delta = integrated_gradients(model, x, target=2, n_steps=5)
    expected = model.fc.weight[2].detach().numpy().reshape(12, T) * x  # baseline 0 mV
    np.testing.assert_allclose(attr, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(delta).max() < 1e-4


def test_lrp_epsilon_on_a_bias_free_relu_network_is_gradient_times_input():
    torch.manual_seed(0)
    model = SmallReLU().eval()
    x = np.random.default_rng(2).normal(0, 1, (2, 12, T)).astype(np.float32)
    rel, logits = lrp(model, x, target=1, composite="epsilon", epsilon=1e-9)
    xt = torch.as_tensor(x).requires_grad_(True)
    out = model(xt)
    (grad,) = torch.autograd.grad(out[:, 1].sum(), xt)
    np.testing.assert_allclose(rel, (grad * xt).detach().numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(logits, out[:, 1].detach().numpy(), rtol=1e-5)
    # bias-free ReLU network: LRP-0 conserves the logit
    np.testing.assert_allclose(rel.reshape(2, -1).sum(1), logits, rtol=1e-3)


def test_the_canonizers_keep_the_logits_and_restore_the_model():
    model, x = _resnet()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check = canonizer_check(model, x)
    assert check["max_change_canonized"] < 1e-4
    assert check["max_change_after"] == 0.0
    assert check["parameters_restored"] == 1.0
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    # and after an LRP pass too: no hook or merged BatchNorm left behind
    before = model(torch.as_tensor(x)).detach()
    lrp(model, x, target=3, composite="epsilon_gamma_box")
    assert torch.equal(model(torch.as_tensor(x)).detach(), before)
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_padding_gets_no_relevance_in_the_averages():
    model, x = _resnet()
    x[1, :, :100] = 0.0  # record 1: 100 samples of front padding
    n_valid = np.array([300, 200])
    ig, _ = integrated_gradients(model, x, 1, n_steps=4)
    assert np.all(ig[1, :, :100] == 0)  # IG: exactly 0 where input = baseline
    flat, _ = lrp(model, x, 1, "epsilon_plus_flat")
    assert np.abs(flat[1, :, :100]).sum() > 0  # the flat rule spreads relevance into padding
    spiked = flat.copy()
    spiked[1, :, :100] = 1e6
    per_record, per_lead = record_means(spiked, n_valid)
    np.testing.assert_allclose(per_lead[1], flat[1, :, 100:].mean(-1), rtol=1e-5)
    assert abs(per_record[1]) < 1e3
    summary = relevance_summary(
        model, x, n_valid, ["a", "b"], 100, {"AF": 1}, ("lrp_epsilon_plus_flat",), chunk=2
    )
    assert summary["lrp_epsilon_plus_flat.AF.padding"][0] == 0
    assert 0 < summary["lrp_epsilon_plus_flat.AF.padding"][1] < 1
    np.testing.assert_allclose(
        summary["lrp_epsilon_plus_flat.AF.lead"][1], flat[1, :, 100:].mean(-1), rtol=1e-4
    )


def _synthetic_ecg(fs=100, seconds=10, rr_s=0.8, first_s=0.5):
    """Gaussian P, QRS and T waves; returns the 12-lead signal and the true R peaks."""
    t = np.arange(int(fs * seconds)) / fs
    peaks = np.arange(first_s, seconds - 0.1, rr_s)
    lead = np.zeros_like(t)
    for r in peaks:
        lead += 0.15 * np.exp(-(((t - r + 0.18) / 0.025) ** 2))  # P
        lead += 1.2 * np.exp(-(((t - r) / 0.012) ** 2))  # QRS
        lead += 0.3 * np.exp(-(((t - r - 0.28) / 0.05) ** 2))  # T
    return np.tile(lead, (12, 1)).astype(np.float32), np.round(peaks * fs).astype(int)


def test_the_beat_window_is_placed_on_the_r_peaks_of_a_synthetic_ecg():
    fs = 100
    signal, true_r = _synthetic_ecg(fs)
    found = r_peaks(signal[1], fs, record="synthetic")
    assert len(found) >= len(true_r) - 1
    assert max(np.abs(true_r - f).min() for f in found) <= 1  # within one sample (10 ms)
    beats, offsets = beat_windows(signal, found, fs, 250, 450)
    assert offsets[0] == -250 and offsets[-1] == 450 and beats.shape[-1] == 71
    mean = beats.mean(0)[1]
    assert offsets[mean.argmax()] == 0  # the R peak at 0 ms
    assert -220 <= offsets[np.argmax(mean[:15])] <= -140  # the P wave before it
    # a beat whose window would reach into the padding is left out
    first = true_r[1] - 10  # the record starts 100 ms before its second R peak
    kept, _ = beat_windows(signal, true_r, fs, 250, 450, n_valid=signal.shape[1] - first)
    inside = [r for r in true_r if r - 25 >= first and r + 45 < signal.shape[1]]
    assert len(kept) == len(inside) and len(inside) < len(true_r)


def test_outcomes_and_the_spearman_interval():
    labelled = np.array([1, 1, 0, 0], bool)
    prob = np.array([0.9, 0.1, 0.8, 0.2])
    assert list(outcomes(labelled, prob, 0.5)) == ["TP", "FN", "FP", "TN"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    rho, low, high = spearman_interval(x, x + rng.normal(0, 0.1, 60), n_boot=200)
    assert low <= rho <= high and rho > 0.9
    assert np.isnan(spearman_interval(x[:2], x[:2])[0])


def test_lead_rank_test_is_an_exact_permutation_test():
    leads = tuple(f"L{i}" for i in range(12))
    values = np.arange(12, 0, -1.0)  # L0 most relevant
    rank, p, k = lead_rank_test(values, leads, ("L0", "L1"))
    assert (rank, k) == (1.5, 2) and p == pytest.approx(1 / 66)
    rank, p, _ = lead_rank_test(values, leads, ("L10", "L11"))
    assert rank == 11.5 and p == 1.0
    # a map that gives every lead the same value (LRP's flat first layer) ranks them at chance
    rank, p, _ = lead_rank_test(np.full(12, 0.3), leads, ("L0", "L1"))
    assert rank == 6.5 and p == 1.0
    # a clinical lead absent from the lead set (aVL among the 8 independent leads) is dropped
    assert lead_rank_test(values[:8], leads[:8], ("L0", "L9"))[2] == 1
    with pytest.raises(ValueError, match="none of"):
        lead_rank_test(values, leads, ("aVL",))


def _run(code: str, path: str = "") -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": path} if path else {}
    import os

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def _fake_torchvision(root, broken: bool):
    pkg = root / "torchvision"
    (pkg / "models").mkdir(parents=True)
    init = 'raise RuntimeError("operator torchvision::nms does not exist")\n' if broken else ""
    (pkg / "__init__.py").write_text(init)
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "models" / "resnet.py").write_text(
        "import torch\nclass BasicBlock(torch.nn.Module): pass\n"
        "class Bottleneck(torch.nn.Module): pass\n"
    )


CHECK = """
    from ecgrepro.explain import zennit_compat as c
    z = c.import_zennit()
    import zennit.composites, zennit.canonizers
    print("PROBLEM", c.TORCHVISION_PROBLEM)
    print("REAL", hasattr(z.torchvision, "ResNetCanonizer") and z.torchvision.__file__ is not None)
"""


def test_zennit_imports_without_torchvision_through_the_one_workaround(tmp_path):
    broken = tmp_path / "broken"
    _fake_torchvision(broken, broken=True)
    done = _run(CHECK, str(broken))
    assert done.returncode == 0, done.stderr
    assert "PROBLEM fails to import (RuntimeError: operator torchvision::nms" in done.stdout
    assert "REAL False" in done.stdout
    stand_in = _run(
        "from ecgrepro.explain import zennit_compat as c\nz = c.import_zennit()\n"
        "z.torchvision.ResNetCanonizer\n",
        str(broken),
    )
    assert "is not available: torchvision fails to import" in stand_in.stderr


def test_no_workaround_where_torchvision_imports(tmp_path):
    working = tmp_path / "working"
    _fake_torchvision(working, broken=False)
    done = _run(CHECK, str(working))
    assert done.returncode == 0, done.stderr
    assert "PROBLEM None" in done.stdout and "REAL True" in done.stdout
