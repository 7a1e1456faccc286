"""Learning report: train a preset for several seeds and judge the policies the runs END with.

  python tools/check_learning.py --game CartPole --preset cartpole --seeds 5 \\
      --final-min 475 --reach 450 --floor 400 --minutes 10
  python tools/check_learning.py --game MinAtar/Breakout --preset minatar --seeds 3 \\
      --final-min 6.1 --max-fallback-std 1
  python tools/check_learning.py --report runs/learning-CartPole-cartpole-*/runs/*   # judge existing runs
  python tools/check_learning.py --report runs/v2/runs/* --baseline runs/v1/runs/*   # one recipe against another

The seeds are a one-game suite (python -m ezero_async.suite) in OUT: each seed is one `python -m
ezero_async.main` run in OUT/runs/<game>-s<seed>/, its output in OUT/logs/<game>-s<seed>.log (a
progress line a minute, every evaluation), `--parallel` at a time (default 2: the runs use one
torch thread per busy thread, so two runs fill two cores; with the learner in its own process, as
the CPU presets run it, one run alone uses about 1.5 cores and `--parallel 1` gives each run's wall
time its own machine). Ctrl-C (or SIGTERM) stops every run with its checkpoint written, exit 130;
the same command then continues the unfinished seeds from their checkpoints and keeps the finished
ones, so a check longer than a session spans several (other arguments for the same OUT: exit 2).

The report gives per seed the final evaluation (the final test,
`runtime.final_eval_episodes` episodes), the best, the HELD figure (the minimum of the last three
evaluations, the final one included), the env steps at which the return first reached `--reach`,
the largest fall after the peak, and the wall time; then the across-seed mean +- std of final,
best and held. It writes report.json, a table in Markdown (report.md) and a PNG of every seed's
evaluation curve with their mean. The final evaluation's count of distinct episodes (different
action sequences) is in the table, and a note flags a seed whose final evaluation replayed at most
three: a deterministic game with few starts and a noise-free evaluation policy (MinAtar without
sticky actions) gives 32 episodes of two games, and its figures are those two games'. A line
names the machines the runs finished on (summary.json's `machine`), since a recipe's wall time
differs about 2x between two 2-core machines, and a note says when a baseline ran elsewhere.

Pass/fail uses final and held figures, never the best: each check given is applied to every
seed. With --baseline (finished runs of another recipe on the same game) the report also prints
the baseline's table and compares the two groups: the runs pass only if their across-seed mean
final and mean held are at least the baseline's, at no more env steps, and (with --faster) their
mean wall time is below the baseline's, all over the seeds both groups ran (the tables show
every seed); the PNG draws both groups, one colour each, seeds thin and means thick. Exit code
0 on pass, 1 on fail, 2 on bad arguments or a run that did not finish.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, Sequence

from ezero_async.tracking.atomic import atomic_path, write_text_atomic

EXIT_STOPPED = 130
"""Exit code when a signal stopped the runs (the same command continues them)."""

HELD_WINDOW = 3
"""The held figure is the minimum of this many last evaluations."""
FEW_DISTINCT = 3
"""A final evaluation with at most this many different action sequences replays fixed games."""


class ReportError(Exception):
    """One line: what is wrong and what to do (exit code 2)."""


@dataclass(frozen=True)
class SeedResult:
    """What one seed's run ends with (returns are evaluation means)."""

    run_dir: str
    seed: int
    final: float
    """The final evaluation's mean return."""
    final_std: float
    final_episodes: int
    final_distinct: int | None
    """Different action sequences among the final evaluation's episodes (None: a run from before
    the count existed)."""
    best: float
    """The best evaluation (reported, never judged)."""
    held: float
    """min of the last HELD_WINDOW evaluations."""
    reach_env_steps: int | None
    """Env steps of the first evaluation at or above --reach (None: never, or no --reach)."""
    min_after_reach: float | None
    """The lowest evaluation from the first one that reached --reach on (None: never reached)."""
    fallback: float
    """Peak mean minus the lowest mean after the peak (0 when the peak is the last evaluation)."""
    peak_std: float
    """The standard deviation over episodes of the peak evaluation."""
    env_steps: int
    wall_time_s: float
    curve: tuple[tuple[int, float, float], ...]
    """(env steps, mean, std) of every evaluation, in order."""
    machine: str | None = None
    """The machine that finished the run (summary.json's machine label; None: a run from before
    summaries recorded it). Wall times of one recipe differ about 2x between 2-core machines."""


