"""Plot learning curves (PNG) from run directories or from an Aim repository.

  python tools/plot_curves.py runs/CartPole-a runs/CartPole-b --out curves.png
  python tools/plot_curves.py --aim runs/ --out curves.png                  # every run of the repo
  python tools/plot_curves.py --aim runs/ --run CartPole-a --run 4b153a13... --x training_steps

A run directory is read from summary.json (finished runs: evaluations) and metrics.jsonl (every
snapshot; a crashed or running run has only this, and its eval/ rows give the evaluations).
An Aim run is read from the series AimSink tracks (step = training steps, `env_steps` series).

The figure is 2x2: evaluation return (mean, +-std band), training return (last 10 episodes),
losses, throughput (env steps/s); one colour per run, the runs' legend below the panels (in as
many columns as fit the width). The loss panel draws loss/total thick and the components thin,
as logged: each component is unweighted (batch mean of the summed unroll terms), and the total
is their weighted sum with the run's learner coefficients (value_loss_coeff, policy_loss_coeff,
value_prefix_loss_coeff, consistency_coeff; default 0.25, 1, 1, 2) averaged with the replay's
importance weights, which the legend spells out. A series whose points share one x value (one
snapshot, or a run that stopped at one step count) is drawn with markers, not as an invisible line.
Errors: one line "plot_curves: error: ..." on stderr, exit code 2, nothing written.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, Sequence

from ezero_async.tracking.atomic import atomic_path

XAxis = Literal["env_steps", "training_steps"]
Series = tuple[list[float], list[float]]
"""(x, y) of one metric, sorted by x; points whose value was null are left out."""

EVAL_PREFIX = "eval/"
COUNTERS = ("time", "env_steps", "training_steps")
"""Columns of every metrics.jsonl row that are not metrics."""
LOSS_COMPONENTS = ("loss/value", "loss/policy", "loss/value_prefix", "loss/consistency")
LOSS_COEFF_KEYS = {"loss/value": "value_loss_coeff", "loss/policy": "policy_loss_coeff",
                   "loss/value_prefix": "value_prefix_loss_coeff", "loss/consistency": "consistency_coeff"}
"""Component -> the learner config key of its weight in loss/total (ezero_async/learner/loss.py)."""
FIGURE_SIZE = (13.0, 9.0)
"""Inches of the panels; the runs' legend adds its own height below them."""
RUN_LEGEND_FONT = 9


class PlotError(Exception):
    """What is wrong and what to do: printed as the one error line, exit code 2."""


@dataclass
class Curves:
    """One run's curves against one x axis (env steps or training steps)."""

    name: str
    """Run directory name, or the Aim run's name."""
    eval_x: list[float]
    eval_mean: list[float]
    eval_std: list[float]
    """NaN where the evaluation recorded no std."""
    series: dict[str, Series] = field(default_factory=dict)
    """Non-eval metric name ("loss/total", "train/return_last10", ...) -> (x, y)."""
    game: str | None = None
    preset: str | None = None
    seed: int | None = None
    loss_coeffs: dict[str, float] = field(default_factory=dict)
    """Component ("loss/value", ...) -> its coefficient in loss/total: the run's learner config,
    the trainer's default where the config does not say."""

    @property
    def label(self) -> str:
        known = [part for part in (self.game, self.preset, None if self.seed is None else f"seed {self.seed}") if part]
        return f"{self.name} ({', '.join(known)})" if known else self.name


# --- run directories ---

