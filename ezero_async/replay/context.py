"""Reanalysis context: everything a sampled batch needs before the network is asked anything.

`ContextBuilder.build` turns a Sample into a ReanalyseContext (frame windows, actions, rewards,
masks, bootstrap plan, stored policies); the runtime then evaluates the bootstrap stacks and
runs fresh searches on the unroll stacks, and `finish` turns context + network outputs into a
TrainingBatch. Windows are [B, S + K, *F]: the stack for position k is window[:, k : k + S].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ezero_async.config.sections import ReplayConfig
from ezero_async.replay import targets
from ezero_async.replay.batch import TrainingBatch
from ezero_async.replay.hot import HotTier
from ezero_async.replay.sampler import Sample, td_depth
from ezero_async.replay.windows import ReplayRaceError, gather_frames, walk_chains


@dataclass
class ReanalyseContext:
    """One sampled batch before the network calls (B samples, K unroll steps, S stack, A actions)."""

    step: int
    """Training step s the batch is built for."""
    indices: np.ndarray
    """int64[B]: collection indices of the sampled transitions."""
    slots: np.ndarray
    """int64[B]: their hot-tier slots."""
    weights: np.ndarray
    """float32[B]: importance-sampling weights."""
    td: np.ndarray
    """int64[B]: TD depth per sample (off-policy corrected)."""
    obs: np.ndarray
    """[B, S + K, *F] unroll window o_{t-S+1} .. o_{t+K}: the learner's input and the roots of
    the fresh searches (stack k = obs[:, k : k + S])."""
    actions: np.ndarray
    """int64[B, K]: a_t .. a_{t+K-1}, uniform random past the end."""
    bootstrap_obs: np.ndarray
    """[B, S + K, *F] window whose stack j (= bootstrap_obs[:, j : j + S]) is at time t + base + j."""
    bootstrap_col: np.ndarray
    """int64[B, K + 1]: which bootstrap stack position k reads (time min(u + td, T))."""
    bootstrap_needed: np.ndarray
    """bool[B, K + 1]: position k has a bootstrap term (else its target is rewards only)."""
    bootstrap_power: np.ndarray
    """int64[B, K + 1]: exponent of gamma on the bootstrap value (td, or T - u when truncated)."""
    reward_sums: np.ndarray
    """float64[B, K + 1]: sum_{i < td} gamma^i r_{u+i} (rewards past T are zero)."""
    rewards: np.ndarray
    """float32[B, K + td_max]: r_t .. r_{t+K+td_max-1}, zero past the end."""
    steps_to_end: np.ndarray
    """int64[B]: T - t, targets.NO_END while the episode has no end in reach."""
    truncated: np.ndarray
    """bool[B]: the episode was truncated at T (not terminated)."""
    target_value_prefix: np.ndarray
    """float32[B, K]: VP_1 .. VP_K."""
    stored_policy: np.ndarray
    """float32[B, K + 1, A]: self-play visit distributions, zero at u >= T."""
    position_index: np.ndarray
    """int64[B, K + 1]: collection index of the transition at u = t + k (meaningless at u >= T)."""
    policy_mask: np.ndarray
    """bool[B, K + 1]: u < T (a policy target exists; fresh searches only there)."""
    reanalyse_rows: np.ndarray
    """int64[R]: sorted batch rows whose policy targets come from fresh searches."""
    search_value: np.ndarray
    """bool[B]: value target = the fresh search's root values ('mixed' value target, older data)."""
    mask: np.ndarray
    """float32[B, K + 1]: u <= T."""
    value_mask: np.ndarray
    """float32[B, K + 1]: mask without u = T of truncated episodes."""
    discount: float
    """gamma used for the value targets."""


