"""`python -m ezero_async.profiling`: where a training run's time goes, and what to change.

  python -m ezero_async.profiling --game Breakout --seconds 60
  python -m ezero_async.profiling --game MinAtar/Breakout --seconds 30 --py-spy --torch-trace 5
  python -m ezero_async.profiling --game CartPole --sweep --seconds 20
  python -m ezero_async.profiling --game Breakout --grid runtime.num_envs=64,128 --grid batcher.max_batch=64,128

Runs the real trainer with the same flags as `python -m ezero_async.main` for a bounded time,
and prints a per-stage table (env stepping, batcher, inference, tree, replay, reanalysis,
learner, tracker), CPU and GPU utilisation, queue depths and recommendations derived from the
numbers. RUN_DIR keeps profile.json, metrics.jsonl and the optional traces; the figures also
go to the run's Aim record. (Not tools/profile.py: a script of that name shadows the standard
library's `profile` module, which cProfile imports.)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from ezero_async.config.values import apply_overrides, parse_override
from ezero_async.errors import ConfigError, UserError
from ezero_async.main import EXIT_USAGE, _Parser, add_config_arguments, config_from_args, resolve_device

PROG = "python -m ezero_async.profiling"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.set_defaults(resume=None)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the measurement window, after start-up and warm-up (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds after steady state begins (learner updating, self-play collecting after the "
                             "learner's warm-up) before the window opens (default 5)")
    parser.add_argument("--run-dir", type=Path,
                        help="directory of the profiled run (default runs/profile-<game>-<preset>-<time>)")
    parser.add_argument("--py-spy", action="store_true", help="write a py-spy flame graph RUN_DIR/pyspy.svg")
    parser.add_argument("--torch-trace", type=float, default=0.0, metavar="SECONDS",
                        help="record a torch profiler trace of the window's first SECONDS (RUN_DIR/torch_trace.json)")
    parser.add_argument("--sweep", action="store_true",
                        help="profile a grid of settings (default: --num-envs x0.5/x1/x2, 1 or 2 searches in flight)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="one axis of the sweep grid (repeatable; implies --sweep)")
    parser.add_argument("--json", action="store_true", help="print the report(s) as JSON instead of text")
    return parser


def _grid(args: argparse.Namespace) -> dict[str, list[Any]]:
    """--grid KEY=V1,V2 axes, each value typed and checked like a --set value."""
    grid: dict[str, list[Any]] = {}
    for text in args.grid:
        key, eq, values = text.partition("=")
        if not eq or not values.strip():
            raise ConfigError(f"--grid {text!r} must look like section.field=value1,value2")
        grid[key.strip()] = [parse_override(f"{key}={value}")[1] for value in values.split(",")]
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ezero_async.profiling.report import format_report
    from ezero_async.profiling.session import default_grid, grid_points, profile_config, profile_run
    from ezero_async.runtime.trainer import Interrupted

    try:
        if args.seconds <= 0 or args.warmup < 0 or args.torch_trace < 0:
            raise UserError("--seconds must be > 0, --warmup and --torch-trace >= 0")
        user_keys = {parse_override(text)[0] for text in args.overrides}
        if args.env_steps is not None:
            user_keys.add("runtime.env_steps")
        planned = config_from_args(args)  # the run as configured: what the report projects
        base = profile_config(planned, user_keys)
        device = resolve_device(base.runtime.device)
        grid = _grid(args)
        if args.sweep and not grid:
            grid = default_grid(base)
        points = grid_points(grid) if grid else [{}]
        configs = []
        for point in points:
            config = apply_overrides(base, point)
            config.check()
            configs.append((config, apply_overrides(planned, point)))
    except (UserError, ConfigError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = args.run_dir or Path("runs") / f"profile-{base.env.game.replace('/', '-')}-{base.preset}-{stamp}"
    if root.exists() and any(root.iterdir()):
        print(f"{PROG}: error: {root} is not empty; pass another --run-dir", file=sys.stderr)
        return EXIT_USAGE
    results = []
    try:
        for i, (point, (config, planned_point)) in enumerate(zip(points, configs)):
            run_dir = root if len(points) == 1 else root / f"point-{i:02d}"
            label = ", ".join(f"{k}={v}" for k, v in point.items()) or "as configured"
            print(f"{PROG}: profiling {config.env.game} ({config.preset}, {label}) on {device}: start-up, then a "
                  f"{args.seconds:g} s window -> {run_dir}", file=sys.stderr, flush=True)
            profile = profile_run(config, run_dir, device, seconds=args.seconds, warmup_s=args.warmup,
                                  py_spy=args.py_spy, torch_trace_s=args.torch_trace, planned=planned_point)
            results.append((point, profile))
            if not args.json:
                print(format_report(profile.report, profile.advice), flush=True)
                print(flush=True)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as exc:
        print(f"{PROG}: {exc}; no report", file=sys.stderr)
        return 128 + exc.signum
    if args.json:
        print(json.dumps([{"point": point, "run_dir": str(p.run_dir), "metrics": p.report.metrics(),
                           "advice": [asdict(a) for a in p.advice]}
                          for point, p in results], indent=2))
    elif len(results) > 1:
        print(format_sweep(results))
    return 0


def format_sweep(results: list) -> str:
    """One row per grid point, best env steps/s marked."""
    keys = list(results[0][0])
    best = max(range(len(results)), key=lambda i: results[i][1].report.env_steps_per_s)
    head = " ".join(f"{k:>26}" for k in keys)
    lines = ["# sweep (best marked *)", f"  {head} {'env steps/s':>12} {'updates/s':>10} {'group fill':>10} "
             f"{'loop CPU':>9} {'cores busy':>10}"]
    for i, (point, profile) in enumerate(results):
        r = profile.report
        cells = " ".join(f"{str(point[k]):>26}" for k in keys)
        lines.append(f"{'*' if i == best else ' '} {cells} {r.env_steps_per_s:>12,.1f} {r.training_steps_per_s:>10.2f} "
                     f"{100 * r.group_fill:>9.0f}% {r.loop_busy:>9.2f} {100 * r.cores_busy:>9.0f}%")
    point = results[best][0]
    lines.append("best: " + " ".join(f"--set {k}={v}" for k, v in point.items())
                 + f" ({results[best][1].report.env_steps_per_s:,.1f} env steps/s)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
