"""The paper's Figure 1 from the model object: stages, shapes, parameters, receptive fields.

The paper (section 4.2) describes Zhang et al.'s network in words and draws it
by hand. Here the table and the drawing come from :func:`ecgrepro.models.resnet34`
itself: each stage's output shape under the ``quick`` and the ``paper`` input,
its parameters, and the receptive field of one of its output steps, in samples
and in ms at 100 and 500 Hz (at 100 Hz every kernel spans five times the time it
spans at 500 Hz). :func:`paper_checks` holds the paper's description against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecgrepro.models import BasicBlock1d, ResNet1d

#: The inputs the book runs at: name -> (fs in Hz, samples).
INPUTS = {"quick": (100.0, 1000), "paper": (500.0, 15000)}

#: The model's stages in forward order, as attribute names of :class:`ResNet1d`.
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "pool", "fc")


def _stage_modules(model: ResNet1d) -> dict[str, list[nn.Module]]:
    return {
        "stem": [model.conv1, model.bn1, model.relu, model.maxpool],
        **{f"layer{i}": [getattr(model, f"layer{i}")] for i in range(1, 5)},
        "pool": [model.adaptiveavgpool, model.adaptivemaxpool],
        "fc": [model.fc],
    }


def _walk(module: nn.Module, rf: int, jump: int) -> tuple[int, int]:
    """Receptive field and jump (input samples per output step) after ``module``'s main path."""
    if isinstance(module, BasicBlock1d):  # the residual branch; the 1x1 shortcut spans less
        for conv in (module.conv1, module.conv2):
            rf, jump = _walk(conv, rf, jump)
        return rf, jump
    if isinstance(module, nn.Sequential):
        for m in module:
            rf, jump = _walk(m, rf, jump)
        return rf, jump
    if isinstance(module, (nn.Conv1d, nn.MaxPool1d)):
        k = module.kernel_size[0] if isinstance(module.kernel_size, tuple) else module.kernel_size
        s = module.stride[0] if isinstance(module.stride, tuple) else module.stride
        d = module.dilation[0] if isinstance(module.dilation, tuple) else module.dilation
        return rf + (k - 1) * d * jump, jump * s
    return rf, jump


def _count(modules: list[nn.Module], kind) -> int:
    return sum(isinstance(m, kind) for top in modules for m in top.modules())


def architecture_table(model: ResNet1d, inputs: dict | None = None) -> pd.DataFrame:
    """One row per stage of the network, from the model object (the paper's Figure 1).

    Parameters
    ----------
    model : ecgrepro.models.ResNet1d
        Left unchanged (its mode is restored).
    inputs : dict of str -> (float, int), optional
        Input name -> (fs in Hz, samples); default :data:`INPUTS`.

    Returns
    -------
    pandas.DataFrame
        Columns ``stage``, ``blocks`` (residual blocks), ``convolutions`` (on the
        main path; the 1x1 shortcut convolutions apart in ``shortcut_convolutions``),
        ``channels`` (the pooled stage: average and max concatenated),
        ``parameters``, ``rf_samples`` and ``step_samples`` (receptive field and
        stride of one output step, in input samples), then per input
        ``<name>_length`` (output steps), ``<name>_rf_ms`` and ``<name>_step_ms``.
        The pooled and output stages see the whole input (``rf_samples`` empty).
    """
    inputs = inputs or INPUTS
    stages = _stage_modules(model)
    lengths = {}
    was_training = model.training
    model.eval()
    try:
        for name, (_, n) in inputs.items():
            shapes = {}
            hooks = [
                mods[-1].register_forward_hook(
                    lambda m, i, o, stage=stage, shapes=shapes: shapes.__setitem__(
                        stage, tuple(o.shape)
                    )
                )
                for stage, mods in stages.items()
            ]
            try:
                with torch.no_grad():
                    model(
                        torch.zeros(1, model.conv1.in_channels, n, device=model.conv1.weight.device)
                    )
            finally:
                for h in hooks:
                    h.remove()
            lengths[name] = shapes
    finally:
        model.train(was_training)
    rows, rf, jump = [], 1, 1
    for stage, mods in stages.items():
        for m in mods:
            rf, jump = _walk(m, rf, jump)
        local = stage not in ("pool", "fc")
        row = {
            "stage": stage,
            "blocks": _count(mods, BasicBlock1d),
            "convolutions": _count(mods, nn.Conv1d) - _shortcuts(mods),
            "shortcut_convolutions": _shortcuts(mods),
            "channels": lengths[next(iter(inputs))][stage][1] * (2 if stage == "pool" else 1),
            "parameters": sum(p.numel() for m in mods for p in m.parameters()),
            "rf_samples": rf if local else np.nan,
            "step_samples": jump if local else np.nan,
        }
        for name, (fs, _) in inputs.items():
            shape = lengths[name][stage]
            row[f"{name}_length"] = shape[2] if len(shape) == 3 else 1
            row[f"{name}_rf_ms"] = 1000 * rf / fs if local else np.nan
            row[f"{name}_step_ms"] = 1000 * jump / fs if local else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _shortcuts(mods: list[nn.Module]) -> int:
    return sum(
        isinstance(m, nn.Conv1d) and m.kernel_size[0] == 1 for top in mods for m in top.modules()
    )


