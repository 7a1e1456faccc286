"""A profiling session: the real trainer, bounded in time, measured by a ProfileProbe.

The run is the one `python -m ezero_async.main` would start with the same flags, with these
changes so that its steady state is what gets measured: no periodic evaluations and no
periodic checkpoints (both would pause the pipeline inside the window), snapshots every
second, a short learner warm-up (profile_config), and enough env steps that the run never
ends on its own. The supervisor stops it
(as on Ctrl-C: one checkpoint, resources released) once the window has lasted `seconds`.
A sweep repeats this for every point of a grid of settings.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ezero_async.config.sections import RunConfig
from ezero_async.config.values import apply_overrides, config_to_dict
from ezero_async.errors import UserError
from ezero_async.profiling.advice import Advice, recommend
from ezero_async.profiling.probe import ProfileProbe
from ezero_async.profiling.report import ProfileReport, Setup
from ezero_async.profiling.traces import PySpyTrace, TorchTrace
from ezero_async.tracking.atomic import write_text_atomic

PROFILE_OVERRIDES: dict[str, Any] = {
    "runtime.env_steps": 1_000_000_000,
    "runtime.eval_interval": 0,
    "runtime.tail_train_steps": 0,
    "tracking.log_interval_s": 1.0,
    "tracking.checkpoint_interval": 1_000_000_000,
}
"""What a profiled run changes (a key the user set explicitly keeps the user's value)."""

STARTUP_LIMIT_S = 600.0
"""The window must open (first update + warm-up) within this long, or the profile fails."""


def profile_config(config: RunConfig, user_keys: set[str]) -> RunConfig:
    """`config` as profiled: PROFILE_OVERRIDES, and a start_transitions small enough that the
    learner's warm-up (start_transitions x ratio updates before self-play resumes) ends soon,
    yet every env has played past one unroll + TD reach twice; except the keys the user set."""
    overrides = dict(PROFILE_OVERRIDES)
    reach = config.learner.unroll_steps + config.replay.td_steps
    overrides["runtime.start_transitions"] = min(config.runtime.start_transitions, 2 * reach * config.runtime.num_envs)
    config = apply_overrides(config, {k: v for k, v in overrides.items() if k not in user_keys})
    config.check()
    return config


@dataclass
class Profile:
    report: ProfileReport
    advice: list[Advice]
    run_dir: Path


def profile_run(config: RunConfig, run_dir: Path, device: str, *, seconds: float, warmup_s: float,
                py_spy: bool = False, torch_trace_s: float = 0.0, planned: RunConfig | None = None) -> Profile:
    """Train `config` in `run_dir` until the measurement window has lasted `seconds`; write
    RUN_DIR/profile.json (and pyspy.svg / torch_trace.json when asked), and add the report to
    the run's Aim record when it is tracked. `planned`: the run before profile_config, whose
    wall clock the report projects (default `config`)."""
    from ezero_async.runtime.trainer import Interrupted, StopRequested, train

    traces: list = []
    if py_spy:
        traces.append(PySpyTrace(run_dir / "pyspy.svg"))
    if torch_trace_s > 0:
        traces.append(TorchTrace(run_dir / "torch_trace.json", torch_trace_s))
    probe = ProfileProbe(warmup_s, config.runtime.start_transitions, traces)
    started = time.monotonic()

    def window_done() -> str | None:
        if probe.window_seconds >= seconds:
            return f"profile window of {seconds:g} s complete"
        if not probe.opened and time.monotonic() - started > STARTUP_LIMIT_S + seconds:
            return "profile window never opened"
        return None

    try:
        train(config, run_dir, device, sinks=[probe], stop_when=window_done)
    except Interrupted:
        raise
    except StopRequested:
        pass  # the window is complete (or never opened: reported below)
    if not probe.opened:
        raise UserError(f"the profiling window never opened within {STARTUP_LIMIT_S + seconds:.0f} s: the learner "
                        f"did not finish its warm-up (runtime.start_transitions {config.runtime.start_transitions} x "
                        f"the replay ratio updates); lower it with --set runtime.start_transitions=N")
    report = ProfileReport.from_window(Setup.of(config, device, os.cpu_count() or 1, planned), probe.window())
    if py_spy:
        report.notes.append(f"py-spy flame graph: {run_dir / 'pyspy.svg'} (sampling slows the run a little)")
    if torch_trace_s > 0:
        report.notes.append(f"torch profiler trace ({torch_trace_s:g} s, all threads): {run_dir / 'torch_trace.json'} "
                            "(open in Perfetto or chrome://tracing; recording slows the run)")
    advice = recommend(report)
    write_text_atomic(run_dir / "profile.json", json.dumps(
        {"report": report.to_dict(), "metrics": report.metrics(),
         "advice": [asdict(a) for a in advice]}, indent=2))
    if config.tracking.aim:
        _report_to_aim(config, run_dir, report, advice)
    return Profile(report, advice, run_dir)


def _report_to_aim(config: RunConfig, run_dir: Path, report: ProfileReport, advice: list[Advice]) -> None:
    """The report's figures as profile/ metrics and a `profile` param of the run's Aim record
    (the run the trainer tracked; its hash is in the checkpoint written at the stop)."""
    import aim

    from ezero_async.tracking.aim_sink import repo_for
    from ezero_async.tracking.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(run_dir)
    if checkpoint.get("aim_run") is None:
        raise RuntimeError(f"the checkpoint of {run_dir} names no Aim run, though tracking.aim is on")
    run = aim.Run(run_hash=checkpoint["aim_run"], repo=str(repo_for(config.tracking.aim_repo, run_dir)),
                  system_tracking_interval=None, capture_terminal_logs=False)
    try:
        step = int(checkpoint["step"])
        for name, value in report.metrics().items():
            run.track(float(value), name=name, step=step, context={"subset": "profile"})
        run["profile"] = {"setup": config_to_dict(config), "seconds": report.seconds,
                          "metrics": report.metrics(),
                          "advice": [f"{a.finding} -> {a.action}" for a in advice]}
    finally:
        run.close()


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the order given: [{key: value, ...}, ...]."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def default_grid(config: RunConfig) -> dict[str, list[Any]]:
    """Half and twice the env coroutines, and one or two searches in flight."""
    n = config.runtime.num_envs
    return {"runtime.num_envs": sorted({max(1, n // 2), n, 2 * n}),
            "batcher.searches_in_flight": sorted({1, 2, config.batcher.searches_in_flight})}
