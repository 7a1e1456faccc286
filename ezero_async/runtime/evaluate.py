"""Evaluation episodes: argmax of the visit counts, no root noise, raw scores, evaluation caps."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

import numpy as np

from ezero_async.envs.pool import EnvPool
from ezero_async.inference.search_service import SearchService
from ezero_async.search import greedy_action


class EvalResult(NamedTuple):
    returns: list[float]
    """Raw score of each episode (whole games)."""
    lengths: list[int]
    """Agent steps of each episode."""


async def evaluate(pool: EnvPool, service: SearchService, version: int, episodes: int, frame_stack: int) -> EvalResult:
    """Play `episodes` whole games with the online weights `version` on the envs of `pool`
    (an evaluation-mode pool: raw rewards, no life-loss terminal), one game per env at a time."""
    remaining = [episodes]
    results: list[tuple[float, int]] = []

    async def player(env_id: int) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            obs = await pool.reset(env_id)
            frames = deque([obs] * frame_stack, maxlen=frame_stack)
            total, length = 0.0, 0
            while True:
                out = await service.search("online", version, np.stack(frames)[None], None, seed=length)
                step = await pool.step(env_id, int(greedy_action(out.visit_counts[0])))
                total += step.raw_reward
                length += 1
                frames.append(step.obs)
                if step.game_over:
                    break
            results.append((total, length))

    await asyncio.gather(*(player(i) for i in range(min(pool.num_envs, episodes))))
    return EvalResult([r for r, _ in results], [n for _, n in results])