def load_run_dir(run_dir: Path, x: XAxis = "env_steps") -> Curves:
    """Curves of RUN_DIR: evaluations from summary.json when the run finished, else from the
    eval/ rows of metrics.jsonl; every other metric from metrics.jsonl."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlotError(f"{run_dir}: no such run directory; pass a directory written by the trainer")
    summary_path, metrics_path = run_dir / "summary.json", run_dir / "metrics.jsonl"
    if not summary_path.is_file() and not metrics_path.is_file():
        raise PlotError(f"{run_dir}: neither summary.json nor metrics.jsonl found; is this a run directory?")
    summary = _read_json(summary_path) if summary_path.is_file() else None
    rows = _read_metrics(metrics_path) if metrics_path.is_file() else []

    if summary is not None:
        evaluations = summary.get("evaluations") or []
    else:  # crashed or still running: the eval/ rows are the only record of its evaluations
        evaluations = [{k.removeprefix(EVAL_PREFIX): v for k, v in row.items()}
                       for row in rows if EVAL_PREFIX + "return_mean" in row]
    evals = sorted(((float(row[x]), row["return_mean"], row.get("return_std")) for row in evaluations
                    if _number(row.get("return_mean")) and _number(row.get(x))), key=lambda e: e[0])

    columns: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for name, value in row.items():
            if name in COUNTERS or name.startswith(EVAL_PREFIX) or not _number(value):
                continue
            columns.setdefault(name, []).append((float(row[x]), float(value)))

    config = _read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    meta = summary or {}
    return Curves(
        name=run_dir.absolute().name,  # as given: a link names its run (".": the folder)
        eval_x=[e[0] for e in evals], eval_mean=[float(e[1]) for e in evals],
        eval_std=[float(e[2]) if _number(e[2]) else math.nan for e in evals],
        series={name: _sorted(points) for name, points in columns.items()},
        game=meta.get("game") or _get(config, "env", "game"),
        preset=meta.get("preset") or config.get("preset"),
        seed=meta.get("seed", _get(config, "runtime", "seed")),
        loss_coeffs=_loss_coeffs(config),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlotError(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlotError(f"{path}: not valid JSON ({exc}); restore or delete the file") from None
    if not isinstance(data, dict):
        raise PlotError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl. A last line without its newline is a write in progress (the
    run is live), not corruption, so it is left out; any other bad line is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlotError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise PlotError(f"{path}: not UTF-8 text ({exc.reason}); is this a metrics file?") from None
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # unterminated: still being written
                break
            raise PlotError(f"{path}:{number}: corrupt JSON line ({exc.msg}); delete or repair that line") from None
        if not isinstance(row, dict) or not all(_number(row.get(c)) for c in COUNTERS[1:]):
            raise PlotError(f"{path}:{number}: not a metrics row (a JSON object with numeric env_steps and "
                            f"training_steps); delete or repair that line")
        rows.append(row)
    return rows


# --- Aim ---

def load_aim(repo_path: Path, runs: Sequence[str] = (), x: XAxis = "env_steps") -> list[Curves]:
    """Curves of the runs of an Aim repository: those whose name or hash is in `runs` (in that
    order; every run with a matching name), or all runs (by name) when `runs` is empty."""
    repo_path = Path(repo_path)
    if repo_path.name == ".aim":  # the repository's own folder given: its parent is the repo path
        repo_path = repo_path.parent
    if not (repo_path / ".aim").is_dir():
        raise PlotError(f"{repo_path}: not an Aim repository (no .aim folder); pass the folder that holds .aim")
    import aim  # ~1 s: paid only for --aim
    from aim.sdk.index_manager import RepoIndexManager

    try:
        repo = aim.Repo.from_path(str(repo_path))
        # A finished run is invisible to Repo.get_run until indexed (what `aim up` does on start).
        # Index every run before the first get_run: that one caches the index's view, and runs
        # indexed after it stay invisible (get_run returns None).
        hashes = sorted(repo.list_all_runs())
        indexer = RepoIndexManager(repo)
        for run_hash in hashes:
            indexer.index(run_hash)
        # None: a run the indexer found corrupt (it logs a warning), left out.
        found = [run for run in map(repo.get_run, hashes) if run is not None]
    except (RuntimeError, OSError) as exc:
        raise PlotError(f"{repo_path}: cannot read the Aim repository ({exc})") from None
    if not found:
        raise PlotError(f"{repo_path}: the Aim repository holds no runs")

    if not runs:
        return [_aim_curves(run, x) for run in sorted(found, key=lambda run: (str(run.name), run.hash))]
    chosen: dict[str, Any] = {}  # hash -> run, in the order asked for, each run once
    for wanted in runs:
        matches = [run for run in found if wanted in (run.name, run.hash)]
        if not matches:
            names = ", ".join(sorted({str(run.name) for run in found}))
            raise PlotError(f"--run {wanted}: no run of {repo_path} has that name or hash; its runs: {names}")
        chosen.update((run.hash, run) for run in matches if run.hash not in chosen)
    return [_aim_curves(run, x) for run in chosen.values()]


def _aim_curves(run: Any, x: XAxis) -> Curves:
    """One Aim run's curves. Every metric is keyed by training step; env steps come from the
    run's `env_steps` series at the same step (interpolated between snapshots)."""
    by_key: dict[tuple[str, str | None], tuple[list[float], list[float]]] = {}
    for metric in run.metrics():
        if metric.name.startswith("__system__"):  # Aim's own CPU/memory series
            continue
        steps, (values, *_) = metric.data.numpy()  # columns: value, epoch, time; sorted by step
        by_key[metric.name, metric.context.to_dict().get("subset")] = (steps.tolist(), values.tolist())

    env = by_key.get(("env_steps", "train"))
    if x == "env_steps" and env is None:
        raise PlotError(f"Aim run {run.name} ({run.hash}) has no env_steps series; plot it with --x training_steps")

    def to_x(steps: list[float]) -> list[float]:
        if x == "training_steps":
            return [float(s) for s in steps]
        exact = dict(zip(*env))
        return [float(exact[s]) if s in exact else _interp(s, *env) for s in steps]

    mean_steps, means = by_key.get(("eval/return_mean", "eval"), ([], []))
    std_at = dict(zip(*by_key.get(("eval/return_std", "eval"), ([], []))))
    series = {name: (to_x(steps), [float(v) for v in values])
              for (name, subset), (steps, values) in by_key.items()
              if subset == "train" and name != "env_steps"}
    try:
        hparams = run["hparams"]
    except KeyError:  # a run not written by AimSink
        hparams = {}
    return Curves(name=str(run.name), eval_x=to_x(mean_steps), eval_mean=[float(v) for v in means],
                  eval_std=[float(std_at.get(s, math.nan)) for s in mean_steps], series=series,
                  game=run.experiment or _get(hparams, "env", "game"), preset=hparams.get("preset"),
                  seed=_get(hparams, "runtime", "seed"), loss_coeffs=_loss_coeffs(hparams))


