"""Prioritised sampling over the hot tier's slots: stratified proportional draws from the compiled
sum tree, importance-sampling weights with annealed beta, and the off-policy TD depth.

P(i) = p_i^alpha / sum_j p_j^alpha over sampleable slots (priority 0 = not sampleable);
w_i = (N * P(i))^-beta / max_batch w, beta = beta_start + (1 - beta_start) * min(s / beta_steps, 1),
then clipped to [priority_weight_min, 1] (EZ-V2's 0.1).
The sampler is owned by the replay's process; its methods are thread-safe (one lock around the
tree: the learner thread updates priorities while reanalysis samples).
"""
from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from ezero_async._ext.sumtree import SumTree
from ezero_async.config.sections import ReplayConfig


class Sample(NamedTuple):
    """One batch of drawn slots."""

    slots: np.ndarray
    """int64[B]: hot-tier ring slots."""
    weights: np.ndarray
    """float32[B]: importance-sampling weights, max-normalised."""
    probs: np.ndarray
    """float64[B]: P(i) of each draw."""
    beta: float
    """Exponent the weights were computed with."""


def beta_at(step: int, config: ReplayConfig) -> float:
    """IS exponent at training step `step`."""
    frac = min(max(step, 0) / config.priority_beta_steps, 1.0)
    return config.priority_beta_start + (1.0 - config.priority_beta_start) * frac


def td_depth(indices: np.ndarray, collected: int, config: ReplayConfig) -> np.ndarray:
    """Off-policy TD depth: clip(td_steps - (collected - i) // td_age_unit, 1, td_steps); the
    full td_steps for the 'mixed' value target (EZ-V2 corrects old data with search values).

    indices: int64[B] 0-based collection indices; collected: transitions collected when the
    batch is built (N_now). Returns int64[B]."""
    age = collected - np.asarray(indices, np.int64)
    if np.any(age < 1):
        raise ValueError("td_depth: an index is not older than the collection count")
    if config.value_target == "mixed":
        return np.full(age.shape, config.td_steps, np.int64)
    return np.clip(config.td_steps - age // config.td_age_unit, 1, config.td_steps).astype(np.int64)


class PrioritySampler:
    """Sum-tree priorities over `num_slots` slots with the config's alpha/beta schedule."""

    def __init__(self, num_slots: int, config: ReplayConfig, seed: int):
        self.config = config
        self.tree = SumTree(num_slots, config.priority_alpha)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.lock = threading.Lock()

    @property
    def count(self) -> int:
        """Sampleable slots (positive priority)."""
        return self.tree.count

    def max_priority(self) -> float:
        """Priority given to newly sampleable slots: the maximum stored, 1.0 if none."""
        m = self.tree.max_priority
        return m if m > 0.0 else 1.0

    def apply_events(self, slots: np.ndarray, sampleable: np.ndarray) -> None:
        """Apply hot-tier events in order: `slots: int64[n]`, `sampleable: bool[n]` (True: gets
        the current max priority, False: priority 0)."""
        if len(slots) == 0:
            return
        with self.lock:
            p = np.where(sampleable, self.max_priority(), 0.0)
            self.tree.update(np.ascontiguousarray(slots, np.int64), np.ascontiguousarray(p, np.float64))

    def update(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        """Set raw priorities (`priorities: float[n] > 0`) of sampleable `slots: int64[n]`; slots that
        are no longer sampleable (evicted, invalidated) are skipped so they stay unsampled."""
        slots = np.ascontiguousarray(slots, np.int64)
        pr = np.ascontiguousarray(priorities, np.float64)
        with self.lock:
            self.tree.update_existing(slots, pr)  # validates: finite, > 0, matching lengths

    def sample(self, batch_size: int, step: int) -> Sample:
        """Stratified proportional draw of `batch_size` slots for training step `step`."""
        u = self.rng.random(batch_size)
        slots = np.empty(batch_size, np.int64)
        probs = np.empty(batch_size, np.float64)
        weights = np.empty(batch_size, np.float32)
        beta = beta_at(step, self.config)
        with self.lock:
            self.tree.sample_weighted(u, beta, slots, probs, weights)
        if self.config.priority_weight_min > 0.0:
            np.maximum(weights, np.float32(self.config.priority_weight_min), out=weights)
        return Sample(slots, weights, probs, beta)

    def priorities(self) -> np.ndarray:
        """float64[num_slots] raw priorities (for the store of record)."""
        out = np.empty(self.tree.capacity)
        with self.lock:
            self.tree.priorities(out)
        return out

    def restore(self, priorities: np.ndarray) -> None:
        """Load raw priorities `float64[num_slots]` (after a resume)."""
        pr = np.ascontiguousarray(priorities, np.float64)
        if pr.shape != (self.tree.capacity,):
            raise ValueError(f"restore: need {self.tree.capacity} priorities, got {pr.shape}")
        with self.lock:
            self.tree.update(np.arange(len(pr), dtype=np.int64), pr)
