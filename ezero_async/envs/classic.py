"""Classic-control games with vector observations (CartPole, Acrobot), for CPU-scale learning checks.
Frames are the float32 state vectors; stepping takes a few µs, so EnvPool steps them inline."""
from __future__ import annotations

from ezero_async.envs.gym_game import GymGame


class ClassicGame(GymGame):
    family = "classic"
    offload = False

    def __init__(self, env_id: str, *, seed: int, training: bool, clip_rewards: bool = False,
                 max_steps: int = 500) -> None:
        super().__init__(env_id, seed=seed, training=training, clip_rewards=clip_rewards, max_steps=max_steps)
