"""The suite report: per-game table, aggregate human-normalised statistics with intervals, plots.

Scores are always each run's final evaluation (the final weights, `summary.json`), never a best
checkpoint. A partial suite reports what it has and lists what is missing. Writes
SUITE_DIR/report.md, report.json, profile.png (performance profile) and games.png (per game).
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ezero_async.envs.scores import RANDOM_HUMAN, human_normalised
from ezero_async.suite import stats
from ezero_async.suite.published import PUBLISHED
from ezero_async.suite.runs import Manifest, RunSpec, StatusFile, run_specs
from ezero_async.tracking.atomic import write_text_atomic


@dataclass
class RunResult:
    spec: RunSpec
    state: str
    """done | failed | interrupted | not started | unfinished (started, no outcome recorded)."""
    score: float | None = None
    """Final evaluation's mean return (raw score)."""
    hns: float | None = None
    """Its human-normalised score (Atari 100k games evaluated under the protocol's cap only)."""
    wall_time_s: float | None = None
    error: str | None = None


def collect(suite_dir: Path, manifest: Manifest) -> list[RunResult]:
    status = StatusFile(suite_dir).runs
    results = []
    for spec in run_specs(suite_dir, manifest):
        recorded = status.get(spec.name, {})
        if spec.finished():
            summary = json.loads((spec.run_dir / "summary.json").read_text())
            final = summary["final_eval"]
            results.append(RunResult(spec, "done", final["return_mean"], final.get("human_normalised_score"),
                                     summary.get("wall_time_s")))
        elif recorded:
            results.append(RunResult(spec, recorded["state"], error=recorded.get("error")))
        else:
            results.append(RunResult(spec, "unfinished" if spec.run_dir.exists() else "not started"))
    return results


def protocol(results: list[RunResult]) -> dict[str, Any] | None:
    """The evaluation protocol of the finished runs (from the first one's config.json)."""
    done = [r for r in results if r.state == "done"]
    if not done:
        return None
    config = json.loads((done[0].spec.run_dir / "config.json").read_text())
    env, runtime = config["env"], config["runtime"]
    out: dict[str, Any] = {"final episodes": runtime["final_eval_episodes"],
                           "episode cap (agent steps)": env["eval_max_episode_steps"]}
    family = done[0].spec.game.family
    if family == "atari":  # the settings papers differ on (sticky actions, no-op starts)
        out.update({"frame skip": env["frame_skip"], "sticky actions": env["sticky_action_prob"],
                    "no-op starts": f"1..{env['noop_max']}" if env["noop_max"] else "none"})
    elif family == "minatar":
        out["sticky actions"] = env["sticky_action_prob"]
    out.update({"env steps": runtime["env_steps"], "scores": "final weights, never the best checkpoint"})
    return out


