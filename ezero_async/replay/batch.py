"""TrainingBatch: what reanalysis hands the learner thread (one training step's worth of data).

Shapes use B = batch size, K = unroll steps, S = frame stack, A = actions and F = one stored
frame's shape: (H, W, C) uint8 for images (Atari 96x96x3, MinAtar 10x10xC) or (D,) float32 for
vector observations (CartPole). Position k = 0..K refers to time u = t + k of the sampled
transition t.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class TrainingBatch(NamedTuple):
    """One batch of samples with reanalysed targets. All arrays are host numpy (the learner
    copies them to the device); they may live in preallocated (pinned) buffers, so a consumer
    must finish with them before releasing the batch back to its producer."""

    obs: np.ndarray
    """[B, S + K, *F] frames o_{t-S+1} .. o_{t+K}; the model input at position k is the stack
    obs[:, k : k + S]. Frames before the episode start repeat its first frame; frames past the
    end repeat the last one (their positions are masked)."""
    actions: np.ndarray
    """int64[B, K]: a_t .. a_{t+K-1}; uniform-random past the end of the episode."""
    target_value: np.ndarray
    """float32[B, K + 1]: z_{t+k} (n-step bootstrapped, off-policy corrected depth)."""
    target_value_prefix: np.ndarray
    """float32[B, K]: VP_k for k = 1..K (sum of rewards since the last LSTM reset)."""
    target_policy: np.ndarray
    """float32[B, K + 1, A]: visit distributions; all zero at a terminal position (no policy term)."""
    mask: np.ndarray
    """float32[B, K + 1]: m_k, 1 iff t + k <= T (position exists); every loss term is multiplied by it."""
    value_mask: np.ndarray
    """float32[B, K + 1]: m_k, further zeroed at u = T of a truncated episode (no value target there)."""
    weights: np.ndarray
    """float32[B]: importance-sampling weights, normalised by their maximum."""
    indices: np.ndarray
    """int64[B]: global collection indices of the sampled transitions (for priority updates)."""
    step: int
    """Training step s this batch is built for."""
