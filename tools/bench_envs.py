"""Env stepping: raw emulator vs our Game layer vs the asyncio EnvStepper, measured in one run.

    python tools/bench_envs.py [--quick] [--game Breakout] [--coroutines 16]

Prints agent steps/s (median of --repeats) for:
  gil        ale.act frames/s on 1 vs 2 threads (does the emulator release the GIL?)
  raw        gymnasium ALE/<game>-v5 (frameskip 4, raw 210x160 RGB, no preprocessing), 1 and 2 threads
  game       our AtariGame.step (frame skip, max-pool, 96x96 area resize), called directly
  stepper    our layer through EnvStepper from N coroutines on a uvloop/asyncio loop, 1 and 2 threads
  pure       MinAtar and CartPole: raw gym step vs our Game inline vs one thread hop per step
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import gymnasium as gym
import numpy as np

from ezero_async.config import build_config
from ezero_async.envs import EnvStepper, make_game
from ezero_async.envs.atari import register_ale


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=3000, help="agent steps per measurement and thread")
    parser.add_argument("--coroutines", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="few steps, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 500, 1
    register_ale()
    env_cfg = build_config("atari100k", args.game).env
    rows: list[tuple[str, str, float]] = []

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

    raw_envs = [gym.make(f"ALE/{args.game}-v5", frameskip=4, repeat_action_probability=0.0) for _ in range(2)]
    for i, e in enumerate(raw_envs):
        e.reset(seed=i)
    n_actions = raw_envs[0].action_space.n

    def raw(i: int) -> int:
        env, rng = raw_envs[i], np.random.default_rng(i)
        for _ in range(args.steps):
            _, _, term, trunc, _ = env.step(int(rng.integers(n_actions)))
            if term or trunc:
                env.reset()
        return args.steps

    raw1 = median_rate(in_threads(raw, 1), args.repeats)
    raw2 = median_rate(in_threads(raw, 2), args.repeats)
    rows += [("raw", "gymnasium v5 env.step, 1 thread", raw1), ("raw", "gymnasium v5 env.step, 2 threads", raw2)]

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
    game2 = median_rate(in_threads(ours, 2), args.repeats)
    rows += [("game", "AtariGame.step, 1 thread", game1), ("game", "AtariGame.step, 2 threads", game2)]

    def through_stepper(threads: int) -> Callable[[], int]:
        per = max(1, args.steps * threads // args.coroutines)

        async def actor(stepper: EnvStepper, g, rng) -> int:
            for _ in range(per):
                s = await stepper.step(g, int(rng.integers(g.num_actions)))
                if s.terminated or s.truncated:
                    await stepper.reset(g)
            return per

        async def run_all() -> int:
            stepper = EnvStepper(num_threads=threads)
            try:
                done = await asyncio.gather(*(actor(stepper, games[i], np.random.default_rng(i))
                                              for i in range(args.coroutines)))
            finally:
                stepper.close()
            return sum(done)

        def run() -> int:
            try:
                import uvloop

                return uvloop.run(run_all())
            except ImportError:
                return asyncio.run(run_all())

        return run

    step1 = median_rate(through_stepper(1), args.repeats)
    step2 = median_rate(through_stepper(2), args.repeats)
    rows += [("stepper", f"EnvStepper, {args.coroutines} coroutines, 1 thread", step1),
             ("stepper", f"EnvStepper, {args.coroutines} coroutines, 2 threads", step2)]

    # Pure-Python games: inline step vs one thread hop per step.
    hop_pool = ThreadPoolExecutor(1)
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

        def hop() -> int:
            rng = np.random.default_rng(0)
            for _ in range(n // 5):
                s = hop_pool.submit(g.step, int(rng.integers(g.num_actions))).result()
                if s.terminated or s.truncated:
                    g.reset()
            return n // 5

        rows += [("pure", f"{gym_id} raw gym step", median_rate(raw_pure, args.repeats)),
                 ("pure", f"{gym_id} Game.step inline", median_rate(inline, args.repeats)),
                 ("pure", f"{gym_id} Game.step, thread hop per step", median_rate(hop, args.repeats))]
    hop_pool.shutdown()

    print(f"{'what':<8} {'measurement':<48} {'per second':>12}")
    for what, label, rate in rows:
        print(f"{what:<8} {label:<48} {rate:>12,.0f}")
    print()
    print(f"GIL released by ale.act: 2-thread scaling {gil2 / gil1:.2f}x (2.0 = fully parallel)")
    print(f"our layer vs raw v5 (1 thread): {game1 / raw1:.2f}x; stepper (2 threads) vs raw v5 (2 threads): "
          f"{step2 / raw2:.2f}x; stepper 2 vs 1 thread: {step2 / step1:.2f}x")


if __name__ == "__main__":
    main()
