"""Training loop: augmentation, determinism, best-checkpoint selection, evaluation."""

import numpy as np
import torch

from ecgrepro.evaluate import evaluate
from ecgrepro.models import resnet34
from ecgrepro.train import AUGMENT_PROBABILITY, Samples, augment, train_model


def toy_samples(n=24, length=256, seed=0, aug=True):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.1, (n, 12, length)).astype(np.float32) + y[:, :1, None]
    return Samples([x], np.zeros(n, int), np.arange(n), y, np.full(n, aug))


def test_augment_statistics():
    rng = np.random.default_rng(0)
    x = np.ones((20000, 12, 4), np.float32)
    out = augment(x.copy(), rng)
    changed = ~np.all(out == 1, axis=(1, 2))
    # P(scaled or shifted) = 1 - (1 - p)^2
    assert abs(changed.mean() - (1 - (1 - AUGMENT_PROBABILITY) ** 2)) < 0.02
    per_lead = out[changed][:, :, 0]
    assert np.all(np.abs(per_lead - 1) < 0.6)


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
