"""LearnerProcess: the learner in a child process (`learner.isolation = "process"`, CPU runs).

Why a process: every torch op re-takes the GIL when it returns, so on a CPU a learner thread
advances only while the event loop and the inference threads run no Python. Beside a thread
holding the GIL 17 % of the time (1 ms bursts) a CartPole update took 1.1-1.4x as long, at 50 %
2.5x (`python tools/bench_learner.py --preset cartpole --frame 4 --actions 2 --contend 0.5`).
A child process has its own interpreter and GIL, so the update and the event loop run on
separate cores.

The child runs a LearnerThread on the batches of a multiprocessing queue and reports back in
order over a second queue: each weights publication (a host state dict) before the update that
made it is reported, as the thread publishes before reporting. A receiver thread here applies
them to the run's WeightStores and calls the same callbacks a LearnerThread calls, on itself.
The surface (start, stop, join, check, snapshot, step, timing) is LearnerThread's, so the
runtime uses either. Batches are pickled and state dicts travel as torch.save bytes (pickled
tensors would each take a shared-memory file and a hand-off thread): right for the CPU presets'
small batches and nets (a CartPole batch is about 100 KB, its weights 0.7 MB), wrong for
Atari-sized batches on a GPU, which keep the thread.

The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C or a scheduler's stop reaches the
whole process group; the run stops the child in order, so the exit checkpoint holds its last
update) and stops by itself, dropping the update in progress, if the run's process dies.
"""
from __future__ import annotations

import io
import multiprocessing as mp
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ezero_async.config.sections import LearnerConfig, ModelConfig
from ezero_async.learner.learner import Learner, LossStats, UpdateResult
from ezero_async.learner.model import build_model
from ezero_async.learner.synthetic import random_batch
from ezero_async.learner.thread import (LearnerThread, PrioritiesCallback, StoredError, checkpoint_snapshot,
                                        host_copy)
from ezero_async.learner.transfer import stage_naive
from ezero_async.learner.weights import StateDict, WeightStore

POLL_S = 0.05
"""How often the child looks at the stop flags and the parent's liveness, and the receiver at
the child's."""

_CONTEXT = mp.get_context("spawn")  # never fork: the run has threads (event loop, inference, env pool)

_running: set[int] = set()


def learner_pids() -> set[int]:
    """PIDs of the learner processes this process runs now (the profiler counts their CPU as the
    learner's, not as env workers')."""
    return set(_running)


def batch_queue(maxsize: int) -> Any:
    """The bounded TrainingBatch queue a LearnerProcess reads (put_nowait raises queue.Full, as
    queue.Queue's does)."""
    return _CONTEXT.Queue(maxsize=maxsize)


@dataclass(frozen=True)
class LearnerRecipe:
    """What the child needs to build the run's Learner (picklable); the state comes separately."""

    model: ModelConfig
    obs_shape: tuple[int, ...]
    frame_stack: int
    num_actions: int
    learner: LearnerConfig
    seed: int
    priority_eps: float

    def build(self) -> Learner:
        net = build_model(self.model, self.obs_shape, self.frame_stack, self.num_actions, self.learner.lstm_horizon)
        return Learner(net, self.learner, "cpu", frame_stack=self.frame_stack, seed=self.seed,
                       priority_eps=self.priority_eps)


