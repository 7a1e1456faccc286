"""Evaluation episodes: the search's action without root noise (pUCT: the most visited; Gumbel:
zero Gumbel draws), raw scores, evaluation caps."""
from __future__ import annotations

import asyncio
import zlib
from collections import deque
from typing import NamedTuple

from ezero_async.envs.pool import EnvPool
from ezero_async.inference.search_service import SearchService


class EvalResult(NamedTuple):
    returns: list[float]
    """Raw score of each episode (whole games)."""
    lengths: list[int]
    """Agent steps of each episode."""
    plays: list[int]
    """CRC-32 of each episode's action sequence: equal for episodes that played the same game
    (a deterministic game from one start and a noise-free search replay one episode exactly)."""

    @property
    def distinct(self) -> int:
        """How many different action sequences the episodes played."""
        return len(set(self.plays))


async def evaluate(pool: EnvPool, service: SearchService, version: int, episodes: int, frame_stack: int,
                   max_steps: int | None = None, kind: str = "online") -> EvalResult:
    """Play `episodes` games with the `kind` weights `version` on the envs of `pool` (an
    evaluation-mode pool: raw rewards, no life-loss terminal). Env i plays episodes i, i + n,
    ... (a fixed assignment, so the results never depend on timing); an episode longer than
    `max_steps` agent steps is cut there (periodic evaluations are cheaper than the final one)."""
    envs = min(pool.num_envs, episodes)
    results: list[tuple[float, int, int] | None] = [None] * episodes

    async def player(env_id: int) -> None:
        for episode in range(env_id, episodes, envs):
            obs = await pool.reset(env_id)
            frames = deque([obs] * frame_stack, maxlen=frame_stack)
            total, length, play = 0.0, 0, 0
            while max_steps is None or length < max_steps:
                result = await service.search_one(kind, version, tuple(frames), None, seed=length)
                play = zlib.crc32(int(result.action).to_bytes(2, "little"), play)
                step = await pool.step(env_id, result.action)
                total += step.raw_reward
                length += 1
                frames.append(step.obs)
                if step.game_over:
                    break
            results[episode] = (total, length, play)

    await asyncio.gather(*(player(i) for i in range(envs)))
    return EvalResult(*([r[i] for r in results] for i in range(3)))  # type: ignore[index]
