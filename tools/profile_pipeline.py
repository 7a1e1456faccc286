"""Self-play pipeline throughput against the bare emulator (the runtime's own overhead).

Phase 1, same cores, one after the other:
  - emulator: our training-mode Game stepped with random actions in W worker processes (the
    same processes EnvPool uses), and raw gymnasium ALE v5 in W processes for reference;
  - pipeline: the whole self-play loop (env coroutines -> dynamic batcher -> inference thread ->
    batched CTree search of `num_simulations` -> act -> EnvPool step -> replay append) with a
    zero-cost stand-in network, so only the pipeline's own overhead competes with the envs.
    The pacer is replaced by one that never gates on training (there is no learner).
  Reported: pipeline env steps/s as a fraction of the emulator's (target >= 0.70).
Where a real training run spends its time: `python -m ezero_async.profiling` (per-stage table,
utilisation, queue depths, recommendations).

  python tools/profile_pipeline.py --game Breakout --num-envs 128 --seconds 20 --repeats 3
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_envs import raw_in_processes, steps_in_processes  # noqa: E402

from ezero_async.config import build_config, parse_override  # noqa: E402
from ezero_async.envs.pool import EnvPool, GameFactory  # noqa: E402
from ezero_async.envs.registry import resolve_game  # noqa: E402
from ezero_async.inference.runner import ModelRunner  # noqa: E402
from ezero_async.inference.search_service import SearchService  # noqa: E402
from ezero_async.learner.weights import WeightStore  # noqa: E402
from ezero_async.replay.buffer import Replay  # noqa: E402
from ezero_async.runtime.actors import EpisodeStats, self_play  # noqa: E402


class ZeroCostNet(nn.Module):
    """Stand-in with the inference interface of EfficientZeroNet and no compute: constant
    outputs of the right shapes (uniform priors, zero values, a 1-wide latent)."""

    lstm_hidden = 1

    def __init__(self, num_actions: int) -> None:
        super().__init__()
        self.num_actions = num_actions

    def initial_inference_scalar(self, obs: torch.Tensor):
        n = obs.shape[0]
        return torch.zeros(n, 1), torch.zeros(n), torch.zeros(n, self.num_actions)

    def recurrent_inference_scalar(self, latent, state, action, reset_mask):
        n = latent.shape[0]
        return latent, state, torch.zeros(n), torch.zeros(n), torch.zeros(n, self.num_actions)


class FreePacer:
    """The self-play side of Pacer with no training to wait for: hands out indices until the
    deadline, acts with version 0 and a search from the first transition."""

    def __init__(self, seconds: float, warmup_s: float) -> None:
        self.start = 0
        self.deadline = time.monotonic() + seconds
        self.warmup_until = time.monotonic() + warmup_s
        self.reserved = 0
        self.collected = 0
        self.collected_at_warmup: tuple[float, int] | None = None

    async def reserve_transition(self, env_id: int = 0) -> int | None:
        if time.monotonic() >= self.deadline:
            return None
        self.reserved += 1
        return self.reserved - 1

    def self_play_version(self, n: int) -> int:
        return 0

    def training_step_at(self, n: int) -> int:
        return 0

    async def wait_weights(self, version: int) -> None:
        return None

    async def transition_collected(self) -> None:
        self.collected += 1
        if self.collected_at_warmup is None and time.monotonic() >= self.warmup_until:
            self.collected_at_warmup = (time.monotonic(), self.collected)


def run_pipeline(config, num_envs: int, workers: int, seconds: float, warmup_s: float) -> dict:
    """Env steps/s of the self-play loop with ZeroCostNet (after a warm-up), and its stage times."""
    async def main() -> dict:
        pool = EnvPool(GameFactory(config.env, training=True), num_envs=num_envs, seed=0, num_workers=workers)
        replay = None
        runner = None
        try:
            spec = pool.obs_spec
            replay = Replay(config.replay, obs_shape=spec.shape, obs_dtype=spec.dtype.name,
                            num_actions=pool.num_actions, frame_stack=config.env.frame_stack, seed=0)
            store = WeightStore(2, name="online")
            store.publish(0, ZeroCostNet(pool.num_actions))
            runner = ModelRunner(lambda: ZeroCostNet(pool.num_actions), torch.device("cpu"), {"online": store},
                                 workers=config.batcher.searches_in_flight)
            service = SearchService(runner, config.search, config.batcher, pool.num_actions)
            pacer = FreePacer(seconds + warmup_s, warmup_s)
            stats = EpisodeStats()
            async with asyncio.TaskGroup() as group:
                dispatcher = group.create_task(service.run())
                actors = [group.create_task(self_play(i, pool, service, replay, pacer, config.runtime, config.search,
                                                      config.env.frame_stack, stats)) for i in range(num_envs)]
                await asyncio.gather(*actors)
                ended = time.monotonic()
                dispatcher.cancel()
            t0, n0 = pacer.collected_at_warmup
            sizes = np.asarray(service.group_sizes, np.float64)
            return {"steps_per_s": (pacer.collected - n0) / (ended - t0), "steps": pacer.collected,
                    "group_size_mean": float(sizes.mean()), "timing": dict(stats.timing),
                    "tree_s": service.tree_s, "inference_busy_s": runner.busy_s,
                    "batcher_wait_s": service.batch_wait_s, "wall_s": ended - (t0 - warmup_s)}
        finally:
            if runner is not None:
                runner.close()
            pool.close()
            if replay is not None:
                replay.close()

    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def _game_worker(env_config, steps: int, seed: int, barrier, results) -> None:
    game = GameFactory(env_config, training=True)(seed)
    rng = np.random.default_rng(seed)
    game.reset()
    barrier.wait()
    start = time.perf_counter()
    for _ in range(steps):
        step = game.step(int(rng.integers(game.num_actions)))
        if step.terminated or step.truncated:
            game.reset()
    results.put(time.perf_counter() - start)
    game.close()


def game_in_processes(env_config, steps: int, processes: int) -> float:
    """Aggregate steps/s of our Game (training mode, preprocessing included) in `processes`
    spawned processes."""
    return steps_in_processes(_game_worker, env_config, steps, processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--preset", default="atari100k")
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="env worker processes (default: one per core)")
    parser.add_argument("--seconds", type=float, default=15.0, help="timed seconds per pipeline repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 5 s")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.seconds = 1, 5.0
    overrides = dict(parse_override(item) for item in args.set)
    config = build_config(args.preset, args.game, overrides)
    game = resolve_game(config.env.game, config.env.family)
    atari = game.family == "atari"
    workers = args.workers if args.workers is not None else (mp.cpu_count() if atari else 0)
    print(f"# {args.game}, preset {args.preset}: {args.num_envs} env coroutines, {workers} env worker process(es), "
          f"{config.search.num_simulations} simulations, max_batch {config.batcher.max_batch}, "
          f"{mp.cpu_count()} cores")

    emulator, pipeline, raw = [], [], []
    last = None
    for r in range(args.repeats):
        steps = int(3000 * args.seconds / 5)
        emulator.append(game_in_processes(config.env, steps, max(workers, 1)))
        if atari:
            raw.append(raw_in_processes(game.name, steps, max(workers, 1)))
        last = run_pipeline(config, args.num_envs, workers, args.seconds, warmup_s=2.0)
        pipeline.append(last["steps_per_s"])
        print(f"repeat {r}: emulator {emulator[-1]:,.0f} steps/s" + (f", raw v5 {raw[-1]:,.0f}" if raw else "") +
              f"; pipeline {pipeline[-1]:,.0f} steps/s ({pipeline[-1] / emulator[-1]:.2f}x), "
              f"mean group {last['group_size_mean']:.1f}")
    emu, pipe = statistics.median(emulator), statistics.median(pipeline)
    print(f"\nmedian of {args.repeats}: emulator ({max(workers, 1)} process(es), our Game) {emu:,.0f} steps/s; "
          f"pipeline with zero-cost net {pipe:,.0f} steps/s = {pipe / emu:.2f}x of the emulator (target >= 0.70)")
    if raw:
        print(f"raw gymnasium ALE v5 (no resize/max-pool) {statistics.median(raw):,.0f} steps/s; "
              f"pipeline = {pipe / statistics.median(raw):.2f}x of it")
    t = last["timing"]
    wall = last["wall_s"]
    print(f"last repeat, loop-side seconds over {wall:.1f} s: tree {last['tree_s']:.2f}, replay append "
          f"{t['replay']:.2f}, inference thread busy {last['inference_busy_s']:.2f}")


if __name__ == "__main__":
    main()
