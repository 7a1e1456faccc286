"""Stepping games without blocking the event loop.

Measured by tools/bench_envs.py: `ale.act` and the frame kernel release the GIL (two threads
step Atari ~1.9x faster than one), so Atari games are stepped on worker threads. Requests that
arrive in the same loop iteration go to a worker as one batch: one thread hop per batch, not
per env (a hop costs tens of µs, an Atari step ~300 µs). Pure-Python games (MinAtar, CartPole:
5-30 µs a step with the GIL held) are stepped inline: a hop would cost more than the step and
could not run in parallel anyway.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from ezero_async.envs.game import Game, Step

_Request = tuple[Callable[[], Any], asyncio.Future]


class EnvStepper:
    """`await stepper.step(game, action)` / `await stepper.reset(game)` from any coroutine of one loop.

    An exception raised by a game is set on that request's future only, with its traceback.
    """

    def __init__(self, num_threads: int = 2) -> None:
        self.num_threads = num_threads
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix="env-step")
        self._pending: list[_Request] = []
        self._flush_scheduled = False
        self.batches = 0
        """Worker batches dispatched so far (for throughput reports)."""

    async def step(self, game: Game, action: int) -> Step:
        if not game.releases_gil:
            return game.step(action)
        return await self._submit(lambda: game.step(action))

    async def reset(self, game: Game) -> np.ndarray:
        if not game.releases_gil:
            return game.reset()
        return await self._submit(game.reset)

    def _submit(self, call: Callable[[], Any]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((call, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush, loop)
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending, self._flush_scheduled = self._pending, [], False
        shards = min(self.num_threads, len(batch))
        for shard in range(shards):
            requests = batch[shard::shards]
            work = loop.run_in_executor(self._pool, _run_all, [call for call, _ in requests])
            work.add_done_callback(lambda done, reqs=requests: _deliver(done, reqs))
            self.batches += 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _run_all(calls: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """Worker thread: run each call, keeping its result or its exception (traceback attached)."""
    out: list[tuple[bool, Any]] = []
    for call in calls:
        try:
            out.append((True, call()))
        except Exception as exc:  # handed to the awaiting coroutine, which re-raises it
            out.append((False, exc))
    return out


def _deliver(done: asyncio.Future, requests: list[_Request]) -> None:
    if done.cancelled():
        for _, future in requests:
            future.cancel()
        return
    if done.exception() is not None:
        for _, future in requests:
            if not future.done():
                future.set_exception(done.exception())
        return
    for (ok, value), (_, future) in zip(done.result(), requests):
        if future.done():  # the awaiting coroutine was cancelled meanwhile
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
