"""Learner throughput: training steps/s of the EfficientZero network on synthetic batches.

Compares, in one run and on one device, the learner thread (pinned staging, H2D copy of batch
s+1 on a side stream while update s runs, a producer thread filling the bounded queue) with a
naive serial loop (host batch -> synchronous pageable copy -> update -> read back). run() returns
the headline figures that tools/bench.py reports.

    python tools/bench_learner.py --quick                  # atari100k net, B=256, CPU: ~2 min here
    python tools/bench_learner.py --device cuda            # 3 warm-up + 5 timed (default)
    python tools/bench_learner.py --preset minatar --frame 10,10,4 --batch 128
    python tools/bench_learner.py --preset cartpole --frame 4 --actions 2 --contend 0.17   # GIL cost
    python tools/bench_learner.py --preset minatar --frame 10,10,4 --actions 3 --batch 64 --steps 30 \
        --set learner.amp=bf16 --ab learner.prediction_heads=per_position,joint   # one setting, A against B

--ab times naive updates of two configs that differ in one setting, alternating A and B on the
same batches, so that a load that drifts during the run (another process on the cores) slows both
alike; it prints each one's median and the ratio B / A.
"""
from __future__ import annotations

import argparse
import queue
import threading
import time

import numpy as np
import torch

from ezero_async.config import apply_overrides, build_config, parse_override
from ezero_async.errors import ConfigError, UserError
from ezero_async.learner.learner import Learner
from ezero_async.learner.model import build_model, count_parameters
from ezero_async.learner.synthetic import random_batch
from ezero_async.learner.thread import LearnerThread
from ezero_async.learner.transfer import stage_naive
from ezero_async.main import resolve_device


def learner_config(args, extra: dict | None = None):
    """The preset at --batch with the --set overrides and `extra`, checked (raises ConfigError)."""
    cfg = build_config(args.preset, None, {"learner.batch_size": args.batch, "replay.capacity": max(args.batch, 16)})
    cfg = apply_overrides(cfg, {**getattr(args, "overrides", {}), **(extra or {})})
    cfg.check()
    return cfg


def make_learner(args, device, extra: dict | None = None):
    cfg = learner_config(args, extra)
    torch.manual_seed(0)
    model = build_model(cfg.model, args.frame, cfg.env.frame_stack, args.actions, cfg.learner.lstm_horizon)
    return Learner(model, cfg.learner, device, frame_stack=cfg.env.frame_stack), cfg


def host_batches(cfg, args, count=2):
    rng = np.random.default_rng(0)
    return [random_batch(rng, args.batch, args.frame, cfg.env.frame_stack, cfg.learner.unroll_steps, args.actions)
            for _ in range(count)]


def run_naive(args, device) -> tuple[list[float], dict[str, float]]:
    """Serial: copy (blocking, pageable), update, read back; returns per-step end times."""
    learner, cfg = make_learner(args, device)
    pool = host_batches(cfg, args)
    ends = [time.perf_counter()]
    for s in range(args.warmup + args.steps):
        dev = stage_naive(pool[s % len(pool)]._replace(step=s), learner.device)
        learner.train_step(dev)  # includes the device -> host sync
        ends.append(time.perf_counter())
    return ends, {}


def run_pipelined(args, device) -> tuple[list[float], dict[str, float]]:
    """LearnerThread fed by a producer thread; returns per-step end times."""
    learner, cfg = make_learner(args, device)
    pool = host_batches(cfg, args)
    total = args.warmup + args.steps
    q: queue.Queue = queue.Queue(maxsize=cfg.learner.queue_size)
    ends = [time.perf_counter()]

    def produce():
        for s in range(total):
            q.put(pool[s % len(pool)]._replace(step=s))
        q.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    thread = LearnerThread(learner, q, on_priorities=lambda i, p: None,
                           on_step=lambda r: ends.append(time.perf_counter()), num_threads=args.threads)
    producer.start()
    thread.start()
    thread.join()
    producer.join()
    return ends, thread.timing


class GilHog:
    """A thread that runs pure Python (holding the GIL) for BURST_S out of every BURST_S / duty
    seconds, as the event loop and the inference threads do around a learner thread."""

    BURST_S = 0.001

    def __init__(self, duty: float) -> None:
        self.duty, self.stopped = duty, threading.Event()
        self.thread = threading.Thread(target=self._run, name="gil-hog", daemon=True)

    def __enter__(self) -> "GilHog":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        idle = self.BURST_S * (1.0 / self.duty - 1.0)
        while not self.stopped.is_set():
            until = time.perf_counter() + self.BURST_S
            while time.perf_counter() < until:
                pass
            if idle > 0:
                time.sleep(idle)


def run_contended(args, device) -> tuple[list[float], dict[str, float]]:
    """The naive loop beside a GilHog of duty args.contend."""
    with GilHog(args.contend):
        return run_naive(args, device)


