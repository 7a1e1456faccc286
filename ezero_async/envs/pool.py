"""EnvPool: N games stepped without blocking the event loop.

Measured by tools/bench_envs.py (ale-py 0.12.1): `ale.act` holds the GIL (two threads step
Atari 0.95x as fast as one, and a Python thread beside it runs at half speed), so threads cannot
step emulators in parallel. Expensive games (Atari, ~330 µs an agent step) therefore step in
worker processes: each worker owns a shard of the games, writes their frames into one
shared-memory array, and answers a whole batch of requests with one small pipe message that the
event loop reads with `add_reader` (no thread hop, no frame pickling). Cheap pure-Python games
(MinAtar, CartPole: 5-10 µs a step) step inline: a process round trip would cost 10x the step.
`num_workers=0` steps every game inline (serial mode, tests).

Workers never act on SIGINT/SIGTERM: a terminal's Ctrl-C and a scheduler's SIGTERM go to the
whole process group, and the parent owns the stop (it still needs its workers for the exit
checkpoint's bookkeeping and closes them itself). A worker exits when told to, or when its pipe
to the parent closes (the parent died).
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from ezero_async.config.sections import EnvConfig
from ezero_async.envs.game import Game, ObsSpec, Step


STARTUP_TIMEOUT_S = 120.0
"""A worker that has not built its games by then is reported as stuck."""


TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals the parent handles for its workers (see the module docstring)."""


class EnvWorkerError(RuntimeError):
    """A game raised in a worker process (the message carries the worker's traceback), or a
    worker process died."""


@dataclass(frozen=True)
class GameFactory:
    """Picklable recipe for the games of a pool: game i is make_game(env, seed=seed + i)."""

    env: EnvConfig
    training: bool

    def __call__(self, seed: int) -> Game:
        from ezero_async.envs.registry import make_game

        return make_game(self.env, seed=seed, training=self.training)


class EnvPool:
    """`await pool.reset(i)` -> first frame, `await pool.step(i, action)` -> Step, for env ids
    0..num_envs-1, from coroutines of one event loop. Returned frames are copies owned by the
    caller. Requests made in the same loop iteration go to a worker as one message; each env
    has at most one request in flight (a second is a usage error)."""

    def __init__(self, factory: Any, *, num_envs: int, seed: int, num_workers: int | None = None) -> None:
        """factory: callable seed -> Game (picklable if games go to workers); num_workers None =
        min(os.cpu_count(), num_envs) workers when the game is expensive to step, else inline."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        probe = factory(seed)
        self.obs_spec: ObsSpec = probe.obs_spec
        self.num_actions: int = probe.num_actions
        self.num_envs = num_envs
        if num_workers is None:
            num_workers = min(os.cpu_count() or 1, num_envs) if probe.offload else 0
        self.num_workers = min(num_workers, num_envs)
        self._in_flight: set[int] = set()
        if self.num_workers == 0:
            self._games = [probe] + [factory(seed + i) for i in range(1, num_envs)]
            self._workers: list[_Worker] = []
            return
        probe.close()
        self._games = []
        nbytes = int(np.prod(self.obs_spec.shape)) * self.obs_spec.dtype.itemsize * num_envs
        self._shm = SharedMemory(create=True, size=max(nbytes, 1))
        self._frames = np.ndarray((num_envs, *self.obs_spec.shape), self.obs_spec.dtype, buffer=self._shm.buf)
        ctx = mp.get_context("spawn")  # never fork a process that holds torch/uvloop threads
        self._closed = False
        self._workers = []
        try:
            for w in range(self.num_workers):
                self._workers.append(_Worker(ctx, w, factory, seed, list(range(w, num_envs, self.num_workers)),
                                             self._shm.name, self.obs_spec))
            for worker in self._workers:
                worker.wait_ready(STARTUP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    async def reset(self, env_id: int) -> np.ndarray:
        if not self._workers:
            return self._games[env_id].reset().copy()
        await self._request(env_id, ("reset", env_id, 0))
        return self._frames[env_id].copy()

    async def step(self, env_id: int, action: int) -> Step:
        if not self._workers:
            step = self._games[env_id].step(action)
            return step._replace(obs=step.obs.copy())
        reply = await self._request(env_id, ("step", env_id, int(action)))
        return Step(self._frames[env_id].copy(), *reply)

    async def _request(self, env_id: int, op: tuple[str, int, int]) -> Any:
        if not 0 <= env_id < self.num_envs:
            raise ValueError(f"env id {env_id} out of range [0, {self.num_envs})")
        if env_id in self._in_flight:
            raise RuntimeError(f"env {env_id} already has a request in flight")
        self._in_flight.add(env_id)
        try:  # cleared here rather than by a done-callback: one loop callback less per step
            return await self._workers[env_id % self.num_workers].submit(op)
        finally:
            self._in_flight.discard(env_id)

    def close(self) -> None:
        """Stop the workers and release the shared memory (idempotent, safe on every exit path)."""
        for game in self._games:
            game.close()
        self._games = []
        if self._workers and not self._closed:
            self._closed = True
            for worker in self._workers:
                worker.stop()
            self._frames = None  # drop the view before closing the mapping
            self._shm.close()
            self._shm.unlink()

    def __del__(self) -> None:
        if getattr(self, "_workers", None) and not getattr(self, "_closed", True):
            self.close()


class _Worker:
    """Parent-side handle of one worker process: batches requests, one message in flight."""

    def __init__(self, ctx: Any, index: int, factory: Any, seed: int, env_ids: list[int], shm_name: str,
                 spec: ObsSpec) -> None:
        self.index = index
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, name=f"env-worker-{index}", daemon=True,
                                   args=(child, factory, seed, env_ids, shm_name, spec))
        # The child inherits the signal mask of the thread that starts it: with the terminal
        # signals blocked, a Ctrl-C during the child's interpreter start-up stays pending there
        # (and is discarded once _worker_main ignores it) instead of killing it mid-import.
        # In the parent the signal stays pending too, and is delivered when the mask is restored.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINAL_SIGNALS)
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        child.close()
        self._queued: list[tuple[tuple[str, int, int], asyncio.Future]] = []
        self._sent: list[asyncio.Future] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._dead: BaseException | None = None

    def wait_ready(self, timeout: float) -> None:
        """Block until the worker has built its games (start-up is not a step's latency)."""
        if not self.conn.poll(timeout):
            raise EnvWorkerError(f"env worker {self.index} did not start within {timeout:.0f} s")
        try:
            ok, message = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=1.0)
            raise EnvWorkerError(f"env worker {self.index} died while starting "
                                 f"(exit code {self.process.exitcode})") from None
        if not ok:
            raise EnvWorkerError(message)

    def submit(self, op: tuple[str, int, int]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (e.g. a second asyncio.run)
            if self._sent or self._queued:
                raise RuntimeError("EnvPool used from a second event loop while requests are in flight")
            if self._loop is not None and not self._loop.is_closed() and self._dead is None:
                self._loop.remove_reader(self.conn.fileno())
            self._loop = loop
            loop.add_reader(self.conn.fileno(), self._on_reply)
        future = loop.create_future()
        if self._dead is not None:
            future.set_exception(self._dead)
            return future
        self._queued.append((op, future))
        if not self._sent and not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._sent or not self._queued or self._dead is not None:
            return
        ops = [op for op, _ in self._queued]
        self._sent = [future for _, future in self._queued]
        self._queued = []
        self.conn.send(ops)

    def _on_reply(self) -> None:
        try:
            replies = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=1.0)
            self._fail(EnvWorkerError(f"env worker {self.index} (pid {self.process.pid}) died "
                                      f"with exit code {self.process.exitcode}"))
            return
        sent, self._sent = self._sent, []
        for future, (ok, value) in zip(sent, replies):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(EnvWorkerError(value))
        self._flush()

    def _fail(self, error: BaseException) -> None:
        self._dead = error
        if self._loop is not None:
            self._loop.remove_reader(self.conn.fileno())
        for future in self._sent + [f for _, f in self._queued]:
            if not future.done():
                future.set_exception(error)
        self._sent, self._queued = [], []

    def stop(self) -> None:
        if self._loop is not None and self._dead is None:
            self._loop.remove_reader(self.conn.fileno())
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass  # already exiting; terminate below if it lingers
            self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5.0)
        self.conn.close()


