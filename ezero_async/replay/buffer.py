"""Replay: the hot tier, its priorities and (optionally) the store of record, behind one owner API.

Writers (env coroutines) call append / end_episode; reanalysis calls sample and builds contexts
(context.ContextBuilder) from `replay.hot` or from an attached copy in another process; the
learner calls update_priorities with the batch's collection indices; checkpoints call flush.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ezero_async.config.sections import ReplayConfig
from ezero_async.replay.hot import HotTier, HotTierHandle
from ezero_async.replay.sampler import PrioritySampler, Sample
from ezero_async.replay.schema import ReplaySchema
from ezero_async.replay.store import Cursors, ReplayStore, StoreMeta, load_into

FINAL_SLOT_RESERVE = 8
"""The ring holds capacity + capacity // 8 slots: room for one final-observation slot per
episode of average length >= 8, so `capacity` transitions fit before the first eviction."""


def ring_slots(capacity: int) -> int:
    """Ring size in slots for `capacity` transitions."""
    return capacity + capacity // FINAL_SLOT_RESERVE

EVENT_BATCH = 256
"""Hot-tier events (slots becoming sampleable or not) applied to the sum tree at once."""


class Replay:
    """Owner of one replay: shared-memory hot tier + sum-tree sampler + optional zarr store."""

    def __init__(self, config: ReplayConfig, *, obs_shape: tuple[int, ...], obs_dtype: str, num_actions: int,
                 frame_stack: int, seed: int, store_dir: str | Path | None = None,
                 meta: StoreMeta | None = None, _hot: HotTier | None = None, _store_at: int | None = None):
        config.check()
        self.config = config
        if _hot is None:
            schema = ReplaySchema(num_slots=ring_slots(config.capacity), obs_shape=tuple(obs_shape),
                                  obs_dtype=obs_dtype, num_actions=num_actions, frame_stack=frame_stack,
                                  unroll_steps=config.unroll_steps, td_steps=config.td_steps)
            _hot = HotTier(schema)
        self.hot = _hot
        self._sampler = PrioritySampler(self.hot.num_slots, config, seed)
        self.store: ReplayStore | None = None
        if store_dir is not None:
            try:
                self.store = ReplayStore(store_dir, self.hot.schema, meta or StoreMeta("", ""),
                                         config.segment_length, config.zstd_level, start_at=_store_at)
            except BaseException:
                self.hot.close()
                raise

    @classmethod
    def load(cls, store_dir: str | Path, config: ReplayConfig, seed: int, cursors: Cursors | None = None) -> "Replay":
        """Rebuild hot tier, priorities and cursors exactly as they stood at `cursors` (those a
        checkpoint names) or, by default, at the store's last flush. Appends continue from there."""
        def make_hot(schema: ReplaySchema) -> HotTier:
            if schema.num_slots != ring_slots(config.capacity):
                raise ValueError(f"store has {schema.num_slots} slots, config.capacity {config.capacity} "
                                 f"needs {ring_slots(config.capacity)}")
            if (schema.unroll_steps, schema.td_steps) != (config.unroll_steps, config.td_steps):
                raise ValueError("store unroll_steps/td_steps differ from the config")
            return HotTier(schema)

        hot, loaded = load_into(store_dir, make_hot, cursors)
        try:
            replay = cls(config, obs_shape=hot.schema.obs_shape, obs_dtype=hot.schema.obs_dtype,
                         num_actions=hot.schema.num_actions, frame_stack=hot.schema.frame_stack, seed=seed,
                         store_dir=store_dir, meta=loaded.meta, _hot=hot, _store_at=hot.write_count)
            replay.sampler.restore(loaded.priorities)
            if loaded.sampler_rng is not None:
                replay.sampler.rng.bit_generator.state = loaded.sampler_rng
        except BaseException:
            hot.close()
            raise
        return replay

    @property
    def sampler(self) -> PrioritySampler:
        """The sum-tree sampler, with every hot-tier event so far applied."""
        self._apply_events()
        return self._sampler

    def _apply_events(self) -> None:
        if self.hot.pending_events:
            slots, ok = self.hot.take_events()
            self._sampler.apply_events(slots, ok)

    @property
    def handle(self) -> HotTierHandle:
        """Pass to another process: HotTier.attach(handle)."""
        return self.hot.handle

    @property
    def collected(self) -> int:
        """Transitions collected so far (N_now)."""
        return self.hot.collected

    def append(self, stream: int, obs: np.ndarray, action: int, reward: float, raw_reward: float,
               root_value: float, policy: np.ndarray) -> int:
        """Store a transition (see HotTier.append); returns its collection index."""
        i = self.hot.append(stream, obs, action, reward, raw_reward, root_value, policy)
        self._after_write()
        return i

    def end_episode(self, stream: int, final_obs: np.ndarray, terminated: bool, truncated: bool) -> None:
        """Close the stream's episode with o_T (see HotTier.end_episode)."""
        self.hot.end_episode(stream, final_obs, terminated, truncated)
        self._after_write()

    def _after_write(self) -> None:
        # Events reach the sum tree in batches (every read of `sampler` applies the rest first):
        # one tree update per append cost more than the append itself.
        if self.hot.pending_events >= EVENT_BATCH:
            self._apply_events()
        if self.store is not None and self.hot.write_count - self.store.appended >= self.store.segment:
            self.store.append(self.hot)

    def sample(self, batch_size: int, step: int) -> Sample:
        """Prioritised draw for training step `step`."""
        return self.sampler.sample(batch_size, step)

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """New priorities (`float[B]`, > 0) for collection `indices: int64[B]`; transitions evicted or
        invalidated since they were sampled are skipped."""
        slots = self.hot.slot_of_index(indices)
        keep = slots >= 0
        self.sampler.update(slots[keep], np.asarray(priorities, np.float64)[keep])

    def flush(self) -> Cursors | None:
        """Make the store of record durable up to now; returns the cursors committed (None
        without a store)."""
        wait, cursors = self.flush_begin()
        wait()
        return cursors

    def flush_begin(self) -> tuple[Callable[[], None], Cursors | None]:
        """Start making the store durable up to now (copies taken here, on the caller's thread);
        returns the wait for it, callable from any thread, and the cursors it commits (what a
        checkpoint must hold to resume from exactly this point). No-op without a store."""
        if self.store is None:
            return (lambda: None), None
        store = self.store
        written, cursors = store.flush_begin(self.hot, self.sampler.priorities(),
                                             self.sampler.rng.bit_generator.state)
        return (lambda: store.wait(written)), cursors

    def close(self) -> None:
        """Stop the writer thread and unlink the shared memory (does not flush)."""
        try:
            if self.store is not None:
                self.store.close()
        finally:
            self.hot.close()
