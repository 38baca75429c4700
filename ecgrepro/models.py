"""Zhang et al.'s 1-D ResNet-34 for 12-lead ECG (16,610,185 parameters).

Architecture and state-dict names exactly as the published code (METHODS.md,
"Model"), so a checkpoint of that code loads unchanged with
``model.load_state_dict(torch.load(path, weights_only=True))``.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgrepro.config import CLASSES, LEADS


class BasicBlock1d(nn.Module):
    """Residual block: conv(k7, stride)-BN-ReLU-Dropout(0.2)-conv(k7)-BN, + shortcut, ReLU.

    Parameters
    ----------
    inplanes : int
        Input channels.
    planes : int
        Output channels.
    stride : int
        Stride of the first convolution (2 where a layer halves the length).
    downsample : torch.nn.Module, optional
        Shortcut projection (1x1 conv + BN) where the shape changes.
    """

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = nn.Conv1d(
            inplanes, planes, kernel_size=7, stride=stride, padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.2)
        self.conv2 = nn.Conv1d(planes, planes, kernel_size=7, stride=1, padding=3, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, inplanes, n) -> (batch, planes, ceil(n / stride))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.dropout(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet1d(nn.Module):
    """1-D ResNet with a concatenated average+max pooling head.

    Parameters
    ----------
    layers : sequence of 4 int
        Blocks per stage ([3, 4, 6, 3] for ResNet-34).
    input_channels : int
        Leads (12).
    num_classes : int
        Outputs (9 CPSC classes).
    fs_hz : float, optional
        Sampling frequency the model is trained at, Hz. Recorded only: the
        network is fully convolutional and accepts any input length.
    n_samples : int, optional
        Input length it is trained at, recorded likewise.

    Notes
    -----
    Input ``(batch, 12, n_samples)`` float32 in mV; output ``(batch, 9)``
    logits (the sigmoid is applied outside, as in the published code). The
    4th residual block is ``layer4`` (Grad-CAM's default layer).
    """

    def __init__(
        self,
        layers=(3, 4, 6, 3),
        input_channels: int = len(LEADS),
        num_classes: int = len(CLASSES),
        fs_hz: float | None = None,
        n_samples: int | None = None,
    ):
        super().__init__()
        self.fs_hz, self.n_samples = fs_hz, n_samples
        self.inplanes = 64
        self.conv1 = nn.Conv1d(input_channels, 64, kernel_size=15, stride=2, padding=7, bias=False)
        self.bn1 = nn.BatchNorm1d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.adaptiveavgpool = nn.AdaptiveAvgPool1d(1)
        self.adaptivemaxpool = nn.AdaptiveMaxPool1d(1)
        self.fc = nn.Linear(512 * BasicBlock1d.expansion * 2, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock1d.expansion:
            downsample = nn.Sequential(
                nn.Conv1d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm1d(planes),
            )
        stage = [BasicBlock1d(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        stage += [BasicBlock1d(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 12, n_samples) float32, mV -> logits (batch, 9)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        pooled = torch.cat((self.adaptiveavgpool(x), self.adaptivemaxpool(x)), dim=1)
        return self.fc(pooled.flatten(1))


def resnet34(
    fs_hz: float | None = None, n_samples: int | None = None, num_classes: int = len(CLASSES)
) -> ResNet1d:
    """Zhang et al.'s ResNet-34 (blocks [3, 4, 6, 3], 16,610,185 parameters for 9 classes).

    Parameters
    ----------
    fs_hz : float, optional
        Input sampling frequency, Hz (500 in the paper; recorded on the model).
    n_samples : int, optional
        Input length (15,000 in the paper; recorded on the model).
    num_classes : int
        Number of outputs.

    Returns
    -------
    ResNet1d
    """
    return ResNet1d((3, 4, 6, 3), fs_hz=fs_hz, n_samples=n_samples, num_classes=num_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LeadLSTM(nn.Module):
    """A small LSTM classifier over one lead (Companion B's kind of model; not in the main paper).

    The lead is average-pooled to ``rate_hz`` (100 Hz by default, whatever the
    input rate), read by a one-layer ``nn.LSTM``, and its last hidden state is
    mapped to the class logits. Leading zero-padding passes through the LSTM
    as zeros before the record starts, as in the ResNet's input.

    Parameters
    ----------
    fs_hz : float
        Input sampling frequency, Hz; must be a multiple of ``rate_hz``.
    lead : str
        The lead read (``"II"`` by default), one of :data:`ecgrepro.config.LEADS`.
    hidden : int
        LSTM hidden units.
    num_classes : int
        Outputs.
    rate_hz : float
        Rate the LSTM runs at, Hz.
    n_samples : int, optional
        Input length it is trained at (recorded only).

    Raises
    ------
    ValueError
        If ``lead`` is not a standard lead or ``fs_hz`` is not a multiple of ``rate_hz``.

    Notes
    -----
    Input ``(batch, 12, n_samples)`` float32 in mV (only ``lead`` is read);
    output ``(batch, num_classes)`` logits.
    """

    def __init__(
        self,
        fs_hz: float = 100.0,
        lead: str = "II",
        hidden: int = 64,
        num_classes: int = len(CLASSES),
        rate_hz: float = 100.0,
        n_samples: int | None = None,
    ):
        super().__init__()
        if lead not in LEADS:
            raise ValueError(f"lead must be one of {', '.join(LEADS)}, got {lead!r}")
        factor = fs_hz / rate_hz
        if factor < 1 or abs(factor - round(factor)) > 1e-9:
            raise ValueError(f"fs_hz ({fs_hz:g} Hz) must be a multiple of rate_hz ({rate_hz:g} Hz)")
        self.fs_hz, self.n_samples, self.lead = fs_hz, n_samples, LEADS.index(lead)
        self.pool = nn.AvgPool1d(int(round(factor))) if round(factor) > 1 else nn.Identity()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 12, n_samples) float32, mV -> logits (batch, num_classes)."""
        seq = self.pool(x[:, self.lead : self.lead + 1])  # (batch, 1, n_steps)
        _, (h, _) = self.lstm(seq.transpose(1, 2))
        return self.fc(h[-1])
