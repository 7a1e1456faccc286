"""The EfficientZero sub-networks: representation, dynamics (with the LSTM value-prefix head),
prediction, and the SimSiam projection/predictor. Two families: image latents
float[B, C, h, w] ('resnet' Atari sizes, 'conv' full-resolution small grids) and vector latents
float[B, L] ('mlp', vector observations)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ezero_async.learner.blocks import AtariStem, ConvHead, bn_mlp, conv3x3, minmax_scale, residual_tower

LstmState = tuple[torch.Tensor, torch.Tensor]
"""(h, c): float[B, lstm_hidden] each."""


class ValuePrefixHead(nn.Module):
    """features -> LSTM cell -> BN -> ReLU -> BN MLP -> value-prefix logits.

    `cell` and `logits` are the two halves: the learner runs the cell step by step and the
    BatchNorm'd half once over all unroll positions (EfficientZeroNet.unroll)."""

    def __init__(self, features: int, lstm_hidden: int, hidden: Sequence[int], bins: int, momentum: float,
                 activation: str = "relu") -> None:
        super().__init__()
        self.lstm = nn.LSTMCell(features, lstm_hidden)
        self.bn = nn.BatchNorm1d(lstm_hidden, momentum=momentum)
        self.mlp = bn_mlp(lstm_hidden, hidden, bins, momentum, zero_last=True, activation=activation)

    def cell(self, features: torch.Tensor, state: LstmState) -> LstmState:
        """features: float[B, F], state: (h, c) float[B, lstm_hidden] -> the new (h, c)."""
        return self.lstm(features, state)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h: float[N, lstm_hidden] (any positions) -> value-prefix logits float[N, bins]."""
        return self.mlp(F.relu(self.bn(h)))


# ---------------------------------------------------------------- image latents [B, C, h, w]

class ImageRepresentation(nn.Module):
    """Stacked frames float[B, S*C, H, W] in [0, 1] -> latent float[B, channels, h, w].
    stem='atari': the down-sampling stem (96 -> 6); stem='conv': one 3x3 conv at full size.
    normalize: min-max scale the latent per sample."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, momentum: float, stem: str,
                 normalize: bool = False) -> None:
        super().__init__()
        self.normalize = normalize
        if stem == "atari":
            self.stem: nn.Module = AtariStem(in_channels, channels, momentum)
        elif stem == "conv":
            self.stem = nn.Sequential(conv3x3(in_channels, channels), nn.BatchNorm2d(channels, momentum=momentum),
                                      nn.ReLU())
        else:
            raise ValueError(f"unknown stem {stem!r}: expected 'atari' or 'conv'")
        self.tower = residual_tower(channels, num_blocks, momentum)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        latent = self.tower(self.stem(obs))
        return minmax_scale(latent) if self.normalize else latent


class ImageDynamics(nn.Module):
    """(latent, action) -> next latent, and the value prefix through the LSTM.

    The action enters as one constant plane a / A (embed_action: 1x1 conv to EMBED_CHANNELS,
    LayerNorm over [EMBED_CHANNELS, h, w], ReLU, as EZ-V2); conv to C channels + the latent as a
    skip; residual blocks (then min-max scaling if normalize). Value prefix: 1x1 conv -> BN ->
    ReLU -> flatten -> ValuePrefixHead."""

    EMBED_CHANNELS = 16

    def __init__(self, channels: int, spatial: int, num_actions: int, num_blocks: int, reduced: int,
                 lstm_hidden: int, head_hidden: Sequence[int], bins: int, momentum: float,
                 normalize: bool = False, embed_action: bool = False, activation: str = "relu") -> None:
        super().__init__()
        self.num_actions = num_actions
        self.normalize = normalize
        self.embed: nn.Module | None = None
        action_channels = 1
        if embed_action:
            action_channels = self.EMBED_CHANNELS
            self.embed = nn.Sequential(nn.Conv2d(1, action_channels, kernel_size=1),
                                       nn.LayerNorm([action_channels, spatial, spatial]), nn.ReLU())
        self.conv = conv3x3(channels + action_channels, channels)
        self.bn = nn.BatchNorm2d(channels, momentum=momentum)
        self.tower = residual_tower(channels, num_blocks, momentum)
        self.reduce = nn.Conv2d(channels, reduced, kernel_size=1)
        self.reduce_bn = nn.BatchNorm2d(reduced, momentum=momentum)
        self.value_prefix = ValuePrefixHead(reduced * spatial * spatial, lstm_hidden, head_hidden, bins, momentum,
                                            activation)

    def forward(self, latent: torch.Tensor, action: torch.Tensor,
                state: LstmState) -> tuple[torch.Tensor, torch.Tensor, LstmState]:
        """latent: float[B, C, h, w], action: int64[B], state: (h, c) float[B, lstm_hidden]
        -> (next latent float[B, C, h, w], value-prefix logits float[B, bins], new state)."""
        next_latent, new_state = self.step(latent, action, state)
        return next_latent, self.value_prefix.logits(new_state[0]), new_state

    def step(self, latent: torch.Tensor, action: torch.Tensor, state: LstmState) -> tuple[torch.Tensor, LstmState]:
        """forward without the value-prefix logits: (next latent, new (h, c))."""
        b, _, height, width = latent.shape
        plane = (action.to(latent.dtype) / self.num_actions).view(b, 1, 1, 1).expand(b, 1, height, width)
        if self.embed is not None:
            plane = self.embed(plane)
        x = self.bn(self.conv(torch.cat([latent, plane], dim=1)))
        next_latent = self.tower(F.relu(x + latent))
        if self.normalize:
            next_latent = minmax_scale(next_latent)
        features = F.relu(self.reduce_bn(self.reduce(next_latent))).flatten(1)
        return next_latent, self.value_prefix.cell(features, state)


