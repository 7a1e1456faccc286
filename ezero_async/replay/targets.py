"""Reanalysis targets as pure functions of small arrays (shared/SPEC_TRAINING.md, "Targets").

Every function works on one sampled batch, relative to each sample's transition t:
  rewards: float32[B, K + td_max]  r_{t+j}, zero for t + j >= T;
  steps_to_end: int64[B]           T - t (NO_END while the episode is running, or ends beyond
                                   everything the targets can read);
  truncated: bool[B]               the episode was cut at T (else it terminated there, if it ended);
  td: int64[B]                     the sample's TD depth (1..td_max).
Position k = 0..K stands for u = t + k. The network calls (bootstrap values, fresh searches)
happen elsewhere; `value_targets`, `mix_values` and `mix_policy` combine their outputs.
"""
from __future__ import annotations

import numpy as np

NO_END = np.int64(1 << 40)
"""steps_to_end of an episode with no end in reach (T = infinity)."""


def position_masks(steps_to_end: np.ndarray, truncated: np.ndarray, unroll_steps: int):
    """(mask, value_mask, policy_mask), each [B, K + 1]: mask = u <= T (float32); value_mask =
    mask without u = T of a truncated episode (float32); policy_mask = u < T (bool)."""
    k = np.arange(unroll_steps + 1, dtype=np.int64)[None, :]
    end = np.asarray(steps_to_end, np.int64)[:, None]
    mask = k <= end
    value_mask = mask & ~(np.asarray(truncated, bool)[:, None] & (k == end))
    return mask.astype(np.float32), value_mask.astype(np.float32), k < end


def reward_sums(rewards: np.ndarray, td: np.ndarray, discount: float, unroll_steps: int) -> np.ndarray:
    """float64[B, K + 1]: sum_{i < td} gamma^i r_{u+i} (rewards past T are zero, so this is the
    spec's sum up to min(td, T - u))."""
    rewards = np.asarray(rewards, np.float64)
    td = np.asarray(td, np.int64)
    width = unroll_steps + 1
    td_max = rewards.shape[1] - unroll_steps
    if td_max < 1 or np.any(td > td_max) or np.any(td < 1):
        raise ValueError(f"reward_sums: td must be in [1, {td_max}] for rewards of width {rewards.shape[1]}")
    out = np.zeros((rewards.shape[0], width))
    for i in range(td_max):
        out += np.where((i < td)[:, None], discount**i * rewards[:, i:i + width], 0.0)
    return out


def bootstrap_plan(steps_to_end: np.ndarray, truncated: np.ndarray, td: np.ndarray, unroll_steps: int):
    """Which value each position bootstraps from.

    Returns (base int64[B], col int64[B, K+1], needed bool[B, K+1], power int64[B, K+1]):
    the bootstrap window's first stack is at time t + base (base = min(td, T - t)), position k
    reads the value of window stack `col` (time min(u + td, T)), discounted by gamma^power;
    `needed` is False where no bootstrap term exists (u >= T, or u + td >= T of a terminated
    episode)."""
    end = np.asarray(steps_to_end, np.int64)[:, None]
    td = np.asarray(td, np.int64)[:, None]
    trunc = np.asarray(truncated, bool)[:, None]
    k = np.arange(unroll_steps + 1, dtype=np.int64)[None, :]
    base = np.minimum(td, end)
    col = np.minimum(k + td, end) - base
    inside = k + td < end
    needed = (k < end) & (inside | trunc)
    power = np.where(inside, td, end - k)
    return base[:, 0], col, needed, np.where(needed, power, 0)


def value_targets(sums: np.ndarray, needed: np.ndarray, power: np.ndarray, col: np.ndarray,
                  values: np.ndarray, discount: float) -> np.ndarray:
    """float32[B, K + 1] z_u = sums + gamma^power * values[col] where needed.

    sums: float64[B, K+1] (reward_sums); needed, power, col: from bootstrap_plan;
    values: float[B, K+1] target-network values of the bootstrap window's stacks (columns never
    referenced by a needed position may hold anything, NaN included)."""
    v = np.take_along_axis(np.asarray(values, np.float64), col, axis=1)
    boot = np.where(needed, discount ** power.astype(np.float64) * np.where(needed, v, 0.0), 0.0)
    return (sums + boot).astype(np.float32)


def value_prefix_targets(rewards: np.ndarray, unroll_steps: int, horizon: int) -> np.ndarray:
    """float32[B, K]: VP_k = sum_{j=j0}^{k-1} r_{t+j}, j0 = H * floor((k-1)/H), for k = 1..K."""
    r = np.asarray(rewards, np.float64)[:, :unroll_steps]
    out = np.empty((r.shape[0], unroll_steps))
    for k in range(1, unroll_steps + 1):
        j0 = horizon * ((k - 1) // horizon)
        out[:, k - 1] = r[:, j0:k].sum(axis=1)
    return out.astype(np.float32)


def mix_policy(stored: np.ndarray, fresh: np.ndarray, rows: np.ndarray, policy_mask: np.ndarray,
               out: np.ndarray | None = None) -> np.ndarray:
    """float32[B, K+1, A] policy targets: `fresh: float[R, K+1, A]` (fresh searches) for the batch
    rows `rows: int64[R]`, `stored: float32[B, K+1, A]` for the others, zero where
    `policy_mask: bool[B, K+1]` is False (u >= T)."""
    rows = np.asarray(rows, np.int64)
    if fresh.shape[0] != len(rows) or fresh.shape[1:] != stored.shape[1:]:
        raise ValueError(f"mix_policy: fresh {fresh.shape} does not match rows ({len(rows)}) x {stored.shape[1:]}")
    if out is None:
        out = np.empty(stored.shape, np.float32)
    np.copyto(out, stored)
    out[rows] = fresh
    out[~np.asarray(policy_mask, bool)] = 0.0
    return out


def search_value_rows(indices: np.ndarray, collected: int, step: int, start_step: int,
                      fresh_transitions: int) -> np.ndarray:
    """bool[B]: samples whose value targets are search values under EZ-V2's mixed rule: from
    training step `start_step` on, every sample older than the latest `fresh_transitions`
    (collection index i < N_now - fresh_transitions); the others keep the TD target."""
    indices = np.asarray(indices, np.int64)
    if step < start_step:
        return np.zeros(indices.shape, bool)
    return indices < collected - fresh_transitions


def mix_values(td_targets: np.ndarray, search_values: np.ndarray, rows: np.ndarray, use_search: np.ndarray,
               policy_mask: np.ndarray) -> np.ndarray:
    """float32[B, K+1] value targets: `td_targets: float32[B, K+1]`, except on the batch rows
    `rows: int64[R]` (those with fresh searches) where `use_search: bool[B]` is set: there
    z_u = `search_values: float[R, K+1]` (reanalysis root values) for u < T and 0 from T on
    (`policy_mask: bool[B, K+1]` = u < T; value_mask still drops u = T of a truncated episode)."""
    rows = np.asarray(rows, np.int64)
    if search_values.shape != (len(rows), td_targets.shape[1]):
        raise ValueError(f"mix_values: search_values {search_values.shape} does not match "
                         f"rows ({len(rows)}) x {td_targets.shape[1]}")
    out = np.array(td_targets, np.float32, copy=True)
    chosen = np.asarray(use_search, bool)[rows]
    picked = rows[chosen]
    out[picked] = np.where(np.asarray(policy_mask, bool)[picked], search_values[chosen], 0.0)
    return out
