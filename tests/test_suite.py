"""Benchmark suites: aggregate statistics on fixed score tables, the published table, game lists,
a smoke suite end to end (local and on a local Ray cluster), continuing an interrupted suite,
retrying a failed run once, and the report of a partial suite."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ezero_async.envs.scores import RANDOM_HUMAN
from ezero_async.errors import UserError
from ezero_async.suite import stats
from ezero_async.suite.__main__ import main as suite_main
from ezero_async.suite.executors import PROGRESS_S, Scheduler, run_local
from ezero_async.suite.games import parse_games
from ezero_async.suite.published import BBF, EFFICIENTZERO, EFFICIENTZERO_V2, PUBLISHED
from ezero_async.suite.report import build_report, format_markdown, write_report
from ezero_async.suite.runs import Manifest, RunSpec, StatusFile, open_suite, run_specs

SMOKE = ["--preset", "smoke", "--device", "cpu", "--set", "tracking.aim=false", "--set", "runtime.env_steps=200",
         "--reps", "200"]

# Three games x the runs each has (game 3 has only two: a partial suite).
TABLE = [[0.5, 1.5, 1.0], [2.0, 4.0, 3.0], [0.0, 0.2]]


def test_aggregates_match_hand_computed_values():
    # per-game means 1.0, 3.0, 0.1
    assert stats.mean(TABLE) == pytest.approx((1.0 + 3.0 + 0.1) / 3)
    assert stats.median(TABLE) == pytest.approx(1.0)
    # 8 scores sorted: 0, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0; 2 cut at each end -> 0.5, 1.0, 1.5, 2.0
    assert stats.iqm(TABLE) == pytest.approx(1.25)
    # min(score, 1): game means 5/6, 1, 0.1
    assert stats.optimality_gap(TABLE) == pytest.approx(1.0 - (2.5 / 3 + 1.0 + 0.1) / 3)
    scipy_stats = pytest.importorskip("scipy.stats")
    flat = np.concatenate([np.asarray(g) for g in TABLE])
    assert stats.iqm(TABLE) == pytest.approx(scipy_stats.trim_mean(flat, 0.25))
    uneven = [[0.1, 0.9, 0.3, 0.7, 0.5], [1.0, 2.0, 3.0, 4.0, 5.0], [7.0, 0.0, 2.0, 1.0, 3.0]]  # n = 15
    assert stats.iqm(uneven) == pytest.approx(scipy_stats.trim_mean(np.concatenate(uneven), 0.25))


def test_stratified_bootstrap_resamples_within_each_game():
    interval = stats.stratified_bootstrap(TABLE, stats.mean, reps=500, seed=1)
    assert interval.low <= interval.point <= interval.high
    assert interval == stats.stratified_bootstrap(TABLE, stats.mean, reps=500, seed=1)  # seeded
    # Games with one run (or identical runs) have no spread: the interval collapses to the point.
    single = stats.stratified_bootstrap([[1.0], [2.0, 2.0]], stats.mean, reps=200)
    assert single.low == single.high == single.point == pytest.approx(1.5)
    # Stratified: each game keeps its own runs, so the per-game means never mix games.
    medians = stats.stratified_bootstrap([[0.0, 0.0], [5.0, 5.0], [9.0, 10.0]], stats.median, reps=300)
    assert medians.low == medians.high == 5.0
    profile = stats.performance_profile(TABLE, np.array([-1.0, 1.0, 10.0]))
    np.testing.assert_allclose(profile, [1.0, 4 / 8, 0.0])


def test_the_published_efficientzero_table_gives_the_papers_aggregates():
    hns = [[(EFFICIENTZERO[g] - r) / (h - r)] for g, (r, h) in RANDOM_HUMAN.items()]
    assert len(hns) == 26
    assert stats.mean(hns) == pytest.approx(1.943, abs=5e-4)
    assert stats.median(hns) == pytest.approx(1.090, abs=5e-4)


@pytest.mark.parametrize("table, mean, median", [(EFFICIENTZERO_V2, 2.680, 1.235), (BBF, 2.247, 0.917)])
def test_the_published_ez_v2_and_bbf_tables_keep_their_transcribed_aggregates(table, mean, median):
    """Pins the transcriptions: a changed game moves the mean or the median."""
    hns = [[(table[g] - r) / (h - r)] for g, (r, h) in RANDOM_HUMAN.items()]
    assert stats.mean(hns) == pytest.approx(mean, abs=5e-4)
    assert stats.median(hns) == pytest.approx(median, abs=5e-4)
    assert set(PUBLISHED) == {"EZ-V1 (paper)", "EZ-V2 (paper)", "BBF (paper)"}


def test_game_lists_and_names():
    assert [g.label for g in parse_games("minatar5")][:2] == ["MinAtar/Asterix", "MinAtar/Breakout"]
    assert len(parse_games("atari26")) == 26
    assert [g.label for g in parse_games("CartPole, Breakout,CartPole")] == ["CartPole", "Breakout"]
    with pytest.raises(UserError, match="Breakot"):
        parse_games("Breakot")
    with pytest.raises(UserError, match="names no game"):
        parse_games(" , ")


def fake_summary(spec: RunSpec, score: float, hns: float | None) -> None:
    spec.run_dir.mkdir(parents=True)
    config = {"env": {"eval_max_episode_steps": 27000, "frame_skip": 4, "sticky_action_prob": 0.0, "noop_max": 30},
              "runtime": {"final_eval_episodes": 32, "env_steps": 100000}}
    (spec.run_dir / "config.json").write_text(json.dumps(config))
    (spec.run_dir / "summary.json").write_text(json.dumps(
        {"final_eval": {"return_mean": score, "episodes": 32, "human_normalised_score": hns}, "wall_time_s": 3600.0}))


def test_the_report_of_a_partial_suite(tmp_path):
    """Three Atari games x 3 seeds, 8 runs finished: per-game rows, aggregates over what exists,
    the missing run named with its state, published scores beside."""
    manifest = open_suite(tmp_path, Manifest("atari100k", ("Breakout", "Pong", "Boxing"), (0, 1, 2), (), "cuda"))
    specs = run_specs(tmp_path, manifest)
    for spec, hns in zip(specs, [0.5, 1.5, 1.0, 2.0, 4.0, 3.0, 0.0, 0.2, None]):
        if hns is None:
            StatusFile(tmp_path).record(spec, "failed", 1, "ezero_async: error: boom")
            continue
        r, h = RANDOM_HUMAN[spec.game.name]
        fake_summary(spec, r + hns * (h - r), hns)
    report = build_report(tmp_path, manifest, reps=300)
    assert report["runs_done"] == 8 and report["runs"] == 9
    assert report["aggregate"]["iqm"]["point"] == pytest.approx(stats.iqm(TABLE))
    assert report["aggregate"]["mean"]["point"] == pytest.approx(stats.mean(TABLE))
    boxing = report["games"][2]
    assert boxing["runs_done"] == 2 and boxing["published"]["EZ-V1 (paper)"] == EFFICIENTZERO["Boxing"]
    assert report["missing"] == [{"run": "atari-Boxing-s2", "state": "failed", "error": "ezero_async: error: boom"}]
    text = format_markdown(report)
    assert "8 of 9 runs done" in text and "atari-Boxing-s2 failed (ezero_async: error: boom)" in text
    assert "| iqm | 1.250 |" in text and "sticky actions 0.0" in text
    _, files = write_report(tmp_path, manifest, reps=100)
    assert {f.name for f in files} == {"report.md", "report.json", "games.png", "profile.png"}
    assert all(f.stat().st_size > 0 for f in files)


def test_progress_lines_name_each_running_runs_updates_and_the_suites_eta(tmp_path):
    manifest = open_suite(tmp_path, Manifest("smoke", ("CartPole",), (0, 1, 2, 3), (), "cpu"))
    specs = run_specs(tmp_path, manifest)
    messages = []
    scheduler = Scheduler(specs, StatusFile(tmp_path), messages.append)
    running = [scheduler.next()[0], scheduler.next()[0]]
    running[0].run_dir.mkdir(parents=True)
    records = [{"training_steps": 100, "throughput/eta_s": 900.0}, {"training_steps": 1200, "throughput/eta_s": 600.0}]
    with (running[0].run_dir / "metrics.jsonl").open("w") as f:
        f.write("\n".join(json.dumps(r) for r in records) + '\n{"training_steps": 13')  # last line half-written
    line = scheduler.progress_line(running)
    assert line == ("progress: 0 of 4 runs finished; running classic-CartPole-s0 (1,200 updates, eta 10 min); "
                    "1 starting or waiting for resources; 2 queued")
    running[1].run_dir.mkdir(parents=True)
    (running[1].run_dir / "metrics.jsonl").write_text(json.dumps({"training_steps": 5, "throughput/eta_s": 1800.0}) + "\n")
    scheduler.durations.append(2400.0)  # one run of 40 min finished: 2 queued runs through 2 slots
    assert scheduler.progress_line(running).endswith("; suite eta about 60 min")  # (10 + 30 + 2 * 40) / 2
    scheduler.progress(running, now=time.monotonic() + PROGRESS_S + 1)
    scheduler.progress(running, now=time.monotonic() + PROGRESS_S + 2)  # rate-limited
    assert len(messages) == 1 and messages[0].startswith("progress: 1 of 4")


def test_a_failed_run_is_retried_once_then_reported(tmp_path, monkeypatch):
    manifest = open_suite(tmp_path, Manifest("smoke", ("CartPole",), (0, 1), (), "cpu"))
    specs = run_specs(tmp_path, manifest)
    failing = [sys.executable, "-c", "import sys; print('ezero_async: error: boom'); sys.exit(3)"]
    monkeypatch.setattr(RunSpec, "command", lambda self, m: failing)
    messages = []
    assert run_local(specs, manifest, 2, StatusFile(tmp_path), messages.append) is None
    assert sum("retrying once" in m for m in messages) == 2
    assert sum("failed twice" in m for m in messages) == 2
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["classic-CartPole-s0"] == {"attempts": 1, "state": "failed", "exit_code": 3,
                                             "error": "ezero_async: error: boom"}
    assert (specs[0].log.read_text().count("boom")) == 2  # both attempts in the log


def test_a_smoke_suite_runs_and_a_second_call_keeps_what_is_done(tmp_path, capsys):
    out = tmp_path / "suite"
    args = [*SMOKE, "--games", "CartPole,Acrobot", "--seeds", "2", "--out", str(out), "--jobs", "2"]
    assert suite_main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["runs_done"] == 4 and [g["runs_done"] for g in report["games"]] == [2, 2]
    assert (out / "games.png").stat().st_size > 0
    summaries = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    assert len(summaries) == 4
    capsys.readouterr()
    assert suite_main(args) == 0
    assert "4 already done" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")} == summaries
    # Another suite's arguments on this directory: one line, exit 2, nothing touched.
    assert suite_main([*SMOKE, "--games", "CartPole", "--seeds", "3", "--out", str(out)]) == 2
    assert "holds another suite: games ['CartPole', 'Acrobot'] (asked: ['CartPole'])" in capsys.readouterr().err


def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys):
    for args, expected in [(["--games", "Breakot", "--seeds", "1"], "Breakot"),
                           (["--games", "CartPole", "--seeds", "0"], "--seeds must be >= 1"),
                           (["--games", "CartPole", "--seeds", "1", "--set", "runtime.env_steps=-3"],
                            "runtime.env_steps")]:
        assert suite_main([*SMOKE, *args, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()
    assert suite_main(["report", str(tmp_path)]) == 2
    assert "holds no suite" in capsys.readouterr().err


def test_an_interrupted_suite_continues_only_what_is_missing(tmp_path):
    """SIGINT to the coordinator: every run in flight writes its checkpoint, the suite exits 130;
    the same command then finishes only the runs that were not done."""
    out = tmp_path / "suite"
    args = [sys.executable, "-m", "ezero_async.suite", "--preset", "smoke", "--device", "cpu", "--set",
            "tracking.aim=false", "--set", "runtime.env_steps=400", "--set", "tracking.checkpoint_interval=50",
            "--reps", "200", "--games", "CartPole", "--seeds", "3", "--out", str(out), "--jobs", "2"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    first = out / "runs" / "classic-CartPole-s0"
    while not list(first.glob("checkpoints/*.pt")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    status = json.loads((out / "status.json").read_text())
    interrupted = [name for name, entry in status.items() if entry["state"] == "interrupted"]
    assert interrupted and "stopped with its checkpoint written" in err
    assert not (out / "runs" / "classic-CartPole-s2").exists()  # never started
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    again = subprocess.run(args, stderr=subprocess.PIPE, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    for name in interrupted:
        assert f"{name}: continuing" in again.stderr
        assert "resuming" in (out / "logs" / f"{name}.log").read_text()
    assert {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")
            if p.parent.name in done_before} == done_before
    assert json.loads((out / "report.json").read_text())["runs_done"] == 3


def test_a_smoke_suite_runs_on_a_local_ray_cluster(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "suite"
    code = suite_main([*SMOKE, "--games", "CartPole", "--seeds", "2", "--out", str(out), "--ray", "local"])
    assert code == 0
    assert json.loads((out / "report.json").read_text())["runs_done"] == 2


def test_the_report_is_tracked_as_one_suite_level_aim_run(tmp_path):
    """Aim scalars of a report (the suite tracks them unless its runs do not use Aim)."""
    from ezero_async.suite.report import aim_metrics, track_in_aim

    manifest = open_suite(tmp_path, Manifest("atari100k", ("Breakout", "Pong"), (0, 1), (), "cuda"))
    for spec, hns in zip(run_specs(tmp_path, manifest), [0.5, 1.5, 2.0, 4.0]):
        r, h = RANDOM_HUMAN[spec.game.name]
        fake_summary(spec, r + hns * (h - r), hns)
    report = build_report(tmp_path, manifest, reps=200)
    metrics = aim_metrics(report)
    assert metrics["suite/hns/Breakout"] == pytest.approx(1.0) and metrics["suite/hns_mean"] == pytest.approx(2.0)
    assert metrics["suite/hns_mean_low"] <= 2.0 <= metrics["suite/hns_mean_high"]
    pytest.importorskip("aim")
    from test_aim_sink import read_run

    _, files = write_report(tmp_path, manifest, reps=100)
    figures = [f for f in files if f.suffix == ".png"]
    run, series = read_run(tmp_path / "runs", track_in_aim(tmp_path, report, figures))
    assert run.experiment == "suite" and run["hparams"]["games"] == ["Breakout", "Pong"]
    assert series["suite/hns_iqm", "train"] == {0: pytest.approx(report["aggregate"]["iqm"]["point"])}
    from aim.storage.context import Context

    for name in ("suite/games", "suite/profile"):
        images = run.get_image_sequence(name, Context({}))
        assert images is not None and len(images.values.values_list()) == 1, name
