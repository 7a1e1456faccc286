"""Self-play env coroutines: observation -> search service -> act -> step -> replay.

One coroutine per env of the EnvPool. The pacer hands out collection indices; transition n
acts uniformly at random while n < start_transitions (a uniform stored policy), then with a
search of the online weights of the scheduled version, root noise on. pUCT mode samples the
action from the visit counts with the scheduled temperature; Gumbel mode plays the search's
own action (the Gumbel draw is its exploration). The search's policy is stored as the target.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ezero_async.config.sections import RuntimeConfig, SearchConfig
from ezero_async.envs.pool import EnvPool
from ezero_async.inference.search_service import SearchService
from ezero_async.replay.buffer import Replay
from ezero_async.runtime.pacer import Pacer
from ezero_async.runtime.waits import Waits
from ezero_async.search import root_noise, select_action


NOISE_BLOCK = 64
"""Root-noise rows drawn per numpy call by each env."""


def temperature_at(step: int, runtime: RuntimeConfig) -> float:
    """Acting temperature at training step `step` (piecewise constant)."""
    for boundary, temp in zip(runtime.temperature_steps, runtime.temperatures):
        if step < boundary:
            return temp
    return runtime.temperatures[-1]


@dataclass
class EpisodeStats:
    """Finished training episodes (whole games, raw score), and where self-play spends its time."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    waits: Waits = field(default_factory=lambda: Waits(("env", "search", "pacer")))
    """Seconds summed over env coroutines: awaiting env steps and resets, awaiting searches
    (batcher wait + inference + tree), and held back by the pacer (the replay ratio waiting for
    the learner, or weights not yet published)."""
    timing: dict[str, float] = field(default_factory=lambda: {"replay": 0.0})
    """Seconds appending to the replay (loop thread)."""


async def self_play(env_id: int, pool: EnvPool, service: SearchService, replay: Replay, pacer: Pacer,
                    runtime: RuntimeConfig, search: SearchConfig, frame_stack: int, stats: EpisodeStats) -> None:
    """Collect transitions with env `env_id` until the pacer has handed out all of them."""
    num_actions = pool.num_actions
    uniform = np.full(num_actions, 1.0 / num_actions, np.float32)
    timing, waits = stats.timing, stats.waits
    waits.begin("env", env_id)
    obs = await pool.reset(env_id)
    waits.end("env", env_id)
    frames = deque([obs] * frame_stack, maxlen=frame_stack)
    game_return, game_length = 0.0, 0
    # One stream per env (seeded once: a per-transition generator costs more than the rest of the
    # step's Python work). --serial fixes which env collects which transition, so it stays exact.
    rng = np.random.default_rng([runtime.seed, 1, env_id])
    noise_rows: list[np.ndarray] = []
    gumbel = search.mode == "gumbel"
    while True:
        waits.begin("pacer", env_id)
        n = await pacer.reserve_transition(env_id)
        if n is None:
            waits.end("pacer", env_id)
            break
        if n < pacer.start:
            waits.end("pacer", env_id)
            action, policy, root_value = int(rng.integers(num_actions)), uniform, 0.0
        else:
            version = pacer.self_play_version(n)
            await pacer.wait_weights(version)
            waits.end("pacer", env_id)
            if not noise_rows:  # noise draws in blocks: one numpy call per NOISE_BLOCK steps
                noise_rows = list(root_noise(search, NOISE_BLOCK, num_actions, rng)[::-1])
            waits.begin("search", env_id)
            result = await service.search_one("online", version, tuple(frames), noise_rows.pop(), seed=n)
            waits.end("search", env_id)
            if gumbel:
                action = result.action
            else:
                action = int(select_action(result.visit_counts, temperature_at(pacer.training_step_at(n), runtime),
                                           rng))
            policy, root_value = result.policy, result.root_value
        waits.begin("env", env_id)
        step = await pool.step(env_id, action)
        waits.end("env", env_id)
        stepped = time.perf_counter()
        replay.append(env_id, frames[-1], action, step.reward, step.raw_reward, root_value, policy)
        game_return += step.raw_reward
        game_length += 1
        if step.game_over:
            stats.returns.append(game_return)
            stats.lengths.append(game_length)
            game_return, game_length = 0.0, 0
        episode_end = step.terminated or step.truncated
        if episode_end:
            replay.end_episode(env_id, step.obs, step.terminated, step.truncated)
        timing["replay"] += time.perf_counter() - stepped
        await pacer.transition_collected()  # after the episode's last slot, so batches see whole episodes
        if episode_end:
            waits.begin("env", env_id)
            obs = await pool.reset(env_id)
            waits.end("env", env_id)
            frames.extend([obs] * frame_stack)
        else:
            frames.append(step.obs)
