"""The profiler: window aggregation, recommendations on synthetic stage timings, the sweep
table, and the real command on the smoke preset (complete table, profile.json, Aim record)."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ezero_async.profiling.advice import recommend
from ezero_async.profiling.probe import CpuUse, ProfileProbe
from ezero_async.profiling.report import STAGES, ProfileReport, Setup, format_report
from ezero_async.profiling.session import Profile, grid_points
from ezero_async.profiling.__main__ import format_sweep

ROOT = Path(__file__).resolve().parents[1]

BALANCED_STAGES = {
    "env_wait": 0.2, "search_wait": 0.6, "pacer_wait": 0.1, "replay_append": 0.02, "inference_net": 0.5, "tree": 0.2,
    "replay_assembly": 0.05, "reanalyse_targets_wait": 0.5, "reanalyse_queue_full_wait": 0.2, "learner_update": 0.6,
    "learner_wait_batch": 0.1, "learner_stage": 0.02, "tracker": 0.005,
}


def make_report(device: str = "cpu", cores: list[float] | None = None, threads: dict[str, float] | None = None,
                env_workers: float = 0.0, env_worker_count: int = 0, gpu_util: float | None = None,
                setup: dict | None = None, **fields) -> ProfileReport:
    """A report in which no rule fires; keyword arguments change one figure at a time."""
    base = Setup(game="Breakout", preset="atari100k", device=device, cores=4, num_envs=128, max_batch=64,
                 max_wait_ms=2.0, searches_in_flight=2, reanalyse_workers=2, reanalyse_fraction=0.99, reanalyse_mode="batch", queue_size=4,
                 batch_size=256, num_simulations=50, search_mode="pucb", log_interval_s=5.0, amp="auto")
    stages = dict(BALANCED_STAGES)
    stages.update(fields.pop("stages", {}))
    cpu = CpuUse(cores=cores if cores is not None else [0.4, 0.4, 0.4, 0.4],
                 threads=threads if threads is not None else {"MainThread": 0.5, "learner": 0.6, "inference-0": 0.5},
                 env_workers=env_workers, env_worker_count=env_worker_count)
    values = dict(seconds=30.0, env_steps_per_s=100.0, training_steps_per_s=100.0, roots_per_s=400.0, stages=stages,
                  group_fill=0.7, group_size=44.8, group_wait_ms=2.0, learner_queue_mean=2.0, learner_queue_peak=4.0,
                  pending_roots_mean=5.0, pending_roots_peak=30.0, cpu=cpu, gpu_util=gpu_util)
    values.update(fields)
    return ProfileReport(setup=dataclasses.replace(base, **(setup or {})), **values)


def findings(report: ProfileReport) -> str:
    return "\n".join(f"{a.finding} -> {a.action}" for a in recommend(report))


# ------------------------------------------------------------------ recommendations


def test_balanced_pipeline_gets_the_no_bottleneck_advice():
    advice = recommend(make_report())
    assert len(advice) == 1 and "no stage is saturated" in advice[0].finding


def test_learner_bound_on_cpu_and_on_gpu():
    stages = {"learner_update": 0.95, "pacer_wait": 0.6}
    text = findings(make_report(stages=stages))
    assert "learner is the bottleneck" in text and "95%" in text and "60%" in text
    assert "learner.isolation = 'auto', now 'thread'" in text  # on a CPU the thread waits for the GIL
    isolated = findings(make_report(stages=stages, setup={"isolation": "auto"}))
    assert "--set learner.compile=auto" in isolated and "learner.isolation" not in isolated
    compiled = {"isolation": "auto", "learner_compile": "auto"}
    assert "faster device" in findings(make_report(stages=stages, setup=compiled))
    bf16_cpu = findings(make_report(stages=stages, setup={**compiled, "cpu_bf16": True}))
    assert "--set learner.amp=bf16 --set batcher.amp=bf16" in bf16_cpu and "now learner.amp = 'auto'" in bf16_cpu
    in_bf16 = findings(make_report(stages=stages, setup={**compiled, "cpu_bf16": True, "amp": "bf16"}))
    assert "faster device" in in_bf16 and "--set learner.amp" not in in_bf16
    gpu = findings(make_report(device="cuda", gpu_util=90.0, stages=stages, setup={"amp": "off"}))
    assert "learner.amp" in gpu
    # A busy learner that does not hold self-play back is not the bottleneck.
    assert "bottleneck" not in findings(make_report(stages={"learner_update": 0.95, "pacer_wait": 0.05}))


def test_small_groups_name_num_envs_or_max_wait():
    few_envs = findings(make_report(group_fill=0.2, group_size=3.2, setup={"num_envs": 16}))
    assert "20% full" in few_envs and "--num-envs (now 16)" in few_envs and "max_batch to 16" in few_envs
    many_envs = findings(make_report(group_fill=0.3, group_size=19.2))
    assert "batcher.max_wait_ms (now 2)" in many_envs


def test_full_groups_with_queueing_roots_ask_for_a_larger_max_batch():
    text = findings(make_report(group_fill=1.0, group_size=64.0, pending_roots_mean=120.0))
    assert "batcher.max_batch (now 64)" in text
    assert "max_batch" not in findings(make_report(group_fill=1.0, group_size=64.0, pending_roots_mean=3.0))


def test_starved_learner_points_at_the_slow_feeder():
    by_search = findings(make_report(stages={"learner_wait_batch": 0.5, "reanalyse_targets_wait": 0.9}))
    assert "waits for batches 50%" in by_search and "runtime.reanalyse_workers (now 2)" in by_search
    by_assembly = findings(make_report(stages={"learner_wait_batch": 0.5, "reanalyse_targets_wait": 0.3,
                                               "replay_assembly": 0.4}))
    assert "batch assembly" in by_assembly and "learner.batch_size (now 256)" in by_assembly


def test_saturated_event_loop():
    text = findings(make_report(threads={"MainThread": 0.97, "learner": 0.5}))
    assert "event loop thread uses 0.97" in text and "--num-envs (now 128)" in text


def test_cpu_bound_with_idle_gpu_is_the_efficientzero_pattern():
    busy = dict(cores=[0.95] * 4, threads={"MainThread": 0.8, "learner": 0.7, "inference-0": 0.8, "inference-1": 0.8},
                env_workers=0.8, env_worker_count=1)
    text = findings(make_report(device="cuda", gpu_util=20.0, **busy))
    assert "CPU-bound" in text and "20% utilised" in text
    # The same cores busy with other processes' work: reported as such, not as this run's limit.
    other = findings(make_report(cores=[0.95] * 4, threads={"MainThread": 0.3}))
    assert "other processes used" in other and "CPU-bound" not in other
    assert recommend(make_report(cores=[0.95] * 4, threads={"MainThread": 0.3}))[0].finding.startswith("other")


def test_inference_saturated_with_an_idle_gpu_asks_for_bigger_calls():
    text = findings(make_report(device="cuda", gpu_util=25.0, stages={"inference_net": 0.75, "tree": 0.15}))
    assert "inference threads are 90% busy" in text and "raise batcher.max_batch (now 64)" in text
    cpu = findings(make_report(stages={"inference_net": 0.75, "tree": 0.15}))
    assert "batcher.searches_in_flight (now 2)" in cpu and "--set batcher.compile=auto" in cpu
    compiled = findings(make_report(stages={"inference_net": 0.75, "tree": 0.15}, setup={"inference_compile": "auto"}))
    assert "batcher.compile" not in compiled and "batcher.compile" not in text  # already on; a GPU has CUDA graphs


def test_saturated_env_workers_and_costly_tracking():
    text = findings(make_report(env_workers=1.9, env_worker_count=2, stages={"env_wait": 0.5}))
    assert "env worker processes use 1.90 cores" in text
    assert "tracking.log_interval_s (now 5)" in findings(make_report(stages={"tracker": 0.05}))


def test_saturated_resources_come_before_batching_advice():
    report = make_report(threads={"MainThread": 0.5, "learner": 0.9}, group_fill=0.2, group_size=12.8,
                         stages={"learner_update": 0.95, "pacer_wait": 0.7, "tracker": 0.05})
    advice = [a.finding for a in recommend(report)]
    assert "learner is the bottleneck" in advice[0]
    assert any("groups are 20% full" in f for f in advice[1:]) and "tracking" in advice[-1]


def test_learner_bound_advice_never_contradicts_the_group_advice():
    stages = {"learner_update": 0.95, "pacer_wait": 0.7}
    cpu = findings(make_report(group_fill=0.2, group_size=12.8, stages=stages))
    assert "raise --num-envs" in cpu and "more envs" not in cpu  # on CPU larger calls leave the learner cores
    gpu = findings(make_report(device="cuda", gpu_util=90.0, group_fill=0.2, group_size=12.8, stages=stages))
    assert "will not raise throughput" in gpu and "groups are" not in gpu


# ------------------------------------------------------------------ window, table, sweep


def test_probe_window_is_time_weighted_and_skips_warmup_and_evals():
    now = [0.0]
    probe = ProfileProbe(warmup_s=1.0, start_transitions=15, clock=lambda: now[0])
    for t, steps, value, queue in ((0.0, 0, 9.0, 9.0), (1.0, 1, 9.0, 9.0), (2.0, 3, 9.0, 9.0), (3.0, 5, 7.0, 1.0),
                                   (5.0, 9, 4.0, 3.0), (6.0, 11, 2.0, 1.0)):
        now[0] = t
        probe.emit(10 * steps, steps, {"timing/tree_frac": value, "queue/learner_batches": queue, "loss/total": 5.0})
        probe.emit(10 * steps, steps, {"eval/return_mean": 100.0})
    window = probe.window()
    # Steady from t=2 (updates made, and env steps past start_transitions=15: the learner's
    # warm-up is over); opened at t=3 after the probe's 1 s warm-up; then weights 2 and 1.
    assert window.seconds == 3.0 and window.training_steps == 6 and window.env_steps == 60
    assert window.metrics["timing/tree_frac"] == pytest.approx((2 * 4.0 + 1 * 2.0) / 3)
    assert window.peaks["queue/learner_batches"] == 3.0
    assert "loss/total" not in window.metrics
    probe.close()


def test_probe_without_a_window_says_why():
    probe = ProfileProbe(warmup_s=0.0)
    probe.emit(10, 0, {"timing/tree_frac": 1.0})
    assert not probe.opened
    with pytest.raises(RuntimeError, match="never opened"):
        probe.window()


def test_report_table_has_every_stage_and_metrics_are_finite():
    report = make_report(stages={"pacer_wait": 0.3})
    text = format_report(report, recommend(report))
    for _, label, _ in STAGES:
        assert label in text
    assert "recommendations:" in text and "1. " in text
    assert all(math.isfinite(v) for v in report.metrics().values())
    assert report.metrics()["profile/stage/pacer_wait"] == 0.3


def test_the_report_projects_the_runs_wall_clock():
    report = make_report(training_steps_per_s=40.0, roots_per_s=400.0, episode_length=1000.0,
                         setup={"total_updates": 120_000, "final_eval_episodes": 32})
    train, final = report.projection()
    assert train == 3000.0 and final == 80.0  # 120k / 40; 32 episodes x 1,000 steps / 400 roots/s
    assert report.metrics()["profile/projected_hours"] == pytest.approx(3080.0 / 3600)
    text = format_report(report, recommend(report))
    assert ("projected wall clock for this run: 51.3 min (120,000 updates at 40.00/s, plus about 1.3 min of final "
            "evaluation: 32 episodes x 1,000 steps at 400 roots/s)") in text
    stalled = make_report(training_steps_per_s=0.0, episode_length=0.0, setup={"total_updates": 10})
    assert stalled.projection() == (math.inf, None)
    assert "never (no updates in the window)" in format_report(stalled, [])
    assert "profile/projected_hours" not in stalled.metrics()  # metrics keep finite figures only


def test_grid_points_and_sweep_table_mark_the_best():
    points = grid_points({"runtime.num_envs": [8, 16], "batcher.searches_in_flight": [1, 2]})
    assert points[0] == {"runtime.num_envs": 8, "batcher.searches_in_flight": 1} and len(points) == 4
    results = [(p, Profile(make_report(env_steps_per_s=float(10 * (i + 1) % 35)), [], Path("x")))
               for i, p in enumerate(points)]
    table = format_sweep(results)
    best = [line for line in table.splitlines() if line.startswith("*")]
    assert len(best) == 1 and "16" in best[0] and "30.0" in best[0]
    assert "best: --set runtime.num_envs=16 --set batcher.searches_in_flight=1" in table


# ------------------------------------------------------------------ the command


def _profile(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ezero_async.profiling", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_profile_command_on_the_smoke_preset(tmp_path):
    run_dir = tmp_path / "profile"
    done = _profile(["--game", "CartPole", "--preset", "smoke", "--seconds", "4", "--warmup", "1", "--run-dir",
                     str(run_dir), "--set", f"tracking.aim_repo={tmp_path / 'aim'}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for _, label, _ in STAGES:
        assert label in done.stdout
    for part in ("throughput:", "CPU cores busy:", "CPU by thread", "queues:", "recommendations:", "  1. "):
        assert part in done.stdout
    saved = json.loads((run_dir / "profile.json").read_text())
    assert set(saved["report"]["stages"]) == {key for key, _, _ in STAGES}
    assert saved["report"]["seconds"] >= 4.0 and saved["metrics"]["profile/training_steps_per_s"] > 0
    assert saved["advice"]
    # The projection is for the smoke run as configured, not the endless profiled one.
    from ezero_async.config import build_config
    from ezero_async.runtime.pacer import Pacer

    smoke = build_config("smoke", "CartPole", {})
    assert saved["report"]["setup"]["total_updates"] == Pacer(smoke.runtime, smoke.learner).total_steps
    assert "projected wall clock for this run:" in done.stdout
    # The figures are in the run's Aim record too.
    from ezero_async.tracking.checkpoint import load_checkpoint
    from test_aim_sink import read_run

    run, series = read_run(tmp_path / "aim", load_checkpoint(run_dir)["aim_run"])
    assert run["profile"]["metrics"]["profile/training_steps_per_s"] == pytest.approx(
        saved["metrics"]["profile/training_steps_per_s"])
    assert ("profile/stage/learner_update", "profile") in series and ("timing/tree_frac", "train") in series


@pytest.mark.parametrize("args, message", [
    (["--game", "CartPole", "--seconds", "0"], "--seconds must be > 0"),
    (["--game", "NoSuchGame"], "NoSuchGame"),
    (["--game", "CartPole", "--grid", "runtime.num_envs="], "--grid"),
    (["--game", "CartPole", "--grid", "runtime.no_such_field=1,2"], "no_such_field"),
])
def test_profile_command_rejects_bad_input_in_one_line(tmp_path, args, message):
    done = _profile(args, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "runs").exists()


def test_waits_count_open_waits_up_to_now():
    import time

    from ezero_async.runtime.waits import Waits

    waits = Waits(("pacer", "env"))
    waits.begin("pacer", 0)
    waits.begin("pacer", 1)
    time.sleep(0.02)
    assert waits.seconds()["pacer"] >= 0.04  # two coroutines held, neither resumed yet
    waits.end("pacer", 0)
    waits.end("pacer", 1)
    done = waits.seconds()["pacer"]
    time.sleep(0.01)
    assert waits.seconds() == {"pacer": done, "env": 0.0}


def test_torch_trace_records_ops_of_every_thread(tmp_path):
    import threading

    import torch

    from ezero_async.profiling.traces import TorchTrace

    trace = TorchTrace(tmp_path / "trace.json", seconds=60.0)
    trace.start()
    worker = threading.Thread(target=lambda: torch.mm(torch.ones(8, 8), torch.ones(8, 8)), name="not-the-starter")
    worker.start()
    worker.join()
    trace.stop()
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert any(event.get("name") == "aten::mm" for event in events)
    assert not list(tmp_path.glob("*.partial"))


def test_a_failing_trace_fails_the_run_loudly():
    import asyncio

    class Broken:
        def start(self) -> None: ...

        def tick(self) -> None:
            raise RuntimeError("py-spy ended early")

        def stop(self) -> None: ...

    async def run() -> None:
        probe = ProfileProbe(warmup_s=0.0, traces=[Broken()])
        probe.emit(10, 1, {})  # opens the window: start() runs after the emit
        await asyncio.sleep(0)
        probe.emit(20, 2, {})  # tick() fails after this emit, on the loop
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="py-spy ended early"):
            probe.emit(30, 3, {})
        with pytest.raises(RuntimeError, match="py-spy ended early"):
            probe.close()

    asyncio.run(run())
