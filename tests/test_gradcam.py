"""Grad-CAM against captum, its shapes and threshold, a model with one known channel,
the case selection rules and the QRS mass share on real records, padding ignored."""

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from ecgrepro.config import CLASSES
from ecgrepro.explain import (
    captum_grad_cam,
    case_eligibility,
    case_qrs,
    grad_cam,
    qrs_mask,
    qrs_mass_share,
    qrs_mass_table,
    select_cases,
    shifted_mass_shares,
    threshold_percentile,
)
from ecgrepro.models import resnet34


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = resnet34(fs_hz=100, n_samples=1000).eval()
    x = torch.randn(4, 12, 1000, generator=torch.Generator().manual_seed(1))
    return model, x


@pytest.mark.parametrize("target", [3, 4])
def test_grad_cam_equals_captum_layergradcam(resnet, target):
    model, x = resnet
    ours = grad_cam(model, x, target, layer="layer4", batch_size=3)
    ref = LayerGradCam(model, model.layer4).attribute(x, target=target, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (x.shape[-1],), interpolate_mode="linear")
    assert ours.shape == (4, 1000)
    np.testing.assert_allclose(ours, ref[:, 0].detach().numpy(), rtol=1e-4, atol=1e-6)
    assert ours.max() > 0  # the comparison is not between two zero maps
    # the wrapper the book uses gives captum's maps
    np.testing.assert_array_equal(captum_grad_cam(model, x, target), ref[:, 0].detach().numpy())


