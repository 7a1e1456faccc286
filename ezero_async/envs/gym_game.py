"""Games that are a plain gymnasium env stepped in Python (MinAtar, classic control).

Our Game base owns the step cap and terminal rules, so the env is used unwrapped (no gymnasium
TimeLimit): training and evaluation caps mean the same thing for every family.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from ezero_async.envs.game import Game, ObsSpec


class GymGame(Game):
    """Subclasses say how a gymnasium observation becomes a frame (`_frame`, `frame_dtype`)."""

    frame_dtype: np.dtype = np.dtype(np.float32)

    def __init__(self, env_id: str, *, seed: int, training: bool, clip_rewards: bool, max_steps: int,
                 **make_kwargs) -> None:
        super().__init__(env_id, training=training, clip_rewards=clip_rewards, episode_life=False,
                         max_steps=max_steps)
        self._env = gym.make(env_id, **make_kwargs).unwrapped
        self._seed: int | None = seed  # seeds the first game; later games continue its stream
        shape = tuple(int(s) for s in self._env.observation_space.shape)
        self._spec = ObsSpec(shape, self.frame_dtype)
        self._num_actions = int(self._env.action_space.n)

    @property
    def obs_spec(self) -> ObsSpec:
        return self._spec

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def _frame(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=self.frame_dtype)

    def _reset_game(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None
        return self._frame(obs)

    def _step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        obs, reward, terminated, truncated, _ = self._env.step(action)
        return self._frame(obs), float(reward), bool(terminated), False, bool(truncated)

    def close(self) -> None:
        self._env.close()
