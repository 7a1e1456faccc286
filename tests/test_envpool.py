"""EnvPool: worker processes step Atari exactly like inline games; errors and dead workers reach
the awaiting coroutine; shared memory is released."""
import asyncio
import os
import signal

import numpy as np
import pytest

from ezero_async.config import build_config
from ezero_async.envs import EnvPool, EnvWorkerError, GameFactory
from ezero_async.envs.game import Game, ObsSpec
from segments import leaked_segments, shm_segments

ATARI = GameFactory(build_config("atari100k", "Breakout").env, training=True)


def play(pool, actions):
    """Run one coroutine per env; each resets then plays its row of actions. -> frames[env][t]."""

    async def actor(i):
        frames = [await pool.reset(i)]
        for a in actions[i]:
            step = await pool.step(i, int(a))
            frames.append(step.obs)
            if step.terminated or step.truncated:
                frames.append(await pool.reset(i))
        return np.stack(frames)

    async def everything():
        return await asyncio.gather(*(actor(i) for i in range(len(actions))))

    return asyncio.run(everything())


def test_workers_step_exactly_like_inline_games():
    actions = np.random.default_rng(0).integers(0, 4, size=(5, 60))
    before = shm_segments()
    inline = EnvPool(ATARI, num_envs=5, seed=10, num_workers=0)
    workers = EnvPool(ATARI, num_envs=5, seed=10, num_workers=2)
    try:
        assert workers.obs_spec == inline.obs_spec and workers.num_actions == inline.num_actions == 4
        expected, got = play(inline, actions), play(workers, actions)
    finally:
        inline.close()
        workers.close()
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
    assert not leaked_segments(before)


def test_cheap_games_step_inline_by_default():
    pool = EnvPool(GameFactory(build_config("cartpole", "CartPole").env, training=True), num_envs=3, seed=0)
    assert pool.num_workers == 0
    frames = play(pool, np.zeros((3, 5), dtype=np.int64))
    assert frames[0].shape[1:] == (4,) and frames[0].dtype == np.float32
    pool.close()


class FailsOnSecondStep(Game):
    offload = True
    obs_spec = ObsSpec((2,), np.dtype(np.float32))
    num_actions = 2

    def _reset_game(self):
        self.steps = 0
        return np.zeros(2, np.float32)

    def _step(self, action):
        self.steps += 1
        if self.steps == 2:
            raise ZeroDivisionError("the emulator divided by zero")
        if action == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash that takes the whole worker down
        return np.ones(2, np.float32), 1.0, False, False, False


def failing_game(seed):
    return FailsOnSecondStep("failing", training=True, clip_rewards=False, episode_life=False, max_steps=100)


def test_an_exception_in_a_worker_reaches_the_coroutine_with_its_traceback():
    pool = EnvPool(failing_game, num_envs=2, seed=0, num_workers=1)

    async def scenario():
        await pool.reset(0)
        await pool.step(0, 0)
        await pool.step(0, 0)

    try:
        with pytest.raises(EnvWorkerError) as info:
            asyncio.run(scenario())
    finally:
        pool.close()
    message = str(info.value)
    assert "ZeroDivisionError: the emulator divided by zero" in message
    assert "worker traceback" in message and "_step" in message


def test_a_dead_worker_fails_pending_and_later_requests():
    pool = EnvPool(failing_game, num_envs=2, seed=0, num_workers=1)

    async def scenario():
        await pool.reset(0)
        await pool.reset(1)
        results = await asyncio.gather(pool.step(0, 1), pool.step(1, 0), return_exceptions=True)
        later = await asyncio.gather(pool.step(1, 0), return_exceptions=True)
        return results + later

    try:
        results = asyncio.wait_for(scenario(), timeout=30)
        results = asyncio.run(results)
    finally:
        pool.close()
    assert all(isinstance(r, EnvWorkerError) and "died" in str(r) for r in results)


def test_two_requests_for_one_env_are_a_usage_error():
    pool = EnvPool(ATARI, num_envs=1, seed=0, num_workers=1)

    async def scenario():
        await pool.reset(0)
        first = asyncio.ensure_future(pool.step(0, 0))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already has a request in flight"):
            await pool.step(0, 0)
        await first

    try:
        asyncio.run(scenario())
    finally:
        pool.close()


def broken_factory(seed):
    if seed == 0:  # the parent's probe succeeds; the worker's construction fails
        return failing_game(seed)
    raise FileNotFoundError("ROM not found")


def test_a_game_that_cannot_be_built_in_a_worker_fails_the_constructor():
    before = shm_segments()
    with pytest.raises(EnvWorkerError, match="FileNotFoundError: ROM not found"):
        EnvPool(broken_factory, num_envs=2, seed=0, num_workers=1)
    assert not leaked_segments(before)


def test_a_pool_can_be_driven_by_successive_event_loops():
    pool = EnvPool(ATARI, num_envs=2, seed=0, num_workers=1)
    try:
        first = play(pool, np.zeros((2, 3), dtype=np.int64))
        second = play(pool, np.zeros((2, 3), dtype=np.int64))
    finally:
        pool.close()
    assert len(first) == len(second) == 2


class Counter(Game):
    offload = True
    obs_spec = ObsSpec((1,), np.dtype(np.float32))
    num_actions = 2

    def _reset_game(self):
        self.steps = 0
        return np.zeros(1, np.float32)

    def _step(self, action):
        self.steps += 1
        return np.full(1, self.steps, np.float32), 1.0, False, False, False


def counter_game(seed):
    return Counter("counter", training=True, clip_rewards=False, episode_life=False, max_steps=1000)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_workers_ignore_terminal_signals(signum, capfd):
    """Ctrl-C and SIGTERM reach the whole process group: the workers must leave the stop to
    their parent (which still steps and closes them), and print nothing."""
    pool = EnvPool(counter_game, num_envs=2, seed=0, num_workers=2)

    async def steps():
        return [await pool.step(i, 0) for i in range(2)]

    try:
        play(pool, np.zeros((2, 1), dtype=np.int64))
        for worker in pool._workers:  # noqa: SLF001
            os.kill(worker.process.pid, signum)
        asyncio.run(asyncio.sleep(0.3))
        assert all(w.process.is_alive() for w in pool._workers)  # noqa: SLF001
        assert [float(s.obs[0]) for s in asyncio.run(steps())] == [2.0, 2.0]
    finally:
        pool.close()
    assert all(w.process.exitcode == 0 for w in pool._workers)  # noqa: SLF001
    assert "Traceback" not in capfd.readouterr().err


def test_a_worker_exits_quietly_when_its_parent_end_closes(capfd):
    pool = EnvPool(counter_game, num_envs=1, seed=0, num_workers=1)
    worker = pool._workers[0]  # noqa: SLF001
    try:
        worker.conn.close()  # what the worker sees when the parent dies
        worker.process.join(timeout=10.0)
        assert worker.process.exitcode == 0
    finally:
        worker.conn = type(worker.conn)(os.open(os.devnull, os.O_RDWR))  # let close() run on a live handle
        pool.close()
    assert "Traceback" not in capfd.readouterr().err
