"""Figure 1 from the model object (#25, item 7): shapes, parameters, receptive fields."""

from __future__ import annotations

import torch

from ecgrepro import paper
from ecgrepro.architecture import architecture_table, paper_checks
from ecgrepro.models import count_parameters, resnet34


def test_the_table_has_the_models_shapes_and_parameters():
    model = resnet34()
    table = architecture_table(model).set_index("stage")
    assert list(table.quick_length) == [250, 250, 125, 63, 32, 1, 1]
    assert list(table.paper_length) == [3750, 3750, 1875, 938, 469, 1, 1]
    assert list(table.channels) == [64, 64, 128, 256, 512, 1024, 9]
    assert list(table.blocks) == [0, 3, 4, 6, 3, 0, 0]
    assert table.parameters.sum() == count_parameters(model) == 16_610_185
    assert count_parameters(model) == paper.FACTS["zhang_parameters"]
    # at 100 Hz every kernel spans five times the time it spans at 500 Hz
    assert (table.quick_rf_ms.dropna() == 5 * table.paper_rf_ms.dropna()).all()
    assert paper_checks(model, table.reset_index()).holds.all()


def test_the_receptive_fields_are_those_autograd_finds():
    """The input samples one output step of a stage depends on, found by its gradient."""
    torch.manual_seed(0)
    model = resnet34().eval()
    table = architecture_table(model).set_index("stage")
    n = 4000
    x = torch.randn(1, 12, n, requires_grad=True)
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outputs = {"stem": h}
    for name in ("layer1", "layer2", "layer3", "layer4"):
        h = getattr(model, name)(h)
        outputs[name] = h
    for name, out in outputs.items():
        x.grad = None
        out[0, :, out.shape[2] // 2].sum().backward(retain_graph=True)
        touched = torch.nonzero(x.grad[0].abs().sum(0)).flatten()
        span = int(touched.max() - touched.min() + 1)
        assert span == table.rf_samples[name], (name, span)
