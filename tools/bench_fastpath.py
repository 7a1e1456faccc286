"""Before/after of the CUDA fast path, each pair measured in the same run on one device.

- Search: one group of B roots (random network of the preset, A actions), pUCT with the preset's
  simulations and Gumbel with 16, eager fp32 calls against eager bf16 autocast (`batcher.amp`)
  and against CUDA graphs (`batcher.cuda_graphs`): milliseconds per group and simulated roots
  per second.
- Learner: updates/s of the preset's network at batch B for AMP off / fp16 (+ GradScaler) / bf16,
  with TF32 and channels-last off and on (`learner.amp`, `runtime.tf32`, `runtime.channels_last`).

    python tools/bench_fastpath.py --device cuda                  # atari100k: 96x96x3, A=18, B=256
    python tools/bench_fastpath.py --device cpu --quick           # the logic, on a small net (CI)
    python tools/bench_fastpath.py --device cpu --preset minatar --frame 10,10,4 --actions 3 --roots 1024 --batch 64

On a CPU TF32 and channels-last are no-ops and "graphs" runs the graphed path's static buffers
eagerly, so those figures only show that every variant runs; bf16 (inference and `learner.amp`)
does run in bf16 there, fast where the CPU has AVX512-BF16 or AMX.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np
import torch

from ezero_async.config import build_config
from ezero_async.inference.runner import ModelRunner
from ezero_async.inference.search_service import SearchService
from ezero_async.learner.learner import Learner
from ezero_async.learner.model import build_model
from ezero_async.learner.synthetic import random_batch
from ezero_async.learner.transfer import stage_naive
from ezero_async.learner.weights import WeightStore
from ezero_async.main import resolve_device
from ezero_async.runtime.fastpath import apply_precision, to_layout
from ezero_async.search import root_noise


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # timing boundary


def bench_search(args, device: torch.device, mode: str, simulations: int, graphs: bool,
                 amp: str = "off") -> tuple[float, int]:
    """Median seconds per group of args.roots roots, and the captures made (0 eager)."""
    cfg = build_config(args.preset, None, {"search.mode": mode, "search.num_simulations": simulations,
                                           "batcher.max_batch": args.roots, "runtime.tf32": True,
                                           "runtime.channels_last": True, "batcher.amp": amp})
    apply_precision(cfg.runtime, device)
    stack = cfg.env.frame_stack

    def make():
        return to_layout(build_model(cfg.model, args.frame, stack, args.actions, cfg.learner.lstm_horizon).to(device),
                         cfg.runtime, device)

    torch.manual_seed(0)
    model = make()
    with torch.no_grad():  # zero-initialised heads would make every search a tie
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    store = WeightStore(2, name="target")
    store.publish(0, model)
    runner = ModelRunner(make, device, {"target": store}, inline=True, amp=amp)
    service = SearchService(runner, cfg.search, cfg.batcher, args.actions, serial=True, graphs=graphs)
    rng = np.random.default_rng(0)
    shape = (args.roots, stack, *args.frame)
    stacks = (rng.integers(0, 256, shape, dtype=np.uint8) if len(args.frame) == 3
              else rng.normal(size=shape).astype(np.float32))
    noise = root_noise(cfg.search, args.roots, args.actions, rng)
    times = []
    for i in range(args.warmup + args.repeats):  # the first call captures the graphs
        _sync(device)
        began = time.perf_counter()
        asyncio.run(service.search("target", 0, stacks, noise, seed=i))
        _sync(device)
        times.append(time.perf_counter() - began)
    captures = sum(slot.graphs.captures for slot in service._free if slot.graphs is not None)
    return statistics.median(times[args.warmup:]), captures


def bench_learner(args, device: torch.device, amp: str, tf32: bool, channels_last: bool) -> float:
    """Median updates/s of the preset's network at batch args.batch."""
    cfg = build_config(args.preset, None, {"learner.batch_size": args.batch, "replay.capacity": max(args.batch, 16),
                                           "learner.amp": amp, "runtime.tf32": tf32,
                                           "runtime.channels_last": channels_last})
    apply_precision(cfg.runtime, device)
    torch.manual_seed(0)
    model = to_layout(build_model(cfg.model, args.frame, cfg.env.frame_stack, args.actions,
                                  cfg.learner.lstm_horizon).to(device), cfg.runtime, device)
    learner = Learner(model, cfg.learner, device, frame_stack=cfg.env.frame_stack)
    host = random_batch(np.random.default_rng(0), args.batch, args.frame, cfg.env.frame_stack,
                        cfg.learner.unroll_steps, args.actions)
    staged = stage_naive(host, learner.device)
    times = []
    for s in range(args.warmup + args.repeats):
        began = time.perf_counter()
        learner.train_step(staged._replace(step=s))  # ends in the update's device -> host sync
        times.append(time.perf_counter() - began)
    return 1.0 / statistics.median(times[args.warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--preset", default="atari100k")
    parser.add_argument("--frame", default="96,96,3", help="stored frame shape H,W,C (or D)")
    parser.add_argument("--actions", type=int, default=18)
    parser.add_argument("--roots", type=int, default=256, help="roots per search group (max_batch)")
    parser.add_argument("--batch", type=int, default=256, help="learner batch")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke preset, 10x10x4 frames, tiny sizes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.frame, args.actions, args.roots, args.batch = "smoke", "10,10,4", 3, 8, 8
        args.warmup, args.repeats = 1, 2
    args.frame = tuple(int(v) for v in args.frame.split(","))
    if args.roots < 1 or args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--roots, --batch and --repeats must be >= 1, --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    device = torch.device(resolve_device(args.device))
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"# {args.preset} net, frame {args.frame}, A={args.actions}; search groups of {args.roots} roots, "
          f"learner batch {args.batch}; median of {args.repeats} after {args.warmup} warm-up; device {name}")

    base = build_config(args.preset, None, {})
    print(f"{'search':<20} {'eager ms':>9} {'bf16 ms':>8} {'speed-up':>9} {'graphs ms':>10} {'speed-up':>9} "
          f"{'graphs roots*sims/s':>20} captures")
    for mode, sims in (("pucb", base.search.num_simulations), ("gumbel", 16)):
        eager, _ = bench_search(args, device, mode, sims, graphs=False)
        bf16, _ = bench_search(args, device, mode, sims, graphs=False, amp="bf16")
        graphed, captures = bench_search(args, device, mode, sims, graphs=True)
        print(f"{mode + f' {sims} sims':<20} {eager * 1e3:>9.1f} {bf16 * 1e3:>8.1f} {eager / bf16:>9.2f} "
              f"{graphed * 1e3:>10.1f} {eager / graphed:>9.2f} {args.roots * sims / graphed:>20,.0f} {captures}")

    print(f"{'learner: amp, tf32, layout':<36} {'updates/s':>10} {'vs fp32':>8}")
    baseline = None
    for amp, tf32, channels_last in (("off", False, False), ("off", True, False), ("fp16", False, False),
                                     ("fp16", False, True), ("fp16", True, True), ("bf16", True, True)):
        rate = bench_learner(args, device, amp, tf32, channels_last)
        baseline = rate if baseline is None else baseline
        label = f"{amp}, tf32 {'on' if tf32 else 'off'}, {'channels-last' if channels_last else 'NCHW'}"
        print(f"{label:<36} {rate:>10.2f} {rate / baseline:>8.2f}")


if __name__ == "__main__":
    main()
