"""The Game interface every family implements (Atari, MinAtar, classic control).

A Game is one environment instance in one mode: training (clipped rewards, life loss is a
terminal, training step cap) or evaluation (raw rewards, no life-loss terminal, evaluation cap).
It returns single frames; stacking is the caller's job (the replay stores each frame once).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class ObsSpec:
    """One frame: (H, W, C) uint8 for images (scaled to [0, 1] on the device), (D,) float32 for vectors."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3


class Step(NamedTuple):
    """What one agent step returns."""

    obs: np.ndarray
    """One frame after the action (ObsSpec)."""
    reward: float
    """Reward for training: sign-clipped when the game clips (training mode), else raw."""
    raw_reward: float
    """Unclipped game score change (reported as the return)."""
    terminated: bool
    """A true terminal for the learner: game over, or a lost life in training with episode_life."""
    truncated: bool
    """The step cap ended the episode; not a terminal (targets bootstrap through it)."""
    game_over: bool
    """The whole game ended (terminal or truncated): the next reset() starts a new game."""


class Game(ABC):
    """reset() -> first frame of an episode; step(action) -> Step. Episode bookkeeping is shared
    here; families implement _reset_game() and _step()."""

    family: str = ""
    offload: bool = False
    """True when a step is expensive enough (hundreds of µs) to run in a worker process."""

    def __init__(self, name: str, *, training: bool, clip_rewards: bool, episode_life: bool,
                 max_steps: int) -> None:
        self.name = name
        self.training = training
        self.clip_rewards = clip_rewards and training
        self.episode_life = episode_life and training
        self.max_steps = max_steps
        self._game_steps = 0  # agent steps since the last full game reset, across lives
        self._need_game_reset = True
        self._last_frame: np.ndarray | None = None

    @property
    @abstractmethod
    def obs_spec(self) -> ObsSpec: ...

    @property
    @abstractmethod
    def num_actions(self) -> int: ...

    @abstractmethod
    def _reset_game(self) -> np.ndarray:
        """Start a new game; return its first frame."""

    @abstractmethod
    def _step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        """One agent step: (frame, raw reward, game over, life lost, truncated by the emulator)."""

    def reset(self) -> np.ndarray:
        """First frame of a new episode. After a life-loss terminal the game goes on from where it
        is (the episode is new for the learner, the game is not); otherwise a new game starts."""
        if self._need_game_reset or self._last_frame is None:
            self._last_frame = self._reset_game()
            self._game_steps = 0
            self._need_game_reset = False
        return self._last_frame

    def step(self, action: int) -> Step:
        if self._need_game_reset:
            raise RuntimeError(f"{self.name}: step() after the game ended; call reset() first")
        if not 0 <= action < self.num_actions:
            raise ValueError(f"{self.name}: action {action} out of range [0, {self.num_actions})")
        frame, raw, game_over, life_lost, emu_truncated = self._step(int(action))
        self._game_steps += 1
        self._last_frame = frame
        terminated = game_over or (self.episode_life and life_lost)
        truncated = not terminated and (emu_truncated or self._game_steps >= self.max_steps)
        ended = game_over or truncated
        self._need_game_reset = ended
        reward = float(np.sign(raw)) if self.clip_rewards else float(raw)
        return Step(frame, reward, float(raw), terminated, truncated, ended)

    def close(self) -> None:
        """Release the emulator (idempotent)."""