def test_grad_cam_per_record_targets_and_lengths(resnet):
    model, x = resnet
    both = grad_cam(model, x[:2], np.array([3, 4]))
    np.testing.assert_allclose(both[0], grad_cam(model, x[:1], 3)[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(both[1], grad_cam(model, x[1:2], 4)[0], rtol=1e-4, atol=1e-6)
    for n in (997, 1500):  # any input length: the map is upsampled to it
        xn = torch.randn(2, 12, n)
        for variant in ("time", "published"):
            cam = grad_cam(model, xn, 0, variant=variant)
            assert cam.shape == (2, n) and cam.dtype == np.float32 and (cam >= 0).all()


def test_grad_cam_rejects_bad_calls(resnet):
    model, x = resnet
    with pytest.raises(ValueError, match="variant"):
        grad_cam(model, x, 0, variant="channels")
    with pytest.raises(ValueError, match="class indices"):
        grad_cam(model, x, 9)
    with pytest.raises(ValueError, match="class indices"):
        grad_cam(model, x, 1.5)
    with pytest.raises(ValueError, match="class indices"):
        grad_cam(model, x, [0, 1])
    with pytest.raises(ValueError, match="shape"):
        grad_cam(model, x[0], 0)
    with pytest.raises(AttributeError):
        grad_cam(model, x, 0, layer="layer5")
    model.layer4.train()  # one submodule left in training mode is enough to refuse
    try:
        with pytest.raises(ValueError, match="eval mode"):
            grad_cam(model, x, 0)
    finally:
        model.eval()


class OneChannel(nn.Module):
    """``layer4`` copies lead I into channel 2 of 4 and lead II into channel 1; the head
    averages over time and only channel 2 carries class 0's evidence (channel 1 is a
    distractor: active, but with zero weight)."""

    def __init__(self):
        super().__init__()
        self.layer4 = nn.Conv1d(12, 4, kernel_size=1, bias=False)
        self.fc = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.layer4.weight.zero_()
            self.layer4.weight[2, 0, 0] = 1.0
            self.layer4.weight[1, 1, 0] = 1.0
            self.fc.weight.zero_()
            self.fc.weight[0, 2] = 1.0

    def forward(self, x):
        return self.fc(self.layer4(x).mean(dim=2))


@pytest.mark.parametrize("where", [150, 700])
def test_single_active_channel_map_peaks_where_it_fires(where):
    model = OneChannel().eval()
    x = torch.zeros(1, 12, 1000)
    x[0, 0, where - 10 : where + 11] = torch.hann_window(21, periodic=False)
    x[0, 1, 880:921] = 2 * torch.hann_window(41, periodic=False)  # the distractor fires elsewhere
    cam = grad_cam(model, x, 0)[0]
    assert abs(int(cam.argmax()) - where) <= 1
    assert cam[np.abs(np.arange(1000) - where) > 15].max() == 0  # nothing outside the burst
    # the published pooling gives one value per channel, wherever the bursts are, and its
    # channel-blind weights rank the channels by activation: the distractor (channel 1 of 4,
    # centred at 1.5 / 4 of the record) outweighs the channel that carries the class
    pub = grad_cam(model, x, 0, variant="published")[0]
    assert 300 <= pub.argmax() <= 450


def test_published_variant_is_the_channel_map_stretched(resnet):
    model, x = resnet
    pub = grad_cam(model, x[:1], 1, variant="published")[0]
    acts = {}
    hook = model.layer4.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    xx = x[:1].clone().requires_grad_(True)
    out = model(xx)[0, 1]
    hook.remove()
    (g,) = torch.autograd.grad(out, acts["a"])
    direct = torch.relu((g.mean(dim=(0, 1)) * acts["a"]).mean(dim=2))  # (1, 512)
    stretched = torch.nn.functional.interpolate(direct[:, None], size=1000, mode="linear")
    np.testing.assert_allclose(pub, stretched[0, 0].detach().numpy(), rtol=1e-4, atol=1e-7)


def test_threshold_keeps_the_stated_share():
    rng = np.random.default_rng(0)
    maps = rng.random((5, 1000)).astype(np.float32)
    for q in (95.0, 80.0):
        kept = (threshold_percentile(maps, q) > 0).sum(axis=1)
        assert np.all(np.abs(kept - (100 - q) / 100 * 1000) <= 1)
    kept_values = threshold_percentile(maps, 95)
    assert np.array_equal(kept_values[kept_values > 0], maps[kept_values > 0])
    sparse = np.zeros((1, 100))
    sparse[0, :3] = 1.0  # the 95th percentile is 0: zeros must not be kept
    assert (threshold_percentile(sparse) > 0).sum() == 3
    with pytest.raises(ValueError, match="percentile"):
        threshold_percentile(maps, 120)
    with pytest.raises(ValueError, match="NaN"):
        threshold_percentile(np.full((1, 10), np.nan))


def test_qrs_mass_share():
    mask = np.zeros(100, bool)
    mask[10:20] = True
    assert qrs_mass_share(np.ones(100), mask) == pytest.approx(0.1)
    cam = np.zeros(100)
    cam[12] = 3.0
    assert qrs_mass_share(cam, mask) == 1.0
    assert np.isnan(qrs_mass_share(np.zeros(100), mask))
    with pytest.raises(ValueError, match="shape"):
        qrs_mass_share(np.ones(99), mask)


def test_shifted_mass_shares_match_direct_shifts():
    rng = np.random.default_rng(0)
    cam, mask = rng.random(200), rng.random(200) < 0.2
    null = shifted_mass_shares(cam, mask)
    direct = [qrs_mass_share(np.roll(cam, k), mask) for k in range(200)]
    np.testing.assert_allclose(null, direct, atol=1e-12)
    assert null[0] == pytest.approx(qrs_mass_share(cam, mask))
    assert np.isnan(shifted_mass_shares(np.zeros(200), mask)).all()


def _labels(*names):
    y = np.zeros(9)
    y[[CLASSES.index(n) for n in names]] = 1
    return y


def test_select_cases_rules_and_fallbacks():
    y = np.array(
        [
            _labels("LBBB"),
            _labels("LBBB"),
            _labels("RBBB"),
            _labels("SNR"),
            _labels("SNR"),
            _labels("AF"),
        ]
    )
    s = np.full((6, 9), 0.1)
    s[0, 3], s[1, 3] = 0.9, 0.95  # both correct LBBB: the more confident wins
    s[2, 4] = 0.3  # RBBB missed (threshold 0.5): fallback
    s[3, 1], s[4, 1], s[5, 1] = 0.7, 0.6, 0.99  # AF on SNR records; the true AF record is excluded
    cases = select_cases(y, s, np.full(9, 0.5), records=list("abcdef"))
    assert cases.loc["lbbb", "record"] == "b" and not cases.loc["lbbb", "fallback"]
    assert cases.loc["rbbb", "record"] == "c" and cases.loc["rbbb", "fallback"]
    assert cases.loc["snr_as_af", "record"] == "d" and cases.loc["snr_as_af", "target"] == "AF"
    s[3, 0] = 0.9  # d is also called SNR: e, called AF only, is preferred
    assert select_cases(y, s, np.full(9, 0.5)).loc["snr_as_af", "record"] == "4"
    s[3, 1] = s[4, 1] = 0.2  # no SNR record predicted AF, but the LBBB record b is
    s[1, 1] = 0.8
    cases = select_cases(y, s, np.full(9, 0.5))
    assert cases.loc["snr_as_af", "row"] == 1 and cases.loc["snr_as_af", "fallback"]
    s[1, 1] = 0.1  # no SNR predicted AF, no false AF: the closest SNR record
    cases = select_cases(y, s, np.full(9, 0.5))
    assert (
        cases.loc["snr_as_af", "fallback"] and "highest AF score" in cases.loc["snr_as_af", "rule"]
    )
    y[1] = _labels("LBBB", "RBBB")  # b also labelled RBBB: a, the pure LBBB, is preferred
    assert select_cases(y, s, np.full(9, 0.5)).loc["lbbb", "row"] == 0
    none = select_cases(np.zeros((2, 9)), np.zeros((2, 9)), np.full(9, 0.5))
    assert (none.row == -1).all()


def test_select_cases_breaks_ties_by_seed():
    y = np.tile(_labels("LBBB"), (50, 1))
    s = np.ones((50, 9))  # saturated sigmoids: all tie
    picks = {select_cases(y, s, np.full(9, 0.5), seed=k).loc["lbbb", "row"] for k in range(10)}
    assert len(picks) > 1
    assert select_cases(y, s, np.full(9, 0.5), seed=3).equals(
        select_cases(y, s, np.full(9, 0.5), seed=3)
    )


def test_qrs_mask_on_real_records(data_root):
    from ecgrepro.data import load_ptbxl

    ds = load_ptbxl(data_root, 100, 1000)
    for rec, sig in zip(ds.records.record[:5], ds.signals[:5], strict=True):
        mask, n_leads, n_qrs = qrs_mask(sig, 100.0, str(rec))
        assert n_leads == 12
        assert 6 <= n_qrs <= 20  # 10 s of ECG at 36-120 beats/min
        assert 0.03 < mask.mean() < 0.4  # QRS complexes, not the whole record
        single, _, _ = qrs_mask(sig[1], 100.0, str(rec))  # one lead works too
        assert single.shape == (1000,) and single.any()
    flat_lead = np.array(ds.signals[0])
    flat_lead[3] = 0.0  # one flat lead: skipped, the other 11 vote
    assert qrs_mask(flat_lead, 100.0)[1] == 11
    with pytest.raises(ValueError, match="rec-x: QRS delineation failed in every lead"):
        qrs_mask(np.zeros((12, 1000)), 100.0, "rec-x")
    with pytest.raises(ValueError, match="rec-y: signal holds NaN"):
        qrs_mask(np.full(1000, np.nan), 100.0, "rec-y")


def test_qrs_mass_table_reports_a_bad_record(data_root):
    from ecgrepro.data import load_ptbxl

    ds = load_ptbxl(data_root, 100, 1000)
    signals = np.array(ds.signals[:2])
    signals[1] = 0.0  # a flat record: reported, not dropped
    cases = select_cases(np.zeros((2, 9)), np.zeros((2, 9)), np.ones(9), records=["r0", "r1"])
    cases = cases.iloc[:2].assign(record=["r0", "r1"])
    maps = {"time": np.random.default_rng(0).random((2, 1000))}
    qrs = case_qrs(cases, signals, 100.0)
    assert qrs[qrs.record == "r1"]["mask"].isna().all()  # reported, not raised
    table = qrs_mass_table(qrs, maps)
    assert len(table) == 4  # 2 cases x 1 variant x (raw, thresholded)
    assert table[table.record == "r0"].qrs_mass_share.notna().all()
    bad = table[table.record == "r1"]
    assert (
        bad.qrs_mass_share.isna().all()
        and bad.note.str.contains("r1: QRS delineation failed").all()
    )


def test_select_cases_prefers_few_predicted_classes_and_supporting_statements():
    y = np.array([_labels("LBBB"), _labels("LBBB"), _labels("LBBB")])
    s = np.full((3, 9), 0.1)
    s[:, 3] = [0.99, 0.8, 0.7]
    s[0, [0, 4, 7]] = 0.9  # the most confident LBBB is also called SNR, RBBB and STD
    cases = select_cases(y, s, np.full(9, 0.5))
    assert cases.loc["lbbb", "row"] == 1  # called LBBB alone, then by score
    # raw statements: only the third record carries CLBBB (the others, say, LAFB)
    eligible = case_eligibility(
        [{"LAFB": 100.0}, {"LAFB": 100.0, "SR": 0.0}, {"CLBBB": 100.0, "SR": 0.0}],
        [["LBBB"]] * 3,
    )
    assert eligible["lbbb"].tolist() == [False, False, True]
    cases = select_cases(y, s, np.full(9, 0.5), eligible=eligible)
    assert cases.loc["lbbb", "row"] == 2 and not cases.loc["lbbb", "fallback"]
    assert "raw statements support it" in cases.loc["lbbb", "rule"]
    # no supporting record: the labels' choice, flagged as a fallback
    none = {k: np.zeros(3, bool) for k in eligible}
    cases = select_cases(y, s, np.full(9, 0.5), eligible=none)
    assert cases.loc["lbbb", "row"] == 1 and cases.loc["lbbb", "fallback"]
    # a fallback goes by score alone, as its text says
    y2 = np.array([_labels("LBBB"), _labels("LBBB")])
    s2 = np.full((2, 9), 0.1)
    s2[:, 3] = [0.45, 0.2]  # both missed (threshold 0.5)
    s2[0, [0, 4]] = 0.9  # the higher-scored one is also called SNR and RBBB
    missed = select_cases(y2, s2, np.full(9, 0.5))
    assert missed.loc["lbbb", "row"] == 0 and "highest LBBB score" in missed.loc["lbbb", "rule"]
    with pytest.raises(ValueError, match="eligible\\['lbbb'\\] has shape"):
        select_cases(y, s, np.full(9, 0.5), eligible={k: np.ones(2, bool) for k in eligible})


def test_case_eligibility_reads_raw_statements_and_cpsc_labels():
    codes = [
        {"NORM": 100.0, "SR": 0.0},  # supports SNR
        {"NORM": 100.0, "AFIB": 0.0},  # AF at likelihood 0: not an SNR record
        {"NORM": 100.0, "SARRH": 0.0},  # sinus arrhythmia: excluded too
        {"CRBBB": 100.0, "SR": 0.0},
        None,  # a CPSC record, judged by its own label
        {"NORM": 100.0, "SBRAD": 0.0},  # not in sinus rhythm (SR): excluded
    ]
    labels = [["SNR"], ["SNR"], ["SNR"], ["RBBB"], ["SNR"], ["SNR"]]
    e = case_eligibility(codes, labels)
    assert e["snr_as_af"].tolist() == [True, False, False, True, True, False]
    assert e["rbbb"].tolist() == [False, False, False, True, False, False]
    assert e["lbbb"].tolist() == [False] * 6
    with pytest.raises(ValueError, match="2 statement sets but 1 label lists"):
        case_eligibility(codes[:2], labels[:1])


def test_mass_statistics_ignore_the_padding():
    # a padded toy record: 40 samples of padding, then 100 of signal
    mask = np.zeros(140, bool)
    mask[50:60] = True
    cam = np.ones(140)
    cam[:40] = 50.0  # much mass on the padding: it must not count
    assert qrs_mass_share(cam, mask, n_valid=100) == pytest.approx(0.1)
    assert qrs_mass_share(cam, mask) < 0.1  # what counting it would give
    null = shifted_mass_shares(cam, mask, n_valid=100)
    assert null.shape == (100,)  # lags within the valid part only
    rng = np.random.default_rng(0)
    cam[40:] = rng.random(100)
    null = shifted_mass_shares(cam, mask, n_valid=100)
    direct = [qrs_mass_share(np.roll(cam[40:], k), mask[40:]) for k in range(100)]
    np.testing.assert_allclose(null, direct, atol=1e-12)  # the padding is never shifted in
    kept = threshold_percentile(cam, 95, n_valid=100)
    assert not kept[:40].any() and (kept[40:] > 0).sum() == 5
    assert np.isnan(qrs_mass_share(np.r_[np.ones(40), np.zeros(100)], mask, n_valid=100))
    with pytest.raises(ValueError, match="n_valid"):
        qrs_mass_share(cam, mask, n_valid=0)


def test_qrs_mass_table_on_a_padded_record_equals_the_unpadded_one(data_root):
    from ecgrepro.data import load_ptbxl

    ds = load_ptbxl(data_root, 100, 1000)
    signal = np.array(ds.signals[:1])
    padded = np.concatenate([np.zeros((1, 12, 500), np.float32), signal], axis=2)
    cases = select_cases(np.zeros((1, 9)), np.zeros((1, 9)), np.ones(9), records=["r0"])
    cases = cases.iloc[:1]
    cam = np.random.default_rng(0).random((1, 1000))
    cam_padded = np.concatenate([np.full((1, 500), 10.0), cam], axis=1)  # mass on the padding
    plain = qrs_mass_table(case_qrs(cases, signal, 100.0), {"time": cam})
    qrs = case_qrs(cases, padded, 100.0, n_valid=np.array([1000]))
    assert not qrs.iloc[0]["mask"][:500].any() and qrs.iloc[0]["n_valid"] == 1000
    table = qrs_mass_table(qrs, {"time": cam_padded})
    columns = ["qrs_time_share", "qrs_mass_share", "enrichment", "shift_p", "qrs_complexes"]
    pd.testing.assert_frame_equal(plain[columns], table[columns])
    assert (table.n_valid == 1000).all() and (plain.n_valid == 1000).all()
