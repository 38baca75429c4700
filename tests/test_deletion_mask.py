"""Companion B's learned deletion mask, and the LSTM it was made for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ecgrepro.artifacts import artifact_key
from ecgrepro.explain.deletion_mask import (
    bin_grid,
    deletion_mask,
    lowpass,
    mask_penalties,
    top_share_jaccard,
    upsample,
    valid_bins,
)
from ecgrepro.models import LeadLSTM
from ecgrepro.pipeline import TrainingSpec, build_model, lstm_spec

FS = 100.0


class WindowModel(nn.Module):
    """Class 0's logit is the energy of lead V1 (index 6) in samples 400-439, and nothing else."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(8.0))

    def forward(self, x):
        logit = self.gain * ((x[:, 6, 400:440] ** 2).mean(-1) - 0.25)
        return torch.stack([logit, -logit], 1)


def _toy_records():
    t = np.arange(1000) / FS
    rng = np.random.default_rng(0)
    x = np.tile(0.2 * np.sin(2 * np.pi * 0.3 * t), (2, 12, 1)).astype(np.float32)
    x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    x[:, 6, 380:460] += np.sin(2 * np.pi * 12 * t[380:460]).astype(np.float32)  # a 12 Hz burst
    x[1, :, :300] = 0  # record 1: 7 s of signal after 3 s of front padding
    return x, np.array([1000, 700])


def test_the_mask_deletes_the_one_window_the_model_reads_and_keeps_the_rest():
    x, n_valid = _toy_records()
    model = WindowModel().eval()
    before = model.gain.detach().clone()
    r = deletion_mask(model, x, 0, FS, n_valid, l1=1.0, tv=0.5, n_iter=200)
    for i in range(2):
        sal = r["saliency"][i]
        outside = np.ones_like(sal, dtype=bool)
        outside[6, 390:450] = False  # the window, and a 40 ms bin each side (interpolation)
        assert sal[6, 400:440].mean() > 0.8
        assert sal[outside].max() < 0.1
        assert r["probability"][i] < 0.5 * r["probability_start"][i]
    assert np.all(r["saliency"][1, :, :300] == 0)  # nothing is "deleted" in the padding
    assert model.gain.requires_grad and torch.equal(model.gain, before)  # the model is left alone


def test_a_record_s_mask_does_not_depend_on_its_batch():
    x, n_valid = _toy_records()
    model = WindowModel().eval()
    together = deletion_mask(model, x, 0, FS, n_valid, n_iter=20, batch_size=2, seed=3)
    alone = deletion_mask(model, x, 0, FS, n_valid, n_iter=20, batch_size=1, seed=3)
    np.testing.assert_allclose(together["mask_bins"], alone["mask_bins"], atol=1e-5)


