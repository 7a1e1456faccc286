"""Hot tier: the replay ring in shared memory, written by the owner, read zero-copy by anyone.

See schema.py for the slot model (one slot per observation, a final slot holding o_T, links
between the slots of an episode). The owner writes through `append` / `end_episode` and
collects two kinds of events for the sampler: slots that became sampleable (a transition whose
K + td_steps successors are stored, or whose episode ended) and slots that must never be
sampled again (evicted, or whose frame stack reaches back into an evicted slot).

Consistency for readers in other threads or processes: a slot's `generation` is set to -1
before its fields are written and to its write number after, and the header's write count
advances last. A reader that records the generations of the slots it gathers and finds them
unchanged afterwards has read a consistent slot (`HotTier.unchanged`).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ezero_async.replay.schema import SCHEMA_VERSION, ReplaySchema
from ezero_async.replay.shm import SharedArrays

HEADER_WORDS = 8
H_VERSION, H_WRITES, H_COLLECTED, H_EPISODES = 0, 1, 2, 3


class HotTierHandle(NamedTuple):
    """What another process needs to attach to a hot tier (picklable)."""

    name: str
    """Shared-memory segment name."""
    schema: ReplaySchema
    """Layout of the arrays."""


@dataclass
class StreamState:
    """Writer state of one env stream (owner only; saved in the store for resume)."""

    episode: int = -1
    """Episode id being written, -1 between episodes."""
    position: int = 0
    """Transitions written in the current episode."""
    last: int = -1
    """Write number of the stream's latest slot, -1 between episodes."""
    pending: deque = field(default_factory=deque)
    """Write numbers of the current episode's transitions that are not sampleable yet."""


def _specs(schema: ReplaySchema):
    n = schema.num_slots
    specs = [("header", np.dtype(np.int64), (HEADER_WORDS,))]
    specs += [(f.name, f.dtype, (n, *f.shape)) for f in schema.fields()]
    return specs