class ImagePrediction(nn.Module):
    """latent float[B, C, h, w] -> (value logits float[B, bins], policy logits float[B, A])."""

    def __init__(self, channels: int, spatial: int, num_actions: int, num_blocks: int, reduced: int,
                 head_hidden: Sequence[int], bins: int, momentum: float, activation: str = "relu") -> None:
        super().__init__()
        self.tower = residual_tower(channels, num_blocks, momentum)
        self.value = ConvHead(channels, reduced, spatial, head_hidden, bins, momentum, activation)
        self.policy = ConvHead(channels, reduced, spatial, head_hidden, num_actions, momentum, activation)

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tower(latent)
        return self.value(x), self.policy(x)


# ---------------------------------------------------------------- vector latents [B, L]

class VectorRepresentation(nn.Module):
    """Stacked vector observations float[B, S*D] -> latent float[B, L] (BN MLP, ReLU output)."""

    def __init__(self, in_size: int, latent: int, hidden: Sequence[int], momentum: float,
                 normalize: bool = False) -> None:
        super().__init__()
        self.mlp = bn_mlp(in_size, hidden, latent, momentum, out_norm=True, out_relu=True)
        self.normalize = normalize

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        latent = self.mlp(obs)
        return minmax_scale(latent) if self.normalize else latent


class VectorDynamics(nn.Module):
    """(latent, one-hot action) -> BN MLP + latent skip -> ReLU; value prefix from the next
    latent through the ValuePrefixHead."""

    def __init__(self, latent: int, num_actions: int, hidden: Sequence[int], lstm_hidden: int,
                 head_hidden: Sequence[int], bins: int, momentum: float, normalize: bool = False,
                 activation: str = "relu") -> None:
        super().__init__()
        self.num_actions = num_actions
        self.normalize = normalize
        self.mlp = bn_mlp(latent + num_actions, hidden, latent, momentum, out_norm=True)
        self.value_prefix = ValuePrefixHead(latent, lstm_hidden, head_hidden, bins, momentum, activation)

    def forward(self, latent: torch.Tensor, action: torch.Tensor,
                state: LstmState) -> tuple[torch.Tensor, torch.Tensor, LstmState]:
        """latent: float[B, L], action: int64[B], state: (h, c) -> (next latent float[B, L],
        value-prefix logits float[B, bins], new state)."""
        next_latent, new_state = self.step(latent, action, state)
        return next_latent, self.value_prefix.logits(new_state[0]), new_state

    def step(self, latent: torch.Tensor, action: torch.Tensor, state: LstmState) -> tuple[torch.Tensor, LstmState]:
        """forward without the value-prefix logits: (next latent, new (h, c))."""
        one_hot = F.one_hot(action, self.num_actions).to(latent.dtype)
        next_latent = F.relu(self.mlp(torch.cat([latent, one_hot], dim=1)) + latent)
        if self.normalize:
            next_latent = minmax_scale(next_latent)
        return next_latent, self.value_prefix.cell(next_latent, state)


class VectorPrediction(nn.Module):
    """latent float[B, L] -> (value logits float[B, bins], policy logits float[B, A])."""

    def __init__(self, latent: int, num_actions: int, head_hidden: Sequence[int], bins: int, momentum: float,
                 activation: str = "relu") -> None:
        super().__init__()
        self.value = bn_mlp(latent, head_hidden, bins, momentum, zero_last=True, activation=activation)
        self.policy = bn_mlp(latent, head_hidden, num_actions, momentum, zero_last=True, activation=activation)

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value(latent), self.policy(latent)


# ---------------------------------------------------------------- consistency (SimSiam)

class Projection(nn.Module):
    """Flattened latent float[B, N] -> float[B, out]: Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN."""

    def __init__(self, in_size: int, hidden: int, out: int, momentum: float) -> None:
        super().__init__()
        self.mlp = bn_mlp(in_size, (hidden, hidden), out, momentum, out_norm=True)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.mlp(latent.flatten(1))


class Predictor(nn.Module):
    """float[B, out] -> float[B, out]: Linear-BN-ReLU, Linear (the online side only)."""

    def __init__(self, size: int, hidden: int, momentum: float) -> None:
        super().__init__()
        self.mlp = bn_mlp(size, (hidden,), size, momentum)

    def forward(self, projected: torch.Tensor) -> torch.Tensor:
        return self.mlp(projected)
