"""CLI: errors are one line with exit code 2 and name the problem; nothing is written."""
import json
import subprocess
import sys

import pytest

from ezero_async.config import apply_overrides, build_config, config_to_dict, parse_override
from ezero_async.main import EXIT_USAGE, build_parser, config_from_args, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ezero_async.main", *args], capture_output=True, text=True,
                          timeout=120)


def test_unknown_game_exits_2_with_close_matches():
    proc = run_cli("--game", "Breakot")
    assert proc.returncode == EXIT_USAGE
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown atari game 'Breakot'" in lines[0] and "Breakout" in lines[0]


def test_bad_override_exits_2(tmp_path):
    proc = run_cli("--game", "CartPole", "--set", "learner.lr=0.1", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == EXIT_USAGE
    assert "unknown config key 'learner.lr'" in proc.stderr and "learner.lr_init" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_argparse_errors_are_one_line_exit_2():
    proc = run_cli("--game", "Pong", "--seed", "x")
    assert proc.returncode == EXIT_USAGE
    assert len(proc.stderr.strip().splitlines()) == 1 and "--seed" in proc.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--game", "Pong", "--env-steps", "0"], "--env-steps (runtime.env_steps: must be >= 1)"),
    (["--game", "Pong", "--num-envs", "0"], "--num-envs"),
    (["--game", "Pong", "--preset", "foo"], "unknown preset 'foo'"),
    (["--game", "Pong", "--preset", "minatar"], "'Pong' is not a MinAtar game"),
    (["--resume", "/nonexistent/run"], "config.json not found"),
    ([], "--game is required"),
    (["--game", "CartPole", "--set", "learner.batch_size=abc"], "learner.batch_size: expected int"),
])
def test_user_errors(capsys, args, fragment):
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def test_cuda_without_gpu_is_a_user_error(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["--game", "CartPole", "--device", "cuda"]) == EXIT_USAGE
    assert "no CUDA device" in capsys.readouterr().err


def test_corrupt_resume_config_is_a_user_error(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{not json")
    assert main(["--resume", str(tmp_path)]) == EXIT_USAGE
    assert "not valid JSON" in capsys.readouterr().err


def test_a_run_directory_that_holds_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step-000000020.pt").write_bytes(b"")  # a run with a checkpoint
    assert main(["--game", "CartPole", "--preset", "smoke", "--run-dir", str(tmp_path), "--no-aim"]) == EXIT_USAGE
    assert "already holds a run" in capsys.readouterr().err


def test_resume_of_a_finished_run_is_refused_and_one_without_checkpoints_starts_again(tmp_path, capsys):
    assert main(["--game", "CartPole", "--preset", "smoke", "--run-dir", str(tmp_path / "a"), "--no-aim",
                 "--set", "runtime.env_steps=120", "--set", "runtime.tail_train_steps=0",
                 "--set", "runtime.eval_episodes=1"]) == 0
    assert main(["--resume", str(tmp_path / "a")]) == EXIT_USAGE
    assert "already finished" in capsys.readouterr().err
    # No checkpoint yet: not a dead end, the run starts again from its saved config.
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    assert main(["--resume", str(tmp_path / "b")]) == 0
    assert "no checkpoint yet" in capsys.readouterr().err


def test_a_resume_shows_progress_as_this_invocation_asks(tmp_path):
    """A batch tool's progress=off (or any display mode) is not part of the run: a resume shows
    progress the default way unless its own flags say otherwise; training fields stay saved."""
    config = build_config("smoke", "CartPole", {"tracking.progress": "off", "runtime.env_steps": 300})
    (tmp_path / "config.json").write_text(json.dumps(config_to_dict(config)))
    resumed = config_from_args(build_parser().parse_args(["--resume", str(tmp_path)]))
    assert resumed.tracking.progress == "auto" and resumed.runtime.env_steps == 300
    plain = config_from_args(build_parser().parse_args(["--resume", str(tmp_path), "--set", "tracking.progress=plain"]))
    assert plain.tracking.progress == "plain"


def test_help_lists_presets_and_games():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for word in ("atari100k", "smoke", "Breakout", "MsPacman", "MinAtar/Breakout", "CartPole", "--set"):
        assert word in proc.stdout


def test_help_config_lists_fields(capsys):
    assert main(["--help-config"]) == 0
    out = capsys.readouterr().out
    assert "learner.lr_init = 0.2" in out and "Peak learning rate" in out


@pytest.mark.parametrize("has_bf16, device, overrides, expected", [
    (False, "cpu", ["learner.amp=bf16", "batcher.amp=bf16"], "learner.amp = bf16 and batcher.amp = bf16 on a CPU"),
    (False, "cpu", ["learner.amp=off", "batcher.amp=bf16"], "batcher.amp = bf16 on a CPU"),
    (True, "cpu", ["learner.amp=bf16", "batcher.amp=bf16"], None),
    (False, "cpu", ["learner.amp=off", "batcher.amp=off"], None),
    (False, "cuda", ["learner.amp=bf16"], None),
])
def test_bf16_on_a_cpu_without_bf16_instructions_is_warned(monkeypatch, has_bf16, device, overrides, expected):
    from ezero_async.main import cpu_bf16_warning
    from ezero_async.runtime import fastpath

    monkeypatch.setattr(fastpath, "cpu_has_bf16", lambda: has_bf16)
    config = apply_overrides(build_config("minatar", "MinAtar/Breakout"), dict(parse_override(o) for o in overrides))
    warning = cpu_bf16_warning(config, device)
    if expected is None:
        assert warning is None
    else:
        assert warning.startswith(expected) and "--set learner.amp=off --set batcher.amp=off" in warning