class ContextBuilder:
    """Builds contexts from one hot tier (owner or attached) into preallocated windows.

    The obs/bootstrap windows of a context are reused by the next build() of the same builder
    unless `fresh_buffers=True`: keep one builder per reanalysis worker, and let the consumer
    finish with a batch before that worker builds the next one. `alloc(shape, dtype)` makes the
    fresh obs windows (the learner's input): pinned host memory on CUDA, so the device copy
    reads them in place."""

    def __init__(self, hot: HotTier, config: ReplayConfig, batch_size: int, reanalyse_fraction: float,
                 seed: int, fresh_buffers: bool = False,
                 alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray] = np.empty, reanalyse_start_step: int = 0):
        sch = hot.schema
        if (sch.unroll_steps, sch.td_steps) != (config.unroll_steps, config.td_steps):
            raise ValueError("ContextBuilder: config unroll_steps/td_steps differ from the hot tier's schema")
        if not 0.0 <= reanalyse_fraction <= 1.0:
            raise ValueError(f"reanalyse_fraction must be in [0, 1], got {reanalyse_fraction}")
        self.hot, self.config, self.batch_size = hot, config, batch_size
        self.reanalyse_count = int(np.floor(reanalyse_fraction * batch_size))
        self.reanalyse_start_step = reanalyse_start_step
        self.stack, self.unroll, self.td_max = sch.frame_stack, sch.unroll_steps, sch.td_steps
        self.chain_len = self.stack + self.unroll + self.td_max
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.fresh_buffers = fresh_buffers
        self.alloc = alloc
        self._chain = np.empty((batch_size, self.chain_len), np.int64)
        self._obs, self._boot = self._windows(), self._windows()

    def _windows(self, alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray] = np.empty) -> np.ndarray:
        sch = self.hot.schema
        return alloc((self.batch_size, self.stack + self.unroll, *sch.obs_shape), np.dtype(sch.obs_dtype))

    def build(self, sample: Sample, step: int, collected: int | None = None) -> ReanalyseContext:
        """Context for `sample` (B slots) at training step `step`; `collected` is N_now for the TD
        depth (default: the hot tier's published collection count)."""
        hot, b, S, K = self.hot, self.batch_size, self.stack, self.unroll
        slots = np.asarray(sample.slots, np.int64)
        if slots.shape != (b,):
            raise ValueError(f"build: expected {b} slots, got shape {slots.shape}")
        n = hot.num_slots
        chain_w = walk_chains(hot, slots, self._chain)
        chain = chain_w % n
        indices = hot.index[slots].copy()
        n_now = hot.published_collected() if collected is None else collected
        td = td_depth(indices, n_now, self.config)

        fwd = chain[:, S - 1:]  # times t .. t + K + td_max
        final = (hot.terminal[fwd] == 1) | (hot.truncated[fwd] == 1)
        has_end = final.any(axis=1)
        first_final = np.argmax(final, axis=1)
        steps_to_end = np.where(has_end, first_final, targets.NO_END).astype(np.int64)
        truncated = has_end & (hot.truncated[fwd[np.arange(b), first_final]] == 1)
        j = np.arange(K + self.td_max)[None, :]
        rewards = np.where(j < steps_to_end[:, None], hot.reward[fwd[:, :K + self.td_max]], 0.0).astype(np.float32)

        mask, value_mask, policy_mask = targets.position_masks(steps_to_end, truncated, K)
        base, col, needed, power = targets.bootstrap_plan(steps_to_end, truncated, td, K)
        sums = targets.reward_sums(rewards, td, self.config.discount, K)
        vp = targets.value_prefix_targets(rewards, K, self.config.lstm_horizon)

        acts = hot.action[fwd[:, :K]].astype(np.int64)
        past = ~policy_mask[:, :K]
        acts[past] = self.rng.integers(0, hot.schema.num_actions, size=int(past.sum()))
        stored = hot.policy[fwd[:, :K + 1]]
        position_index = hot.index[fwd[:, :K + 1]].astype(np.int64)
        stored[~policy_mask] = 0.0

        obs = self._windows(self.alloc) if self.fresh_buffers else self._obs
        boot = self._windows() if self.fresh_buffers else self._boot
        gather_frames(hot.frames, chain[:, :S + K], obs)
        boot_cols = base[:, None] + np.arange(S + K)[None, :]
        boot_slots = np.take_along_axis(chain, boot_cols, axis=1)
        gather_frames(hot.frames, boot_slots, boot)
        if not hot.unchanged(chain, chain_w):
            raise ReplayRaceError("build: a slot of the batch was overwritten while it was read")

        rows = np.sort(self.rng.choice(b, size=self.reanalyse_count, replace=False)).astype(np.int64)
        if step < self.reanalyse_start_step:
            rows = rows[:0]  # drawn all the same: the sampler's stream does not depend on the start step
        if self.config.value_target == "mixed":
            search_value = targets.search_value_rows(indices, n_now, step, self.config.mixed_start_step,
                                                     self.config.mixed_fresh_transitions)
            search_value[np.setdiff1d(np.arange(b), rows)] = False  # only rows with a fresh search have one
        else:
            search_value = np.zeros(b, bool)
        return ReanalyseContext(
            step=step, indices=indices, slots=slots.copy(), weights=np.asarray(sample.weights, np.float32),
            td=td, obs=obs, actions=acts, bootstrap_obs=boot, bootstrap_col=col, bootstrap_needed=needed,
            bootstrap_power=power, reward_sums=sums, rewards=rewards, steps_to_end=steps_to_end,
            truncated=truncated, target_value_prefix=vp, stored_policy=stored, position_index=position_index,
            policy_mask=policy_mask, reanalyse_rows=rows, search_value=search_value, mask=mask, value_mask=value_mask,
            discount=self.config.discount)


def finish(ctx: ReanalyseContext, bootstrap_values: np.ndarray, fresh_policy: np.ndarray,
           fresh_values: np.ndarray | None = None) -> TrainingBatch:
    """TrainingBatch from a context and the network outputs.

    bootstrap_values: float[B, K + 1], the target network's value of each bootstrap stack
    (ctx.bootstrap_obs[:, j : j + S]); only columns some needed position reads matter.
    fresh_policy: float[R, K + 1, A], fresh-search visit distributions for ctx.reanalyse_rows
    at every position (rows past the end are ignored).
    fresh_values: float[R, K + 1], those searches' root values; needed where ctx.search_value."""
    b, k1 = ctx.bootstrap_col.shape
    if bootstrap_values.shape != (b, k1):
        raise ValueError(f"finish: bootstrap_values must be [{b}, {k1}], got {bootstrap_values.shape}")
    z = targets.value_targets(ctx.reward_sums, ctx.bootstrap_needed, ctx.bootstrap_power, ctx.bootstrap_col,
                              bootstrap_values, ctx.discount)
    if ctx.search_value.any():
        if fresh_values is None:
            raise ValueError("finish: the context asks for search value targets but no fresh_values were given")
        z = targets.mix_values(z, np.asarray(fresh_values, np.float32), ctx.reanalyse_rows, ctx.search_value,
                               ctx.policy_mask)
    policy = targets.mix_policy(ctx.stored_policy, np.asarray(fresh_policy, np.float32), ctx.reanalyse_rows,
                                ctx.policy_mask)
    return TrainingBatch(obs=ctx.obs, actions=ctx.actions, target_value=z,
                         target_value_prefix=ctx.target_value_prefix, target_policy=policy, mask=ctx.mask,
                         value_mask=ctx.value_mask, weights=ctx.weights, indices=ctx.indices, step=ctx.step)
