"""tools/check_learning.py: the final / held / best arithmetic and the pass-fail rules on hand-made
curves (the report judges the policy a run ends with, never its best evaluation)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ezero_async.config import build_config
from ezero_async.runtime.pacer import Pacer
from ezero_async.tracking.checkpoint import list_checkpoints
from tool_module import load_tool


check_learning = load_tool("check_learning")


def _summary(seed, means, stds=None, final_episodes=32, wall=300.0, distinct=None):
    stds = stds or [0.0] * len(means)
    rows = [{"training_steps": 1000 * i, "env_steps": 4000 * i + 500, "episodes": 8.0, "return_mean": m,
             "return_std": s, "length_mean": m} for i, (m, s) in enumerate(zip(means, stds))]
    rows[-1]["episodes"] = float(final_episodes)
    return {"seed": seed, "evaluations": rows, "env_steps": 30000, "wall_time_s": wall,
            "final_eval": {"episodes": final_episodes, "return_mean": means[-1], "return_std": stds[-1],
                           **({} if distinct is None else {"distinct_episodes": distinct})}}


def test_peak_then_collapse_is_judged_by_final_and_held_not_best():
    # The curve: 20 -> 109 -> 454 -> 446 -> 142 -> 360 -> 109 -> 112 -> 107 final.
    r = check_learning.seed_result(_summary(1, [20, 109, 454, 446, 142, 360, 109, 112, 107]), "run", reach=450)
    assert r.best == 454 and r.final == 107
    assert r.held == 107  # min(109, 112, 107)
    assert r.reach_env_steps == 4000 * 2 + 500
    assert r.min_after_reach == 107
    assert r.fallback == 454 - 107
    checks = check_learning.judge([r], check_learning.Criteria(final_min=475, reach=450, floor=400))
    assert [ok for _, ok in checks] == [False, False]


def test_a_curve_that_holds_passes_every_check():
    r = check_learning.seed_result(_summary(2, [20, 300, 480, 500, 495, 500], stds=[1, 5, 10, 0, 3, 0]), "run",
                                   reach=450)
    assert (r.held, r.reach_env_steps, r.min_after_reach) == (495, 8500, 480)
    assert r.fallback == 5 and r.peak_std == 0.0  # the first 500 is the peak; it fell to 495 after
    criteria = check_learning.Criteria(final_min=475, held_min=475, reach=450, floor=400, max_env_steps=30000,
                                       minutes=10)
    assert all(ok for _, ok in check_learning.judge([r], criteria))
    # The fall after the peak (5) exceeds 1 x the peak's std (0): the std rule catches it.
    assert not check_learning.judge([r], check_learning.Criteria(max_fallback_std=1.0))[0][1]


def test_every_seed_must_pass_and_across_seed_statistics():
    good = check_learning.seed_result(_summary(1, [20, 500, 500]), "a", reach=450)
    bad = check_learning.seed_result(_summary(2, [20, 500, 300]), "b", reach=450)
    (name, ok), = check_learning.judge([good, bad], check_learning.Criteria(final_min=475))
    assert not ok and "1/2 seeds" in name
    assert check_learning.mean_std([500.0, 300.0]) == (400.0, 100.0)
    never = check_learning.seed_result(_summary(3, [20, 100, 120]), "c", reach=450)
    assert never.reach_env_steps is None and never.min_after_reach is None
    assert not check_learning.judge([never], check_learning.Criteria(reach=450, floor=0))[0][1]
    with pytest.raises(check_learning.ReportError):
        check_learning.judge([never], check_learning.Criteria(floor=0))


def test_report_of_finished_runs_writes_table_json_and_png(tmp_path, capsys):
    dirs = []
    for seed, means in [(1, [20, 480, 500]), (2, [20, 460, 490])]:
        d = tmp_path / f"seed-{seed}"
        d.mkdir()
        (d / "summary.json").write_text(json.dumps(_summary(seed, means)))
        dirs.append(str(d))
    code = check_learning.main(["--report", *dirs, "--final-min", "475", "--reach", "450", "--floor", "400",
                                "--out", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "held" in out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["passed"] and report["across_seeds"]["final"] == {"mean": 495.0, "std": 5.0}
    assert (tmp_path / "report" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert check_learning.main(["--report", *dirs, "--final-min", "495", "--out", str(tmp_path / "r2")]) == 1


def test_a_run_without_summary_is_one_line_and_exit_2(tmp_path, capsys):
    assert check_learning.main(["--report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no summary.json" in err[0]


def _write_runs(root, curves, game="CartPole", preset="cartpole", wall=300.0, distinct=None, machines=None):
    dirs = []
    for seed, means in curves:
        d = root / f"seed-{seed}"
        d.mkdir(parents=True)
        summary = dict(_summary(seed, means, wall=wall, distinct=None if distinct is None else distinct[seed]),
                       game=game, preset=preset)
        if machines is not None and machines.get(seed) is not None:
            summary["machine"] = {"label": machines[seed], "cores": 2}
        (d / "summary.json").write_text(json.dumps(summary))
        dirs.append(str(d))
    return dirs


def test_comparison_with_a_baseline_uses_mean_final_and_held_and_wall_time():
    runs = [check_learning.seed_result(_summary(s, m, wall=100.0), "r", reach=None)
            for s, m in [(1, [0, 8, 8, 8]), (2, [0, 5, 6, 6])]]  # final 7.0, held 6.5
    base = [check_learning.seed_result(_summary(s, m, wall=200.0), "b", reach=None)
            for s, m in [(1, [0, 9, 9, 9]), (2, [0, 5, 4, 5])]]  # final 7.0, held 6.5
    checks = check_learning.compare(runs, base, faster=True)
    assert [ok for _, ok in checks] == [True, True, True, True]  # ties are "at least as good"
    assert "0.50x" in checks[-1][0]
    slower = check_learning.compare(base, runs, faster=True)
    assert [ok for _, ok in slower] == [True, True, True, False]
    worse_held = [check_learning.seed_result(_summary(1, [0, 9, 2, 8]), "w", reach=None),
                  check_learning.seed_result(_summary(2, [0, 5, 6, 6]), "w", reach=None)]  # final 7.0, held 3.5
    assert [ok for _, ok in check_learning.compare(worse_held, base, faster=False)] == [True, False, True]


def test_report_against_a_baseline_writes_both_groups(tmp_path, capsys):
    runs = _write_runs(tmp_path / "v2", [(1, [0, 6, 7]), (2, [0, 7, 8])], preset="minatar-v2", wall=60.0)
    base = _write_runs(tmp_path / "v1", [(1, [0, 5, 6]), (2, [0, 6, 7])], preset="minatar", wall=90.0)
    out = tmp_path / "report"
    code = check_learning.main(["--report", *runs, "--baseline", *base, "--faster", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Baseline, minatar:" in printed and "PASS  mean final 7.5 >= baseline's 6.5" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"]["preset"] == "minatar"
    assert report["baseline"]["across_seeds"]["final"] == {"mean": 6.5, "std": 0.5}
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # One preset in both groups: each is named by its folder (a suite's, above its runs/).
    same = _write_runs(tmp_path / "age" / "runs", [(1, [0, 6, 7])], preset="cartpole", game="CartPole")
    plain = _write_runs(tmp_path / "preset" / "runs", [(1, [0, 5, 6])], preset="cartpole", game="CartPole")
    assert check_learning.main(["--report", *same, "--baseline", *plain, "--out", str(tmp_path / "r3")]) == 0
    assert "Baseline, cartpole (preset):" in capsys.readouterr().out
    # Named groups: the names given, in the tables.
    assert check_learning.main(["--report", *same, "--baseline", *plain, "--label", "new recipe",
                                "--baseline-label", "old recipe", "--out", str(tmp_path / "r4")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("new recipe:") and "Baseline, old recipe:" in printed
    # The other way round the runs are worse and slower: exit 1.
    assert check_learning.main(["--report", *base, "--baseline", *runs, "--faster", "--out", str(tmp_path / "r2")]) == 1


def test_groups_of_different_seeds_are_compared_on_the_seeds_they_share(tmp_path, capsys):
    """Means over different seeds compare draws: seeds 2-3 of the runs against 1-3 of the baseline
    are judged on 2-3 (the baseline's seed 1 would have carried it); no shared seed is exit 2."""
    runs = [check_learning.seed_result(_summary(s, m), "r", reach=None)
            for s, m in [(2, [0, 6, 6]), (3, [0, 5, 5])]]  # final 5.5
    base = [check_learning.seed_result(_summary(s, m), "b", reach=None)
            for s, m in [(1, [0, 9, 9]), (2, [0, 5, 5]), (3, [0, 5, 5])]]  # 6.33 over 1-3, 5.0 over 2-3
    checks = check_learning.compare(runs, base, faster=False)
    assert checks[0] == ("mean final 5.5 >= baseline's 5.0 (seeds 2, 3: those both groups ran)", True)
    with pytest.raises(check_learning.ReportError, match="share no seed"):
        check_learning.compare(runs, base[:1], faster=False)
    # Before training: planned seeds the baseline never ran stop the tool before any run starts.
    dirs = _write_runs(tmp_path / "b", [(1, [0, 6, 7])], game="CartPole")
    assert check_learning.main(["--game", "CartPole", "--seeds", "2", "--first-seed", "6", "--baseline", *dirs,
                                "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seeds 6..7" in err[0] and not (tmp_path / "t").exists()


def test_a_baseline_of_another_game_or_faster_without_one_is_exit_2(tmp_path, capsys):
    runs = _write_runs(tmp_path / "a", [(1, [0, 6, 7])], game="MinAtar/Breakout")
    other = _write_runs(tmp_path / "b", [(1, [0, 6, 7])], game="CartPole")
    assert check_learning.main(["--report", *runs, "--baseline", *other, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compare runs of one game" in err[0]
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit) as exc:
        check_learning.main(["--report", *runs, "--faster"])
    assert exc.value.code == 2
    assert "--baseline" in capsys.readouterr().err
    # Before training: a baseline of another game stops the tool before any run starts.
    assert check_learning.main(["--game", "CartPole", "--baseline", *runs, "--out", str(tmp_path / "t")]) == 2
    assert "compare runs of one game" in capsys.readouterr().err and not (tmp_path / "t").exists()


TOOL = [sys.executable, str(Path(__file__).resolve().parents[1] / "tools" / "check_learning.py")]
SMOKE = ["--game", "CartPole", "--preset", "smoke", "--seeds", "2", "--parallel", "2",
         "--set", "tracking.checkpoint_interval=20", "--set", "runtime.env_steps=500",
         "--set", "runtime.eval_interval=200"]


def test_sigint_stops_the_seeds_with_checkpoints_and_the_same_command_continues(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.Popen([*TOOL, *SMOKE, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    runs = [out / "runs" / f"classic-CartPole-s{seed}" for seed in (1, 2)]
    deadline = time.monotonic() + 180
    while not all(list_checkpoints(d) for d in runs if d.exists()) or not all(d.exists() for d in runs):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the tool forwards one SIGINT to each run
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout
    assert f"--out {out}" in stdout and not (out / "report.json").exists()
    for d in runs:  # each stopped run left its exit checkpoint (or had already finished)
        assert (d / "summary.json").exists() or list_checkpoints(d)

    again = subprocess.run([*TOOL, *SMOKE, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads((out / "report.json").read_text())
    assert [s["seed"] for s in report["seeds"]] == [1, 2]
    config = build_config("smoke", "CartPole", {"runtime.env_steps": 500})
    for d in runs:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["env_steps"] == 500  # continued to the end, not started over
        assert summary["training_steps"] == Pacer(config.runtime, config.learner).total_steps
        steps = [row["training_steps"] for row in summary["evaluations"]]
        assert steps == sorted(set(steps)) and steps[0] == 0

    other = subprocess.run([*TOOL, *SMOKE, "--set", "learner.lr_init=0.5", "--out", str(out)], capture_output=True,
                           text=True, timeout=120)
    assert other.returncode == 2
    err = other.stderr.strip().splitlines()
    assert len(err) == 1 and "holds another suite" in err[0] and "lr_init" in err[0]


def test_final_evaluations_that_replay_few_games_are_flagged_in_the_report(tmp_path, capsys):
    """2 distinct action sequences in 32 episodes: the report says so (table and note), 32 of 32
    does not; runs from before the count show no count and no note."""
    runs = _write_runs(tmp_path / "a", [(1, [0, 6, 7]), (2, [0, 7, 8]), (3, [0, 7, 7])], game="MinAtar/Breakout",
                       preset="minatar", distinct={1: 2, 2: 32, 3: 3})
    out = tmp_path / "report"
    assert check_learning.main(["--report", *runs, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "7.0 ± 0.0 (32, 2 distinct)" in printed and "(32, 32 distinct)" in printed
    note = [line for line in printed.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "seed 1 (2 of 32), seed 3 (3 of 32)" in note[0] and "seed 2" not in note[0]
    assert "--sticky-actions" in note[0] and note[0] in (out / "report.md").read_text()
    old = _write_runs(tmp_path / "b", [(1, [0, 6, 7])])
    assert check_learning.main(["--report", *old, "--out", str(tmp_path / "r2")]) == 0
    printed = capsys.readouterr().out
    assert "(32)" in printed and "distinct" not in printed


def test_the_report_names_the_machines_behind_the_wall_times(tmp_path, capsys):
    """Each machine label with its seeds (a run from before the label: 'not recorded'); no line
    when no run recorded one; a note when the runs and the baseline ran on different machines."""
    runs = _write_runs(tmp_path / "a", [(1, [0, 480, 500]), (2, [0, 490, 500]), (3, [0, 470, 480])],
                       machines={1: "AMD EPYC, AVX2, 2 cores", 2: "AMD EPYC, AVX2, 2 cores", 3: None})
    assert check_learning.main(["--report", *runs, "--out", str(tmp_path / "r1")]) == 0
    printed = capsys.readouterr().out
    line = "Machines: AMD EPYC, AVX2, 2 cores (seeds 1, 2); not recorded (seed 3)."
    assert line in printed.splitlines() and line in (tmp_path / "r1" / "report.md").read_text()
    assert json.loads((tmp_path / "r1" / "report.json").read_text())["seeds"][0]["machine"] == "AMD EPYC, AVX2, 2 cores"
    old = _write_runs(tmp_path / "b", [(1, [0, 480, 500])])
    assert check_learning.main(["--report", *old, "--out", str(tmp_path / "r2")]) == 0
    assert "Machines" not in capsys.readouterr().out
    base = _write_runs(tmp_path / "c", [(1, [0, 480, 500]), (2, [0, 490, 500])],
                       machines={1: "Xeon, AVX512 + bf16, 2 cores", 2: "Xeon, AVX512 + bf16, 2 cores"})
    assert check_learning.main(["--report", *runs[:2], "--baseline", *base, "--out", str(tmp_path / "r3")]) == 0
    note = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert note == ["note: the runs ran on AMD EPYC, AVX2, 2 cores and the baseline on Xeon, AVX512 + bf16, "
                    "2 cores: their wall times compare the machines as much as the recipes."]
