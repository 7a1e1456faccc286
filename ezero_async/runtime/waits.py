"""Waits: seconds that coroutines spend waiting, per stage, including waits still in progress.

A wait credited only when it ends hides a coroutine held for minutes (self-play during the
learner's warm-up, a reanalysis worker behind a full queue) until it resumes; the monitor and
the profiler would report such a stage idle. Waits keeps the start of every open wait, so
`seconds()` counts it up to now.
"""
from __future__ import annotations

import time


class Waits:
    """Per-stage waiting seconds summed over coroutines (loop thread only)."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self._done = dict.fromkeys(stages, 0.0)
        self._open: dict[tuple[str, int], float] = {}

    def begin(self, stage: str, who: int) -> None:
        """Coroutine `who` starts waiting in `stage` (it must not already wait there)."""
        self._open[stage, who] = time.perf_counter()

    def end(self, stage: str, who: int) -> None:
        self._done[stage] += time.perf_counter() - self._open.pop((stage, who))

    def seconds(self) -> dict[str, float]:
        """Seconds per stage so far, open waits counted up to now."""
        now = time.perf_counter()
        out = dict(self._done)
        for (stage, _), since in self._open.items():
            out[stage] += now - since
        return out