class LearnerProcess(StoredError):
    """Runs `learner`'s updates in a child process on the batches of `batches` (from
    batch_queue()). `learner` is the run's Learner as built and restored here: the child builds
    its twin from `recipe` and loads `learner`'s state, so both start identical; afterwards the
    local one is stale (use `step` and snapshot()).

    Arguments and callbacks as LearnerThread's; callbacks run on this object's receiver thread.
    check() re-raises the child's error with the child's traceback attached as a note.
    """

    def __init__(self, learner: Learner, recipe: LearnerRecipe, batches: Any, *, on_priorities: PrioritiesCallback,
                 online: WeightStore | None = None, target: WeightStore | None = None,
                 on_step: Callable[[UpdateResult], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None, num_threads: int = 1,
                 on_checkpoint: Callable[[int, dict], None] | None = None, checkpoint_interval: int = 0) -> None:
        if learner.device.type != "cpu":
            raise ValueError("learner.isolation = 'process' runs the learner on the CPU; on a GPU use 'thread'")
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.batches = batches
        self.online, self.target = online, target
        self.on_priorities, self.on_step, self.on_error = on_priorities, on_step, on_error
        self.on_checkpoint, self.checkpoint_interval = on_checkpoint, checkpoint_interval
        self.steps_done = 0
        self.last_stats: LossStats | None = None
        self.last_step_time = time.monotonic()
        self.timing = {"wait_batch": 0.0, "stage": 0.0, "update": 0.0}
        """The child's cumulative seconds (see LearnerThread.timing), as of its last report."""
        self.learner = learner
        """The run's Learner: stale while the child trains, current again once the child has
        stopped and sent its final state (join())."""
        self._step = learner.step
        self._state: dict = host_copy(learner.state_dict())
        """The child's learner state as of its last report (the start state until then)."""
        self._error: BaseException | None = None
        self._stop, self._drop = _CONTEXT.Event(), _CONTEXT.Event()
        self._results = _CONTEXT.Queue()
        newest = {name: store.newest for name, store in (("online", online), ("target", target)) if store is not None}
        self._process = _CONTEXT.Process(
            target=_child_main, name="learner", daemon=True,
            args=(recipe, _pack(self._state), batches, self._results, self._stop, self._drop, newest, num_threads,
                  checkpoint_interval, os.getpid()))
        self._receiver = threading.Thread(target=self._receive, name="learner-receiver", daemon=True)

    # ------------------------------------------------------------ caller side

    def start(self) -> None:
        self._process.start()
        _running.add(self._process.pid)  # type: ignore[arg-type]
        self._receiver.start()

    def stop(self, drop_update: bool = False) -> None:
        """Ask the child to stop between updates (drop_update: also drop the one in progress);
        returns at once, join() waits."""
        if drop_update:
            self._drop.set()
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child's last report and its exit (killing it if it outlives `timeout`),
        then re-raise its error, if any."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._receiver.join(timeout)
        if self._process.pid is not None:
            self._process.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
                self._fail(RuntimeError(f"the learner process did not stop within {timeout} s and was killed"))
        if not self._process.is_alive():
            _running.discard(self._process.pid)  # type: ignore[arg-type]
            # Batches nobody will read must not hold this process's exit (the queue's feeder thread
            # would wait to flush them into a pipe without a reader).
            self.batches.cancel_join_thread()
        self.check()

    def is_alive(self) -> bool:
        return self._receiver.is_alive() or self._process.is_alive()

    @property
    def step(self) -> int:
        """The next training step the learner will apply (as of the child's last report)."""
        return self._step

    def snapshot(self) -> dict:
        """What a checkpoint needs from the learner side, as of the child's last report (call it
        from the callbacks, or once the child has stopped): its learner state and every version
        the stores hold."""
        return checkpoint_snapshot(self._state, self.online, self.target)

    # ------------------------------------------------------------ receiver thread

    def _receive(self) -> None:
        try:
            while True:
                try:
                    message = self._results.get(timeout=POLL_S)
                except queue.Empty:
                    if self._process.is_alive():
                        continue
                    try:  # it may have exited just after sending its last report
                        message = self._results.get(timeout=1.0)
                    except queue.Empty:
                        raise RuntimeError(f"the learner process exited with code {self._process.exitcode} "
                                           "without reporting why (killed?)") from None
                kind = message[0]
                if kind == "publish":
                    _, name, version, state = message
                    (self.online if name == "online" else self.target).publish_state(version, _unpack(state))
                elif kind == "step":
                    _, result, timing, state = message
                    self._apply_step(result, timing, None if state is None else _unpack(state))
                elif kind == "final":
                    _, state, self.timing = message
                    self._state = _unpack(state)
                    self.learner.load_state_dict(self._state)
                    return
                else:  # "error"
                    _, error, text = message
                    error.add_note(f"raised in the learner process:\n{text.rstrip()}")
                    raise error
        except Exception as exc:  # noqa: BLE001 - stored, reported and re-raised by check()
            self._fail(exc)
            self._stop.set()
            self._drop.set()

    def _apply_step(self, result: UpdateResult, timing: dict[str, float], state: dict | None) -> None:
        self._step = result.step + 1
        self.steps_done += 1
        self.last_stats = result.stats
        self.last_step_time = time.monotonic()
        self.timing = timing
        if state is not None:
            self._state = state
        self.on_priorities(result.indices, result.priorities)
        if self.on_step is not None:
            self.on_step(result)
        if state is not None and self.on_checkpoint is not None:
            self.on_checkpoint(self._step, self.snapshot())

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            if self.on_error is not None:
                self.on_error(exc)


class _Publisher:
    """Stands in for a WeightStore inside the child: sends each publication back as a state dict."""

    def __init__(self, results: Any, name: str, newest: int | None) -> None:
        self.results, self.name, self.newest = results, name, newest

    def publish(self, version: int, model: torch.nn.Module) -> None:
        self.results.put(("publish", self.name, version, _pack(model.state_dict())))
        self.newest = version


def _child_main(recipe: LearnerRecipe, state: bytes, batches: Any, results: Any, stop: Any, drop: Any,
                newest: dict[str, int | None], num_threads: int, checkpoint_interval: int, parent: int) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # the run stops this process in order (module doc)
        signal.signal(signum, signal.SIG_IGN)
    try:
        learner = recipe.build()
        learner.load_state_dict(_unpack(state))
        timing: dict[str, float] = {}

        def on_step(result: UpdateResult) -> None:
            due = checkpoint_interval > 0 and learner.step % checkpoint_interval == 0
            results.put(("step", result, dict(timing), _pack(learner.state_dict()) if due else None))

        online, target = (_Publisher(results, name, newest[name]) if name in newest else None
                          for name in ("online", "target"))
        thread = LearnerThread(learner, batches, on_priorities=lambda indices, priorities: None,
                               online=online, target=target, on_step=on_step,  # type: ignore[arg-type]
                               num_threads=num_threads)
        timing = thread.timing  # the same dict: each report carries a copy of its sums so far
        if recipe.learner.compile == "on":
            timing["compile"], compiled = _compile(learner, recipe, stop, parent, num_threads)
            if not compiled:  # stopped while compiling: the state it started from is the last
                results.put(("final", state, dict(timing)))
                results.close()
                results.join_thread()  # the report is in the pipe before the process ends
                os._exit(0)  # the compiling thread cannot be interrupted (its work is lost, not the run's)
        thread.start()
        while thread.is_alive():
            time.sleep(POLL_S)
            if os.getppid() != parent:  # orphaned: the run died without stopping us
                thread.stop(drop_update=True)
            elif stop.is_set():
                thread.stop(drop_update=drop.is_set())
        if thread.error is not None:
            _report_error(results, thread.error)
        else:
            results.put(("final", _pack(learner.state_dict()), dict(timing)))
    except Exception as exc:  # noqa: BLE001 - reported to the run, which re-raises it
        _report_error(results, exc)


def _compile(learner: Learner, recipe: LearnerRecipe, stop: Any, parent: int,
             num_threads: int) -> tuple[float, bool]:
    """Compile the learner's loss (Learner.warm_up on a synthetic batch of the run's shapes) on a
    helper thread while watching for a stop: cold, compiling takes minutes, and a stop must not
    wait for it. Returns the seconds spent and whether it finished (False: the run stopped or
    died first)."""
    rng = np.random.default_rng(0)
    batch = stage_naive(random_batch(rng, recipe.learner.batch_size, recipe.obs_shape, recipe.frame_stack,
                                     recipe.learner.unroll_steps, recipe.num_actions, step=learner.step),
                        learner.device)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            torch.set_num_threads(num_threads)  # per thread on a CPU, as the learner thread sets it
            learner.warm_up(batch)
        except Exception as exc:  # noqa: BLE001 - re-raised below, on the child's main thread
            failure.append(exc)

    started = time.perf_counter()
    worker = threading.Thread(target=work, name="learner-compile", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(POLL_S)
        if worker.is_alive() and (stop.is_set() or os.getppid() != parent):
            return time.perf_counter() - started, False
    if failure:
        raise failure[0]
    return time.perf_counter() - started, True


def _report_error(results: Any, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - an exception that cannot travel goes as its text
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    results.put(("error", exc, text))


def _pack(state: Any) -> bytes:
    """A state dict (or any torch.save-able object) as bytes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _unpack(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
