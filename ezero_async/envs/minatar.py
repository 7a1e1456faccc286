"""MinAtar games (10x10 grids) through gymnasium, for CPU-scale learning checks.

Frames are the game's boolean channels as uint8 0/255, so every image family shares one input
scaling (x / 255 on the device). Pure Python stepping (tens of µs): stepped inline.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from ezero_async.envs.game import Game, ObsSpec

_registered = False


def register_minatar() -> None:
    global _registered
    if not _registered:
        from minatar.gym import register_envs

        register_envs()
        _registered = True


class MinAtarGame(Game):
    family = "minatar"
    offload = False

    def __init__(self, env_id: str, *, seed: int, training: bool, sticky_action_prob: float = 0.0,
                 clip_rewards: bool = True, max_steps: int = 5000) -> None:
        super().__init__(env_id, training=training, clip_rewards=clip_rewards, episode_life=False,
                         max_steps=max_steps)
        register_minatar()
        self._env = gym.make(env_id, sticky_action_prob=sticky_action_prob).unwrapped
        self._seed: int | None = seed
        shape = self._env.observation_space.shape
        self._spec = ObsSpec(tuple(int(s) for s in shape), np.dtype(np.uint8))
        self._num_actions = int(self._env.action_space.n)

    @property
    def obs_spec(self) -> ObsSpec:
        return self._spec

    @property
    def num_actions(self) -> int:
        return self._num_actions

    @staticmethod
    def _frame(obs: np.ndarray) -> np.ndarray:
        return obs.astype(np.uint8) * np.uint8(255)

    def _reset_game(self) -> np.ndarray:
        obs, _ = self._env.reset(seed=self._seed)
        self._seed = None  # seed once; later games continue the stream
        return self._frame(obs)

    def _step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        obs, reward, terminated, truncated, _ = self._env.step(action)
        return self._frame(obs), float(reward), bool(terminated), False, bool(truncated)

    def close(self) -> None:
        self._env.close()
