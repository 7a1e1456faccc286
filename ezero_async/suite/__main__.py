"""`python -m ezero_async.suite`: train a suite of games x seeds, or report on one.

    python -m ezero_async.suite --preset atari100k --games atari26 --seeds 3 --out SUITE_DIR
    python -m ezero_async.suite --preset minatar --games minatar5 --seeds 2 --out S --jobs 2 \\
        --set runtime.env_steps=10000
    python -m ezero_async.suite --preset atari100k --games atari26 --seeds 3 --out /shared/S --ray auto
    python -m ezero_async.suite report SUITE_DIR

Running the same command again continues the suite: finished runs are kept, interrupted ones
continue from their checkpoints, failed ones get their attempts again. Exit code 0 when every run
is done, 1 when some failed, 128 + signal when stopped, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from ezero_async.config import PRESETS, build_config, preset_names
from ezero_async.config.values import parse_override
from ezero_async.errors import UserError
from ezero_async.suite.games import GAME_LISTS, parse_games
from ezero_async.suite.report import track_in_aim, write_report
from ezero_async.suite.runs import Manifest, StatusFile, open_suite, run_specs

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} suite: {message}", file=sys.stderr, flush=True)


def run_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m ezero_async.suite", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help=f"config preset of every run ({', '.join(preset_names())})")
    parser.add_argument("--games", required=True,
                        help=f"{', '.join(GAME_LISTS)}, or game names separated by commas")
    parser.add_argument("--seeds", type=int, required=True, help="seeds per game (first-seed, first-seed + 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="the suite's directory (its runs, logs, report)")
    parser.add_argument("--jobs", type=int, default=1, help="local executor: runs at a time (default 1)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run on Ray: 'local' (a cluster on this machine), 'auto' (the running cluster) or an "
                             "address; needs pip install -e \".[cluster]\" and --out on a path every node shares")
    parser.add_argument("--cpus-per-run", type=int, default=1, help="Ray: num_cpus of each run's task")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: num_gpus of each run's task")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (repeatable)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of the report's intervals")
    parser.add_argument("--no-aim", action="store_true",
                        help="track neither the runs nor the suite in Aim (sets tracking.aim=false)")
    return parser


def report_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m ezero_async.suite report", description="write a suite's report again")
    parser.add_argument("suite_dir", type=Path)
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of the intervals")
    parser.add_argument("--no-aim", action="store_true", help="do not track the report in Aim")
    return parser


def aim_enabled(manifest: Manifest) -> bool:
    """The suite tracks its report in Aim when its runs do (no tracking.aim=false override)."""
    return dict(parse_override(text) for text in manifest.overrides).get("tracking.aim", True)


def check_arguments(args: argparse.Namespace) -> Manifest:
    """The suite the arguments ask for; UserError before anything is written if a run would fail
    on its configuration."""
    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; available: {', '.join(preset_names())}")
    if args.seeds < 1 or args.first_seed < 0:
        raise UserError(f"--seeds must be >= 1 and --first-seed >= 0, got {args.seeds} and {args.first_seed}")
    if args.jobs < 1 or args.cpus_per_run < 1 or args.gpus_per_run < 0 or args.reps < 100:
        raise UserError("--jobs and --cpus-per-run must be >= 1, --gpus-per-run >= 0 and --reps >= 100")
    if args.no_aim:
        args.overrides = [*args.overrides, "tracking.aim=false"]
    games = parse_games(args.games)
    overrides = dict(parse_override(text) for text in args.overrides)
    for game in games:  # every run's config is valid, or nothing starts
        build_config(args.preset, game.label, overrides)
    return Manifest(preset=args.preset, games=tuple(g.label for g in games),
                    seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
                    overrides=tuple(args.overrides), device=args.device)


def run(argv: Sequence[str]) -> int:
    args = run_parser().parse_args(argv)
    try:
        manifest = check_arguments(args)
        suite_dir = args.out.resolve()  # Ray workers and subprocesses may start elsewhere
        manifest = open_suite(suite_dir, manifest)
    except UserError as exc:
        print(f"ezero_async.suite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from ezero_async.suite.executors import run_local, run_ray

    specs = run_specs(suite_dir, manifest)
    todo = [spec for spec in specs if not spec.finished()]
    say(f"{len(specs)} runs ({len(manifest.games)} games x {len(manifest.seeds)} seeds), {len(specs) - len(todo)} "
        f"already done; {suite_dir}")
    status = StatusFile(suite_dir)
    try:
        if args.ray is not None:
            stopped = run_ray(todo, manifest, args.ray, status, say, args.cpus_per_run, args.gpus_per_run)
        else:
            stopped = run_local(todo, manifest, args.jobs, status, say)
    except UserError as exc:
        print(f"ezero_async.suite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report, files = write_report(suite_dir, manifest, reps=args.reps)
    if aim_enabled(manifest):
        track_in_aim(suite_dir, report, [f for f in files if f.suffix == ".png"])
    say(f"{report['runs_done']} of {report['runs']} runs done; report: {', '.join(str(f) for f in files)}")
    if stopped is not None:
        say("stopped: run the same command to continue")
        return 128 + int(stopped)
    failed = [m for m in report["missing"] if m["state"] == "failed"]
    return 1 if failed or report["runs_done"] < report["runs"] else 0


def report(argv: Sequence[str]) -> int:
    args = report_parser().parse_args(argv)
    try:
        manifest = open_suite(args.suite_dir, None)
    except UserError as exc:
        print(f"ezero_async.suite: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result, files = write_report(args.suite_dir, manifest, reps=args.reps)
    if aim_enabled(manifest) and not args.no_aim:
        track_in_aim(args.suite_dir, result, [f for f in files if f.suffix == ".png"])
    print((args.suite_dir / "report.md").read_text(), end="")
    say(f"{result['runs_done']} of {result['runs']} runs done; wrote {', '.join(str(f) for f in files)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        return report(argv[1:])
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
