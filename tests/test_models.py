"""Zhang et al.'s ResNet-34: parameter count, state-dict names, shapes."""

import pytest
import torch

from ecgrepro.models import count_parameters, resnet34


@pytest.fixture(scope="module")
def model():
    return resnet34().eval()


def test_parameter_count(model):
    assert count_parameters(model) == 16_610_185


def test_state_dict_names_match_published_code(model):
    keys = list(model.state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    for name in [
        "layer1.0.conv1.weight",
        "layer1.0.bn1.running_var",
        "layer1.0.conv2.weight",
        "layer1.0.bn2.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.weight",
        "layer3.5.conv2.weight",
        "layer4.2.bn2.num_batches_tracked",
        "fc.weight",
        "fc.bias",
    ]:
        assert name in keys
    assert "layer1.0.downsample.0.weight" not in keys  # no projection where the shape is kept
    assert model.state_dict()["conv1.weight"].shape == (64, 12, 15)
    assert model.state_dict()["fc.weight"].shape == (9, 1024)


def test_checkpoint_round_trip(model, tmp_path):
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    other = resnet34()
    other.load_state_dict(torch.load(tmp_path / "ckpt.pt"), strict=True)


@pytest.mark.parametrize("n_samples", [1000, 2500, 15000])
def test_output_shape_any_length(model, n_samples):
    with torch.no_grad():
        out = model(torch.zeros(2, 12, n_samples))
    assert out.shape == (2, 9) and out.dtype == torch.float32


def test_layer4_shape(model):
    feats = {}
    model.layer4.register_forward_hook(lambda m, i, o: feats.setdefault("x", o))
    with torch.no_grad():
        model(torch.zeros(1, 12, 15000))
    assert feats["x"].shape == (1, 512, 469)  # 15000 / 32, rounded up


def test_constructor_records_input(model):
    m = resnet34(fs_hz=100, n_samples=1000)
    assert (m.fs_hz, m.n_samples) == (100, 1000)