def seed_result(summary: dict[str, Any], run_dir: str, reach: float | None) -> SeedResult:
    """Judge one run from its summary.json contents (`evaluations` ends with the final test)."""
    rows = summary.get("evaluations") or []
    if not rows:
        raise ReportError(f"{run_dir}: the run has no evaluations; run it with runtime.eval_interval > 0")
    means = [float(r["return_mean"]) for r in rows]
    final = summary["final_eval"]
    peak = max(range(len(means)), key=lambda i: (means[i], -i))  # the first evaluation at the best mean
    reach_at = None if reach is None else next((i for i, m in enumerate(means) if m >= reach), None)
    return SeedResult(
        run_dir=run_dir, seed=int(summary["seed"]), final=float(final["return_mean"]),
        final_std=float(final["return_std"]), final_episodes=int(final["episodes"]),
        final_distinct=None if final.get("distinct_episodes") is None else int(final["distinct_episodes"]),
        best=means[peak],
        held=min(means[-HELD_WINDOW:]),
        reach_env_steps=None if reach_at is None else int(rows[reach_at]["env_steps"]),
        min_after_reach=None if reach_at is None else min(means[reach_at:]),
        fallback=means[peak] - min(means[peak:]), peak_std=float(rows[peak]["return_std"]),
        env_steps=int(summary["env_steps"]), wall_time_s=float(summary["wall_time_s"]),
        curve=tuple((int(r["env_steps"]), float(r["return_mean"]), float(r["return_std"])) for r in rows),
        machine=(summary.get("machine") or {}).get("label"))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Across-seed mean and (population) standard deviation."""
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def across_seeds(results: Sequence[SeedResult], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """{field: {"mean", "std"}} over the seeds, for report.json."""
    return {name: dict(zip(("mean", "std"), mean_std([getattr(r, name) for r in results]))) for name in names}


@dataclass(frozen=True)
class Criteria:
    """The checks applied to every seed; None leaves one out."""

    final_min: float | None = None
    held_min: float | None = None
    reach: float | None = None
    floor: float | None = None
    """With reach: no evaluation after the first that reached `reach` falls below this."""
    max_fallback_std: float | None = None
    """The fall after the peak is at most this many of the peak evaluation's own std."""
    max_env_steps: int | None = None
    minutes: float | None = None


def judge(results: Sequence[SeedResult], criteria: Criteria) -> list[tuple[str, bool]]:
    """(check, passed) for each check given, each over every seed."""
    c = criteria
    checks: list[tuple[str, bool]] = []

    def add(name: str, ok: Sequence[bool]) -> None:
        checks.append((f"{name}: {sum(ok)}/{len(ok)} seeds", all(ok)))

    if c.final_min is not None:
        add(f"final >= {c.final_min:g}", [r.final >= c.final_min for r in results])
    if c.held_min is not None:
        add(f"held >= {c.held_min:g}", [r.held >= c.held_min for r in results])
    if c.floor is not None:
        if c.reach is None:
            raise ReportError("--floor needs --reach (the floor applies after a seed first reaches it)")
        add(f"reached {c.reach:g} and never below {c.floor:g} after",
            [r.min_after_reach is not None and r.min_after_reach >= c.floor for r in results])
    if c.max_fallback_std is not None:
        add(f"fall after the peak <= {c.max_fallback_std:g} x its std",
            [r.fallback <= c.max_fallback_std * r.peak_std for r in results])
    if c.max_env_steps is not None:
        add(f"env steps <= {c.max_env_steps}", [r.env_steps <= c.max_env_steps for r in results])
    if c.minutes is not None:
        add(f"wall time <= {c.minutes:g} min", [r.wall_time_s <= c.minutes * 60 for r in results])
    return checks