def _interp(step: float, steps: list[float], values: list[float]) -> float:
    import numpy as np  # comes with matplotlib and aim

    return float(np.interp(step, steps, values))


# --- helpers ---

def _number(value: Any) -> bool:
    """A finite int or float (bool and null are not metric values)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _sorted(points: list[tuple[float, float]]) -> Series:
    points.sort(key=lambda p: p[0])  # stable: rows at one x stay in time order
    return [p[0] for p in points], [p[1] for p in points]


def _get(tree: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _loss_coeffs(config: dict[str, Any]) -> dict[str, float]:
    """The loss/total weight of each component: config["learner"][key], else LearnerConfig's default."""
    from ezero_async.config.sections import LearnerConfig

    coeffs = {}
    for name, key in LOSS_COEFF_KEYS.items():
        value = _get(config, "learner", key)
        coeffs[name] = float(value) if _number(value) else float(getattr(LearnerConfig, key))
    return coeffs


# --- figure ---

def build_figure(curves: Sequence[Curves], x: XAxis = "env_steps") -> tuple[Any, int]:
    """The 2x2 figure of `curves` (a matplotlib Figure with an Agg canvas) and how many points it draws."""
    import matplotlib

    matplotlib.use("Agg")  # no display; before anything imports pyplot
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    colours = matplotlib.colormaps["tab10" if len(curves) <= 10 else "tab20"]
    fig = Figure(figsize=FIGURE_SIZE, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer: the runs' legend is measured to fit the width
    (ax_eval, ax_train), (ax_loss, ax_rate) = fig.subplots(2, 2, sharex=True)
    points = 0
    loss_styles = dict(zip(LOSS_COMPONENTS, ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))))

    for i, run in enumerate(curves):
        colour = colours(i % colours.N)
        if run.eval_x:
            ax_eval.plot(run.eval_x, run.eval_mean, "-o", color=colour, markersize=4)
            if len(set(run.eval_x)) == 1:  # a band of zero width is invisible: error bars instead
                ax_eval.errorbar(run.eval_x, run.eval_mean, yerr=[0.0 if math.isnan(s) else s for s in run.eval_std],
                                 fmt="none", ecolor=colour, elinewidth=1.2, capsize=4)
            else:
                low = [m - s for m, s in zip(run.eval_mean, run.eval_std)]
                high = [m + s for m, s in zip(run.eval_mean, run.eval_std)]
                ax_eval.fill_between(run.eval_x, low, high, color=colour, alpha=0.2, linewidth=0)
            points += len(run.eval_x)
        for ax, name in ((ax_train, "train/return_last10"), (ax_rate, "throughput/env_steps_per_s")):
            if run.series.get(name, ([], []))[0]:
                ax.plot(*run.series[name], color=colour, linewidth=1.2, **_markers(run.series[name][0], 5))
                points += len(run.series[name][0])
        if run.series.get("loss/total", ([], []))[0]:
            xs = run.series["loss/total"][0]
            ax_loss.plot(*run.series["loss/total"], color=colour, linewidth=1.6, **_markers(xs, 6))
            points += len(xs)
        for name, style in loss_styles.items():
            if run.series.get(name, ([], []))[0]:
                xs = run.series[name][0]
                ax_loss.plot(*run.series[name], color=colour, linewidth=0.7, linestyle=style, alpha=0.8,
                             **_markers(xs, 4, "x"))
                points += len(xs)

    x_label = "env steps" if x == "env_steps" else "training steps"
    titles = {ax_eval: "evaluation return (mean ± std)", ax_train: "training return (last 10 episodes)",
              ax_loss: "loss (total: weighted sum, thick; components: unweighted, thin)",
              ax_rate: "throughput (env steps/s)"}
    for ax, title in titles.items():
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax in (ax_loss, ax_rate):  # shared x: the top row has no tick labels either
            ax.set_xlabel(x_label)
        if not ax.lines:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey", fontsize=14)
            ax.set_yticks([])  # a 0..1 scale of nothing would read as data
    if ax_rate.lines:
        ax_rate.set_ylim(bottom=0)  # a rate: its scale reads right only from zero
    with_total = [run for run in curves if run.series.get("loss/total", ([], []))[0]]
    components = [name for name in LOSS_COMPONENTS if any(run.series.get(name, ([], []))[0] for run in curves)]
    if with_total or components:  # line styles tell the loss parts apart; colours tell runs apart
        handles, labels = [], []
        if with_total:
            handles.append(Line2D([], [], color="black", linewidth=1.6))
            labels.append(total_label(with_total))
        handles += [Line2D([], [], color="black", linewidth=0.7, linestyle=loss_styles[n]) for n in components]
        labels += [f"{n.removeprefix('loss/')} (unweighted)" for n in components]
        ax_loss.legend(handles, labels, fontsize=7, loc="best")
    _run_legend(fig, [Line2D([], [], color=colours(i % colours.N), linewidth=2) for i in range(len(curves))],
                [run.label for run in curves])
    return fig, points


