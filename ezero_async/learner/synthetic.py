"""Synthetic TrainingBatch objects with the real shapes and mask semantics, for tests and
tools/bench_learner.py (no replay or reanalysis needed)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ezero_async.replay.batch import TrainingBatch


def random_batch(rng: np.random.Generator, batch_size: int, frame_shape: Sequence[int], frame_stack: int,
                 unroll_steps: int, num_actions: int, step: int = 0, end_fraction: float = 0.25) -> TrainingBatch:
    """A batch where `end_fraction` of the samples reach the end of their episode inside the
    unroll (terminal at t + k = T, masked after it, frames repeated and actions random past it).
    Images (H, W, C) are uint8 frames, vectors (D,) float32."""
    b, k, s = batch_size, unroll_steps, frame_stack
    if len(frame_shape) == 3:
        obs = rng.integers(0, 256, size=(b, s + k, *frame_shape), dtype=np.uint8)
    else:
        obs = rng.standard_normal((b, s + k, *frame_shape)).astype(np.float32)
    # Episode end offset per sample: T - t in 1..K for ending samples, K + 1 (never) otherwise.
    ends = np.where(rng.random(b) < end_fraction, rng.integers(1, k + 1, size=b), k + 1)
    positions = np.arange(k + 1)[None, :]
    mask = (positions <= ends[:, None]).astype(np.float32)
    terminal = positions == ends[:, None]
    for i in range(b):
        if ends[i] <= k:
            obs[i, s + ends[i]:] = obs[i, s + ends[i] - 1]  # frames past the end repeat the last
    policy = rng.dirichlet(np.ones(num_actions), size=(b, k + 1)).astype(np.float32)
    policy[terminal | (mask == 0)] = 0.0
    value = rng.uniform(-5, 5, size=(b, k + 1)).astype(np.float32)
    value[terminal] = 0.0
    value *= mask
    rewards = rng.integers(0, 2, size=(b, k)).astype(np.float32)
    prefix = np.cumsum(rewards, axis=1).astype(np.float32) * mask[:, 1:]
    return TrainingBatch(
        obs=obs,
        actions=rng.integers(0, num_actions, size=(b, k), dtype=np.int64),
        target_value=value,
        target_value_prefix=prefix,
        target_policy=policy,
        mask=mask,
        value_mask=mask.copy(),
        weights=rng.uniform(0.5, 1.0, size=b).astype(np.float32),
        indices=rng.integers(0, 1_000_000, size=b, dtype=np.int64),
        step=step,
    )
