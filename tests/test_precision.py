"""Mixed precision (bf16 autocast) and torch.compile: they run, and the scores stay close."""

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.models import resnet34
from ecgrepro.runtime import autocast, check_amp
from ecgrepro.train import Samples, predict_scores, train_model

#: Largest bf16 change of a logit, relative to the largest logit. bfloat16 keeps 8 significant
#: bits (a rounding step of 2^-8 = 0.39% of the value); the convolutions accumulate in float32,
#: so each of the 36 layers adds about one rounding of its inputs and weights, and those errors
#: partly cancel. Measured on the model below: about 0.4-0.6% (printed). 2% leaves a 3-5x margin and
#: still fails a forward pass that accumulates in bf16 or casts the logits to it (~1-10%).
BF16_LOGIT_TOLERANCE = 0.02


def toy_samples(n, length=256, seed=0, augment=True):
    """Class 0 is a 1 mV step on lead I, class 1 a 4x louder lead II; the rest is noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.1, (n, 12, length)).astype(np.float32)
    x[:, 0, length // 2 :] += y[:, :1]
    x[:, 1] *= 1 + 3 * y[:, 1:2]
    return Samples([x], np.zeros(n, int), np.arange(n), y, np.full(n, augment))


def test_bf16_autocast_trains_and_moves_the_logits_of_a_trained_model_a_little():
    train, val = toy_samples(64), toy_samples(32, seed=1, augment=False)
    torch.manual_seed(0)
    model = resnet34()
    train_model(model, train, val, epochs=1, batch_size=16, seed=0, log=None)  # 4 steps, float32
    x = torch.from_numpy(val.parts[0])
    with torch.no_grad():
        logits = model.eval()(x)
        with autocast("cpu", "bf16"):
            low = model(x)
    assert low.dtype == torch.bfloat16  # autocast ran: the linear layer's output is bf16
    diff = float((low.float() - logits).abs().max())
    scale = float(logits.abs().max())
    print(f"bf16 autocast: max |logit change| {diff:.2e}, {100 * diff / scale:.2f}% of max |logit|")
    assert 0 < diff <= BF16_LOGIT_TOLERANCE * scale
    # predict_scores: sigmoid changes at most 1/4 as much as its input
    change = np.abs(predict_scores(model, val, amp="bf16") - predict_scores(model, val)).max()
    assert 0 < change <= BF16_LOGIT_TOLERANCE * scale / 4
    # training under bf16 autocast runs and learns something finite
    torch.manual_seed(0)
    other = resnet34()
    short = toy_samples(32)
    result = train_model(other, short, val, epochs=1, batch_size=16, seed=0, log=None, amp="bf16")
    assert np.isfinite(result.log.train_loss).all()
    assert all(torch.isfinite(v).all() for v in result.state_dict.values() if v.is_floating_point())
    with pytest.raises(ValueError, match="amp must be one of"):
        check_amp("fp16")


@pytest.mark.slow
def test_compiled_scores_match_eager():
    # a small convolutional model: inductor compiles it in seconds (the ResNet-34: ~30 s)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(12, 16, 7, padding=3),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.AdaptiveMaxPool1d(1),
        nn.Flatten(),
        nn.Linear(16, 9),
    )
    samples = toy_samples(20, length=128, seed=2)
    eager = predict_scores(model, samples, batch_size=8)
    compiled = predict_scores(model, samples, batch_size=8, compile=True)  # 8, 8, then 4 padded
    assert compiled.shape == eager.shape == (20, 9)
    np.testing.assert_allclose(compiled, eager, rtol=0, atol=1e-5)