def build_report(suite_dir: Path, manifest: Manifest, reps: int = 2000) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready data."""
    results = collect(suite_dir, manifest)
    games, game_ids = [], []
    for label in manifest.games:
        rows = [r for r in results if r.spec.game.label == label]
        game_ids.append(rows[0].spec.game)
        done = [r for r in rows if r.state == "done"]
        name = rows[0].spec.game.name
        atari = rows[0].spec.game.family == "atari" and name in RANDOM_HUMAN
        scores = [r.score for r in done]
        hns = [r.hns for r in done if r.hns is not None]
        games.append({
            "game": label, "runs_done": len(done), "runs": len(rows),
            "score_mean": statistics.fmean(scores) if scores else None,
            "score_std": statistics.pstdev(scores) if len(scores) > 1 else (0.0 if scores else None),
            "scores": scores,
            "random": RANDOM_HUMAN[name][0] if atari else None, "human": RANDOM_HUMAN[name][1] if atari else None,
            "hns": hns, "hns_mean": statistics.fmean(hns) if hns else None,
            "published": {paper: table.get(name) for paper, table in PUBLISHED.items()} if atari else {},
        })
    normalised = [g["hns"] for g in games if g["hns"]]
    aggregate = None
    if normalised:
        aggregate = {name: interval._asdict() for name, interval in stats.aggregates(normalised, reps=reps).items()}
    missing = [{"run": r.spec.name, "state": r.state, "error": r.error} for r in results if r.state != "done"]
    published = {}
    for paper in PUBLISHED:
        hns = [[human_normalised(game, g["published"][paper])] for game, g in zip(game_ids, games)
               if g["published"].get(paper) is not None]
        if hns:
            published[paper] = {"games": len(hns), "mean": stats.mean(hns), "median": stats.median(hns)}
    return {"manifest": manifest.to_dict(), "protocol": protocol(results), "games": games,
            "aggregate": aggregate, "aggregate_games": len(normalised), "published_aggregate": published,
            "missing": missing, "runs_done": sum(r.state == "done" for r in results), "runs": len(results),
            "wall_time_s": sum(r.wall_time_s or 0.0 for r in results)}


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def format_markdown(report: dict[str, Any]) -> str:
    m = report["manifest"]
    lines = [f"# Suite: preset {m['preset']}, {len(m['games'])} games x {len(m['seeds'])} seeds "
             f"({report['runs_done']} of {report['runs']} runs done)", ""]
    if report["protocol"]:
        lines += ["Protocol: " + "; ".join(f"{k} {v}" for k, v in report["protocol"].items()), ""]
    papers = list(PUBLISHED) if any(g["random"] is not None for g in report["games"]) else []
    head = ["game", "runs", "final return (mean ± std over seeds)", "random", "human", "HNS"] + papers
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in report["games"]:
        cells = [g["game"], f"{g['runs_done']}/{g['runs']}",
                 f"{_fmt(g['score_mean'])} ± {_fmt(g['score_std'])}" if g["scores"] else "-",
                 _fmt(g["random"], 1), _fmt(g["human"], 1), _fmt(g["hns_mean"], 3)]
        cells += [_fmt(g["published"].get(p), 1) for p in papers]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if report["aggregate"]:
        lines += [f"Human-normalised score over {report['aggregate_games']} games (95 % stratified-bootstrap "
                  "intervals over seeds):", "", "| statistic | value | 95 % interval |", "|---|---:|---|"]
        for name, iv in report["aggregate"].items():
            lines.append(f"| {name} | {iv['point']:.3f} | [{iv['low']:.3f}, {iv['high']:.3f}] |")
        for paper, agg in report["published_aggregate"].items():
            lines.append(f"| {paper} (published, same {agg['games']} games) | mean {agg['mean']:.3f}, "
                         f"median {agg['median']:.3f} | |")
        lines.append("")
    else:
        lines += ["No human-normalised scores (no finished Atari 100k game evaluated under the protocol's cap): "
                  "aggregates are not computed.", ""]
    if report["missing"]:
        lines += [f"Missing ({len(report['missing'])} runs): "
                  + "; ".join(f"{x['run']} {x['state']}" + (f" ({x['error']})" if x["error"] else "")
                              for x in report["missing"]), ""]
    lines.append(f"Wall time of the finished runs, summed: {report['wall_time_s'] / 3600:.2f} h.")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], suite_dir: Path) -> list[Path]:
    """games.png (every seed's final score per game, normalised when the game has HNS) and, when
    there are normalised scores, profile.png (fraction of runs above each HNS threshold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name: str, xlabel: str, ylabel: str, title: str) -> None:
        ax = fig.axes[0]
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.tight_layout()
        written.append(suite_dir / name)
        fig.savefig(written[-1], dpi=120, bbox_inches="tight")  # rotated game names need the room
        plt.close(fig)

    written: list[Path] = []
    games = [g for g in report["games"] if g["scores"]]
    if games:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(games) + 2), 4))
        for i, g in enumerate(games):
            values = g["hns"] if g["hns"] else g["scores"]
            ax.bar(i, float(np.mean(values)), color="tab:blue" if g["hns"] else "tab:gray", alpha=0.6)
            ax.scatter([i] * len(values), values, color="black", s=10, zorder=3)
        ax.set_xticks(range(len(games)), [g["game"] for g in games], rotation=60, ha="right", fontsize=8)
        with_hns = sum(bool(g["hns"]) for g in games)
        ylabel = ("human-normalised score" if with_hns == len(games) else "final return" if with_hns == 0
                  else "HNS (blue), final return (gray)")
        save(fig, "games.png", "", ylabel, "final evaluation per game\n(bar: mean over seeds; dots: seeds)")
    normalised = [g["hns"] for g in report["games"] if g["hns"]]
    if normalised:
        taus = np.linspace(0.0, max(2.0, max(max(h) for h in normalised)), 200)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(taus, stats.performance_profile(normalised, taus))
        save(fig, "profile.png", "human-normalised score threshold τ", "fraction of runs with score > τ",
             "performance profile")
    return written


def write_report(suite_dir: Path, manifest: Manifest, reps: int = 2000) -> tuple[dict[str, Any], list[Path]]:
    report = build_report(suite_dir, manifest, reps=reps)
    write_text_atomic(suite_dir / "report.json", json.dumps(report, indent=2))
    write_text_atomic(suite_dir / "report.md", format_markdown(report))
    return report, [suite_dir / "report.md", suite_dir / "report.json", *plot(report, suite_dir)]


def aim_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's numbers as Aim scalars: aggregates with their intervals, per-game scores."""
    metrics: dict[str, float] = {}
    for name, iv in (report["aggregate"] or {}).items():
        metrics.update({f"suite/hns_{name}": iv["point"], f"suite/hns_{name}_low": iv["low"],
                        f"suite/hns_{name}_high": iv["high"]})
    for g in report["games"]:
        key = g["game"].replace("/", "_")
        if g["score_mean"] is not None:
            metrics[f"suite/score/{key}"] = g["score_mean"]
        if g["hns_mean"] is not None:
            metrics[f"suite/hns/{key}"] = g["hns_mean"]
    metrics["suite/runs_done"] = float(report["runs_done"])
    return metrics


def track_in_aim(suite_dir: Path, report: dict[str, Any], figures: Sequence[Path] = ()) -> str:
    """One suite-level Aim run (experiment 'suite') beside the suite's runs, in their repository
    (SUITE_DIR/runs: `aim up --repo SUITE_DIR/runs`): the report's scalars, and `figures` (PNGs)
    as images named suite/<file stem>. Returns the run's hash."""
    from ezero_async.tracking.aim_sink import AimSink
    from ezero_async.tracking.run_dir import exclusive

    repo_dir = suite_dir / "runs"
    sink = AimSink(repo_dir, experiment="suite", run_name=suite_dir.name, hparams=report["manifest"])
    try:
        sink.emit(0, 0, aim_metrics(report))
    finally:
        sink.close()
    if figures:
        import aim
        from PIL import Image

        with exclusive(repo_dir / ".ezero-aim-init.lock"):  # as AimSink opens repositories
            run = aim.Run(run_hash=sink.run_hash, repo=aim.Repo.from_path(str(repo_dir), init=True),
                          system_tracking_interval=None, capture_terminal_logs=False)
        try:
            for path in figures:
                with Image.open(path) as picture:
                    run.track(aim.Image(picture.convert("RGB")), name=f"suite/{path.stem}", step=0)
        finally:
            run.close()
    return sink.run_hash
