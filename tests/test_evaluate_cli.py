"""`python -m ezero_async.evaluate`: scores a saved checkpoint into a JSON file, records a GIF,
and reports a missing or corrupt checkpoint as one line with exit code 2, writing nothing."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ezero_async.config import build_config, config_to_dict
from ezero_async.envs.registry import make_game
from ezero_async.evaluate import main
from ezero_async.learner.learner import Learner
from ezero_async.learner.model import build_model
from ezero_async.main import EXIT_USAGE
from ezero_async.tracking.checkpoint import save_checkpoint


def make_checkpoint(run_dir: Path, game: str) -> Path:
    """A step-0 checkpoint of an untrained smoke-preset network for `game`."""
    config = build_config("smoke", game, {"runtime.num_envs": 2})
    probe = make_game(config.env, seed=0, training=False)
    spec, num_actions = probe.obs_spec, probe.num_actions
    probe.close()
    model = build_model(config.model, spec.shape, config.env.frame_stack, num_actions, config.learner.lstm_horizon)
    learner = Learner(model, config.learner, "cpu", frame_stack=config.env.frame_stack)
    state = {"config": config_to_dict(config), "step": 0, "learner": learner.state_dict(),
             "target": {"version": 0, "model": model.state_dict()}, "replay": {"write_count": 0, "collected": 0},
             "evaluations": [], "episodes": {"returns": [], "lengths": []}, "wall_time_s": 0.0,
             "aim_run": None, "torch_rng": torch.get_rng_state()}
    return save_checkpoint(run_dir, state, keep=3)


def test_evaluates_a_run_dir_into_json(tmp_path):
    run_dir = tmp_path / "run"
    checkpoint = make_checkpoint(run_dir, "CartPole")
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "ezero_async.evaluate", str(run_dir), "--episodes", "2",
                           "--simulations", "4", "--max-steps", "50", "--device", "cpu", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert len(result["returns"]) == 2 and len(result["lengths"]) == 2
    assert all(1 <= n <= 50 for n in result["lengths"])
    assert result["return_mean"] == pytest.approx(sum(result["returns"]) / 2)
    assert result["distinct_episodes"] in (1, 2) and "distinct episode" in proc.stdout
    assert result["simulations"] == 4 and result["step"] == 0 and result["hns"] is None
    assert Path(result["checkpoint"]) == checkpoint.resolve()
    assert "return" in proc.stdout and str(out) in proc.stdout
    assert not list(tmp_path.glob(".*.tmp")) and not (run_dir / "eval-step0.json").exists()


def test_a_pucb_checkpoint_evaluates_with_the_gumbel_search(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_checkpoint(run_dir, "CartPole")
    out = tmp_path / "out.json"
    code = main([str(run_dir), "--episodes", "1", "--simulations", "4", "--search-mode", "gumbel", "--max-steps",
                 "30", "--device", "cpu", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["search_mode"] == "gumbel" and result["simulations"] == 4
    assert "gumbel search of 4 simulations" in capsys.readouterr().out


def test_video_of_a_minatar_episode_is_an_animated_gif(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_checkpoint(run_dir, "MinAtar/Breakout")
    video = tmp_path / "play.gif"
    code = main([str(run_dir), "--episodes", "1", "--simulations", "2", "--max-steps", "20", "--device", "cpu",
                 "--video", str(video)])
    assert code == 0, capsys.readouterr().err
    with Image.open(video) as gif:
        assert gif.format == "GIF" and gif.n_frames > 1
        assert min(gif.size) >= 160  # 10x10 grids are scaled up to be watchable
    result = json.loads((run_dir / "eval-step0.json").read_text())  # the default place
    assert 1 <= result["lengths"][0] <= 20 and result["video"] == str(video)


def test_video_of_a_cartpole_episode_draws_each_state(tmp_path, capsys):
    """Classic-control observations are state vectors: the GIF shows the picture of each state
    (cart, pole, track), one frame per observation of the first episode, at 50 frames/s."""
    run_dir = tmp_path / "run"
    make_checkpoint(run_dir, "CartPole")
    video = tmp_path / "v.gif"
    code = main([str(run_dir), "--episodes", "1", "--simulations", "2", "--max-steps", "12", "--device", "cpu",
                 "--video", str(video)])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads((run_dir / "eval-step0.json").read_text())
    length = result["lengths"][0]
    assert 1 <= length <= 12 and result["video"] == str(video)
    assert f"({length + 1} frames)" in out  # the reset observation, then one per step
    with Image.open(video) as gif:
        assert gif.format == "GIF" and gif.n_frames > 1 and gif.size == (300, 200)
        first = np.asarray(gif.convert("RGB"))
        shown_ms = 0
        for i in range(gif.n_frames):  # Pillow merges identical neighbours, adding their durations
            gif.seek(i)
            shown_ms += gif.info["duration"]
        last = np.asarray(gif.convert("RGB"))
    assert shown_ms == 20 * (length + 1)  # 50 frames/s, gymnasium's render rate of CartPole
    for picture in (first, last):
        assert (picture == 0).all(axis=2).sum() > 300  # the black cart and track
        assert (np.abs(picture.astype(int) - (202, 152, 101)).sum(axis=2) < 30).sum() > 100  # the pole
    assert not np.array_equal(first, last)  # the states moved


def test_corrupt_checkpoint_exits_2_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "run" / "checkpoints" / "step-000000005.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x00garbage, not a torch file" * 10)
    out = tmp_path / "out.json"
    assert main([str(tmp_path / "run"), "--json", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreadable" in err[0] and "step-000000005.pt" in err[0]
    assert not out.exists() and not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("args, fragment", [
    (["{missing}"], "not found"),
    (["{missing}", "--episodes", "0"], "--episodes must be >= 1"),
    (["{missing}", "--video", "{tmp}/out.mp4"], "pass a .gif path"),
    (["{missing}", "--json", "{tmp}/nodir/out.json"], "does not exist"),
    (["{missing}", "--seed", "x"], "--seed"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, args, fragment):
    argv = [a.format(missing=tmp_path / "no-such-run", tmp=tmp_path) for a in args]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit from inside the parser
        code = exc.code
    assert code == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def test_sticky_actions_reach_the_evaluation_games(tmp_path, capsys, monkeypatch):
    """--sticky-actions P overrides the run's env.sticky_action_prob for every game played."""
    from ezero_async.envs import minatar

    seen = []
    original = minatar.MinAtarGame.__init__

    def recording_init(self, env_id, **kwargs):
        seen.append((kwargs["training"], kwargs["sticky_action_prob"]))
        original(self, env_id, **kwargs)

    run_dir = tmp_path / "run"
    make_checkpoint(run_dir, "MinAtar/Breakout")
    monkeypatch.setattr(minatar.MinAtarGame, "__init__", recording_init)
    out = tmp_path / "out.json"
    code = main([str(run_dir), "--episodes", "2", "--simulations", "2", "--max-steps", "10", "--device", "cpu",
                 "--sticky-actions", "0.25", "--json", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert seen and all(p == 0.25 for _, p in seen) and not any(training for training, _ in seen)
    assert json.loads(out.read_text())["sticky_actions"] == 0.25 and "sticky actions 0.25" in stdout


@pytest.mark.parametrize("game, value, fragment", [
    ("CartPole", "0.1", "--sticky-actions: CartPole (classic) has no sticky actions"),
    ("MinAtar/Breakout", "1.0", "--sticky-actions (env.sticky_action_prob: must be in [0, 1))"),
])
def test_bad_sticky_actions_are_one_line_exit_2(tmp_path, capsys, game, value, fragment):
    run_dir = tmp_path / "run"
    make_checkpoint(run_dir, game)
    assert main([str(run_dir), "--sticky-actions", value, "--device", "cpu"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not list(run_dir.glob("*.json"))