def run_ab(args, device, key: str, values: tuple) -> tuple[float, float]:
    """Median seconds per naive update with KEY = values[0] and with values[1], interleaved."""
    learners = [make_learner(args, device, {key: value})[0] for value in values]
    pool = host_batches(learner_config(args), args)
    times: list[list[float]] = [[], []]
    for s in range(args.warmup + args.steps):
        for learner, spent in zip(learners, times):
            start = time.perf_counter()
            learner.train_step(stage_naive(pool[s % len(pool)]._replace(step=s), learner.device))
            if s >= args.warmup:
                spent.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def run(quick: bool = False, device: str = "auto", preset: str = "atari100k",
        frame: tuple[int, ...] = (96, 96, 3), actions: int = 18, batch: int = 256, warmup: int = 3, steps: int = 5,
        threads: int = 1, contend: float = 0.0) -> list[tuple[str, float, str]]:
    """Print the table; return headline (measurement, value, unit) figures for tools/bench.py."""
    args = argparse.Namespace(device=device, preset=preset, frame=tuple(frame), actions=actions, batch=batch,
                              warmup=warmup, steps=steps, threads=threads, contend=contend)
    if quick:
        args.warmup, args.steps = 1, 2
    target = torch.device(resolve_device(args.device))
    torch.set_num_threads(args.threads)  # the naive loop runs on this thread

    learner, _ = make_learner(args, target)
    model = learner.model
    inference = sum(count_parameters(getattr(model, n)) for n in ("representation", "dynamics", "prediction"))
    name = torch.cuda.get_device_name(target) if target.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"# {args.preset} net ({model.kind}), frame {args.frame}, A={args.actions}: {count_parameters(model):,} "
          f"params ({inference:,} without the consistency branch); amp={learner.amp_dtype}; device {name}")
    del learner, model

    rows = []
    modes = [("naive", run_naive), ("pipelined", run_pipelined)]
    if args.contend > 0:
        modes.append((f"naive+gil{args.contend:g}", run_contended))
    for mode, fn in modes:
        ends, timing = fn(args, target)
        if timing:
            print("# learner thread, all steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in timing.items()))
        timed = np.diff(ends)[args.warmup:]
        rows.append((mode, len(timed), float(np.mean(timed)), float(np.median(timed)), len(timed) / float(np.sum(timed))))
    print(f"{'mode':<10} {'batch':>5} {'steps':>5} {'mean s/step':>11} {'median s/step':>13} {'steps/s':>8} "
          f"{'samples/s':>9}")
    for mode, n, mean, median, rate in rows:
        print(f"{mode:<10} {args.batch:>5} {n:>5} {mean:>11.4f} {median:>13.4f} {rate:>8.3f} {rate * args.batch:>9.1f}")
    print(f"ratio pipelined / naive steps/s: {rows[1][4] / rows[0][4]:.3f}")
    if args.contend > 0:
        print(f"ratio naive / naive beside a thread holding the GIL {100 * args.contend:.0f}% of the time "
              f"(time per update): {rows[0][4] / rows[2][4]:.2f}x")
    naive_rate, pipelined_rate = rows[0][4], rows[1][4]
    where = f"{args.preset} B={args.batch} on {target.type}"
    return [(f"learner thread (pipelined), {where}", pipelined_rate, "updates/s"),
            (f"learner thread (pipelined), {where}", pipelined_rate * args.batch, "samples/s"),
            (f"naive serial loop, {where}", naive_rate, "updates/s")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--preset", default="atari100k")
    parser.add_argument("--frame", default="96,96,3", help="stored frame shape, e.g. 96,96,3 or 10,10,4 or 4")
    parser.add_argument("--actions", type=int, default=18)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed steps per mode")
    parser.add_argument("--contend", type=float, default=0.0,
                        help="also time the naive loop beside a Python thread holding the GIL this share of the time "
                             "(0 < share <= 1; what a learner thread meets on a CPU)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config override for every learner timed (repeatable)")
    parser.add_argument("--ab", metavar="KEY=A,B", help="time KEY=A against KEY=B instead (see above)")
    args = parser.parse_args()
    if not 0.0 <= args.contend <= 1.0:
        parser.error(f"--contend must be in [0, 1], got {args.contend}")
    try:
        args.overrides = dict(parse_override(text) for text in args.overrides)
        if args.ab:
            key, _, both = args.ab.partition("=")
            values = tuple(parse_override(f"{key}={v}")[1] for v in both.split(","))
            if len(values) != 2:
                raise ConfigError(f"--ab {args.ab!r} must name one setting and two values: KEY=A,B")
            for value in values:
                learner_config(args, {key: value})
        args.device = resolve_device(args.device)  # "auto" -> the device; "cuda" without one: the error line
    except UserError as exc:
        parser.error(str(exc))
    if args.ab:
        args.frame = tuple(int(v) for v in args.frame.split(","))
        if args.quick:
            args.warmup, args.steps = 1, 2
        device = torch.device(args.device)
        torch.set_num_threads(args.threads)
        a, b = run_ab(args, device, key, values)
        print(f"# {args.preset} B={args.batch} on {device.type}, {args.steps} updates each, interleaved"
              + "".join(f", {k}={v}" for k, v in args.overrides.items()))
        print(f"{key}={values[0]}: median {1000 * a:.1f} ms/update")
        print(f"{key}={values[1]}: median {1000 * b:.1f} ms/update")
        print(f"ratio {values[1]} / {values[0]} (time per update): {b / a:.3f}")
        return
    run(args.quick, args.device, args.preset, tuple(int(v) for v in args.frame.split(",")), args.actions,
        args.batch, args.warmup, args.steps, args.threads, args.contend)


if __name__ == "__main__":
    main()
