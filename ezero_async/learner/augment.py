"""Image augmentation of learner inputs (never reanalysis or acting), on the device.

Per sample: a random shift (replicate-pad by 4, random crop back to H x W) and an intensity
change x * (1 + 0.05 * clip(N(0, 1), -2, 2)). The caller applies one call (one draw) to the
o_t stack and one independent call to all K target stacks together.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

SHIFT_PAD = 4
"""Replicate padding of the random shift (pixels each side)."""
INTENSITY_SCALE = 0.05
"""Standard deviation of the multiplicative intensity noise."""


def random_shift_intensity(images: torch.Tensor, generator: torch.Generator | None = None,
                           pad: int = SHIFT_PAD, intensity: float = INTENSITY_SCALE) -> torch.Tensor:
    """images: float[B, C, H, W] -> float[B, C, H, W]; one shift and one intensity factor per
    sample, shared by all C channels (so all frames of the stacks in C move together).
    generator must live on images.device (None: the global generator). Allocates the padded
    copy; no host sync."""
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"expected float[B, C, H, W], got {images.dtype} {tuple(images.shape)}")
    b, _, height, width = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offset_y = torch.randint(0, 2 * pad + 1, (b,), device=device, generator=generator)
    offset_x = torch.randint(0, 2 * pad + 1, (b,), device=device, generator=generator)
    rows = (offset_y[:, None] + torch.arange(height, device=device)[None, :])[:, None, :, None]
    cols = (offset_x[:, None] + torch.arange(width, device=device)[None, :])[:, None, None, :]
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=device)[None, :, None, None]
    shifted = padded[batch, channel, rows, cols]
    noise = torch.randn(b, device=device, generator=generator).clamp_(-2.0, 2.0)
    factor = (1.0 + intensity * noise).to(images.dtype).view(b, 1, 1, 1)
    return shifted * factor