def total_label(curves: Sequence[Curves]) -> str:
    """Legend text of loss/total: how it is formed from the (unweighted) components."""
    coeffs = {tuple(run.loss_coeffs.get(n, math.nan) for n in LOSS_COMPONENTS) for run in curves}
    if len(coeffs) == 1:
        (values,) = coeffs
        terms = " + ".join(f"{c:g} {n.removeprefix('loss/')}" for c, n in zip(values, LOSS_COMPONENTS))
    else:
        terms = "coefficients of each run's learner config (they differ)"
    return f"total (weighted: {terms};\nbatch mean with importance weights)"


def _markers(xs: Sequence[float], size: float, marker: str = "o") -> dict[str, Any]:
    """Markers for a series whose points share one x value: a line through them has no length."""
    return {"marker": marker, "markersize": size} if len(set(xs)) == 1 else {}


def _run_legend(fig: Any, handles: list[Any], labels: list[str]) -> None:
    """The runs' legend below the panels, as wide as fits the figure: the most columns (at most
    4) whose legend fits the width, else one column of labels wrapped to fit. The figure grows
    by the legend's height, so the panels keep their size."""
    import textwrap

    if not labels:
        return
    renderer = fig.canvas.get_renderer()
    room = 0.98 * fig.bbox.width

    def place(texts: list[str], ncols: int) -> Any:
        return fig.legend(handles, texts, loc="outside lower center", ncols=ncols, fontsize=RUN_LEGEND_FONT)

    for ncols in range(min(len(labels), 4), 0, -1):
        legend = place(labels, ncols)
        width = legend.get_window_extent(renderer).width
        if width <= room:
            break
        legend.remove()
    else:  # one label alone is too wide: wrap the labels to the room there is
        chars = max(20, int(max(map(len, labels)) * room / width) - 2)
        legend = place([textwrap.fill(label, chars, break_on_hyphens=False) for label in labels], 1)
    fig.set_figheight(FIGURE_SIZE[1] + legend.get_window_extent(renderer).height / fig.dpi)


