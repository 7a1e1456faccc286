"""EnvStepper: GIL-releasing games step on worker threads in batches; errors reach the awaiter."""
import asyncio

import numpy as np
import pytest

from ezero_async.config import build_config
from ezero_async.envs import EnvStepper, make_game
from ezero_async.envs.game import Game, ObsSpec


def test_concurrent_atari_steps_match_sequential_steps():
    cfg = build_config("atari100k", "Breakout").env
    actions = np.random.default_rng(0).integers(0, 4, size=(4, 30))

    def sequential(i):
        g = make_game(cfg, seed=i, training=True)
        g.reset()
        return [g.step(int(a)).obs for a in actions[i]]

    async def concurrent():
        stepper = EnvStepper(num_threads=2)
        games = [make_game(cfg, seed=i, training=True) for i in range(4)]

        async def actor(i):
            await stepper.reset(games[i])
            return [(await stepper.step(games[i], int(a))).obs for a in actions[i]]

        try:
            return await asyncio.gather(*(actor(i) for i in range(4))), stepper.batches
        finally:
            stepper.close()

    results, batches = asyncio.run(concurrent())
    for i in range(4):
        np.testing.assert_array_equal(np.stack(results[i]), np.stack(sequential(i)))
    assert batches < 4 * 31  # requests were grouped


class Exploding(Game):
    releases_gil = True
    obs_spec = ObsSpec((1,), np.dtype(np.float32))
    num_actions = 2

    def _reset_game(self):
        return np.zeros(1, np.float32)

    def _step(self, action):
        raise RuntimeError("emulator exploded")


def test_a_failing_step_raises_in_the_awaiting_coroutine_only():
    async def scenario():
        stepper = EnvStepper(num_threads=2)
        good = make_game(build_config("atari100k", "Breakout").env, seed=0, training=True)
        bad = Exploding("bad", training=True, clip_rewards=True, episode_life=True, max_steps=10)
        await asyncio.gather(stepper.reset(good), stepper.reset(bad))
        results = await asyncio.gather(stepper.step(good, 1), stepper.step(bad, 1), return_exceptions=True)
        stepper.close()
        return results

    ok, err = asyncio.run(scenario())
    assert ok.obs.shape == (96, 96, 3)
    assert isinstance(err, RuntimeError) and "emulator exploded" in str(err)
    assert err.__traceback__ is not None


def test_pure_python_games_step_inline():
    async def scenario():
        stepper = EnvStepper(num_threads=1)
        g = make_game(build_config("cartpole", "CartPole").env, seed=0, training=True)
        await stepper.reset(g)
        s = await stepper.step(g, 0)
        stepper.close()
        return s, stepper.batches

    s, batches = asyncio.run(scenario())
    assert s.obs.shape == (4,) and batches == 0
