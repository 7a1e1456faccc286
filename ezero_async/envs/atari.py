"""Atari through gymnasium + ale-py, preprocessed as SPEC_TRAINING.md says.

gymnasium builds the env (ROM lookup, seeding, minimal action set) with frameskip=1 and sticky
actions as configured; the agent step then drives the ALE interface directly: `frame_skip`
emulator frames, reward summed, the max over the last two screens, area-resized to 96x96 RGB.
`ale.act` holds the GIL (tools/bench_envs.py), so EnvPool steps these games in worker processes.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from ezero_async._ext.frames import MaxPoolResize
from ezero_async.envs.game import Game, ObsSpec
from ezero_async.envs.resize import area_weights

_registered = False


def register_ale() -> None:
    """Register the ALE/* ids with gymnasium once and silence the emulator's banner."""
    global _registered
    if not _registered:
        import ale_py

        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        gym.register_envs(ale_py)
        _registered = True


class AtariGame(Game):
    family = "atari"
    offload = True

    def __init__(self, env_id: str, *, seed: int, training: bool, frame_skip: int = 4, noop_max: int = 30,
                 sticky_action_prob: float = 0.0, obs_size: int = 96, clip_rewards: bool = True,
                 episode_life: bool = True, max_steps: int = 3000) -> None:
        super().__init__(env_id, training=training, clip_rewards=clip_rewards, episode_life=episode_life,
                         max_steps=max_steps)
        register_ale()
        self._env = gym.make(env_id, frameskip=1, repeat_action_probability=sticky_action_prob,
                             full_action_space=False, obs_type="rgb")
        self._env.reset(seed=seed)  # seeds the emulator once; later game resets continue its stream
        self._ale = self._env.unwrapped.ale
        self._actions = list(self._env.unwrapped._action_set)
        self._rng = np.random.default_rng(seed)
        self._frame_skip = frame_skip
        self._noop_max = noop_max
        self._seeded = True
        h, w = self._ale.getScreenDims()
        self._screens = np.zeros((2, h, w, 3), dtype=np.uint8)  # last two emulator frames
        self._resize = MaxPoolResize(area_weights(h, obs_size), area_weights(w, obs_size), 3)
        self._spec = ObsSpec((obs_size, obs_size, 3), np.dtype(np.uint8))
        self._lives = 0

    @property
    def obs_spec(self) -> ObsSpec:
        return self._spec

    @property
    def num_actions(self) -> int:
        return len(self._actions)

    def _observe(self) -> np.ndarray:
        frame = np.empty(self._spec.shape, dtype=np.uint8)
        return self._resize(self._screens[0], self._screens[1], frame)

    def _reset_game(self) -> np.ndarray:
        if not self._seeded:
            self._env.reset()
        self._seeded = False
        noop = self._actions[0]
        for _ in range(int(self._rng.integers(1, self._noop_max + 1)) if self._noop_max > 0 else 0):
            self._ale.act(noop)  # no-op starts count raw frames
            if self._ale.game_over():
                self._ale.reset_game()
        self._ale.getScreenRGB(self._screens[0])
        self._screens[1] = self._screens[0]
        self._lives = self._ale.lives()
        return self._observe()

    def _step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        ale, ale_action, skip = self._ale, self._actions[action], self._frame_skip
        reward = 0.0
        last = -1
        for i in range(skip):
            reward += ale.act(ale_action)
            if i >= skip - 2:
                ale.getScreenRGB(self._screens[i - skip + 2])
                last = i
            if ale.game_over():
                break
        if last < skip - 1:  # ended early: pool the final screen with itself
            ale.getScreenRGB(self._screens[1])
            self._screens[0] = self._screens[1]
        lives = ale.lives()
        life_lost = lives < self._lives
        self._lives = lives
        return self._observe(), reward, ale.game_over(), life_lost, ale.game_truncated()

    def close(self) -> None:
        self._env.close()
