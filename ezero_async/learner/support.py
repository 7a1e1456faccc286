"""Categorical value supports: the transform h, its exact inverse, two-hot targets, expectations.

Values and value prefixes are predicted as 2S + 1 logits over the integer bins -S..S of the
transformed space h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps*x, eps = 0.001 (S = support_size).
A distribution reads out as a scalar in one of two ways (model.value_readout): h_inv of its mean
bin (the reference's), or the mean of h_inv over its bins. Where the targets of one state spread,
the first is below their mean (h_inv is convex: Jensen); the second is not.
The inverse is evaluated in float64: in float32 its cancellations cost ~1e-3 absolute near
|x| = 300, and the extra precision is free for [B]-sized tensors.
"""
from __future__ import annotations

import torch

from ezero_async.config.sections import VALUE_READOUTS

EPS = 0.001
"""The linear term of h (keeps h invertible and Lipschitz)."""


def h(x: torch.Tensor) -> torch.Tensor:
    """x: float[...] -> float[...] (same dtype): sign(x)(sqrt(|x| + 1) - 1) + 0.001 x."""
    x64 = x.double()
    y = torch.sign(x64) * (torch.sqrt(x64.abs() + 1.0) - 1.0) + EPS * x64
    return y.to(x.dtype)


def h_inv(y: torch.Tensor) -> torch.Tensor:
    """y: float[...] -> float[...] (same dtype): the exact inverse of h (solves the quadratic in
    sqrt(|x| + 1))."""
    y64 = y.double()
    # (sqrt(1 + 4 EPS (|y| + 1 + EPS)) - 1) / (2 EPS), in place and in that order: for the [B]
    # tensors of a search call the op count is the cost (two thirds of it before).
    root = y64.abs().add_(1.0).add_(EPS).mul_(4.0 * EPS).add_(1.0).sqrt_().sub_(1.0).div_(2.0 * EPS)
    x = root.mul_(root).sub_(1.0).mul_(torch.sign(y64))
    return x.to(y.dtype)


class Support:
    """The bins -S..S of one support and the conversions to and from them.

    Every method follows the device of its input, so one object serves the learner and the
    inference threads (its float64 bins are cached per device).
    """

    def __init__(self, support_size: int, readout: str = "transformed_mean") -> None:
        if support_size < 1:
            raise ValueError(f"support_size must be >= 1, got {support_size}")
        if readout not in VALUE_READOUTS:
            raise ValueError(f"readout must be one of {VALUE_READOUTS}, got {readout!r}")
        self.size = int(support_size)
        self.num_bins = 2 * self.size + 1
        self.readout = readout
        self._bins: dict[torch.device, torch.Tensor] = {}
        """float64 bins per device: -S..S ('transformed_mean') or h_inv(-S..S) ('value_mean')."""

    def two_hot(self, x: torch.Tensor) -> torch.Tensor:
        """x: float[N] scalars -> float32[N, 2S+1] target distributions phi(x): h(x) clamped to
        [-S, S], split between the two neighbouring integer bins (linear interpolation)."""
        if x.dim() != 1:
            raise ValueError(f"two_hot expects float[N], got shape {tuple(x.shape)}")
        y = h(x.double()).clamp(-self.size, self.size)
        lower = torch.floor(y)
        upper_weight = y - lower
        lower_index = (lower + self.size).long()
        # At y == S the upper bin would be 2S+1; its weight is exactly 0 there, so clamping the
        # index keeps the scatter in range without moving mass.
        upper_index = (lower_index + 1).clamp(max=self.num_bins - 1)
        out = torch.zeros(x.shape[0], self.num_bins, dtype=torch.float64, device=x.device)
        out.scatter_add_(1, lower_index[:, None], (1.0 - upper_weight)[:, None])
        out.scatter_add_(1, upper_index[:, None], upper_weight[:, None])
        return out.float()

    def bins(self, device: torch.device) -> torch.Tensor:
        """float64[2S+1] on `device`: the bins a distribution's expectation runs over, built once
        per device. A compiled loss guards on this cache, so the learner builds its entry before
        compiling (otherwise the first call's insertion forces a second compile)."""
        bins = self._bins.get(device)
        if bins is None:  # a race only builds the same tensor twice
            bins = torch.arange(-self.size, self.size + 1, dtype=torch.float64, device=device)
            if self.readout == "value_mean":
                bins = h_inv(bins)
            self._bins[device] = bins
        return bins

    def scalar_from_probs(self, probs: torch.Tensor) -> torch.Tensor:
        """probs: float[N, 2S+1] distributions -> float32[N]: h_inv(sum probs * bins)
        ('transformed_mean') or sum probs * h_inv(bins) ('value_mean')."""
        self._check_bins(probs)
        mean = probs.double() @ self.bins(probs.device)
        return (h_inv(mean) if self.readout == "transformed_mean" else mean).float()

    def scalar_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """logits: float[N, 2S+1] (any float dtype) -> float32[N]: scalar_from_probs of their
        softmax. No host sync: the result stays on the logits' device."""
        self._check_bins(logits)
        return self.scalar_from_probs(torch.softmax(logits.float(), dim=-1))

    def scalars_from_logits(self, *logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """scalar_from_logits of several float[N_i, 2S+1] tensors in one pass (a search call
        converts value prefix and value together: half the small ops)."""
        joined = self.scalar_from_logits(torch.cat([t.float() for t in logits]))
        return joined.split([t.shape[0] for t in logits])

    def _check_bins(self, t: torch.Tensor) -> None:
        if t.dim() != 2 or t.shape[1] != self.num_bins:
            raise ValueError(f"expected [N, {self.num_bins}] over the support, got shape {tuple(t.shape)}")
