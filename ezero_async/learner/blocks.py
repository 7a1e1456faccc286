"""Layers the EfficientZero networks are built from: residual blocks, the Atari down-sampling
stem and BatchNorm MLPs. Every BatchNorm takes the model's momentum (PyTorch convention)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm always follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def halve(size: int) -> int:
    """Spatial size after a 3x3 stride-2 conv or pool with padding 1: ceil(size / 2)."""
    return (size - 1) // 2 + 1


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a skip, then ReLU. The skip is a strided 3x3 conv when the
    block changes channels or resolution (EfficientZero's down-sampling block)."""

    def __init__(self, in_channels: int, out_channels: int, momentum: float, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels, momentum=momentum)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=momentum)
        self.skip = conv3x3(in_channels, out_channels, stride) if (stride != 1 or in_channels != out_channels) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float[B, Cin, H, W] -> float[B, Cout, H', W']."""
        identity = x if self.skip is None else self.skip(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


def minmax_scale(latent: torch.Tensor) -> torch.Tensor:
    """Scale each sample of latent float[B, ...] to [0, 1] (MuZero's hidden-state normalisation)."""
    flat = latent.flatten(1)
    low, high = torch.aminmax(flat, dim=1, keepdim=True)  # one pass (search calls pay per op)
    return ((flat - low) / (high - low).clamp_min(1e-5)).view_as(latent)


def residual_tower(channels: int, num_blocks: int, momentum: float) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels, channels, momentum) for _ in range(num_blocks)])


class AtariStem(nn.Module):
    """EfficientZero's down-sampling stem, 96x96 -> 6x6: conv 3x3 s2 (C/2) -> residual ->
    residual s2 (C) -> residual -> avg-pool s2 -> residual -> avg-pool s2."""

    def __init__(self, in_channels: int, channels: int, momentum: float) -> None:
        super().__init__()
        half = max(1, channels // 2)
        self.conv = conv3x3(in_channels, half, stride=2)
        self.bn = nn.BatchNorm2d(half, momentum=momentum)
        self.block1 = ResidualBlock(half, half, momentum)
        self.down = ResidualBlock(half, channels, momentum, stride=2)
        self.block2 = ResidualBlock(channels, channels, momentum)
        self.pool1 = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
        self.block3 = ResidualBlock(channels, channels, momentum)
        self.pool2 = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)

    @staticmethod
    def output_size(size: int) -> int:
        """Spatial size after the stem (four halvings): 96 -> 6."""
        for _ in range(4):
            size = halve(size)
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float[B, Cin, H, W] -> float[B, C, H/16, W/16] (rounded up at each halving)."""
        x = F.relu(self.bn(self.conv(x)))
        x = self.block1(x)
        x = self.down(x)
        x = self.block2(x)
        x = self.pool1(x)
        x = self.block3(x)
        return self.pool2(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU}
"""model.head_activation -> module class."""


def bn_mlp(in_size: int, hidden: Sequence[int], out_size: int, momentum: float, *,
           zero_last: bool = False, out_norm: bool = False, out_relu: bool = False,
           activation: str = "relu") -> nn.Sequential:
    """Linear-BN-activation for each hidden size, then Linear to out_size (optionally followed
    by BN and ReLU). zero_last initialises the output Linear to zero (EfficientZero's heads
    start by predicting the uniform distribution)."""
    layers: list[nn.Module] = []
    size = in_size
    for width in hidden:
        layers += [nn.Linear(size, width), nn.BatchNorm1d(width, momentum=momentum), ACTIVATIONS[activation]()]
        size = width
    last = nn.Linear(size, out_size)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    if out_norm:
        layers.append(nn.BatchNorm1d(out_size, momentum=momentum))
    if out_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ConvHead(nn.Module):
    """1x1 conv to a few channels -> BN -> ReLU -> flatten -> BN MLP (value, policy heads)."""

    def __init__(self, channels: int, reduced: int, spatial: int, hidden: Sequence[int], out_size: int,
                 momentum: float, activation: str = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, reduced, kernel_size=1)
        self.bn = nn.BatchNorm2d(reduced, momentum=momentum)
        self.mlp = bn_mlp(reduced * spatial * spatial, hidden, out_size, momentum, zero_last=True,
                          activation=activation)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """latent: float[B, C, h, w] -> float[B, out_size] logits."""
        x = F.relu(self.bn(self.conv(latent)))
        return self.mlp(x.flatten(1))