def _worker_main(conn: Connection, factory: Any, seed: int, env_ids: list[int], shm_name: str,
                 spec: ObsSpec) -> None:
    """Worker process: build its games, then answer batches of (op, env id, action) until None
    (or until the parent's end of the pipe closes)."""
    for signum in TERMINAL_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, TERMINAL_SIGNALS)
    shm = SharedMemory(name=shm_name)
    try:
        frames = np.ndarray((max(env_ids) + 1, *spec.shape), spec.dtype, buffer=shm.buf)
        try:
            games = {i: factory(seed + i) for i in env_ids}
        except Exception as exc:  # reported to the parent, which raises it from the constructor
            conn.send((False, f"building games {env_ids}: {type(exc).__name__}: {exc}\n"
                              f"--- worker traceback ---\n{traceback.format_exc()}"))
            return
        conn.send((True, None))
        while (ops := _receive(conn)) is not None:
            replies: list[tuple[bool, Any]] = []
            for op, env_id, action in ops:
                try:
                    if op == "reset":
                        frames[env_id] = games[env_id].reset()
                        replies.append((True, None))
                    else:
                        step = games[env_id].step(action)
                        frames[env_id] = step.obs
                        replies.append((True, tuple(step[1:])))
                except Exception as exc:  # sent to the awaiting coroutine with the full traceback
                    replies.append((False, f"env {env_id}: {type(exc).__name__}: {exc}\n"
                                           f"--- worker traceback ---\n{traceback.format_exc()}"))
            try:
                conn.send(replies)
            except (BrokenPipeError, ConnectionResetError):
                break  # the parent is gone: nobody to answer
        for game in games.values():
            game.close()
        del frames
    finally:
        shm.close()


def _receive(conn: Connection) -> Any:
    """The parent's next batch; None when told to stop or when the parent's end has closed."""
    try:
        return conn.recv()
    except EOFError:
        return None
