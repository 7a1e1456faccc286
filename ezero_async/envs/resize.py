"""Area-interpolation weights for resizing frames (the kernel is ext/frames.pyx).

Output cell i of n_out covers input span [i*s, (i+1)*s), s = n_in / n_out; its value is the
overlap-weighted mean of the input cells, which is exactly area interpolation for any ratio.
"""
from __future__ import annotations

import math

import numpy as np


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """float32[n_out, n_in]: row i holds the overlap of each input cell with output cell i / s."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for k in range(math.floor(lo), min(math.ceil(hi), n_in)):
            weights[i, k] = min(hi, k + 1) - max(lo, k)
    return (weights / scale).astype(np.float32)
