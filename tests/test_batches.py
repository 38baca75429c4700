"""The data path (#26, item 1): batches on the device, the augmentation applied there, equal to
the numpy path it replaced, bit for bit on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.augment import apply_augmentation, draw_augmentation
from ecgrepro.batches import BatchSource, augment_tensor, epoch_draws
from ecgrepro.models import resnet34
from ecgrepro.train import Samples, shard_batch, train_one_epoch, train_step


def _samples(tmp_path, n=40, length=300, seed=0):
    rng = np.random.default_rng(seed)
    path = tmp_path / f"signals{seed}.npy"
    a = np.lib.format.open_memmap(path, "w+", np.float32, (n, 12, length))
    a[:] = rng.standard_normal((n, 12, length), np.float32)
    n_valid = rng.integers(length // 3, length + 1, n)
    for i, v in enumerate(n_valid):
        a[i, :, : length - v] = 0.0  # the zero-padding at the front
    a.flush()
    y = (rng.random((n, 9)) < 0.2).astype(np.float32)
    m = np.load(path, mmap_mode="r")
    return Samples([m], np.zeros(n, int), np.arange(n), y, rng.random(n) < 0.7, n_valid)


@pytest.mark.parametrize("seed", range(6))
def test_augment_tensor_is_the_numpy_augmentation_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, 12, 500)).astype(np.float32)
    n_valid = rng.integers(1, 501, 32)
    x = np.where(np.arange(500)[None, None, :] < (500 - n_valid)[:, None, None], 0.0, x)
    x = x.astype(np.float32)
    draw = draw_augmentation(rng, 32)
    want = apply_augmentation(x.copy(), draw, n_valid)
    got = augment_tensor(torch.from_numpy(x.copy()), draw, n_valid).numpy()
    assert want.tobytes() == got.tobytes()
    whole = augment_tensor(torch.from_numpy(x.copy()), draw).numpy()
    assert whole.tobytes() == apply_augmentation(x.copy(), draw).tobytes()
    with pytest.raises(ValueError, match="draw holds 32 records, the batch 3"):
        augment_tensor(torch.zeros(3, 12, 5), draw)


def test_signals_reads_each_record_once_into_its_row(tmp_path):
    a, b = _samples(tmp_path, 10, 50, 1), _samples(tmp_path, 8, 50, 2)
    both = a + b
    idx = np.array([12, 3, 17, 0, 3, 9])
    want = np.stack([both.parts[both.part[i]][both.row[i]] for i in idx])
    assert both.signals(idx).tobytes() == want.tobytes()
    out = np.full_like(want, np.nan)
    assert both.signals(idx, out=out) is out and out.tobytes() == want.tobytes()


def test_the_sources_deliver_the_numpy_paths_batches(tmp_path):
    train = _samples(tmp_path)
    order = np.random.default_rng(3).permutation(len(train))
    batches = [order[a : a + 7] for a in range(0, len(order), 7)]
    for world in (1, 2):
        for rank in range(world):
            want_rng, got_rng = np.random.default_rng(4), np.random.default_rng(4)
            want = [shard_batch(train, idx, want_rng, rank, world) for idx in batches]
            draws = epoch_draws(train.augment, batches, got_rng)
            assert want_rng.random() == got_rng.random()  # the same calls, in the same order
            for prefetch in (0, 2):
                source = BatchSource(train, "cpu", prefetch=prefetch)
                assert source.mode == ("prefetch" if prefetch else "inline")
                got = list(source.batches(batches, draws, rank, world))
                assert len(got) == len(want)
                for (x, y, n), (wx, wy), idx in zip(got, want, batches, strict=True):
                    assert x.numpy().tobytes() == wx.tobytes() and n == len(idx)
                    assert np.array_equal(y.numpy(), wy)


def test_an_error_in_the_prefetch_thread_reaches_the_loop(tmp_path):
    train = _samples(tmp_path)
    train.row[5] = 10_000  # no such row
    source = BatchSource(train, "cpu", prefetch=2)
    with pytest.raises(IndexError):
        list(source.batches([np.arange(0, 4), np.arange(4, 8), np.arange(8, 12)]))


def _old_epoch(model, train, opt, crit, rng, batch_size):
    """The training loop as it was before the data path (ea81bda), for the comparison."""
    model.train()
    order = rng.permutation(len(train))
    total, seen = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        x, y = shard_batch(train, idx, rng)
        loss = train_step(model, opt, crit, torch.from_numpy(x), torch.from_numpy(y))
        total += loss.item() * len(idx) / 1
        seen += len(idx)
    return total / max(seen, 1)


def test_the_loop_trains_the_weights_the_numpy_loop_trained(tmp_path):
    train = _samples(tmp_path, n=24, length=256)
    runs = []
    for epoch in (_old_epoch, None):
        torch.manual_seed(0)
        model = resnet34(num_classes=9)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(5)
        crit = nn.BCEWithLogitsLoss()
        if epoch is None:
            loss = train_one_epoch(model, train, opt, crit, rng, 8)
        else:
            loss = epoch(model, train, opt, crit, rng, 8)
        runs.append((loss, model.state_dict(), rng.random()))
    (old_loss, old_w, old_next), (new_loss, new_w, new_next) = runs
    assert old_loss == new_loss and old_next == new_next
    for k in old_w:
        assert old_w[k].numpy().tobytes() == new_w[k].numpy().tobytes(), k


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_resident_and_the_prefetch_source_agree_with_the_cpu(tmp_path):
    train = _samples(tmp_path)
    order = np.random.default_rng(3).permutation(len(train))
    batches = [order[a : a + 8] for a in range(0, len(order), 8)]
    draws = epoch_draws(train.augment, batches, np.random.default_rng(4))
    cpu = list(BatchSource(train, "cpu").batches(batches, draws))
    for resident in (True, False):
        source = BatchSource(train, "cuda", resident=resident)
        assert source.mode == ("resident" if resident else "prefetch")
        for (x, y, _), (cx, cy, _) in zip(source.batches(batches, draws), cpu, strict=True):
            assert x.is_cuda and torch.allclose(x.cpu(), cx, rtol=0, atol=1e-6)
            assert torch.equal(y.cpu(), cy)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_resident_array_leaves_the_device_with_its_array():
    import gc

    from ecgrepro import batches

    batches.clear_resident()
    a = np.random.default_rng(0).standard_normal((8, 12, 50)).astype(np.float32)
    first = batches.resident_parts([a], torch.device("cuda"))
    assert torch.equal(first[0].cpu(), torch.from_numpy(a)) and len(batches._RESIDENT) == 1
    assert batches.resident_parts([a], torch.device("cuda:0"))[0] is first[0]  # one copy
    del a, first
    gc.collect()
    assert not batches._RESIDENT  # a new array given the old id cannot find stale signals