class HotTier:
    """Preallocated replay ring in POSIX shared memory. Create with `HotTier(schema)` (owner) or
    `HotTier.attach(handle)` (read-only view in any process)."""

    def __init__(self, schema: ReplaySchema, *, _attach_name: str | None = None):
        schema.check()
        self.schema = schema
        self.num_slots = schema.num_slots
        self._block = SharedArrays(_specs(schema), name=_attach_name, create=_attach_name is None)
        self.owner = self._block.owner
        a = self._block.arrays
        self.header = a["header"]
        self.frames, self.action, self.reward, self.raw_reward = a["frames"], a["action"], a["reward"], a["raw_reward"]
        self.terminal, self.truncated, self.episode, self.position = a["terminal"], a["truncated"], a["episode"], a["position"]
        self.root_value, self.policy, self.index = a["root_value"], a["policy"], a["index"]
        self.prev, self.next, self.generation = a["prev"], a["next"], a["generation"]
        if self.owner:
            for f in schema.fields():
                a[f.name][...] = f.poison
            self.header[:] = 0
            self.header[H_VERSION] = SCHEMA_VERSION
            self.streams: dict[int, StreamState] = {}
            self.write_count = 0
            self.collected = 0
            self.episodes = 0
            # Ring of collection index -> write number (live indices span at most num_slots).
            self.write_of_index = np.full(self.num_slots, -1, np.int64)
            # Ordered events for the sampler: slot >= 0 became sampleable, ~slot (< 0) must not
            # be sampled; order matters (a later event for the same slot wins).
            self._events: list[int] = []
        elif int(self.header[H_VERSION]) != SCHEMA_VERSION:
            raise ValueError(f"hot tier {_attach_name!r} has schema version {int(self.header[H_VERSION])}, "
                             f"this code reads {SCHEMA_VERSION}")

    # ---------------------------------------------------------------- access
    @classmethod
    def attach(cls, handle: HotTierHandle) -> "HotTier":
        """Read-only view of an existing hot tier (never unlinks it)."""
        return cls(handle.schema, _attach_name=handle.name)

    @property
    def handle(self) -> HotTierHandle:
        return HotTierHandle(self._block.name, self.schema)

    @property
    def shm_name(self) -> str:
        return self._block.name

    def published_writes(self) -> int:
        """Write count as published in the header (what readers may rely on)."""
        return int(self.header[H_WRITES])

    def published_collected(self) -> int:
        """Transitions collected, as published in the header."""
        return int(self.header[H_COLLECTED])

    def unchanged(self, slots: np.ndarray, generations: np.ndarray) -> bool:
        """True iff `slots: int64[...]` still hold the write numbers `generations` (same shape)."""
        now = self.generation[slots]
        return bool(np.all(now == generations) and np.all(now >= 0))

    def close(self) -> None:
        """Drop the mapping; the owner also unlinks the segment. Idempotent."""
        for name in ("header", "frames", "action", "reward", "raw_reward", "terminal", "truncated", "episode",
                     "position", "root_value", "policy", "index", "prev", "next", "generation"):
            self.__dict__.pop(name, None)
        self._block.close()

    # ---------------------------------------------------------------- writing (owner)
    def append(self, stream: int, obs: np.ndarray, action: int, reward: float, raw_reward: float,
               root_value: float, policy: np.ndarray) -> int:
        """Store one transition (o_t before a_t) of env `stream`; returns its collection index.

        obs: obs_dtype[*F]; policy: float32[A] (the root visit distribution). The first append
        of a stream (or the first after end_episode) starts a new episode."""
        st = self.streams.get(stream)
        if st is None:
            st = self.streams[stream] = StreamState()
        if st.episode < 0:
            st.episode = self.episodes
            self.episodes += 1
            st.position = 0
            st.last = -1
        w, s = self._begin_slot()
        i = self.collected
        self.frames[s] = obs
        self.action[s] = action
        self.reward[s] = reward
        self.raw_reward[s] = raw_reward
        self.terminal[s] = 0
        self.truncated[s] = 0
        self.episode[s] = st.episode
        self.position[s] = st.position
        self.root_value[s] = root_value
        self.policy[s] = policy
        self.index[s] = i
        self._link(st, w, s)
        self.write_of_index[i % self.num_slots] = w
        self.collected = i + 1
        st.position += 1
        st.pending.append(w)
        if len(st.pending) > self.schema.reach:
            self._release(st.pending.popleft())
        self._finish_slot(w, s)
        return i

    def end_episode(self, stream: int, final_obs: np.ndarray, terminated: bool, truncated: bool) -> None:
        """Close the stream's episode with o_T (final_obs: obs_dtype[*F]); exactly one of
        terminated / truncated must be true. All its transitions become sampleable."""
        st = self.streams.get(stream)
        if st is None or st.episode < 0 or st.position == 0:
            raise ValueError(f"end_episode: stream {stream} has no running episode with a transition")
        if bool(terminated) == bool(truncated):
            raise ValueError("end_episode: exactly one of terminated and truncated must be true")
        w, s = self._begin_slot()
        self.frames[s] = final_obs
        self.action[s] = -1
        self.reward[s] = 0.0
        self.raw_reward[s] = 0.0
        self.terminal[s] = 1 if terminated else 0
        self.truncated[s] = 1 if truncated else 0
        self.episode[s] = st.episode
        self.position[s] = st.position
        self.root_value[s] = 0.0
        self.policy[s] = 0.0
        self.index[s] = -1
        self._link(st, w, s)
        self.next[s] = w  # walking forward from o_T stays at o_T
        while st.pending:
            self._release(st.pending.popleft())
        st.episode, st.position, st.last = -1, 0, -1
        self._finish_slot(w, s)

    def abandon_open_episodes(self) -> None:
        """Drop every stream's running episode (a resumed run's envs start new games): its
        transitions that already had their whole unroll and TD reach stay sampleable, the last
        `reach` ones never become so."""
        for st in self.streams.values():
            st.pending.clear()
            st.episode, st.position, st.last = -1, 0, -1

    @property
    def pending_events(self) -> int:
        """Events not yet taken."""
        return len(self._events)

    def take_events(self) -> tuple[np.ndarray, np.ndarray]:
        """Events since the last call, in order: (slots: int64[n], sampleable: bool[n]); True =
        the slot became sampleable, False = it must not be sampled (evicted or its stack broke).
        Apply them in order: a later event for the same slot wins."""
        ev = np.asarray(self._events, np.int64)
        self._events.clear()
        ok = ev >= 0
        return np.where(ok, ev, ~ev), ok

    def live(self, w: int) -> bool:
        """Whether write number w still holds its data."""
        return 0 <= w and self.write_count - self.num_slots <= w < self.write_count

    def slot_of_index(self, indices: np.ndarray) -> np.ndarray:
        """Ring slots of collection `indices: int64[n]`; -1 where the transition was evicted."""
        indices = np.asarray(indices, np.int64)
        w = self.write_of_index[indices % self.num_slots]
        slots = w % self.num_slots
        ok = (w >= max(0, self.write_count - self.num_slots)) & (self.index[slots] == indices)
        return np.where(ok, slots, -1)

    # ---------------------------------------------------------------- internals
    def _begin_slot(self) -> tuple[int, int]:
        w = self.write_count
        s = w % self.num_slots
        if w >= self.num_slots:
            self._evict(s)
        self.generation[s] = -1  # readers: slot being written
        self.write_count = w + 1  # owner's view: w is live, w - num_slots is gone
        return w, s

    def _finish_slot(self, w: int, s: int) -> None:
        self.generation[s] = w
        self.header[H_COLLECTED] = self.collected
        self.header[H_EPISODES] = self.episodes
        self.header[H_WRITES] = self.write_count  # published last

    def _link(self, st: StreamState, w: int, s: int) -> None:
        if st.last < 0:
            self.prev[s] = w  # walking back from o_0 stays at o_0
        else:
            self.prev[s] = st.last
            if self.live(st.last):  # an episode longer than the ring: never touch a reused slot
                self.next[st.last % self.num_slots] = w
        self.next[s] = -1
        st.last = w

    def _evict(self, s: int) -> None:
        # The slot itself, and every transition whose frame stack reaches back into it.
        self._events.append(~s)
        w_old = int(self.generation[s])
        w = w_old
        for _ in range(self.schema.frame_stack - 1):
            nxt = int(self.next[w % self.num_slots])
            if nxt < 0 or nxt == w:
                break
            w = nxt
            self._events.append(~(w % self.num_slots))

    def _release(self, w: int) -> None:
        # Sampleable only if the transition and the S - 1 frames behind it are all still stored.
        if not self.live(w):
            return
        back = w
        for _ in range(self.schema.frame_stack - 1):
            back = int(self.prev[back % self.num_slots])
            if not self.live(back):
                return
        self._events.append(w % self.num_slots)

    # ---------------------------------------------------------------- restore (owner)
    def restore_cursors(self, write_count: int, collected: int, episodes: int,
                        streams: dict[int, StreamState]) -> None:
        """Set cursors after the arrays were filled from a store; rebuilds links and lookups."""
        n = self.num_slots
        self.write_count, self.collected, self.episodes = write_count, collected, episodes
        self.streams = streams
        lo = max(0, write_count - n)
        live_w = np.arange(lo, write_count, dtype=np.int64)
        slots = live_w % n
        self.generation[slots] = live_w
        self.next[slots] = -1
        final = (self.terminal[slots] == 1) | (self.truncated[slots] == 1)
        self.next[slots[final]] = live_w[final]
        prev = self.prev[slots]
        has_prev = (prev != live_w) & (prev >= lo)
        self.next[prev[has_prev] % n] = live_w[has_prev]
        is_tr = self.index[slots] >= 0
        self.write_of_index[self.index[slots[is_tr]] % n] = live_w[is_tr]
        self.header[H_COLLECTED] = collected
        self.header[H_EPISODES] = episodes
        self.header[H_WRITES] = write_count
