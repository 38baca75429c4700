"""The method table: every explanation method keeps one contract (shape, dtype, padding, model)."""

import inspect

import numpy as np
import pytest
import torch

from ecgrepro.explain.methods import GRANULARITIES, METHODS, explain, methods_of
from ecgrepro.models import ResNet1d

FS = 100.0
N_SAMPLES = 200
N_VALID = np.array([200, 150, 120])  # records 1 and 2 start with 50 and 80 samples of padding
#: Alone vs in a batch, absolute tolerance as a share of the map's largest value. The deletion
#: mask's Adam steps are normalised per element, so where a gradient is nearly 0 the last-bit
#: differences of a batched forward pass can take a full step: 1% there, 0.001% elsewhere.
BATCH_ATOL = {"deletion_mask": 1e-2}


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = ResNet1d(layers=(1, 1, 1, 1), num_classes=2).eval()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.5, (3, 12, N_SAMPLES)).astype(np.float32)
    for i, n in enumerate(N_VALID):
        x[i, :, : N_SAMPLES - n] = 0.0
    params = {
        "fs_hz": FS,
        "ig_steps": 8,
        "mask_kw": {"n_iter": 5},
        "background": rng.normal(0, 0.5, (4, 12, N_SAMPLES)).astype(np.float32),
        "nsamples": 8,
        "low": -3.0,  # fixed z-box bounds: by default they are the call's records' range
        "high": 3.0,
        "batch_size": 2,  # three records: two batches inside one call
    }
    return model, x, np.array([0, 1, 0]), params


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_keeps_the_contract(case, name):
    model, x, target, params = case
    method = METHODS[name]
    before = _state(model)
    model.train()  # a model passed in training mode is explained in eval mode and given back so
    out = explain(name, model, x, target, n_valid=N_VALID, seed=3, **params)
    assert model.training
    model.eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"

    trailing, dtype = GRANULARITIES[method.granularity]
    assert out.shape == (3, *trailing(12, N_SAMPLES)) and out.dtype == dtype
    assert np.isfinite(out).all() and np.abs(out).sum() > 0
    if method.granularity == "time":
        for i, n in enumerate(N_VALID):
            assert not out[i, :, : N_SAMPLES - n].any(), f"{name}: relevance in the padding"

    again = explain(name, model, x, target, n_valid=N_VALID, seed=3, **params)
    np.testing.assert_array_equal(again, out)  # the same seed, the same values

    # alone and in a batch: every record where the method says so, else the first one (whose
    # random draws are the same)
    rows = range(3) if method.batch_invariant else range(1)
    for i in rows:
        sl = slice(i, i + 1)
        alone = explain(name, model, x[sl], target[sl], n_valid=N_VALID[sl], seed=3, **params)
        atol = BATCH_ATOL.get(name, 1e-5) * np.abs(out[i]).max()
        np.testing.assert_allclose(alone[0], out[i], rtol=1e-4, atol=atol, err_msg=name)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_entry_is_complete(name):
    method = METHODS[name]
    assert method.name == name and method.label and method.unit and method.source
    assert method.granularity in GRANULARITIES
    signature = inspect.signature(method.fn).parameters
    assert list(signature)[:3] == ["model", "x", "target"]
    assert {"n_valid", "seed"} <= set(signature)
    assert set(method.params) <= set(signature), f"{name} declares parameters fn does not take"
    assert set(method.required) <= set(method.params)


def test_the_table_partitions_the_methods():
    time_ = methods_of("time")
    leads = methods_of(("leads12", "leads8"))
    assert set(time_) | set(leads) == set(METHODS) and not set(time_) & set(leads)
    assert {n for n, m in METHODS.items() if m.baseline} == {"random", "amplitude"}


def test_explain_names_what_is_wrong(case):
    model, x, target, params = case
    with pytest.raises(ValueError, match="unknown explanation method 'smoothgrad'"):
        explain("smoothgrad", model, x, target)
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        explain("amplitude", model, bad, target)
    with pytest.raises(ValueError, match="n_valid"):
        explain("amplitude", model, x, target, n_valid=np.array([0, 10, 10]))
    with pytest.raises(
        ValueError, match=r"^shap_published \(SHAP per lead \(published\)\) needs background"
    ):
        explain("shap_published", model, x, target)
