"""Learning acceptance: train a preset, print its evaluation curve, and check a target.

  python tools/check_learning.py --game CartPole --preset cartpole --target 450 --minutes 20
  python tools/check_learning.py --game MinAtar/Breakout --preset minatar --set runtime.env_steps=30000
  python tools/check_learning.py --curve runs/CartPole-cartpole-...   # print an existing run's curve

Passes when some evaluation within the run (periodic or final) reaches `--target` mean return
and the run's wall time is under `--minutes`. Exit code 0 on pass, 1 on fail.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ezero_async.config import build_config
from ezero_async.config.values import parse_override
from ezero_async.errors import UserError


def print_curve(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    print(f"# {summary['game']} ({summary['preset']}, seed {summary['seed']}): {summary['env_steps']} env steps, "
          f"{summary['training_steps']} training steps, {summary['wall_time_s'] / 60:.1f} min")
    print(f"{'training step':>13} {'env steps':>9} {'return mean':>11} {'std':>8} {'episodes':>8}")
    for row in summary["evaluations"]:
        print(f"{row['training_steps']:>13} {row['env_steps']:>9} {row['return_mean']:>11.2f} "
              f"{row['return_std']:>8.2f} {int(row['episodes']):>8}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="CartPole")
    parser.add_argument("--preset", default="cartpole")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=None, help="mean evaluation return to reach")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock limit of the run")
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--curve", type=Path, default=None, help="only print the curve of this run directory")
    args = parser.parse_args()
    if args.curve is not None:
        print_curve(args.curve)
        return 0

    from ezero_async.runtime.trainer import train

    try:
        overrides = dict(parse_override(item) for item in args.set)
        config = build_config(args.preset, args.game, {"tracking.aim": False, "runtime.seed": args.seed, **overrides})
    except UserError as exc:  # a bad --set: one line, like the trainer's own CLI
        print(f"check_learning: error: {exc}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path("runs") / f"check-{args.game.replace('/', '-')}-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"# training {args.game} with preset {args.preset} -> {run_dir}", flush=True)
    train(config, run_dir, "cpu")
    summary = print_curve(run_dir)
    ok = True
    if args.target is not None:
        best = max(row["return_mean"] for row in summary["evaluations"])
        reached = best >= args.target
        print(f"best evaluation {best:.2f} (target {args.target}): {'reached' if reached else 'NOT reached'}")
        ok &= reached
    if args.minutes is not None:
        in_time = summary["wall_time_s"] <= args.minutes * 60
        print(f"wall time {summary['wall_time_s'] / 60:.1f} min (limit {args.minutes}): {'ok' if in_time else 'too slow'}")
        ok &= in_time
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