def test_l1_and_tv_against_hand_values():
    m = torch.tensor([[[1.0, 0.5, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])  # 1 record, 2 leads, 4 bins
    valid = torch.tensor([[False, True, True, True]])  # bin 0 lies in the padding
    l1, tv = mask_penalties(m, valid)
    # |1 - m| over the 3 valid bins of 2 leads: (0.5 + 0 + 1) / 6
    assert l1.item() == pytest.approx(1.5 / 6)
    # adjacent valid pairs (1,2) and (2,3): lead 0 gives 0.5 and 1, lead 1 gives 0: 1.5 / 4
    assert tv.item() == pytest.approx(1.5 / 4)
    _, tv2 = mask_penalties(m, valid, tv_beta=2.0)
    assert tv2.item() == pytest.approx((0.25 + 1.0) / 4)


def test_bins_are_aligned_to_the_end_of_the_input_and_skip_the_padding():
    assert bin_grid(1000, 100.0, 40.0) == (4, 250)
    assert bin_grid(10, 100.0, 40.0) == (4, 3)  # bins [-2, 2), [2, 6), [6, 10)
    np.testing.assert_array_equal(valid_bins(np.array([5, 10, 8]), 10, 4),
                                  [[False, True, True], [True, True, True], [False, True, True]])
    m = torch.tensor([[[0.0, 1.0, 0.0]]])
    up = upsample(m, 10, 4)[0, 0].numpy()
    assert up.shape == (10,)
    # bin centres at 1.5, 5.5, 9.5 of the 12-sample grid, whose last 10 samples are kept
    np.testing.assert_allclose(up[3:5], 0.875)
    assert up[0] < up[3] and up[-1] < up[4]


def test_the_blur_removes_the_waves_keeps_the_baseline_and_the_padding_at_zero():
    t = np.arange(1000) / FS
    baseline = 0.3 * np.sin(2 * np.pi * 0.2 * t)
    x = np.tile(baseline + np.sin(2 * np.pi * 15 * t), (1, 12, 1)).astype(np.float32)
    x[0, :, :200] = 0
    out = lowpass(x, FS, 2.0, np.array([800]))
    assert np.all(out[0, :, :200] == 0)
    assert np.abs(out[0, 0, 300:900] - baseline[300:900]).max() < 0.05
    with pytest.raises(ValueError, match="cutoff_hz"):
        lowpass(x, FS, 60.0)


def test_bad_input_is_refused():
    model = WindowModel().eval()
    x, _ = _toy_records()
    x[0, 0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        deletion_mask(model, x, 0, FS)
    with pytest.raises(ValueError, match="shape"):
        deletion_mask(model, x[0], 0, FS)


def test_top_share_jaccard():
    a = np.arange(100.0)
    assert top_share_jaccard(a, a) == 1.0
    assert top_share_jaccard(a, a[::-1]) == 0.0
    relu_map = np.zeros(100)
    relu_map[[10, 11]] = 1.0  # 98% zeros: only the two non-zero samples are "top"
    b = np.zeros(100)
    b[[11, 50]] = 1.0
    assert top_share_jaccard(relu_map, b) == pytest.approx(1 / 3)
    assert np.isnan(top_share_jaccard(np.ones(100), a))
    per_lead = np.zeros((12, 100))
    per_lead[3, 95:] = 1.0
    assert top_share_jaccard(per_lead, a) == 1.0  # the lead maximum, against a per-time map


def test_the_lstm_reads_only_its_lead_and_names_a_bad_one():
    torch.manual_seed(0)
    model = LeadLSTM(500.0, "II", hidden=8).eval()
    x = torch.randn(2, 12, 1000)
    y = x.clone()
    y[:, [0, 2, 7]] += 5.0
    with torch.no_grad():
        assert model(x).shape == (2, 9)
        assert torch.equal(model(x), model(y))
        y[:, 1] += 1.0
        assert not torch.equal(model(x), model(y))
    with pytest.raises(ValueError, match="lead must be one of"):
        LeadLSTM(100.0, "X")
    with pytest.raises(ValueError, match="multiple"):
        LeadLSTM(250.0)


def test_architectures_and_their_artifact_keys():
    assert isinstance(build_model("lstm_V1", 100.0, 1000, 5), LeadLSTM)
    assert build_model("resnet34", 100.0, 1000, 5).fc.out_features == 5
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("transformer", 100.0, 1000, 9)
    spec = lstm_spec("II", epochs=2)
    assert spec.name == spec.arch == "lstm_II" and spec.train_on == ("cpsc", "ptbxl")

    class Fake:
        data_key, fs_hz, n_samples = "k", 100.0, 1000

    data = {"cpsc": Fake(), "ptbxl": Fake()}
    resnet = TrainingSpec("x", ("cpsc", "ptbxl"), epochs=2, lr=1e-3, augment=("ptbxl",))
    assert artifact_key(resnet, data, "cpu") != artifact_key(
        TrainingSpec(**{**resnet.__dict__, "arch": "lstm_II"}), data, "cpu"
    )
