"""Checkpoints and resume: a run stopped by SIGINT, or killed with SIGKILL at random moments,
resumes from its newest checkpoint and finishes with the exact counters and a consistent
replay; broken checkpoints give one line and exit code 2."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ezero_async.config import build_config
from ezero_async.replay.buffer import Replay
from ezero_async.runtime.pacer import Pacer
from ezero_async.tracking.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint

RUN = ["--game", "CartPole", "--preset", "smoke", "--no-aim", "--set", "tracking.checkpoint_interval=20",
       "--set", "runtime.env_steps=500", "--set", "runtime.eval_interval=200"]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ezero_async.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_checkpoints(run_dir: Path, count: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list_checkpoints(run_dir)) < count:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)


def finish(run_dir: Path) -> dict:
    proc = start("--resume", str(run_dir))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


def assert_replay_consistent(run_dir: Path, config) -> None:
    """The store loads, holds every collected transition once, and its episodes are well formed:
    positions count up along prev links, every sampleable slot has an intact frame stack."""
    replay = Replay.load(run_dir / "replay", config.replay, seed=0)
    try:
        hot = replay.hot
        assert replay.collected == config.runtime.env_steps
        live = np.arange(max(0, hot.write_count - hot.num_slots), hot.write_count)
        slots = live % hot.num_slots
        indices = hot.index[slots][hot.index[slots] >= 0]
        np.testing.assert_array_equal(np.sort(indices), np.arange(config.runtime.env_steps))
        for w, s in zip(live, slots):
            prev = int(hot.prev[s])
            if prev != w:
                ps = prev % hot.num_slots
                assert hot.episode[ps] == hot.episode[s] and hot.position[ps] == hot.position[s] - 1
            else:
                assert hot.position[s] == 0
        assert replay.sampler.count > 0
    finally:
        replay.close()


def test_sigint_then_resume_finishes_with_exact_counters(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(*RUN, "--run-dir", str(run_dir))
    wait_for_checkpoints(run_dir, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "--resume" in err
    stopped = load_checkpoint(run_dir)  # the exit checkpoint
    assert stopped["step"] >= 40 and stopped["replay"]["collected"] >= stopped["step"] - 20
    summary = finish(run_dir)
    config = build_config("smoke", "CartPole", {"runtime.env_steps": 500})
    assert summary["env_steps"] == 500
    assert summary["training_steps"] == Pacer(config.runtime, config.learner).total_steps
    steps = [row["training_steps"] for row in summary["evaluations"]]
    assert steps == sorted(set(steps)) and steps[0] == 0  # evaluations before the stop are kept, none twice
    assert_replay_consistent(run_dir, config)


def test_kill_9_at_random_moments_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    rng = random.Random(7)
    shm_before = set(Path("/dev/shm").glob("ezr_*"))
    proc = start(*RUN, "--run-dir", str(run_dir))
    for attempt in range(3):
        wait_for_checkpoints(run_dir, 1, proc)
        time.sleep(rng.uniform(0.0, 3.0))
        if proc.poll() is None:
            before = load_checkpoint(run_dir)["step"]
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            assert load_checkpoint(run_dir)["step"] >= before  # never goes back past the last checkpoint
        if (run_dir / "summary.json").exists():
            break
        proc = start("--resume", str(run_dir))
    else:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    for leftover in set(Path("/dev/shm").glob("ezr_*")) - shm_before:  # SIGKILL cannot clean up
        leftover.unlink(missing_ok=True)
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() \
        else finish(run_dir)
    config = build_config("smoke", "CartPole", {"runtime.env_steps": 500})
    assert summary["env_steps"] == 500
    assert summary["training_steps"] == Pacer(config.runtime, config.learner).total_steps
    assert_replay_consistent(run_dir, config)


def test_corrupt_or_incompatible_checkpoint_is_one_line_and_exit_2(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(*RUN, "--run-dir", str(run_dir))
    wait_for_checkpoints(run_dir, 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    newest = list_checkpoints(run_dir)[-1][1]
    newest.write_bytes(b"not a checkpoint" * 10)
    proc = start("--resume", str(run_dir))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip().count("\n") == 1 and "unreadable" in err and newest.name in err  # resuming + error
    state = {"config": {}, "step": 1, "learner": {}, "target": [], "replay": {}, "evaluations": [],
             "episodes": {}, "wall_time_s": 0.0}
    path = save_checkpoint(tmp_path / "other", state, keep=1)
    raw = __import__("torch").load(path, weights_only=False)
    raw["format"] = 99
    __import__("torch").save(raw, path)
    with pytest.raises(CheckpointError, match="format 99"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoints_are_atomic_and_only_the_last_k_are_kept(tmp_path):
    state = {"config": {}, "learner": {}, "target": [], "replay": {}, "evaluations": [], "episodes": {},
             "wall_time_s": 0.0}
    for step in range(1, 6):
        save_checkpoint(tmp_path, {**state, "step": step}, keep=2)
    (tmp_path / "checkpoints" / ".step-junk.tmp").write_bytes(b"torn")  # a write killed half-way
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 5]
    assert load_checkpoint(tmp_path)["step"] == 5
    save_checkpoint(tmp_path, {**state, "step": 6}, keep=2)
    assert not list((tmp_path / "checkpoints").glob(".step-*")) and len(os.listdir(tmp_path / "checkpoints")) == 2


def storages_and_contents(checkpoint: dict) -> tuple[int, int, int]:
    """(weight tensors, distinct storages, distinct contents) over the learner's model and every
    held weights version of a loaded checkpoint."""
    import hashlib

    tensors = list(checkpoint["learner"]["model"].values())
    for held in checkpoint["online"] + checkpoint["target"]:
        tensors += list(held["model"].values())
    storages = {t.untyped_storage().data_ptr() for t in tensors}
    contents = {(t.dtype, tuple(t.shape), hashlib.sha256(t.numpy().tobytes()).hexdigest()) for t in tensors}
    return len(tensors), len(storages), len(contents)


def test_a_checkpoint_stores_each_distinct_weights_tensor_once_and_resumes_bit_exactly(tmp_path):
    """The held online/target versions mostly equal each other or the learner's weights: each
    distinct tensor is written once. Two resumes of one stopped --serial run end bit-identical."""
    import shutil

    from ezero_async.runtime.trainer import StopRequested, train

    config = build_config("smoke", "CartPole", {"tracking.aim": False, "runtime.serial": True,
                                                "runtime.env_steps": 400, "learner.publish_interval": 5,
                                                "runtime.self_play_lag": 10, "tracking.checkpoint_interval": 1000})
    polls = iter(range(10**6))
    with pytest.raises(StopRequested):
        train(config, tmp_path / "run", "cpu", stop_when=lambda: "test" if next(polls) >= 6 else None)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert len(checkpoint["online"]) >= 3 and checkpoint["online"][-1]["version"] == checkpoint["step"]
    tensors, storages, contents = storages_and_contents(checkpoint)
    assert storages == contents < tensors  # the newest online version is the learner's model
    summaries = []
    for name in ("a", "b"):
        shutil.copytree(tmp_path / "run", tmp_path / name)
        summary = train(config, tmp_path / name, "cpu", resume=True)
        summaries.append({k: v for k, v in summary.items() if k not in ("wall_time_s", "throughput", "timing_s")})
    assert summaries[0] == summaries[1]
    assert summaries[0]["training_steps"] == Pacer(config.runtime, config.learner).total_steps


def test_checkpoints_are_written_off_the_event_loop(tmp_path, monkeypatch):
    """A slow checkpoint write (an Atari model takes seconds) must not stall the run: while
    training, the monitor keeps emitting on the event loop every log_interval_s."""
    from ezero_async.runtime import trainer

    real, saved = trainer.save_checkpoint, []

    def slow_save(*args, **kwargs):
        time.sleep(1.5)
        saved.append(args[1]["step"])
        return real(*args, **kwargs)

    class Beats:  # a sink: the monitor calls emit on the event loop
        def __init__(self):
            self.rows = []

        def emit(self, env_steps, training_steps, metrics):
            self.rows.append((time.monotonic(), training_steps))

        def close(self):
            pass

    monkeypatch.setattr(trainer, "save_checkpoint", slow_save)
    config = build_config("smoke", "CartPole", {"tracking.aim": False, "tracking.checkpoint_interval": 50,
                                                "tracking.log_interval_s": 0.1})
    beats = Beats()
    summary = trainer.train(config, tmp_path / "run", "cpu", sinks=[beats])
    assert len(saved) >= 4 and saved[-1] == summary["training_steps"]  # periodic ones, then the exit one
    training = [t for t, steps in beats.rows if steps < summary["training_steps"]]
    assert max(np.diff(training)) < 1.0, max(np.diff(training))
