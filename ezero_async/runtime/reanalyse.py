"""Reanalysis workers: sample -> context -> bootstrap values + fresh searches -> TrainingBatch.

Worker w builds batches s = w, w + W, w + 2W, ... Sampling and context building (which consume
the replay's random streams) happen strictly in step order under the pacer; the network work
of several batches then overlaps. Batches reach the learner's queue in step order.
"""
from __future__ import annotations

import asyncio
import queue
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ezero_async.config.sections import LearnerConfig, ReplayConfig, RuntimeConfig, SearchConfig
from ezero_async.inference.search_service import SearchService
from ezero_async.learner.schedule import target_version
from ezero_async.learner.transfer import pinned_array
from ezero_async.replay.batch import TrainingBatch
from ezero_async.replay.buffer import Replay
from ezero_async.replay.context import ContextBuilder, ReanalyseContext, finish
from ezero_async.runtime.pacer import Pacer
from ezero_async.runtime.sweep import Sweeps
from ezero_async.runtime.waits import Waits
from ezero_async.search import root_noise

QUEUE_POLL_S = 0.002
"""The learner's queue is a thread queue: a full queue is polled, never blocked on, from the loop."""


def position_stacks(window: np.ndarray, positions: int, stack: int) -> np.ndarray:
    """window [B, S + K, *F] -> stacks [B, positions, S, *F] (stack j = window[:, j : j + S])."""
    return np.stack([window[:, j:j + stack] for j in range(positions)], axis=1)


@dataclass
class ReanalyseStats:
    """Where the reanalysis workers spend their time, in seconds summed over workers."""

    waits: Waits = field(default_factory=lambda: Waits(("targets", "queue_full")))
    """targets: awaiting the batch's bootstrap values and fresh searches; queue_full: waiting
    for room in the learner's queue (the learner is the slower side)."""
    timing: dict[str, float] = field(default_factory=lambda: {"assemble": 0.0})
    """Sampling, context and target assembly (loop thread)."""


class PriorityFeed:
    """Learner updates (indices, priorities) in step order, applied to the replay only when the
    schedule says (before sampling batch s: every update <= s - D)."""

    def __init__(self, replay: Replay, first_step: int = 0) -> None:
        self.replay = replay
        self.first_step = first_step
        """The update pending[0] came from (a resumed run's learner starts past 0)."""
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.applied = first_step

    def apply_through(self, step: int) -> None:
        while self.applied <= step:
            slot = self.applied - self.first_step
            indices, priorities = self.pending[slot]
            self.replay.update_priorities(indices, priorities)
            self.pending[slot] = None  # type: ignore[call-overload]
            self.applied += 1


async def reanalyse(worker: int, workers: int, replay: Replay, feed: PriorityFeed, service: SearchService,
                    pacer: Pacer, batches: queue.Queue, replay_cfg: ReplayConfig, learner_cfg: LearnerConfig,
                    runtime: RuntimeConfig, search: SearchConfig, frame_stack: int, num_actions: int,
                    stats: ReanalyseStats, sweeps: Sweeps | None = None) -> None:
    """Build every `workers`-th batch starting at `worker` until the run's last step. With
    `sweeps` (reanalyse_mode 'sweep') the reanalysed rows read their version's sweep table
    instead of searching."""
    zero_copy = learner_cfg.zero_copy and service.device.type == "cuda"
    builder = ContextBuilder(replay.hot, replay_cfg, learner_cfg.batch_size, runtime.reanalyse_fraction,
                             seed=runtime.seed * 1000 + worker, fresh_buffers=True,
                             alloc=pinned_array if zero_copy else np.empty,
                             reanalyse_start_step=runtime.reanalyse_start_step)
    k1 = learner_cfg.unroll_steps + 1
    first = pacer.trained  # 0, or the checkpoint's step when resuming
    for s in range(first + (worker - first) % workers, pacer.total_steps, workers):
        await pacer.wait_sample_turn(s)
        clock = time.perf_counter()
        feed.apply_through(s - learner_cfg.prefetch_depth)
        sample = replay.sample(learner_cfg.batch_size, s)
        ctx = builder.build(sample, s, collected=pacer.transitions_for(s))
        stats.timing["assemble"] += time.perf_counter() - clock
        await pacer.batch_sampled(s)
        batch = await _targets(ctx, service, target_version(s, learner_cfg.target_update_interval), k1,
                               frame_stack, num_actions, search, runtime.seed, stats, worker, sweeps)
        await pacer.wait_build_turn(s)
        stats.waits.begin("queue_full", worker)
        while True:
            try:
                batches.put_nowait(batch)
                break
            except queue.Full:
                await asyncio.sleep(QUEUE_POLL_S)
        stats.waits.end("queue_full", worker)
        await pacer.batch_built(s)


async def _targets(ctx: ReanalyseContext, service: SearchService, version: int, k1: int, stack: int,
                   num_actions: int, search: SearchConfig, seed: int, stats: ReanalyseStats,
                   worker: int, sweeps: Sweeps | None) -> TrainingBatch:
    stats.waits.begin("targets", worker)
    b = len(ctx.indices)
    frame_shape = ctx.obs.shape[2:]
    boot = position_stacks(ctx.bootstrap_obs, k1, stack).reshape(b * k1, stack, *frame_shape)
    rows = ctx.reanalyse_rows
    values_task = asyncio.ensure_future(service.values("target", version, boot))
    fresh = np.zeros((len(rows), k1, num_actions), np.float32)
    fresh_values = np.zeros((len(rows), k1), np.float32)
    if len(rows) and sweeps is not None:
        table = await sweeps.table(version)
        fresh, fresh_values, have = table.lookup(ctx.position_index[rows])
        # Positions the sweep did not search (collected after it began) keep the stored policy;
        # a row's search value target needs every position it trains.
        have &= ctx.policy_mask[rows]
        fresh = np.where(have[..., None], fresh, ctx.stored_policy[rows])
        covered = (have | ~ctx.policy_mask[rows]).all(axis=1)
        if not covered.all():
            ctx = replace(ctx, search_value=ctx.search_value.copy())
            ctx.search_value[rows[~covered]] = False
    elif len(rows):
        roots = position_stacks(ctx.obs[rows], k1, stack).reshape(len(rows) * k1, stack, *frame_shape)
        rng = np.random.default_rng([seed, 2, ctx.step])
        noise = root_noise(search, len(roots), num_actions, rng)
        result = await service.search("target", version, roots, noise, seed=ctx.step * 1_000_003)
        fresh = result.policies.reshape(len(rows), k1, num_actions)
        fresh_values = result.root_values.reshape(len(rows), k1)
    values = (await values_task).reshape(b, k1)
    stats.waits.end("targets", worker)
    clock = time.perf_counter()
    batch = finish(ctx, values, fresh, fresh_values)
    stats.timing["assemble"] += time.perf_counter() - clock
    return batch