def render(curves: Sequence[Curves], out: Path, x: XAxis = "env_steps") -> int:
    """Draw the 2x2 figure of `curves` to `out` (PNG, atomically); return how many points were drawn."""
    fig, points = build_figure(curves, x)
    # Atomic: a reader (an image viewer, a web page) never sees a half-written PNG.
    with atomic_path(Path(out)) as tmp:
        fig.savefig(tmp, format="png")
    return points


# --- command line ---

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other error of this tool
        raise PlotError(f"{message} (see --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (0, or 2 after the one error line on stderr)."""
    try:
        return _main(argv)
    except PlotError as exc:
        print(f"plot_curves: error: {exc}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    parser = _Parser(prog="plot_curves.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR", help="run directories to plot")
    parser.add_argument("--aim", type=Path, metavar="REPO_PATH", help="plot runs of this Aim repository instead")
    parser.add_argument("--run", action="append", default=[], metavar="NAME_OR_HASH",
                        help="with --aim: a run to plot (repeatable; default: every run)")
    parser.add_argument("--x", choices=["env_steps", "training_steps"], default="env_steps", help="x axis")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="PNG to write (default: curves.png)")
    args = parser.parse_args(argv)

    if bool(args.run_dirs) == (args.aim is not None):
        parser.error("give either RUN_DIR arguments or --aim REPO_PATH")
    if args.run and args.aim is None:
        parser.error("--run selects runs of an Aim repository; add --aim REPO_PATH")
    if not args.out.parent.is_dir():
        parser.error(f"--out {args.out}: folder {args.out.parent} does not exist; create it first")
    try:
        if args.aim is not None:
            curves = load_aim(args.aim, args.run, args.x)
        else:
            curves = [load_run_dir(run_dir, args.x) for run_dir in args.run_dirs]
        points = render(curves, args.out, args.x)
    except OSError as exc:  # the loaders turn their own OSErrors into PlotError: this is the write
        raise PlotError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"plot_curves: wrote {args.out} ({len(curves)} run{'s' * (len(curves) != 1)}, {points} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
