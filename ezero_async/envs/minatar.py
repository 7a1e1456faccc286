"""MinAtar games (10x10 grids) through gymnasium, for CPU-scale learning checks.

Frames are the game's boolean channels as uint8 0/255, so every image family shares one input
scaling (x / 255 on the device). Pure Python stepping (a few µs): EnvPool steps them inline.
"""
from __future__ import annotations

import numpy as np

from ezero_async.envs.gym_game import GymGame

_registered = False


def register_minatar() -> None:
    global _registered
    if not _registered:
        from minatar.gym import register_envs

        register_envs()
        _registered = True


class MinAtarGame(GymGame):
    family = "minatar"
    offload = False
    frame_dtype = np.dtype(np.uint8)

    def __init__(self, env_id: str, *, seed: int, training: bool, sticky_action_prob: float = 0.0,
                 clip_rewards: bool = True, max_steps: int = 5000) -> None:
        register_minatar()
        super().__init__(env_id, seed=seed, training=training, clip_rewards=clip_rewards, max_steps=max_steps,
                         sticky_action_prob=sticky_action_prob)

    def _frame(self, obs: np.ndarray) -> np.ndarray:
        return obs.astype(np.uint8) * np.uint8(255)
