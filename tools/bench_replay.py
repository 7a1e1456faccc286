"""Replay micro-benchmarks: batch assembly, prioritised draws + updates, append rate, zarr flush.

    python tools/bench_replay.py [--quick]

Frames are real Breakout frames (ale-py, random policy, stride-resized to 96x96x3) so the zarr
compression numbers mean something. Prints one table; medians over repeats. run() returns the
headline figures that tools/bench.py reports.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from multiprocessing import shared_memory

import numpy as np

from ezero_async.config.sections import ReplayConfig
from ezero_async.replay.buffer import Replay
from ezero_async.replay.context import ContextBuilder
from ezero_async.replay.sampler import PrioritySampler
from ezero_async.replay.windows import gather_frames, walk_chains


def breakout_frames(n: int, seed: int = 0) -> np.ndarray:
    """uint8[n, 96, 96, 3] frames of Breakout under a random policy."""
    import ale_py
    import gymnasium as gym

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", repeat_action_probability=0.0)
    rows, cols = np.linspace(0, 209, 96).astype(int), np.linspace(0, 159, 96).astype(int)
    out = np.empty((n, 96, 96, 3), np.uint8)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for i in range(n):
        out[i] = obs[rows][:, cols]
        obs, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return out


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(quick: bool = False) -> list[tuple[str, float, str]]:
    """Print the table; return headline (measurement, value, unit) figures for tools/bench.py."""
    q = quick
    capacity = 4_000 if q else 20_000
    repeats = 5 if q else 15
    batch, stack, unroll = 256, 4, 6  # windows of S + K = 10 frames
    rows = []
    headlines: list[tuple[str, float, str]] = []

    frames = breakout_frames(600 if q else 3000)
    policy = np.full(18, 1 / 18, np.float32)
    cfg = ReplayConfig(capacity=capacity, unroll_steps=unroll, td_steps=5)

    # ---- append rate (hot tier only, then with the zarr writer)
    rep = Replay(cfg, obs_shape=(96, 96, 3), obs_dtype="uint8", num_actions=18, frame_stack=stack, seed=0)
    n_app = capacity
    t0 = time.perf_counter()
    for n in range(n_app):
        rep.append(0, frames[n % len(frames)], n % 4, 0.0, 0.0, 0.0, policy)
        if n % 200 == 199:
            rep.end_episode(0, frames[n % len(frames)], terminated=True, truncated=False)
    append_rate = n_app / (time.perf_counter() - t0)
    rows.append(("append, hot tier only", f"{append_rate:,.0f} steps/s", ">= 20,000"))
    headlines.append(("append, hot tier only", append_rate, "steps/s"))

    # ---- batch assembly: ours vs plain numpy in shared memory over the same frame count
    shm = shared_memory.SharedMemory(create=True, size=rep.hot.frames.nbytes)
    try:
        plain = np.ndarray(rep.hot.frames.shape, np.uint8, buffer=shm.buf)
        plain[:] = rep.hot.frames
        rng = np.random.default_rng(0)
        length = stack + unroll
        out = np.empty((batch, length, 96, 96, 3), np.uint8)

        def baseline():
            starts = rng.integers(0, len(plain) - length, batch)
            out[:] = plain[starts[:, None] + np.arange(length)[None, :]]

        def baseline_loop():
            starts = rng.integers(0, len(plain) - length, batch)
            for b, s in enumerate(starts):
                out[b] = plain[s:s + length]

        chain = np.empty((batch, stack + unroll + cfg.td_steps), np.int64)

        def ours_obs():
            s = rep.sample(batch, 0)
            w = walk_chains(rep.hot, s.slots, chain)
            gather_frames(rep.hot.frames, (w % rep.hot.num_slots)[:, :length], out)

        builder = ContextBuilder(rep.hot, cfg, batch, 0.99, seed=0)

        def ours_context():
            builder.build(rep.sample(batch, 0), 0)

        for fn in (baseline, ours_obs):  # warm up page mappings
            fn()
        t_base = median_time(baseline, repeats)
        t_loop = median_time(baseline_loop, repeats)
        t_obs = median_time(ours_obs, repeats)
        t_ctx = median_time(ours_context, repeats)
        rows.append(("assembly baseline: frames[rows] fancy index", f"{t_base * 1e3:.2f} ms", f"{batch}x{length} frames"))
        rows.append(("assembly baseline: per-sample slice loop", f"{t_loop * 1e3:.2f} ms", ""))
        rows.append(("assembly ours: sample + link walk + gather", f"{t_obs * 1e3:.2f} ms",
                     f"{t_obs / t_base:.2f}x fancy (target <= 1.5x)"))
        rows.append(("full context (obs + bootstrap windows, targets)", f"{t_ctx * 1e3:.2f} ms",
                     f"{t_ctx / t_base:.2f}x fancy (2 windows)"))
        # The full context is what the learner is fed per update, so it bounds updates/s.
        headlines.append((f"sample + full context build, B={batch}", 1 / t_ctx, "batches/s"))
        plain = None  # drop the view (a cell the closures share) so shm.close() has no exported buffer
    finally:
        shm.close()
        shm.unlink()
    rep.close()

    # ---- sum tree at 100k entries: 256 prioritised draws + 256 priority updates
    big = 100_000
    sampler = PrioritySampler(big, ReplayConfig(capacity=big), seed=0)
    prng = np.random.default_rng(1)
    sampler.tree.update(np.arange(big, dtype=np.int64), prng.exponential(1.0, big))
    upd_slots = prng.integers(0, big, batch).astype(np.int64)
    upd_p = prng.exponential(1.0, batch)
    u = prng.random(batch)
    out_s, out_m = np.empty(batch, np.int64), np.empty(batch)

    def tree_raw():
        sampler.tree.sample(u, out_s, out_m)
        sampler.tree.update(upd_slots, upd_p)

    def tree_api():
        s = sampler.sample(batch, 1000)
        sampler.update(s.slots, upd_p)

    inner = 200
    t_raw = median_time(lambda: [tree_raw() for _ in range(inner)], repeats) / inner
    t_api = median_time(lambda: [tree_api() for _ in range(inner)], repeats) / inner
    rows.append(("sum tree 100k: 256 draws + 256 updates (compiled)", f"{t_raw * 1e6:.1f} us", "target <= 50 us"))
    rows.append(("  same via PrioritySampler (rng, IS weights, lock)", f"{t_api * 1e6:.1f} us", ""))

    # ---- zarr store of record: flush throughput and compression
    n_store = 2_000 if q else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        scfg = ReplayConfig(capacity=max(n_store, 64), unroll_steps=unroll, td_steps=5, segment_length=64)
        srep = Replay(scfg, obs_shape=(96, 96, 3), obs_dtype="uint8", num_actions=18, frame_stack=stack, seed=0,
                      store_dir=tmp)
        t0 = time.perf_counter()
        for n in range(n_store):
            srep.append(0, frames[n % len(frames)], n % 4, 0.0, 0.0, 0.0, policy)
        t_app = time.perf_counter() - t0
        t0 = time.perf_counter()
        srep.flush()
        t_total = t_app + time.perf_counter() - t0
        srep.close()
        import pathlib
        disk = sum(p.stat().st_size for p in pathlib.Path(tmp, "frames").rglob("*") if p.is_file())
        raw = n_store * 96 * 96 * 3
        rows.append(("append + zarr writer thread, then flush", f"{n_store / t_total:,.0f} steps/s",
                     f"{n_store} Breakout frames"))
        headlines.append(("append + zarr writer thread, then flush", n_store / t_total, "steps/s"))
        rows.append(("zarr frames compression (zstd-3, 64/chunk)", f"{raw / disk:,.0f}x", f"{disk / 1e6:.2f} MB on disk"))

    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'result':>16}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")
    return headlines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few-second run")
    args = ap.parse_args()
    run(args.quick)


if __name__ == "__main__":
    main()
