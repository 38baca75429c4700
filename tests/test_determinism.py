"""Determinism: one seed on the CPU gives bit-identical weights, another seed other weights."""


import numpy as np
import pandas as pd
import pytest
import torch

from ecgrepro.data import ECGDataset, SkipReport
from ecgrepro.pipeline import build_model, get_model, paper_specs, replicate
from ecgrepro.runtime import deterministic_algorithms

FS_HZ, N_SAMPLES = 100, 256  # 2.56 s at 100 Hz: seconds per training on 2 cores


def synthetic_cpsc(n_train=64, n_val=8, n_test=8, seed=0) -> ECGDataset:
    """A CPSC-like dataset whose class 0 shows as a 1 mV step on lead I, and 1 as lead II noise."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    y = (rng.random((n, 9)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.1, (n, 12, N_SAMPLES)).astype(np.float32)
    x[:, 0, N_SAMPLES // 2 :] += y[:, :1]
    x[:, 1] *= 1 + 3 * y[:, 1:2]
    split = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)
    records = pd.DataFrame({"record": [f"A{i:04d}" for i in range(n)], "split": split})
    records["n_valid"] = rng.integers(N_SAMPLES // 2, N_SAMPLES + 1, n)  # some front padding
    return ECGDataset("cpsc", x, y, records, FS_HZ, N_SAMPLES, SkipReport("cpsc"), cache_key="syn")


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(tmp_path):
    datasets = {"cpsc": synthetic_cpsc()}
    # the Original as the pipeline builds and trains it: 2 epochs on 64 augmented records
    spec = paper_specs(epochs=2, batch_size=32)["original"]
    assert spec.augment == ("cpsc", "ptbxl")  # augmentation is part of what must repeat
    runs = [
        get_model(spec, datasets, tmp_path / "a", log=None),
        get_model(spec, datasets, tmp_path / "b", log=None),
        get_model(replicate(spec, 1), datasets, tmp_path / "c", log=None),
    ]
    assert not any(r.reused for r in runs)
    first, again, other = (r.model.state_dict() for r in runs)
    assert first.keys() == again.keys() == other.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, again[name]), name  # bit for bit, every weight and buffer
    np.testing.assert_array_equal(runs[0].log.train_loss, runs[1].log.train_loss)
    floats = [n for n, t in first.items() if t.is_floating_point()]
    changed = [n for n in floats if not torch.equal(first[n], other[n])]
    assert len(changed) == len(floats)  # seed + 1: other initial weights, order and augmentation
    # the weights did train: they differ from the initial ones (built as get_model builds them;
    # a model of 0 epochs is refused, so it cannot be asked of get_model)
    ds = datasets["cpsc"]
    torch.manual_seed(spec.seed)
    untrained = build_model(spec.arch, ds.fs_hz, ds.n_samples, ds.y.shape[1]).state_dict()
    assert not torch.equal(untrained["fc.weight"], first["fc.weight"])


def test_deterministic_algorithms_is_scoped():
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.mkldnn.deterministic,
    )
    assert before[0] is False  # the test's premise: the session runs in the default mode
    with deterministic_algorithms(True, warn_only=False):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.backends.mkldnn.deterministic
    with pytest.raises(RuntimeError, match="inside"):
        with deterministic_algorithms(True):
            raise RuntimeError("inside")
    after = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.mkldnn.deterministic,
    )
    assert after == before
    with deterministic_algorithms(False):  # off: cuDNN autotunes, nothing else is changed
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.benchmark == before[2]
