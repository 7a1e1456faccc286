"""LearnerThread: the learner running beside the event loop on its own thread.

Per step s: enqueue update s, stage batch s + 1 (its H2D copy overlaps update s on CUDA), read
update s back (the step's one sync point), publish the weights at the boundary (online every
publish_interval steps, a target snapshot every target_update_interval steps), and only then
hand priorities and stats to the callbacks. Errors are stored with their traceback,
reported through on_error at once, and re-raised by check() / join() on the caller's thread.
"""
from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ezero_async.learner.learner import Learner, LossStats, UpdateAborted, UpdateResult
from ezero_async.learner.transfer import BatchMover, DeviceBatch, check_batch
from ezero_async.learner.weights import WeightStore
from ezero_async.replay.batch import TrainingBatch

PrioritiesCallback = Callable[[np.ndarray, np.ndarray], None]
"""(indices int64[B], priorities float32[B]) -> None, called on the learner thread."""


class StoredError:
    """An error a worker stored for its caller: check() re-raises it on the caller's thread."""

    _error: BaseException | None = None

    def check(self) -> None:
        """Re-raise the stored exception (its original traceback intact), if any."""
        if self._error is not None:
            raise self._error

    @property
    def error(self) -> BaseException | None:
        return self._error


class LearnerThread(StoredError):
    """Runs `learner` on batches from `batches` (a bounded queue.Queue of TrainingBatch; None
    ends the thread after the current step).

    online / target: stores the weights are published to (either may be None). Target rule:
    the snapshot saved at every step s with s % target_update_interval == 0 is version s, and
    step s uses version schedule.target_version(s, I). Callbacks run on this thread and must be
    quick and thread-safe (use loop.call_soon_threadsafe to reach asyncio):
    on_priorities(indices, priorities); on_step(UpdateResult); on_error(exc) — the supervisor's
    wake-up; on_batch_done(batch) — the host arrays of `batch` are no longer referenced.
    num_threads: torch intra-op threads of this thread on CPU (1: see FACTS.md).
    """

    def __init__(self, learner: Learner, batches: queue.Queue[TrainingBatch | None], *,
                 on_priorities: PrioritiesCallback, online: WeightStore | None = None,
                 target: WeightStore | None = None, on_step: Callable[[UpdateResult], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 on_batch_done: Callable[[TrainingBatch], None] | None = None, num_threads: int = 1,
                 poll_interval: float = 0.05, name: str = "learner",
                 on_checkpoint: Callable[[int, dict], None] | None = None, checkpoint_interval: int = 0) -> None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.learner = learner
        self.batches = batches
        self.online, self.target = online, target
        self.on_priorities, self.on_step = on_priorities, on_step
        self.on_error, self.on_batch_done = on_error, on_batch_done
        self.on_checkpoint, self.checkpoint_interval = on_checkpoint, checkpoint_interval
        self.num_threads = num_threads
        self.poll_interval = poll_interval
        self.mover = BatchMover(learner.device)
        self.steps_done = 0
        """Updates applied by this thread."""
        self.last_stats: LossStats | None = None
        self.last_step_time = time.monotonic()
        """time.monotonic() of the last finished update (for stall reports)."""
        self.timing = {"wait_batch": 0.0, "stage": 0.0, "update": 0.0}
        """Cumulative seconds of this thread: waiting on an empty queue, staging batches (host
        copies, enqueueing H2D), and updates (launch + the read-back wait), for timing/ metrics."""
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # ------------------------------------------------------------ caller side

    def start(self) -> None:
        self._thread.start()

    def stop(self, drop_update: bool = False) -> None:
        """Request a clean stop between steps (returns at once; join() waits). drop_update: also
        drop the update in progress, leaving the learner as before it (a signal's stop; on a
        CPU an Atari update takes seconds)."""
        self._stop.set()
        if drop_update:
            self.learner.abort.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end, then re-raise its error, if any."""
        self._thread.join(timeout)
        self.check()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def step(self) -> int:
        """The next training step the learner will apply."""
        return self.learner.step

    def snapshot(self) -> dict:
        """Host copies of everything a checkpoint needs from the learner side, taken between
        updates (on this thread, or on any thread once it has stopped): the learner's state and
        every weights version the stores hold (self-play and reanalysis of the steps after a
        resume ask for exactly these versions)."""
        return checkpoint_snapshot(host_copy(self.learner.state_dict()), self.online, self.target)

    # ------------------------------------------------------------ thread side

    def _run(self) -> None:
        try:
            torch.set_num_threads(self.num_threads)  # per-thread on CPU (OpenMP), see FACTS.md
            if self.learner.device.type == "cuda":
                torch.cuda.set_device(self.learner.device)
                # Own compute stream: never serialised behind the inference thread's work.
                with torch.cuda.stream(torch.cuda.Stream(self.learner.device)):
                    self._loop()
            else:
                self._loop()
        except Exception as exc:  # noqa: BLE001 - stored, reported and re-raised by check()
            self._error = exc
            if self.on_error is not None:
                self.on_error(exc)

    def _loop(self) -> None:
        staged = self._next(block=True)
        while staged is not None and not self._stop.is_set():
            batch, current = staged
            self._publish(self.learner.step)
            start = time.perf_counter()
            self.mover.ready(current)  # compute waits for the copy on the device, not the host
            try:
                pending = self.learner.launch(current)
            except UpdateAborted:
                self.mover.done(current)
                staged = (batch, current)  # dropped below, like a batch staged when the stop came
                break
            self.mover.done(current)
            launched = time.perf_counter()
            # Overlap: stage the next batch while the device runs update s.
            staged = None if self._stop.is_set() else self._next(block=False)
            staged_at = time.perf_counter()
            result = self.learner.finish(pending)  # sync point: the update is complete
            self.timing["update"] += (launched - start) + (time.perf_counter() - staged_at)
            if self.on_batch_done is not None:
                self.on_batch_done(batch)
            self.steps_done += 1
            self.last_stats = result.stats
            self.last_step_time = time.monotonic()
            # Publish before reporting the update: whoever learns that `step` updates are done
            # may ask for version `step` at once.
            self._publish(self.learner.step)
            self.on_priorities(result.indices, result.priorities)
            if self.on_step is not None:
                self.on_step(result)
            if self.on_checkpoint is not None and self.checkpoint_interval > 0 \
                    and self.learner.step % self.checkpoint_interval == 0:
                self.on_checkpoint(self.learner.step, self.snapshot())
            if staged is None and not self._stop.is_set():
                staged = self._next(block=True)
        if staged is not None and self.on_batch_done is not None:
            self.on_batch_done(staged[0])  # staged but dropped by a stop request
        # After the last update the online weights are always published (the final evaluation
        # uses them); the target follows its usual rule.
        self._publish(self.learner.step, final=True)

    def _next(self, block: bool) -> tuple[TrainingBatch, DeviceBatch] | None:
        """Take and stage the next batch; None on stop, end-of-stream, or (non-blocking) empty."""
        while not self._stop.is_set():
            waited = time.perf_counter()
            try:
                batch = self.batches.get(timeout=self.poll_interval) if block else self.batches.get_nowait()
            except queue.Empty:
                self.timing["wait_batch"] += time.perf_counter() - waited
                if not block:
                    return None
                continue
            if batch is None:
                self._stop.set()
                return None
            staging = time.perf_counter()
            self.timing["wait_batch"] += staging - waited
            model = self.learner.model
            check_batch(batch, self.learner.frame_stack, self.learner.cfg.unroll_steps, model.num_actions)
            staged = self.mover.stage(batch)
            self.timing["stage"] += time.perf_counter() - staging
            return batch, staged
        return None

    def _publish(self, step: int, final: bool = False) -> None:
        """At the boundary before training step `step` (weights after `step` updates)."""
        cfg = self.learner.cfg
        # A store may already hold this version (the runtime publishes the initial weights as
        # version 0 before the first batch exists, so self-play and reanalysis can start).
        if self.online is not None and (final or step % cfg.publish_interval == 0) and _older(self.online, step):
            self.online.publish(step, self.learner.model)
        if self.target is not None and step % cfg.target_update_interval == 0 and _older(self.target, step):
            self.target.publish(step, self.learner.model)


def _older(store: WeightStore, step: int) -> bool:
    newest = store.newest
    return newest is None or newest < step


class WeightsPool:
    """Makes equal weight tensors one tensor object, so torch.save writes each distinct tensor
    once: a checkpoint's weight versions mostly equal each other or the learner's own weights
    (the newest online version is the learner's model; a target version often equals an online
    one). Only model state dicts go through it: they are copied into modules on load, so the
    shared storage never aliases live state (optimizer buffers would: they stay private)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[torch.dtype, tuple[int, ...]], list[torch.Tensor]] = {}

    def intern(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for name, tensor in state.items():
            candidates = self._seen.setdefault((tensor.dtype, tuple(tensor.shape)), [])
            same = next((t for t in candidates if torch.equal(t, tensor)), None)
            if same is None:
                candidates.append(tensor)
            out[name] = tensor if same is None else same
        return out


def checkpoint_snapshot(learner: dict, online: WeightStore | None, target: WeightStore | None) -> dict:
    """A checkpoint's learner side: `learner` (a host copy of Learner.state_dict()) and every
    weights version the stores hold, each distinct tensor once."""
    weights = WeightsPool()
    learner = dict(learner, model=weights.intern(learner["model"]))
    return {"learner": learner, "online": _held_versions(online, weights), "target": _held_versions(target, weights)}


def _held_versions(store: WeightStore | None, weights: WeightsPool) -> list[dict]:
    if store is None:
        return []
    held = []
    for version in store.versions():
        with store.read(version) as (_, state):
            held.append({"version": version, "model": weights.intern(host_copy(state))})
    return held


def host_copy(value: Any) -> Any:
    """A deep copy with every tensor cloned to the CPU (state dicts, optimizer state)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: host_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(host_copy(v) for v in value)
    return copy.deepcopy(value)
