"""tools/plot_curves.py: run directories (finished, or metrics.jsonl only) and Aim runs load into
the curves they hold, the CLI writes a PNG, and every error is one stderr line with exit code 2."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tool_module import TOOLS, load_tool

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


plot_curves = load_tool("plot_curves")

EVALUATIONS = [  # as trainer._summary writes them
    {"training_steps": 0, "env_steps": 100, "episodes": 2.0, "return_mean": 9.5, "return_std": 0.5, "length_mean": 9.5},
    {"training_steps": 100, "env_steps": 200, "episodes": 2.0, "return_mean": 12.0, "return_std": 2.0,
     "length_mean": 12.0},
    {"training_steps": 200, "env_steps": 300, "episodes": 2.0, "return_mean": 18.0, "return_std": 3.0,
     "length_mean": 18.0},
]
ROWS = [  # as MetricsFile writes them: snapshots, eval rows, nulls
    {"time": 1.0, "env_steps": 100, "training_steps": 0, "eval/episodes": 2.0, "eval/return_mean": 9.5,
     "eval/return_std": 0.5},
    {"time": 2.0, "env_steps": 150, "training_steps": 40, "train/return_last10": None, "loss/total": 4.0,
     "loss/value": 2.0, "loss/policy": 1.5, "throughput/env_steps_per_s": 20.0},
    {"time": 3.0, "env_steps": 200, "training_steps": 100, "eval/episodes": 2.0, "eval/return_mean": 12.0,
     "eval/return_std": None},
    {"time": 4.0, "env_steps": 250, "training_steps": 150, "train/return_last10": 11.0, "loss/total": 3.0,
     "loss/value": 1.5, "loss/policy": 1.0, "throughput/env_steps_per_s": 25.0},
]


def make_run(run_dir: Path, summary: bool = True, rows: list[dict] = ROWS) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"preset": "smoke", "env": {"game": "CartPole"},
                                                     "runtime": {"seed": 7}}))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if summary:
        (run_dir / "summary.json").write_text(json.dumps({
            "game": "CartPole", "preset": "smoke", "seed": 7, "env_steps": 300, "training_steps": 200,
            "wall_time_s": 12.5, "evaluations": EVALUATIONS}))
    return run_dir


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOLS / "plot_curves.py"), *args], capture_output=True, text=True, timeout=120)


def test_finished_run_loads_and_plots(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "CartPole-smoke-0")
    curves = plot_curves.load_run_dir(run_dir)
    assert curves.name == "CartPole-smoke-0"
    assert curves.label == "CartPole-smoke-0 (CartPole, smoke, seed 7)"
    # Evaluations come from summary.json (all three), not from the two eval rows of metrics.jsonl.
    assert (curves.eval_x, curves.eval_mean, curves.eval_std) == ([100, 200, 300], [9.5, 12.0, 18.0], [0.5, 2.0, 3.0])
    assert curves.series == {
        "train/return_last10": ([250], [11.0]),  # the null is left out
        "loss/total": ([150, 250], [4.0, 3.0]),
        "loss/value": ([150, 250], [2.0, 1.5]),
        "loss/policy": ([150, 250], [1.5, 1.0]),
        "throughput/env_steps_per_s": ([150, 250], [20.0, 25.0]),
    }
    by_updates = plot_curves.load_run_dir(run_dir, x="training_steps")
    assert by_updates.eval_x == [0, 100, 200]
    assert by_updates.series["loss/total"] == ([40, 150], [4.0, 3.0])

    out = tmp_path / "curves.png"
    proc = run_cli(str(run_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"plot_curves: wrote {out} (1 run, 12 points)"
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(out) as image:
        width, height = image.size
    assert 800 <= width <= 2000 and 600 <= height <= 1500
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["curves.png"]  # no temp file left


def test_run_without_summary_plots_its_eval_rows(tmp_path: Path) -> None:
    """A crashed or running run: evaluations come from metrics.jsonl, and a last line still being
    written (no newline yet) is not an error."""
    run_dir = make_run(tmp_path / "crashed", summary=False)
    with (run_dir / "metrics.jsonl").open("a") as file:
        file.write('{"time": 5.0, "env_steps": 30')
    curves = plot_curves.load_run_dir(run_dir)
    assert curves.eval_x == [100, 200]
    assert curves.eval_mean == [9.5, 12.0]
    assert curves.eval_std[0] == 0.5 and math.isnan(curves.eval_std[1])  # null std: no band there
    assert curves.series["loss/total"] == ([150, 250], [4.0, 3.0])
    assert curves.label == "crashed (CartPole, smoke, seed 7)"  # from config.json

    out = tmp_path / "crashed.png"
    assert plot_curves.main([str(run_dir), "--out", str(out), "--x", "training_steps"]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)


@pytest.fixture(scope="module")
def aim_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A repository with two runs tracked by AimSink, as the trainer tracks: (repo, hash of the
    run with the known values)."""
    import aim

    from ezero_async.tracking.aim_sink import AimSink

    repo = tmp_path_factory.mktemp("aim")
    sink = AimSink(repo, experiment="CartPole", run_name="CartPole-smoke-0",
                   hparams={"preset": "smoke", "env": {"game": "CartPole"}, "runtime": {"seed": 3}})
    sink.emit(100, 0, {"eval/return_mean": 9.5, "eval/return_std": 0.5, "eval/episodes": 2.0})
    sink.emit(150, 40, {"loss/total": 4.0, "train/return_last10": None})
    sink.emit(250, 150, {"loss/total": 3.0, "train/return_last10": 11.0})
    sink.emit(300, 200, {"eval/return_mean": 18.0, "eval/return_std": 3.0, "eval/episodes": 2.0})
    sink.close()
    # The second run tracked directly (as AimSink's _track does): a second AimSink costs seconds more.
    other = aim.Run(repo=aim.Repo.from_path(str(repo)), experiment="Breakout", system_tracking_interval=None,
                    capture_terminal_logs=False)
    other.name = "Breakout-smoke-1"
    other["hparams"] = {"preset": "smoke"}
    other.track(50.0, name="env_steps", step=0, context={"subset": "train"})
    other.track(9.0, name="loss/total", step=0, context={"subset": "train"})
    other.track(1.0, name="eval/return_mean", step=0, context={"subset": "eval"})
    other.close()
    return repo, sink.run_hash