def paper_checks(model: ResNet1d, table: pd.DataFrame) -> pd.DataFrame:
    """The paper's description of the network (section 4.2), point by point, against the model.

    Parameters
    ----------
    model : ecgrepro.models.ResNet1d
    table : pandas.DataFrame
        :func:`architecture_table` of ``model``.

    Returns
    -------
    pandas.DataFrame
        ``paper`` (what the text says), ``model`` (what the object has), ``holds`` (bool)
        and ``note``.
    """
    blocks = [b for b in model.modules() if isinstance(b, BasicBlock1d)]
    block = blocks[0]
    layers = int(table.convolutions.sum()) + int(table.stage.eq("fc").sum())
    branch = [m for name, m in block.named_children() if name != "downsample"]
    parts = {
        "convolutions": sum(isinstance(m, nn.Conv1d) for m in branch),
        "batch norms": sum(isinstance(m, nn.BatchNorm1d) for m in branch),
        "dropouts": sum(isinstance(m, nn.Dropout) for m in branch),
    }
    per_stage = [int(b) for b in table.blocks[table.blocks > 0]]
    stages = len(per_stage)
    relu_calls = []  # the block's one ReLU module, called once per use
    hook = block.relu.register_forward_hook(lambda *_: relu_calls.append(1))
    was_training = block.training
    try:
        with torch.no_grad():
            x = torch.zeros(1, block.conv1.in_channels, 16, device=block.conv1.weight.device)
            block.eval()(x)
    finally:
        hook.remove()
        block.train(was_training)
    pooled = isinstance(model.adaptiveavgpool, nn.AdaptiveAvgPool1d) and isinstance(
        model.adaptivemaxpool, nn.AdaptiveMaxPool1d
    )
    concatenated = model.fc.in_features == 2 * int(table.set_index("stage").channels["layer4"])
    return pd.DataFrame(
        [
            {
                "paper": "34 layers",
                "model": f"{layers}: 1 stem convolution, {layers - 2} in residual blocks, 1 linear",
                "holds": layers == 34,
                "note": "the 3 shortcut 1x1 convolutions are not counted, as in ResNet-34",
            },
            {
                "paper": "4 stacked residual blocks",
                "model": f"{stages} stages of {', '.join(map(str, per_stage))} blocks",
                "holds": stages == 4,
                "note": "the text's 4 'blocks' are 4 stages of 16 residual blocks in all",
            },
            {
                "paper": "each of two convolutions, two batch norms, a dropout, two ReLUs",
                "model": f"{parts['convolutions']} convolutions (kernel 7), "
                f"{parts['batch norms']} batch norms, {parts['dropouts']} dropout "
                f"(p = {block.dropout.p:g}), ReLU after the first batch norm and after the sum "
                f"(one module called {len(relu_calls)} times)",
                "holds": (parts["convolutions"], parts["batch norms"], parts["dropouts"])
                == (2, 2, 1)
                and len(relu_calls) == 2,
                "note": "",
            },
            {
                "paper": "pooled, concatenated, sigmoid",
                "model": "global average and global max pooling of layer4, concatenated (1,024), "
                f"linear to {model.fc.out_features}; the sigmoid is applied outside the model",
                "holds": pooled and concatenated,
                "note": "as Zhang et al.'s code: the loss takes logits (BCEWithLogits)",
            },
        ]
    )


def architecture_figure(table: pd.DataFrame, total_parameters: int, inputs: dict | None = None):
    """The network as a chain of boxes, one per stage, with its shapes and receptive fields.

    ``table`` is :func:`architecture_table`'s for ``inputs`` (default :data:`INPUTS`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    names = [c.removesuffix("_length") for c in table.columns if c.endswith("_length")]
    fig, ax = plt.subplots(figsize=(13, 2.9))
    ax.set_axis_off()
    n = len(table) + 1
    width = 1.0 / n
    labels = ["input\n12 leads"] + [
        f"{r.stage}\n"
        + (f"{r.blocks} blocks\n" if r.blocks else "")
        + f"{r.channels} ch\n{r.parameters:,} par."
        for r in table.itertuples()
    ]
    inputs = inputs or INPUTS

    def detail(r) -> str:
        steps = "\n".join(
            f"{nm}: {n:,} step{'s' if n > 1 else ''}"
            for nm, n in ((nm, getattr(r, f"{nm}_length")) for nm in names)
        )
        if not np.isfinite(r.rf_samples):
            return steps + "\nsees the whole input"
        ms = "\n".join(
            f"{getattr(r, f'{nm}_rf_ms'):,.0f} ms at {inputs[nm][0]:g} Hz" for nm in names
        )
        return f"{steps}\nRF {r.rf_samples:,.0f} samples:\n{ms}"

    details = ["\n".join(f"{nm}: {inputs[nm][1]:,} samples" for nm in names)] + [
        detail(r) for r in table.itertuples()
    ]
    for i, (label, detail) in enumerate(zip(labels, details, strict=True)):
        x = i * width
        ax.add_patch(
            plt.Rectangle((x + 0.012, 0.56), width - 0.024, 0.42, fc="#dbe9f6", ec="#2b5d8a", lw=1)
        )
        ax.text(x + width / 2, 0.77, label, ha="center", va="center", fontsize=9)
        ax.text(x + width / 2, 0.52, detail, ha="center", va="top", fontsize=7.5)
        if i:
            ax.annotate("", (x + 0.012, 0.77), (x - 0.012, 0.77), arrowprops={"arrowstyle": "->"})
    ax.set_xlim(0, 1)
    ax.set_ylim(0.2, 1)
    ax.set_title(
        f"ResNet-34 as ecgrepro.models builds it: {total_parameters:,} parameters; below each "
        "stage, its output length per input and the receptive field (RF) of one output step",
        fontsize=9.5,
    )
    fig.tight_layout()
    return fig
