"""runtime.evaluate: each episode's action sequence is fingerprinted, so an evaluation says how many
different games it played (a deterministic game and a noise-free search replay one game)."""
import asyncio
from types import SimpleNamespace

import numpy as np

from ezero_async.envs.registry import resolve_game
from ezero_async.runtime.evaluate import evaluate
from ezero_async.runtime.monitor import eval_metrics


class ScriptedPool:
    """Env i's episodes follow scripts[episode]: the actions the fake search picks, one step each."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs, self.step_of = num_envs, [0] * num_envs

    async def reset(self, env_id):
        self.step_of[env_id] = 0
        return np.zeros(1, np.float32)

    async def step(self, env_id, action):
        self.step_of[env_id] += 1
        return SimpleNamespace(raw_reward=float(action), obs=np.zeros(1, np.float32),
                               game_over=self.step_of[env_id] == 3)


class ScriptedSearch:
    """Plays episode e's script: the episode is known from how many searches each env has asked."""

    def __init__(self, scripts) -> None:
        self.scripts, self.calls = scripts, 0

    async def search_one(self, kind, version, frames, noise, seed):
        script = self.scripts[self.calls // 3]
        self.calls += 1
        return SimpleNamespace(action=script[seed])


def test_episodes_with_the_same_actions_count_once():
    scripts = [(1, 0, 1), (1, 0, 1), (0, 1, 1), (1, 0, 1)]
    result = asyncio.run(evaluate(ScriptedPool(1), ScriptedSearch(scripts), 0, 4, frame_stack=1))
    assert result.returns == [2.0, 2.0, 2.0, 2.0] and result.lengths == [3, 3, 3, 3]
    assert result.plays[0] == result.plays[1] == result.plays[3] != result.plays[2]
    assert result.distinct == 2  # equal returns and lengths, two different games
    game = resolve_game("MinAtar/Breakout", "auto")
    assert eval_metrics(result.returns, result.lengths, game, None, result.distinct)[
        "eval/distinct_episodes"] == 2.0
    assert "eval/distinct_episodes" not in eval_metrics(result.returns, result.lengths, game)
