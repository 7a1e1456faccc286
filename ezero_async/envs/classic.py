"""Classic-control games with vector observations (CartPole), for CPU-scale learning checks.

The gymnasium TimeLimit wrapper is bypassed: the step cap is ours (EnvConfig), so training and
evaluation caps and truncation semantics are the same for every family.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from ezero_async.envs.game import Game, ObsSpec


class ClassicGame(Game):
    family = "classic"
    offload = False

    def __init__(self, env_id: str, *, seed: int, training: bool, clip_rewards: bool = False,
                 max_steps: int = 500) -> None:
        super().__init__(env_id, training=training, clip_rewards=clip_rewards, episode_life=False,
                         max_steps=max_steps)
        self._env = gym.make(env_id).unwrapped
        self._seed: int | None = seed
        shape = self._env.observation_space.shape
        self._spec = ObsSpec(tuple(int(s) for s in shape), np.dtype(np.float32))
        self._num_actions = int(self._env.action_space.n)

    @property
    def obs_spec(self) -> ObsSpec:
        return self._spec

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def _reset_game(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None
        return np.asarray(obs, dtype=np.float32)

    def _step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        obs, reward, terminated, truncated, _ = self._env.step(action)
        return np.asarray(obs, dtype=np.float32), float(reward), bool(terminated), False, bool(truncated)

    def close(self) -> None:
        self._env.close()
