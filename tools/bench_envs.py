"""Env stepping: raw emulator vs our Game layer vs EnvPool (inline and worker processes), one run.

    python tools/bench_envs.py [--quick] [--game Breakout] [--coroutines 16]

Prints agent steps/s (median of --repeats) for:
  gil      ale.act frames/s on 1 vs 2 threads (does the emulator release the GIL?)
  raw      gymnasium ALE/<game>-v5 (frameskip 4, raw 210x160 RGB, no preprocessing), 1 and 2 processes
  game     our AtariGame.step (frame skip, max-pool, 96x96 area resize), called directly
  pool     EnvPool from N coroutines on a uvloop loop: inline, 1 and 2 worker processes
  pure     MinAtar and CartPole: raw gym step vs Game inline vs a worker-process round trip

run() returns the headline figures that tools/bench.py reports.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import threading
import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ezero_async.config import build_config
from ezero_async.envs import EnvPool, GameFactory, make_game
from ezero_async.envs.atari import register_ale


class Rows(list):
    """(group, label, rate) rows; each is echoed to stderr as it is measured (progress)."""

    def append(self, row: tuple[str, str, float]) -> None:
        super().append(row)
        print(f"  measured {row[1]}: {row[2]:,.0f}/s", file=sys.stderr, flush=True)

    def __iadd__(self, rows):  # type: ignore[override]
        for row in rows:
            self.append(row)
        return self


def median_rate(fn: Callable[[], int], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def in_threads(fn: Callable[[int], int], threads: int) -> Callable[[], int]:
    def run() -> int:
        counts = [0] * threads

        def work(i: int) -> None:
            counts[i] = fn(i)

        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return sum(counts)

    return run


def run(quick: bool = False, game: str = "Breakout", steps: int = 3000, coroutines: int = 16,
        repeats: int = 3) -> list[tuple[str, float, str]]:
    """Print the table; return headline (measurement, value, unit) figures for tools/bench.py."""
    args = argparse.Namespace(game=game, steps=steps, coroutines=coroutines, repeats=repeats)
    if quick:
        args.steps, args.repeats = 500, 1
    register_ale()
    env_cfg = build_config("atari100k", args.game).env
    rows = Rows()

    # Does the emulator release the GIL? Two threads on two emulators vs one.
    envs = [gym.make(f"ALE/{args.game}-v5", frameskip=1, repeat_action_probability=0.0) for _ in range(2)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    ales = [e.unwrapped.ale for e in envs]
    fire = envs[0].unwrapped._action_set[min(1, len(envs[0].unwrapped._action_set) - 1)]
    frames = args.steps * 4

    def act(i: int) -> int:
        ale = ales[i]
        for _ in range(frames):
            ale.act(fire)
            if ale.game_over():
                ale.reset_game()
        return frames

    gil1 = median_rate(in_threads(act, 1), args.repeats)
    gil2 = median_rate(in_threads(act, 2), args.repeats)
    rows += [("gil", "ale.act frames/s, 1 thread", gil1), ("gil", "ale.act frames/s, 2 threads", gil2)]

    raw1 = statistics.median(raw_in_processes(args.game, args.steps, 1) for _ in range(args.repeats))
    raw2 = statistics.median(raw_in_processes(args.game, args.steps, 2) for _ in range(args.repeats))
    rows += [("raw", "gymnasium v5 env.step, 1 process", raw1), ("raw", "gymnasium v5 env.step, 2 processes", raw2)]

    games = [make_game(env_cfg, seed=i, training=True) for i in range(max(2, args.coroutines))]
    for g in games:
        g.reset()

    def ours(i: int) -> int:
        g, rng = games[i], np.random.default_rng(i)
        for _ in range(args.steps):
            s = g.step(int(rng.integers(g.num_actions)))
            if s.terminated or s.truncated:
                g.reset()
        return args.steps

    game1 = median_rate(in_threads(ours, 1), args.repeats)
    rows += [("game", "AtariGame.step, called directly", game1)]
    for g in games:
        g.close()

    factory = GameFactory(env_cfg, training=True)
    pool_rates = {}
    for workers in (0, 1, 2):
        pool = EnvPool(factory, num_envs=args.coroutines, seed=0, num_workers=workers)
        pool_rates[workers] = median_rate(lambda: drive_pool(pool, args.coroutines, args.steps * max(1, workers)),
                                          args.repeats)
        pool.close()
        label = "inline" if workers == 0 else f"{workers} worker process{'es' if workers > 1 else ''}"
        rows.append(("pool", f"EnvPool, {args.coroutines} coroutines, {label}", pool_rates[workers]))

    # Pure-Python games: inline step vs one thread hop per step.
    for preset, name, gym_id, kwargs in [("minatar", "MinAtar/Breakout", "MinAtar/Breakout-v1",
                                          {"sticky_action_prob": 0.0}),
                                         ("cartpole", "CartPole", "CartPole-v1", {})]:
        cfg = build_config(preset, name).env
        g = make_game(cfg, seed=0, training=True)
        g.reset()
        env = gym.make(gym_id, **kwargs)
        env.reset(seed=0)
        n = args.steps * 5

        def raw_pure() -> int:
            rng = np.random.default_rng(0)
            for _ in range(n):
                _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
                if term or trunc:
                    env.reset()
            return n

        def inline() -> int:
            rng = np.random.default_rng(0)
            for _ in range(n):
                s = g.step(int(rng.integers(g.num_actions)))
                if s.terminated or s.truncated:
                    g.reset()
            return n

        hop_pool = EnvPool(GameFactory(cfg, training=True), num_envs=1, seed=0, num_workers=1)
        hop_rate = median_rate(lambda: drive_pool(hop_pool, 1, n // 10), args.repeats)
        hop_pool.close()

        rows += [("pure", f"{gym_id} raw gym step", median_rate(raw_pure, args.repeats)),
                 ("pure", f"{gym_id} Game.step inline", median_rate(inline, args.repeats)),
                 ("pure", f"{gym_id} EnvPool, 1 worker process", hop_rate)]

    print(f"{'what':<8} {'measurement':<48} {'per second':>12}")
    for what, label, rate in rows:
        print(f"{what:<8} {label:<48} {rate:>12,.0f}")
    print()
    print(f"ale.act 2-thread scaling {gil2 / gil1:.2f}x (2.0 would mean it releases the GIL)")
    print(f"raw 2 vs 1 process: {raw2 / raw1:.2f}x; our Game vs raw (1 core): {game1 / raw1:.2f}x")
    print(f"EnvPool 2 workers vs raw 2 processes: {pool_rates[2] / raw2:.2f}x; "
          f"vs inline: {pool_rates[2] / pool_rates[0]:.2f}x")
    # Atari only: it is what training steps; raw vs ours on one core and on both shows the overhead.
    return [(f"raw gymnasium ALE/{args.game}-v5, 1 process", raw1, "agent steps/s"),
            (f"AtariGame.step ({args.game}), called directly, 1 core", game1, "agent steps/s"),
            (f"raw gymnasium ALE/{args.game}-v5, 2 processes", raw2, "agent steps/s"),
            (f"EnvPool ({args.game}), {args.coroutines} coroutines, 2 worker processes", pool_rates[2],
             "agent steps/s")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=3000, help="agent steps per measurement and thread")
    parser.add_argument("--coroutines", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="few steps, one repeat")
    args = parser.parse_args()
    run(args.quick, args.game, args.steps, args.coroutines, args.repeats)


def _raw_worker(game: str, steps: int, seed: int, barrier, results) -> None:
    register_ale()
    env = gym.make(f"ALE/{game}-v5", frameskip=4, repeat_action_probability=0.0)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    barrier.wait()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        if term or trunc:
            env.reset()
    results.put(time.perf_counter() - start)


def steps_in_processes(worker: Callable, source: Any, steps: int, processes: int) -> float:
    """Aggregate steps/s of worker(source, steps, seed, barrier, results) run in `processes`
    spawned processes started together; each times itself after the barrier (start-up is not
    counted) and puts its elapsed seconds on `results`."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(source, steps, i, barrier, results)) for i in range(processes)]
    for p in procs:
        p.start()
    elapsed = max(results.get() for _ in procs)
    for p in procs:
        p.join()
    return steps * processes / elapsed


def raw_in_processes(game: str, steps: int, processes: int) -> float:
    """Aggregate agent steps/s of raw v5 stepping in `processes` processes."""
    return steps_in_processes(_raw_worker, game, steps, processes)


def drive_pool(pool: EnvPool, coroutines: int, total_steps: int) -> int:
    per = max(1, total_steps // coroutines)

    async def actor(i: int) -> int:
        rng = np.random.default_rng(i)
        await pool.reset(i)
        for _ in range(per):
            s = await pool.step(i, int(rng.integers(pool.num_actions)))
            if s.terminated or s.truncated:
                await pool.reset(i)
        return per

    async def run_all() -> int:
        return sum(await asyncio.gather(*(actor(i) for i in range(coroutines))))

    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_all())
    return uvloop.run(run_all())


if __name__ == "__main__":
    main()