def compare(results: Sequence[SeedResult], baseline: Sequence[SeedResult], faster: bool,
            digits: int = 1) -> list[tuple[str, bool]]:
    """(check, passed) for the runs against a baseline group: across-seed means of the final and
    held figures at least the baseline's, at most its env steps, and (faster) less mean wall time.
    Where the groups ran different seeds, both are judged on the seeds they share (a seed's draw
    moves a CartPole final by 200: means over different seeds compare draws, not recipes)."""
    shared = sorted({r.seed for r in results} & {r.seed for r in baseline})
    if not shared:
        raise ReportError(f"the runs (seeds {_seed_list(results)}) and the baseline (seeds {_seed_list(baseline)}) "
                          "share no seed: compare runs of the same seeds")
    over = ""
    if len(shared) < max(len(results), len(baseline)):
        results, baseline = ([r for r in group if r.seed in shared] for group in (results, baseline))
        over = f" (seeds {', '.join(map(str, shared))}: those both groups ran)"
    checks = []
    for name in ("final", "held"):
        mine, theirs = (statistics.fmean(getattr(r, name) for r in group) for group in (results, baseline))
        checks.append((f"mean {name} {mine:.{digits}f} >= baseline's {theirs:.{digits}f}{over}", mine >= theirs))
    mine_steps, their_steps = (max(r.env_steps for r in group) for group in (results, baseline))
    checks.append((f"env steps {mine_steps:,} <= baseline's {their_steps:,}", mine_steps <= their_steps))
    if faster:
        mine_wall, their_wall = (statistics.fmean(r.wall_time_s for r in group) / 60 for group in (results, baseline))
        checks.append((f"mean wall time {mine_wall:.1f} min < baseline's {their_wall:.1f} min "
                       f"({mine_wall / their_wall:.2f}x)", mine_wall < their_wall))
    return checks


def planned_seeds(args: argparse.Namespace) -> tuple[int, ...]:
    """The seeds a training call runs: --first-seed and the --seeds - 1 after it."""
    return tuple(range(args.first_seed, args.first_seed + args.seeds))


def _seed_list(group: Sequence[SeedResult]) -> str:
    return ", ".join(str(r.seed) for r in sorted(group, key=lambda r: r.seed))


def _fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"


