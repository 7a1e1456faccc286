"""Reanalysis sweeps (runtime.reanalyse_mode = 'sweep'): every stored transition is searched once
per target-weight version, and the batches of that version read the results.

Batch s takes its fresh policy targets from a search with the target weights, version
v = target_version(s, I). Within one version a transition's search does not depend on which
batch asks for it, and a batch of 256 samples asks for 1,536 of them, so per-batch searches
repeat each stored transition's search many times per version (about 10x on CartPole's 30k
replay at 200 updates per version, 3x at Atari 100k's end). Version v is the online weights
after v updates, published I updates before it becomes the target: the sweep of v searches the
transitions batch v samples from, [N(v) - capacity, N(v)), while the version before it is the
target, and batches v + I .. v + 2I - 1 read its table. Transitions collected after N(v) keep
their self-play policies. Version 0 (the initial weights) is swept over the warm-up data
before the first batch; with runtime.reanalyse_start_step the first version swept is the one
that step's batch reads (earlier batches read no table). The chunks and their root noise are
fixed by collection index, so a sweep's results do not depend on timing, and a resumed run
sweeps its versions again alike.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from ezero_async.config.sections import SearchConfig
from ezero_async.inference.search_service import SearchService
from ezero_async.learner.schedule import target_version
from ezero_async.replay.buffer import Replay
from ezero_async.replay.windows import gather_frames, walk_chains
from ezero_async.runtime.pacer import Pacer
from ezero_async.search import root_noise

CHUNK = 1024
"""Roots per search request; chunk c covers collection indices [c * CHUNK, (c + 1) * CHUNK)."""


@dataclass
class SweepTable:
    """One version's search results for collection indices [lo, lo + n)."""

    version: int
    lo: int
    policy: np.ndarray
    """float32[n, A]: policy targets (visit distributions, or pi' in Gumbel mode)."""
    value: np.ndarray
    """float32[n]: search root values."""
    have: np.ndarray
    """bool[n]: searched (False: evicted before the sweep read it; never sampled again)."""

    def lookup(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(policy float32[..., A], value float32[...], have bool[...]) for `indices: int64[...]`;
        where `have` is False the policy and value rows are arbitrary."""
        rel = np.asarray(indices, np.int64) - self.lo
        inside = (rel >= 0) & (rel < len(self.have))
        rel = np.where(inside, rel, 0)
        return self.policy[rel], self.value[rel], inside & self.have[rel]


class Sweeps:
    """Runs one sweep per target version in order (`run`, a task of the run's TaskGroup) and
    hands the tables to the reanalysis workers (`table`)."""

    def __init__(self, replay: Replay, service: SearchService, pacer: Pacer, search: SearchConfig, *,
                 interval: int, capacity: int, num_actions: int, seed: int, start_step: int = 0) -> None:
        self.replay, self.service, self.pacer, self.search = replay, service, pacer, search
        self.interval, self.capacity, self.num_actions, self.seed = interval, capacity, num_actions, seed
        self.start_step = start_step
        self._tables: dict[int, SweepTable] = {}
        self._changed = asyncio.Condition()
        self.roots = 0
        """Roots searched by sweeps so far."""

    def horizon(self, version: int) -> tuple[int, int]:
        """[lo, hi): the collection indices the sweep of `version` searches (batch `version`'s
        transitions, the newest `capacity` of them)."""
        hi = self.pacer.transitions_for(version)
        return max(0, hi - self.capacity), hi

    async def table(self, version: int) -> SweepTable:
        """The finished table of `version` (waits for its sweep)."""
        async with self._changed:
            await self._changed.wait_for(lambda: version in self._tables)
        return self._tables[version]

    async def run(self) -> None:
        """Sweep every version the remaining steps use, oldest first; a table is dropped once no
        batch still to be built can ask for it."""
        last = target_version(max(0, self.pacer.total_steps - 1), self.interval)
        version = target_version(max(self.pacer.trained, self.start_step), self.interval)
        while version <= last:
            await self.pacer.wait_trained(version)  # published: the learner publishes before it reports
            lo, hi = self.horizon(version)
            await self.pacer.wait_collected(hi)
            table = await self.sweep(version, lo, hi)
            async with self._changed:
                self._tables[table.version] = table
                for old in [v for v in self._tables if v < version - self.interval]:
                    del self._tables[old]
                self._changed.notify_all()
            version += self.interval

    async def sweep(self, version: int, lo: int, hi: int) -> SweepTable:
        """Search indices [lo, hi) with target weights `version`, CHUNK-aligned requests in order."""
        n = hi - lo
        table = SweepTable(version, lo, np.zeros((n, self.num_actions), np.float32), np.zeros(n, np.float32),
                           np.zeros(n, bool))
        hot = self.replay.hot
        stack = hot.schema.frame_stack
        for start in range(CHUNK * (lo // CHUNK), hi, CHUNK):
            indices = np.arange(max(lo, start), min(hi, start + CHUNK), dtype=np.int64)
            rng = np.random.default_rng([self.seed, 3, version, start // CHUNK])
            noise = root_noise(self.search, CHUNK, self.num_actions, rng)[indices - start]  # index i's draw: lo-free
            slots = hot.slot_of_index(indices)
            present = slots >= 0
            # One synchronous read on the loop thread, which is also the replay's only writer:
            # no slot can change under it. A transition whose stack reaches into an evicted slot
            # is no longer sampleable (HotTier._evict) and is skipped.
            chain = walk_chains(hot, slots[present], np.empty((int(present.sum()), stack), np.int64))
            whole = (chain >= hot.write_count - hot.num_slots).all(axis=1)
            present[present] = whole
            if not present.any():
                continue
            chain = chain[whole]
            stacks = np.empty((len(chain), stack, *hot.schema.obs_shape), hot.schema.obs_dtype)
            gather_frames(hot.frames, chain % hot.num_slots, stacks)
            result = await self.service.search("target", version, stacks, noise[present],
                                               seed=version * 1_000_003 + start)
            rows = indices[present] - lo
            table.policy[rows] = result.policies
            table.value[rows] = result.root_values
            table.have[rows] = True
            self.roots += len(rows)
            # Batches wait on this table: a sweep that outlasts the stall timeout is still progress.
            self.pacer.working("build")
        return table
