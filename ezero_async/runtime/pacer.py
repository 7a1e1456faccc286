"""Pacer: the hardware-independent schedule of SPEC_TRAINING.md ("Schedule").

Every dependency is a function of step counters, never of machine speed; whichever side runs
ahead waits. With E = env_steps, W = start_transitions, r = train_steps_per_env_step (k or 1/k)
and S0 = ceil(W * r) warm-up updates:
  - batch s samples from exactly N(s) = min(E, W + max(0, floor((s - S0) / r))) transitions
    (r = 1: min(E, max(W, s)), the spec's formula);
  - transition n >= W is first seen by batch s1(n) = S0 + ceil((n + 1 - W) * r), so it may be
    collected only once batches 0 .. s1(n) - 1 are built (and batch s waits until N(s) are
    collected);
  - self-play for transition n >= W acts with online weights of version
    P * floor((s1(n) - 1 - D_sp) / P) (r = 1: P * floor((n - D_sp) / P), the spec's formula);
  - batch s is built from the priorities as they stood after update s - D (updates are
    applied in step order, never ahead);
  - training runs S0 + ceil((E - W) * r) + tail steps.
Serial mode (runtime.serial) also fixes who collects what: one transition in flight at a time,
env n % num_envs collecting transition n, so the replay's layout never depends on timing.
"""
from __future__ import annotations

import asyncio
import math
import time
from fractions import Fraction

from ezero_async.config.sections import LearnerConfig, RuntimeConfig


class Pacer:
    def __init__(self, runtime: RuntimeConfig, learner: LearnerConfig) -> None:
        self.env_steps = runtime.env_steps
        self.start = runtime.start_transitions
        self.ratio = Fraction(runtime.train_steps_per_env_step).limit_denominator(1 << 16)
        self.lag = runtime.self_play_lag
        self.publish = learner.publish_interval
        self.prefetch = learner.prefetch_depth
        self.serial = runtime.serial
        self.num_envs = runtime.num_envs
        self.warmup_steps = math.ceil(self.start * self.ratio)
        """S0: updates on the W random transitions before collection resumes."""
        self.total_steps = (self.warmup_steps + math.ceil(max(0, self.env_steps - self.start) * self.ratio)
                            + runtime.tail_train_steps)
        self.reserved = 0
        """Transitions handed to env coroutines (collected or being collected)."""
        self.collected = 0
        """Transitions appended to the replay."""
        self.sampled = 0
        """Batches sampled (batch s is sampled once `sampled == s`)."""
        self.built = 0
        """Batches fully built and queued for the learner, in order."""
        self.trained = 0
        """Updates the learner has finished."""
        self.progress = {"collect": time.monotonic(), "build": time.monotonic(), "train": time.monotonic()}
        """Last progress time of each stage (monotonic seconds), for the stall watchdog."""
        self._changed = asyncio.Condition()
        self._ticks = 0
        """Notifications so far (a waiter that only needs "something changed" compares it)."""

    def restore(self, trained: int, collected: int) -> None:
        """Continue a run from a checkpoint at `trained` updates with `collected` transitions stored
        (batches after `trained` are sampled and built anew; collection continues at `collected`)."""
        self.trained = self.built = self.sampled = trained
        self.reserved = self.collected = collected

    # ------------------------------------------------------------ pure schedule

    def transitions_for(self, s: int) -> int:
        """N(s): transitions batch s samples from."""
        return min(self.env_steps, self.start + max(0, math.floor((s - self.warmup_steps) / self.ratio)))

    def first_batch_seeing(self, n: int) -> int:
        """s1(n): the first batch whose sample includes transition n (n >= start)."""
        return self.warmup_steps + math.ceil((n + 1 - self.start) * self.ratio)

    def self_play_version(self, n: int) -> int:
        """Online weights version used to act for transition n (n >= start)."""
        s = self.first_batch_seeing(n) - 1
        return max(0, self.publish * ((s - self.lag) // self.publish))

    def training_step_at(self, n: int) -> int:
        """The training step at which transition n is collected (for the temperature schedule)."""
        return 0 if n < self.start else self.first_batch_seeing(n) - 1

    # ------------------------------------------------------------ gates

    async def _wait(self, ready) -> None:
        async with self._changed:
            await self._changed.wait_for(ready)

    async def _notify(self, stage: str) -> None:
        self.progress[stage] = time.monotonic()
        self._ticks += 1
        async with self._changed:
            self._changed.notify_all()

    async def reserve_transition(self, env_id: int = 0) -> int | None:
        """Reserve the next collection index for env `env_id` (waits for the schedule, and in
        serial mode for its turn); None once E are reserved."""
        while True:
            n = self.reserved
            if n >= self.env_steps:
                return None
            ready = n < self.start or self.built >= self.first_batch_seeing(n)
            if self.serial:
                ready = ready and self.collected == n and n % self.num_envs == env_id
            if ready:
                self.reserved = n + 1
                return n
            ticks = self._ticks
            await self._wait(lambda: self._ticks != ticks)  # any progress: look again

    async def wait_weights(self, version: int) -> None:
        """Until the learner has published `version` (after `version` updates)."""
        await self._wait(lambda: self.trained >= version)

    def working(self, stage: str) -> None:
        """`stage` progresses inside long work that changes no count (a reanalysis sweep's chunk
        of searches): the stall watchdog sees it, waiters are not woken."""
        self.progress[stage] = time.monotonic()

    async def transition_collected(self) -> None:
        self.collected += 1
        await self._notify("collect")

    async def wait_collected(self, n: int) -> None:
        """Until n transitions are collected."""
        await self._wait(lambda: self.collected >= n)

    async def wait_sample_turn(self, s: int) -> None:
        """Until batch s may be sampled: batches < s sampled, N(s) collected, updates <= s - D done."""
        need = self.transitions_for(s)
        await self._wait(lambda: self.sampled == s and self.collected >= need
                         and self.trained >= s - self.prefetch + 1)

    async def batch_sampled(self, s: int) -> None:
        self.sampled = s + 1
        await self._notify("build")

    async def wait_build_turn(self, s: int) -> None:
        """Until batches < s are delivered (the learner consumes them in order)."""
        await self._wait(lambda: self.built == s)

    async def batch_built(self, s: int) -> None:
        self.built = s + 1
        await self._notify("build")

    async def update_done(self) -> None:
        self.trained += 1
        await self._notify("train")

    async def wait_trained(self, steps: int) -> None:
        await self._wait(lambda: self.trained >= steps)

    def waiting_on(self) -> str:
        """What the next update waits for, in words (progress lines of a run that seems frozen)."""
        if self.trained >= self.total_steps:
            return "the final evaluation"
        if self.trained < self.built:
            return f"the learner (update {self.trained + 1} of {self.total_steps})"
        need = self.transitions_for(self.built)
        if self.collected < need:
            return f"self-play ({self.collected} of the {need} transitions batch {self.built} samples from)"
        return f"replay sampling and reanalysis (building batch {self.built})"

    def stalled(self, timeout: float) -> str | None:
        """When no stage has progressed for `timeout` s, the stage the others are waiting on:
        'train' if the learner holds built batches it has not finished, else 'collect' if the next
        batch lacks transitions, else 'build'. None while anything progresses."""
        if time.monotonic() - max(self.progress.values()) <= timeout:
            return None
        if self.trained < self.built:
            return "train"
        if self.collected < self.transitions_for(self.sampled):
            return "collect"
        return "build"
