"""Replay schema: the per-slot arrays shared by the hot tier (shared memory) and the store of record (zarr).

Storage model (one slot per stored observation). Every slot holds one observation and what
happened after it. A transition slot holds o_t with a_t, r_t, the search's root value and visit
distribution, the episode id, the position t and the global collection index. When an episode
ends after T transitions, one extra *final slot* holds o_T (action -1, reward 0, index -1) and
carries the end flags: `terminal` (the episode terminated at T) or `truncated` (it was cut at
T). So an episode of T transitions uses T + 1 slots, and o_T is an ordinary frame to the window
gatherer. Slots are written in arrival order (several env streams interleave), so an episode is
not contiguous in general: each slot links to the previous slot of its episode (`prev`, the
first slot links to itself) and the hot tier adds the forward link (`next`, a final slot links
to itself). Walking a link therefore clamps at both ends, which is exactly the frame-repeat rule
of the spec. Links are *write numbers* (0, 1, 2, ... over the life of the run); the ring slot of
write number w is w % num_slots, and w is live iff w >= write_count - num_slots.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

SCHEMA_VERSION = 1
"""Bumped whenever a field, its dtype or its meaning changes (checked when a store is loaded)."""

POISON_U8 = 0xEE
"""Fill value of never-written uint8 slots (frames, flags): stands out in a debugger."""
POISON_INT = -(2**31)
"""Fill value of never-written integer slots."""


class FieldSpec(NamedTuple):
    """One per-slot array."""

    name: str
    """Array name (the same in shared memory and in the zarr group)."""
    dtype: np.dtype
    """Element dtype."""
    shape: tuple[int, ...]
    """Per-slot shape (the array is [num_slots, *shape])."""
    poison: float | int
    """Fill value before the slot is ever written (NaN for floats)."""
    durable: bool
    """Stored in the zarr store of record (False: rebuilt on load)."""


@dataclass(frozen=True)
class ReplaySchema:
    """Everything needed to lay out (or attach to) a hot tier; picklable, so it crosses processes."""

    num_slots: int
    """Ring size in slots (transitions plus one final slot per finished episode)."""
    obs_shape: tuple[int, ...]
    """F: one stored frame, e.g. (96, 96, 3) uint8 or (4,) float32."""
    obs_dtype: str
    """'uint8' (images) or 'float32' (vector observations)."""
    num_actions: int
    """A: length of the stored visit distributions."""
    frame_stack: int
    """S: frames per model input stack (the window reaches S - 1 frames back)."""
    unroll_steps: int
    """K: unroll positions after the sampled transition."""
    td_steps: int
    """Largest TD depth (a transition needs K + td_steps successors before it is sampleable)."""

    def check(self) -> None:
        if self.obs_dtype not in ("uint8", "float32"):
            raise ValueError(f"obs_dtype must be 'uint8' or 'float32', got {self.obs_dtype!r}")
        if self.num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {self.num_actions}")
        if self.frame_stack < 1 or self.unroll_steps < 1 or self.td_steps < 1:
            raise ValueError("frame_stack, unroll_steps and td_steps must be >= 1")
        if any(d < 1 for d in self.obs_shape):
            raise ValueError(f"obs_shape must be positive, got {self.obs_shape}")
        need = 2 * (self.frame_stack + self.unroll_steps + self.td_steps + 1)
        if self.num_slots < need:
            raise ValueError(f"num_slots {self.num_slots} too small for one window (need >= {need})")

    @property
    def reach(self) -> int:
        """Successors a transition needs before it is sampleable (K + td_steps)."""
        return self.unroll_steps + self.td_steps

    def fields(self) -> tuple[FieldSpec, ...]:
        nan = float("nan")
        obs_poison = POISON_U8 if self.obs_dtype == "uint8" else nan
        return (
            FieldSpec("frames", np.dtype(self.obs_dtype), tuple(self.obs_shape), obs_poison, True),
            FieldSpec("action", np.dtype(np.int32), (), POISON_INT, True),
            FieldSpec("reward", np.dtype(np.float32), (), nan, True),
            FieldSpec("raw_reward", np.dtype(np.float32), (), nan, True),
            FieldSpec("terminal", np.dtype(np.uint8), (), POISON_U8, True),
            FieldSpec("truncated", np.dtype(np.uint8), (), POISON_U8, True),
            FieldSpec("episode", np.dtype(np.int64), (), POISON_INT, True),
            FieldSpec("position", np.dtype(np.int64), (), POISON_INT, True),
            FieldSpec("root_value", np.dtype(np.float32), (), nan, True),
            FieldSpec("policy", np.dtype(np.float32), (self.num_actions,), nan, True),
            FieldSpec("index", np.dtype(np.int64), (), POISON_INT, True),
            FieldSpec("prev", np.dtype(np.int64), (), POISON_INT, True),
            FieldSpec("next", np.dtype(np.int64), (), POISON_INT, False),
            FieldSpec("generation", np.dtype(np.int64), (), -1, False),
        )