def test_aim_run_loads(aim_repo: tuple[Path, str], tmp_path: Path) -> None:
    repo, run_hash = aim_repo
    other, curves = plot_curves.load_aim(repo)  # all runs, by name
    assert other.label == "Breakout-smoke-1 (Breakout, smoke)"
    assert (other.eval_x, other.eval_mean, other.series["loss/total"]) == ([50], [1.0], ([50], [9.0]))
    assert curves.label == "CartPole-smoke-0 (CartPole, smoke, seed 3)"
    assert (curves.eval_x, curves.eval_mean, curves.eval_std) == ([100, 300], [9.5, 18.0], [0.5, 3.0])
    assert curves.series["loss/total"] == ([150, 250], [4.0, 3.0])
    assert curves.series["train/return_last10"] == ([250], [11.0])

    (by_hash,) = plot_curves.load_aim(repo / ".aim", [run_hash], x="training_steps")
    assert by_hash.eval_x == [0, 200]
    assert by_hash.series["loss/total"] == ([40, 150], [4.0, 3.0])

    out = tmp_path / "aim.png"
    assert plot_curves.main(["--aim", str(repo), "--run", "CartPole-smoke-0", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_errors_are_one_line_and_exit_2(tmp_path: Path, aim_repo: tuple[Path, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    good = make_run(tmp_path / "good")
    make_run(tmp_path / "corrupt", rows=ROWS[:1])
    with (tmp_path / "corrupt" / "metrics.jsonl").open("a") as file:
        file.write('{"time": 2.0, "env_steps": \n' + json.dumps(ROWS[1]) + "\n")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out" / "curves.png"
    out.parent.mkdir()
    cases = {
        "missing directory": ([str(tmp_path / "nope")], "no such run directory"),
        "not a run directory": ([str(tmp_path / "empty")], "neither summary.json nor metrics.jsonl"),
        "corrupt JSON line": ([str(good), str(tmp_path / "corrupt")], "metrics.jsonl:2: corrupt JSON line"),
        "not an Aim repo": (["--aim", str(tmp_path / "empty")], "not an Aim repository"),
        "neither source": ([], "give either RUN_DIR arguments or --aim"),
    }
    for case, (args, expected) in cases.items():
        proc = run_cli(*args, "--out", str(out))
        assert proc.returncode == 2, case
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("plot_curves: error: "), (case, proc.stderr)
        assert expected in proc.stderr, (case, proc.stderr)
        assert list(out.parent.iterdir()) == [], case  # nothing written, no temp file left

    # Unknown --run in process: the repo fixture already paid for importing aim.
    repo, _ = aim_repo
    capsys.readouterr()
    assert plot_curves.main(["--aim", str(repo), "--run", "no-such-run", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plot_curves: error: --run no-such-run") and err.count("\n") == 1, err
    assert list(out.parent.iterdir()) == []
    with pytest.raises(plot_curves.PlotError, match="--run no-such-run: no run .* its runs: Breakout-smoke-1, CartPole-smoke-0"):
        plot_curves.load_aim(repo, ["no-such-run"])


def _panels(fig) -> dict[str, object]:
    """The four axes of a figure by the start of their title."""
    return {ax.get_title().split(" (")[0]: ax for ax in fig.axes}


def test_loss_legend_says_the_total_is_the_weighted_sum_of_unweighted_components(tmp_path: Path) -> None:
    rows = [dict(row, **{"loss/value_prefix": 0.5, "loss/consistency": -3.0}) if "loss/total" in row else row
            for row in ROWS]
    default = plot_curves.load_run_dir(make_run(tmp_path / "default", rows=rows))  # config.json without learner
    assert default.loss_coeffs == {"loss/value": 0.25, "loss/policy": 1.0, "loss/value_prefix": 1.0,
                                   "loss/consistency": 2.0}  # the trainer's defaults
    fig, _ = plot_curves.build_figure([default])
    loss = _panels(fig)["loss"]
    assert "unweighted" in loss.get_title() and "weighted sum" in loss.get_title()
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert labels == ["total (weighted: 0.25 value + 1 policy + 1 value_prefix + 2 consistency;\n"
                      "batch mean with importance weights)", "value (unweighted)", "policy (unweighted)",
                      "value_prefix (unweighted)", "consistency (unweighted)"]

    tuned_dir = make_run(tmp_path / "tuned", rows=rows)
    config = json.loads((tuned_dir / "config.json").read_text())
    config["learner"] = {"value_loss_coeff": 0.5, "policy_loss_coeff": 1.0, "value_prefix_loss_coeff": 1.0,
                         "consistency_coeff": 2.0}
    (tuned_dir / "config.json").write_text(json.dumps(config))
    tuned = plot_curves.load_run_dir(tuned_dir)
    assert plot_curves.total_label([tuned]).startswith("total (weighted: 0.5 value + 1 policy + 1 value_prefix")
    assert "they differ" in plot_curves.total_label([default, tuned])


def test_four_runs_legend_fits_the_figure(tmp_path: Path) -> None:
    """Four runs with long names (a date in the run directory, as people name them): every label is
    inside the image and below the panels, and a label wider than the figure is wrapped."""
    curves = [plot_curves.load_run_dir(make_run(tmp_path / f"CartPole-cartpole-seed{i}-2024-06-01T12-00-0{i}"))
              for i in range(4)]
    curves.append(plot_curves.load_run_dir(make_run(tmp_path / ("very-long-sweep-name-" * 12 + "x"))))
    for runs in (curves[:4], curves):
        fig, _ = plot_curves.build_figure(runs)
        fig.canvas.draw()
        (legend,) = fig.legends
        box = legend.get_window_extent()
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width and 0 <= box.y0, (box, fig.bbox)
        panels_bottom = min(ax.get_tightbbox().y0 for ax in fig.axes)
        assert box.y1 <= panels_bottom + 1, (box, panels_bottom)  # below the x labels, not over them
        assert len(legend.get_texts()) == len(runs)
        for text, run in zip(legend.get_texts(), runs):
            assert text.get_text().replace("\n", "") == run.label

    out = tmp_path / "four.png"
    assert plot_curves.main([str(tmp_path / f"CartPole-cartpole-seed{i}-2024-06-01T12-00-0{i}") for i in range(4)]
                            + ["--out", str(out)]) == 0
    with Image.open(out) as image:
        assert 800 <= image.size[0] <= 2000 and 600 <= image.size[1] <= 1500


def test_a_run_at_one_x_value_is_visible_in_every_panel(tmp_path: Path) -> None:
    """Every snapshot at env step 100 (a run that stopped early, or plotted by a counter that did
    not move): lines through the points have no length, so markers show them."""
    rows = [dict(row, env_steps=100) for row in ROWS]
    (tmp_path / "one-x").mkdir()
    run_dir = make_run(tmp_path / "one-x" / "run", summary=False, rows=rows)
    curves = plot_curves.load_run_dir(run_dir)
    assert set(curves.series["loss/total"][0]) == {100}
    fig, _ = plot_curves.build_figure([curves])
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].astype(int)
    blue = np.array([round(255 * c) for c in plot_curves_colour(0)])
    height = pixels.shape[0]
    for title, ax in _panels(fig).items():
        x0, y0, x1, y1 = (round(v) for v in ax.bbox.extents)
        panel = pixels[height - y1:height - y0, x0:x1]
        drawn = (np.abs(panel - blue).sum(axis=2) < 40).sum()
        assert drawn >= 15, (title, drawn)  # the run's colour is on the panel


def plot_curves_colour(i: int) -> tuple[float, float, float]:
    import matplotlib

    return matplotlib.colormaps["tab10"](i)[:3]
