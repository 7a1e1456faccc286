"""Frame windows: walk each sampled slot's episode links and gather frames into preallocated buffers.

A *chain* for a sample at transition t lists the ring slots of times t - (S-1) .. t + K + td_max
(length L = S + K + td_max). Walking `prev` from the episode's first slot stays there and walking
`next` from the final slot (o_T) stays there, so the chain already repeats the first frame before
the episode start and o_T past its end. The sampleability rule guarantees the forward walk of a
running episode only meets written slots.
"""
from __future__ import annotations

import numpy as np

from ezero_async.replay.hot import HotTier


class ReplayRaceError(RuntimeError):
    """A gathered slot was overwritten while it was being read (the writer lapped the reader)."""


def walk_chains(hot: HotTier, slots: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fill `out: int64[B, L]` with the write numbers of each sample's chain (see module doc);
    `slots: int64[B]` are transition slots; column S - 1 is the transition itself. Returns out."""
    n = hot.num_slots
    back = hot.schema.frame_stack - 1
    length = out.shape[1]
    w = hot.generation[slots]
    if np.any(w < 0) or np.any(hot.index[slots] < 0):
        raise ReplayRaceError("walk_chains: a sampled slot is empty, being written or not a transition")
    out[:, back] = w
    for j in range(back - 1, -1, -1):
        w = hot.prev[w % n]
        out[:, j] = w
    w = out[:, back]
    for j in range(back + 1, length):
        w = hot.next[w % n]
        if np.any(w < 0):
            raise ReplayRaceError("walk_chains: a window reaches past the written data (sampleability bug)")
        out[:, j] = w
    return out


def gather_frames(frames: np.ndarray, slots: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy frames[slots] into `out: obs_dtype[*slots.shape, *F]` (slots: int64[...] ring slots).

    np.take with mode='clip' writes straight into `out` (mode='raise' would buffer the copy);
    the slots are valid by construction."""
    flat_out = out.reshape(-1, *frames.shape[1:])
    np.take(frames, slots.reshape(-1), axis=0, out=flat_out, mode="clip")
    return out