def markdown(results: Sequence[SeedResult], reach: float | None, digits: int) -> str:
    """The per-seed table and the across-seed line, as Markdown."""
    lines = [f"| seed | final (episodes) | held (min of last {HELD_WINDOW}) | best | env steps to {_fmt(reach, digits)} "
             "| fall after peak | env steps | wall time |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        distinct = "" if r.final_distinct is None else f", {r.final_distinct} distinct"
        lines.append(f"| {r.seed} | {_fmt(r.final, digits)} ± {_fmt(r.final_std, digits)} ({r.final_episodes}{distinct}) "
                     f"| {_fmt(r.held, digits)} | {_fmt(r.best, digits)} | {_fmt(r.reach_env_steps)} "
                     f"| {_fmt(r.fallback, digits)} | {r.env_steps:,} | {r.wall_time_s / 60:.1f} min |")
    parts = []
    for name in ("final", "held", "best"):
        m, s = mean_std([getattr(r, name) for r in results])
        parts.append(f"{name} {m:.{digits}f} ± {s:.{digits}f}")
    lines.append("")
    lines.append(f"Across {len(results)} seeds: " + ", ".join(parts) + ".")
    machines = machines_line(results)
    if machines is not None:
        lines += ["", machines]
    return "\n".join(lines)


def machines_line(results: Sequence[SeedResult]) -> str | None:
    """'Machines: <label> (seeds ...); ...', the machines behind the wall times, or None when no
    run recorded its machine."""
    if all(r.machine is None for r in results):
        return None
    groups: dict[str, list[int]] = {}
    for r in results:
        groups.setdefault(r.machine or "not recorded", []).append(r.seed)
    return "Machines: " + "; ".join(f"{label} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
                                    for label, seeds in groups.items()) + "."


def replay_warning(results: Sequence[SeedResult], label: str) -> str | None:
    """A line when some final evaluation played at most FEW_DISTINCT different games: then its N
    episodes measure that many games, not the policy (a deterministic game with few starts)."""
    few = [r for r in results if r.final_distinct is not None and r.final_distinct <= FEW_DISTINCT < r.final_episodes]
    if not few:
        return None
    which = ", ".join(f"seed {r.seed} ({r.final_distinct} of {r.final_episodes})" for r in few)
    return (f"note: {label}'s final evaluations replayed few distinct episodes: {which}. The game and the "
            "evaluation policy are deterministic, so the episodes measure those games only; evaluate with "
            "sticky actions (env.sticky_action_prob, or python -m ezero_async.evaluate --sticky-actions).")


def machine_warning(results: Sequence[SeedResult], baseline: Sequence[SeedResult]) -> str | None:
    """A line when the runs and their baseline recorded different machines: their wall times
    (and --faster) then compare the machines as much as the recipes."""
    mine, theirs = ({r.machine for r in group if r.machine is not None} for group in (results, baseline))
    if not mine or not theirs or mine == theirs:
        return None
    return (f"note: the runs ran on {', '.join(sorted(mine))} and the baseline on {', '.join(sorted(theirs))}: "
            "their wall times compare the machines as much as the recipes.")


def _mean_curve(results: Sequence[SeedResult]) -> tuple[list[int], list[float]]:
    """The across-seed mean at the env steps every seed evaluated at."""
    shared = sorted(set.intersection(*(set(x for x, _, _ in r.curve) for r in results)))
    by_seed = [{x: y for x, y, _ in r.curve} for r in results]
    return shared, [statistics.fmean(d[x] for d in by_seed) for x in shared]


def plot(groups: Sequence[tuple[str, Sequence[SeedResult]]], out: Path, title: str) -> None:
    """PNG: every seed's evaluation curve (thin) and their mean at the shared env steps (thick).
    One group: a colour per seed and a black mean; several: a colour per group."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    single = len(groups) == 1
    for g, (label, results) in enumerate(groups):
        colour = None if single else f"C{g}"
        for r in results:
            xs, ys, sd = zip(*r.curve)
            ax.plot(xs, ys, lw=1, marker=".", color=colour, alpha=1.0 if single else 0.5,
                    label=f"seed {r.seed} (final {r.final:.1f})" if single else None)
            if single:
                ax.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)], alpha=0.08)
        xs, means = _mean_curve(results)
        if xs:
            finals = statistics.fmean(r.final for r in results)
            ax.plot(xs, means, lw=3, color="black" if single else colour,
                    label="mean over seeds" if single else f"{label}: mean of {len(results)} seeds "
                                                            f"(final {finals:.1f})")
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} check_learning: {message}", flush=True)


def run_seeds(args: argparse.Namespace, out: Path) -> list[Path] | None:
    """Train every seed as a one-game suite in `out` (ezero_async.suite), `--parallel` runs at a
    time, one torch thread each; returns their run directories, or None when a signal stopped the
    runs (each wrote its checkpoint: the same command continues them)."""
    from ezero_async.envs.registry import resolve_game
    from ezero_async.errors import UserError
    from ezero_async.suite.executors import run_local
    from ezero_async.suite.runs import Manifest, StatusFile, open_suite, run_specs

    suite_dir = out.resolve()
    try:
        wanted = Manifest(preset=args.preset, games=(resolve_game(args.game).label,),
                          seeds=planned_seeds(args),
                          overrides=(*args.set, "tracking.aim=false"), device="cpu")
        manifest = open_suite(suite_dir, wanted)
        specs = run_specs(suite_dir, manifest)
    except UserError as exc:
        raise ReportError(str(exc)) from None
    todo = [spec for spec in specs if not spec.finished()]
    if len(todo) < len(specs):
        say(f"{len(specs) - len(todo)} of {len(specs)} seeds already finished in {out}; continuing the rest")
    status = StatusFile(suite_dir)
    if run_local(todo, manifest, args.parallel, status, say, threads=1) is not None:
        return None
    failed = [f"{spec.name} (log {spec.log})" for spec in specs if not spec.finished()]
    if failed:
        raise ReportError("runs did not finish: " + "; ".join(failed))
    return [spec.run_dir for spec in specs]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"check_learning: error: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--game", default=None, help="default CartPole (with --report: the runs' game)")
    p.add_argument("--preset", default=None, help="default cartpole (with --report: the runs' preset)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (first-seed, first-seed + 1, ...)")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2: most seeds per hour; 1: the shortest run)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every seed")
    p.add_argument("--out", type=Path, default=None, help="folder of the seeds' run dirs and the report")
    p.add_argument("--report", type=Path, nargs="+", default=None, metavar="RUN_DIR",
                   help="judge these finished runs instead of training")
    p.add_argument("--baseline", type=Path, nargs="+", default=None, metavar="RUN_DIR",
                   help="finished runs of another recipe on the same game to compare with")
    p.add_argument("--label", default=None, help="the runs' name in the tables and the PNG (default: the preset, "
                   "and the runs' folder where both groups ran one preset)")
    p.add_argument("--baseline-label", default=None, help="the baseline's name, as --label")
    p.add_argument("--faster", action="store_true", help="with --baseline: the runs' mean wall time must be lower")
    p.add_argument("--final-min", type=float, default=None, help="every seed's final evaluation >= this")
    p.add_argument("--held-min", type=float, default=None, help="every seed's held figure >= this")
    p.add_argument("--reach", type=float, default=None, help="return whose first crossing is reported")
    p.add_argument("--floor", type=float, default=None, help="after first reaching --reach, no evaluation below this")
    p.add_argument("--max-fallback-std", type=float, default=None,
                   help="the fall after a seed's peak is at most this many of the peak's own std")
    p.add_argument("--max-env-steps", type=int, default=None)
    p.add_argument("--minutes", type=float, default=None, help="wall-clock limit per seed")
    p.add_argument("--digits", type=int, default=1, help="decimals in the table")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.parallel < 1:
        p.error("--seeds and --parallel must be >= 1")
    if args.faster and args.baseline is None:
        p.error("--faster compares with a baseline: give --baseline RUN_DIR ...")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except ReportError as exc:
        print(f"check_learning: error: {exc}", file=sys.stderr)
        return 2


def load_group(dirs: Sequence[Path], reach: float | None) -> tuple[list[SeedResult], str | None, str | None]:
    """Judge finished runs: (their results, the game and preset of the first)."""
    results, game, preset = [], None, None
    for d in dirs:
        path = d / "summary.json"
        if not path.is_file():
            raise ReportError(f"{d}: no summary.json (the run did not finish)")
        summary = json.loads(path.read_text())
        game, preset = game or summary.get("game"), preset or summary.get("preset")
        results.append(seed_result(summary, str(d), reach))
    return results, game, preset


def _group_label(preset: str | None, dirs: Sequence[Path], other_preset: str | None) -> str:
    """The preset, and the runs' folder where both groups ran the same preset (the suite's folder
    for a check_learning suite, whose runs all sit in SUITE/runs)."""
    parent = Path(dirs[0]).resolve().parent
    folder = parent.parent.name if parent.name == "runs" else parent.name
    return f"{preset} ({folder})" if preset == other_preset or preset is None else str(preset)


def _same_game(game: str | None, base_game: str | None) -> None:
    if base_game != game:
        raise ReportError(f"the baseline runs played {base_game}, the runs {game}: compare runs of one game")


def _main(args: argparse.Namespace) -> int:
    baseline: list[SeedResult] = []
    if args.baseline is not None:  # loaded first: a bad baseline fails now, not after hours of training
        baseline, base_game, base_preset = load_group(args.baseline, args.reach)
    if args.report is not None:
        dirs = list(args.report)
        home = dirs[0].resolve().parent
        out = args.out or (home.parent if (home.parent / "suite.json").is_file() else home)
    else:
        args.game, args.preset = args.game or "CartPole", args.preset or "cartpole"
        if args.baseline is not None:
            _same_game(args.game, base_game)
            planned = planned_seeds(args)
            if not set(planned) & {r.seed for r in baseline}:
                raise ReportError(f"the baseline ran seeds {_seed_list(baseline)}, these runs would be seeds "
                                  f"{planned[0]}..{planned[-1]}: compare runs of the same seeds (--first-seed)")
        from ezero_async.config import build_config
        from ezero_async.config.values import parse_override
        from ezero_async.errors import UserError

        try:  # a bad --set is one line here, before any run starts
            overrides = dict(parse_override(item) for item in args.set)
            build_config(args.preset, args.game, overrides).check()
        except UserError as exc:
            raise ReportError(str(exc)) from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = args.out or Path("runs") / f"learning-{args.game.replace('/', '-')}-{args.preset}-{stamp}"
        trained = run_seeds(args, out)
        if trained is None:
            say(f"stopped: every run wrote its checkpoint; the same arguments with --out {out} continue them")
            return EXIT_STOPPED
        dirs = trained
    results, game, preset = load_group(dirs, args.reach)
    args.game, args.preset = args.game or game, args.preset or preset
    criteria = Criteria(final_min=args.final_min, held_min=args.held_min, reach=args.reach, floor=args.floor,
                        max_fallback_std=args.max_fallback_std, max_env_steps=args.max_env_steps,
                        minutes=args.minutes)
    checks = judge(results, criteria)
    table = markdown(results, args.reach, args.digits)
    if args.baseline is not None:
        _same_game(args.game, base_game)
        labels = (args.label or _group_label(args.preset, dirs, base_preset),
                  args.baseline_label or _group_label(base_preset, args.baseline, args.preset))
        checks += compare(results, baseline, args.faster, args.digits)
        table = (f"{labels[0]}:\n\n{table}\n\nBaseline, {labels[1]}:\n\n"
                 + markdown(baseline, args.reach, args.digits))
    names = labels if args.baseline is not None else (args.label or str(args.preset), "")
    warnings = [w for w in (replay_warning(results, names[0]), replay_warning(baseline, names[1]),
                            machine_warning(results, baseline)) if w is not None]
    print(table)
    for warning in warnings:
        print(warning)
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    passed = all(ok for _, ok in checks)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "report.md", table + "\n\n" + "".join(f"{w}\n\n" for w in warnings)
                      + "\n".join(f"- {'PASS' if ok else 'FAIL'} {n}" for n, ok in checks) + "\n")
    report = {"game": args.game, "preset": args.preset, "criteria": asdict(criteria),
              "checks": [{"check": n, "passed": ok} for n, ok in checks], "passed": passed,
              "seeds": [asdict(r) for r in results],
              "across_seeds": across_seeds(results, ("final", "held", "best"))}
    if args.baseline is not None:
        report["baseline"] = {"preset": base_preset, "seeds": [asdict(r) for r in baseline],
                              "across_seeds": across_seeds(baseline, ("final", "held", "best", "wall_time_s"))}
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    if args.baseline is not None:
        plot(list(zip(labels, (results, baseline))), out / "curves.png",
             f"{args.game}: {labels[0]} against {labels[1]}, evaluation return")
    else:
        plot([(names[0], results)], out / "curves.png",
             f"{args.game} ({names[0]}): evaluation return, {len(results)} seeds")
    print(f"report: {out / 'report.md'}, {out / 'report.json'}, {out / 'curves.png'}")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
