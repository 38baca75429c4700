"""Training loop: augmentation, determinism, best-checkpoint selection, evaluation."""

import numpy as np
import torch

from ecgrepro.augment import AUGMENT_PROBABILITY, augment
from ecgrepro.evaluate import evaluate
from ecgrepro.models import resnet34
from ecgrepro.train import Samples, train_model


def toy_samples(n=24, length=256, seed=0, aug=True):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.1, (n, 12, length)).astype(np.float32) + y[:, :1, None]
    return Samples([x], np.zeros(n, int), np.arange(n), y, np.full(n, aug))


def test_augment_scale_and_offset_distributions():
    rng = np.random.default_rng(0)
    n = 40000
    x = np.ones((n, 12, 4), np.float32)
    out = augment(x.copy(), rng)
    changed = ~np.all(out == 1, axis=(1, 2))
    # P(scaled or shifted) = 1 - (1 - p)^2
    assert abs(changed.mean() - (1 - (1 - AUGMENT_PROBABILITY) ** 2)) < 0.01
    # a constant lead stays constant: one factor and one offset per lead
    assert np.all(np.ptp(out, axis=2) < 1e-6)
    # scaling alone: zeros stay 0 and a lead of ones becomes its factor, N(1, 0.1) per lead
    z = np.zeros((n, 12, 4), np.float32)
    z[:, :, 2:] = 1.0
    rng = np.random.default_rng(1)
    out = augment(z.copy(), rng)
    factor_or_offset = out[:, :, 3] - out[:, :, 0]  # the offset cancels: the factor remains
    scaled = ~np.all(np.isclose(factor_or_offset, 1.0), axis=1)
    assert abs(scaled.mean() - AUGMENT_PROBABILITY) < 0.01
    f = factor_or_offset[scaled].ravel()
    assert abs(f.mean() - 1.0) < 0.005 and abs(f.std() - 0.1) < 0.005
    # leads are scaled independently: the factors of two leads are uncorrelated
    lead0, lead1 = factor_or_offset[scaled][:, 0], factor_or_offset[scaled][:, 1]
    assert abs(np.corrcoef(lead0, lead1)[0, 1]) < 0.05


def test_augment_offsets_lie_on_the_published_lattice():
    rng = np.random.default_rng(2)
    x = np.zeros((20000, 12, 3), np.float32)
    out = augment(x.copy(), rng)  # zeros: scaling does nothing, only offsets show
    shifted = out[np.any(out != 0, axis=(1, 2))][:, :, 0]
    steps = np.round(shifted.ravel() * 1000).astype(int)
    np.testing.assert_allclose(shifted.ravel() * 1000, steps, atol=1e-3)  # multiples of 1 uV
    assert steps.min() == -20 and steps.max() == 19  # {-20, ..., 19} / 1000 mV
    assert set(np.unique(steps)) == set(range(-20, 20))


def test_augment_leaves_the_padding_at_zero():
    rng = np.random.default_rng(3)
    n, length = 4000, 50
    n_valid = rng.integers(1, length + 1, n)
    x = np.zeros((n, 12, length), np.float32)
    for i, v in enumerate(n_valid):
        x[i, :, length - v :] = 1.0  # the record; the front is zero-padding
    out = augment(x.copy(), rng, n_valid)
    pad = np.arange(length)[None, :] < (length - n_valid)[:, None]
    assert np.all(out.transpose(0, 2, 1)[pad] == 0)
    assert np.any(out.transpose(0, 2, 1)[~pad] != 1.0)  # the signal was augmented
    # without n_valid the offset lands on the padding too: the test can fail
    out_all = augment(x.copy(), np.random.default_rng(3))
    assert np.any(out_all.transpose(0, 2, 1)[pad] != 0)


def test_samples_carry_valid_lengths():
    a, b = toy_samples(3, length=16), toy_samples(2, length=16)
    a.n_valid = np.array([16, 8, 4])
    both = a + b
    np.testing.assert_array_equal(both.n_valid, [16, 8, 4, 16, 16])


def test_samples_gather_across_parts():
    a, b = toy_samples(5, seed=1), toy_samples(4, seed=2)
    both = a + b
    assert len(both) == 9
    np.testing.assert_array_equal(
        both.signals(np.array([6, 0, 5])), np.stack([b.parts[0][1], a.parts[0][0], b.parts[0][0]])
    )


def test_training_is_deterministic_and_keeps_best():
    train, val = toy_samples(16, seed=0), toy_samples(8, seed=1, aug=False)
    results = []
    for _ in range(2):
        torch.manual_seed(0)  # the initial weights are the caller's to seed
        model = resnet34()
        r = train_model(model, train, val, epochs=2, batch_size=8, seed=3, log=None)
        results.append((r, model))
    (r1, m1), (r2, m2) = results
    assert list(r1.log.columns) == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_mean_f1",
        "val_macro_auc",
        "seconds",
    ]
    np.testing.assert_allclose(r1.log.train_loss, r2.log.train_loss)
    for k, v in m1.state_dict().items():
        torch.testing.assert_close(v, m2.state_dict()[k])
    assert r1.best_epoch == int(r1.log.val_mean_f1.idxmax()) + 1
    long, scores, th = evaluate(m1, val, {"toy": val})
    assert set(long.metric) == {"precision", "recall", "f1", "auc", "accuracy"}
    assert scores["toy"].shape == (8, 9) and th.shape == (9,)


def test_keeps_the_best_epochs_weights_not_the_last(monkeypatch):
    import ecgrepro.train as train_module

    # validation mean F1 per epoch: epoch 2 is the best of 4
    f1_by_epoch = iter([0.2, 0.9, 0.5, 0.4])

    def fake_f1(y, scores):
        return np.full(y.shape[1], 0.5), np.full(y.shape[1], next(f1_by_epoch))

    monkeypatch.setattr(train_module, "f1_optimal_thresholds", fake_f1)
    train, val = toy_samples(16, seed=0), toy_samples(8, seed=1, aug=False)
    torch.manual_seed(0)
    model = resnet34()
    result = train_model(model, train, val, epochs=4, batch_size=8, seed=3, log=None)
    assert result.best_epoch == 2
    # the weights after epoch 2 and after epoch 4, from the same seeds: with a rising F1
    # the last epoch is the best, so these runs keep their last weights
    after = {}
    for epochs in (2, 4):
        rising = iter([0.1, 0.2, 0.3, 0.4])
        monkeypatch.setattr(
            train_module,
            "f1_optimal_thresholds",
            lambda y, s, it=rising: (np.full(9, 0.5), np.full(9, next(it))),
        )
        torch.manual_seed(0)
        other = resnet34()
        assert train_model(other, train, val, epochs, 8, seed=3, log=None).best_epoch == epochs
        after[epochs] = other.state_dict()
    kept = model.state_dict()
    key = "fc.weight"
    torch.testing.assert_close(kept[key], after[2][key])
    assert not torch.allclose(kept[key], after[4][key])
    for k, v in result.state_dict.items():
        torch.testing.assert_close(v, after[2][k])
