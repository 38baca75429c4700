"""Every explanation runs on the pipeline's device (#26, item 2): nothing moves a shared model
to the CPU; under the ``gpu`` marker, one epoch and every method on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.explain.faithfulness.sanity import randomised_models
from ecgrepro.explain.methods import METHODS, explain
from ecgrepro.models import ResNet1d
from ecgrepro.train import Samples, train_one_epoch

N_SAMPLES = 200
N_VALID = np.array([200, 150, 120])
PARAMS = {
    "fs_hz": 100.0,
    "ig_steps": 4,
    "mask_kw": {"n_iter": 3},
    "nsamples": 4,
    "low": -3.0,
    "high": 3.0,
    "batch_size": 2,
}


def _case(device):
    torch.manual_seed(0)
    model = ResNet1d(layers=(1, 1, 1, 1), num_classes=2).eval().to(device)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.5, (3, 12, N_SAMPLES)).astype(np.float32)
    for i, n in enumerate(N_VALID):
        x[i, :, : N_SAMPLES - n] = 0.0
    background = rng.normal(0, 0.5, (4, 12, N_SAMPLES)).astype(np.float32)
    return model, x, np.array([0, 1, 0]), {**PARAMS, "background": background}


@pytest.mark.parametrize("name", list(METHODS))
def test_no_method_moves_the_model(monkeypatch, name):
    """The SHAP methods and the lead games used to call model.cpu() (fine on a CPU, an idle GPU
    beside a busy CPU at the paper profile); a module's .cpu() now fails the test."""
    model, x, target, params = _case("cpu")

    def refuse(self):
        raise AssertionError(f"{name} moved the model with .cpu()")

    monkeypatch.setattr(nn.Module, "cpu", refuse)
    out = explain(name, model, x, target, n_valid=N_VALID, seed=3, **params)
    assert np.isfinite(out).all()


def test_randomised_models_draw_the_same_weights_wherever_the_model_is():
    model = ResNet1d(layers=(1, 1, 1, 1), num_classes=2).eval()
    first = [m.state_dict() for _, m in randomised_models(model, seed=1)]
    again = [m.state_dict() for _, m in randomised_models(model, seed=1)]
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    devices = {next(m.parameters()).device.type for _, m in randomised_models(model)}
    assert devices == {"cpu"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_one_epoch_and_every_method_on_cuda():
    model, x, target, params = _case("cuda")
    cpu_model = ResNet1d(layers=(1, 1, 1, 1), num_classes=2).eval()
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    for name in METHODS:
        out = explain(name, model, x, target, n_valid=N_VALID, seed=3, **params)
        assert np.isfinite(out).all(), name
        assert next(model.parameters()).is_cuda, f"{name} moved the model off the GPU"
        if METHODS[name].granularity == "lead" and "exact" in name:
            ref = explain(name, cpu_model, x, target, n_valid=N_VALID, seed=3, **params)
            np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4, err_msg=name)
    cuda_rand = [m.state_dict() for _, m in randomised_models(model, seed=1)]
    cpu_rand = [m.state_dict() for _, m in randomised_models(cpu_model, seed=1)]
    for a, b in zip(cuda_rand, cpu_rand, strict=True):
        assert all(torch.equal(a[k].cpu(), b[k]) for k in a)
    from ecgrepro.explain.deletion_mask import deletion_mask
    from ecgrepro.models import LeadLSTM

    lstm = LeadLSTM(lead="II", num_classes=2).eval().cuda()  # cuDNN: no RNN backward in eval
    out = deletion_mask(lstm, x, target, 100.0, N_VALID, n_iter=2)
    assert np.isfinite(out["saliency"]).all()
    n = 16
    rng = np.random.default_rng(1)
    signals = rng.normal(0, 0.5, (n, 12, N_SAMPLES)).astype(np.float32)
    y = (rng.random((n, 2)) < 0.3).astype(np.float32)
    train = Samples([signals], np.zeros(n, int), np.arange(n), y, np.ones(n, bool))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = train_one_epoch(model, train, opt, nn.BCEWithLogitsLoss(), rng, 8, "cuda")
    assert np.isfinite(loss) and next(model.parameters()).is_cuda
