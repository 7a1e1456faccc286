"""Durability: runs killed at seeded moments (inside the checkpoint write, between the replay
flush and the rename, or at a random time; SIGKILL to the main process or its whole process
group) resume to the end with every collection index exactly once and no shared memory left;
one owner per run directory; no dead ends; damaged stores, full disks and bad values are one
line and exit code 2."""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ezero_async.config import build_config
from ezero_async.main import main
from ezero_async.runtime.pacer import Pacer
from ezero_async.tracking.checkpoint import list_checkpoints, load_checkpoint

from test_resume import RUN, assert_replay_consistent, wait_for_checkpoints

CONFIG = build_config("smoke", "CartPole", {"runtime.env_steps": 500})


def start(*args: str, fault: str | None = None) -> subprocess.Popen:
    """A run in its own process group (so a group kill hits the run and its workers only)."""
    env = dict(os.environ)
    env.pop("EZERO_FAULT", None)
    if fault is not None:
        env["EZERO_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "ezero_async.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def segments_of(pid: int) -> list[Path]:
    return list(Path("/dev/shm").glob(f"ezr_{pid}_*"))


PLANS = [("checkpoint-flushed", False), ("checkpoint-flushed", True), ("checkpoint-before-rename", False),
         ("checkpoint-before-rename", True), (None, False), (None, True)]
"""(fault point or a timed kill, kill the whole process group): seed i runs plan i % 6."""


def kill_plan(seed: int) -> tuple[str | None, float, bool]:
    """(EZERO_FAULT spec or None, delay of a timed kill, group kill): which pass of the point
    (a run passes each about 26 times), or how long after the start (even seeds: start-up and
    the first steps) or after the first checkpoint (odd seeds), drawn from the seed; every plan
    lands before the run's end."""
    rng = random.Random(seed)
    point, group = PLANS[seed % len(PLANS)]
    if point is not None:
        return f"{point}:{rng.randint(1, 4)}" + (":group" if group else ""), 0.0, group
    return None, rng.uniform(0.5, 3.0), group


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))  # one per plan
def test_killed_at_a_seeded_moment_the_run_resumes_to_the_end(tmp_path, seed):
    run_dir = tmp_path / "run"
    fault, delay, group = kill_plan(seed)
    proc = start(*RUN, "--run-dir", str(run_dir), fault=fault)
    if fault is None:
        if seed % 2:  # odd seeds: a random moment after the first checkpoint; even: from the start
            wait_for_checkpoints(run_dir, 1, proc)
        time.sleep(delay)
        if proc.poll() is None:
            (os.killpg if group else os.kill)(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL, f"plan {fault or delay} did not kill the run: {err[-2000:]}"
    if not group:  # the resource tracker survives and unlinks the killed run's segments
        deadline = time.monotonic() + 10
        while segments_of(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if (run_dir / "config.json").exists():
        resumed = start("--resume", str(run_dir))
    else:  # killed before the run wrote anything: the same command starts it
        resumed = start(*RUN, "--run-dir", str(run_dir))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert not segments_of(proc.pid)  # a group kill's leftovers are removed when the next run starts
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 500
    assert summary["training_steps"] == Pacer(CONFIG.runtime, CONFIG.learner).total_steps
    assert_replay_consistent(run_dir, CONFIG)  # every collection index exactly once, episodes intact


@pytest.mark.slow
def test_deleting_the_newest_checkpoint_leaves_a_resumable_run(tmp_path):
    """Following the advice for a torn checkpoint: the store is then ahead of the newest one left."""
    run_dir = tmp_path / "run"
    proc = start(*RUN, "--run-dir", str(run_dir))
    wait_for_checkpoints(run_dir, 2, proc)
    deadline = time.monotonic() + 120
    while load_checkpoint(run_dir)["replay"]["collected"] < 200:  # past the warm-up: checkpoints 20 apart
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    found = list_checkpoints(run_dir)
    found[-1][1].unlink()
    older = load_checkpoint(run_dir)
    store = json.loads((run_dir / "replay" / "zarr.json").read_text())["attributes"]["state"]
    assert store["collected"] > older["replay"]["collected"]  # the store is ahead of every checkpoint
    resumed = start("--resume", str(run_dir))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert_replay_consistent(run_dir, CONFIG)


def test_a_second_run_on_the_same_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = start(*RUN, "--run-dir", str(run_dir))
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "config.json").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        for args in ([*RUN, "--run-dir", str(run_dir)], ["--resume", str(run_dir)]):
            second = start(*args)
            _, err = second.communicate(timeout=60)
            assert second.returncode == 2
            assert err.strip().splitlines() == [f"ezero_async: error: {run_dir} is in use by another run "
                                                f"(pid {first.pid}); wait for it to end, or pass another --run-dir"]
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)


def test_two_runs_started_at_once_on_one_directory_exactly_one_proceeds(tmp_path):
    run_dir = tmp_path / "run"
    procs = [start(*RUN, "--run-dir", str(run_dir), "--set", "runtime.env_steps=200") for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [r[1][-500:] for r in results]
    refused = results[[p.returncode for p in procs].index(2)][1]
    assert "is in use by another run" in refused or "already holds a run" in refused
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 200


@pytest.mark.parametrize("how", ["resume", "start"])
def test_a_run_without_a_checkpoint_starts_again_in_place(tmp_path, capsys, how):
    run_dir = tmp_path / "run"
    args = [*RUN, "--set", "runtime.env_steps=120", "--set", "runtime.tail_train_steps=0"]
    # Killed at the first checkpoint, after its replay flush and before its file: config.json
    # and the replay exist, no checkpoint does.
    proc = start(*args, "--run-dir", str(run_dir), fault="checkpoint-flushed:1:group")
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert (run_dir / "config.json").is_file() and not list_checkpoints(run_dir)
    code = main(["--resume", str(run_dir)] if how == "resume" else [*args, "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    assert ("no checkpoint yet" in err) if how == "resume" else ("starting again in place" in err)
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 120


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "the disk is full"),
                                         (errno.EROFS, "the file system is read-only")])
def test_a_full_disk_is_one_line_and_the_newest_checkpoint_survives(tmp_path, capsys, monkeypatch, code, words):
    """Injected ENOSPC / EROFS in the replay's writer thread (tests cannot mount a small tmpfs here)."""
    from ezero_async.replay import store

    calls = {"n": 0}
    write = store.ReplayStore._write

    def filling_disk(self, job):
        calls["n"] += 1
        if calls["n"] > 12:
            raise OSError(code, os.strerror(code), str(self.path / "frames" / "c" / "9" / "0"))
        return write(self, job)

    monkeypatch.setattr(store.ReplayStore, "_write", filling_disk)
    run_dir = tmp_path / "run"
    code = main([*RUN, "--run-dir", str(run_dir), "--set", "tracking.checkpoint_interval=20"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"ezero_async: error: cannot write {run_dir / 'replay' / 'frames'}")
    assert words in err[-1] and "is intact" in err[-1] and f"--resume {run_dir}" in err[-1]
    assert load_checkpoint(run_dir)["step"] > 0  # the newest checkpoint still loads
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_a_full_disk_while_saving_a_checkpoint_is_named(tmp_path, monkeypatch):
    from ezero_async.tracking import checkpoint

    def full(*args, **kwargs):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: type("U", (), {"free": 4096})())
    state = {k: None for k in checkpoint.KEYS} | {"step": 3}
    with pytest.raises(OSError) as info:
        checkpoint.save_checkpoint(tmp_path, state, keep=2)
    assert info.value.errno == errno.ENOSPC and info.value.filename.endswith("step-000000003.pt")
    assert not list((tmp_path / "checkpoints").iterdir())  # the temp file is gone


@pytest.mark.parametrize("text, words", [
    (b"\x89PNG\x00\xff", "is not text"),
    (b'{"runtime": 5}', "section 'runtime' must be an object"),
    (b'{"runtime": {"env_steps": -5}}', "runtime.env_steps: must be >= 1"),
    (b"[1, 2]", "must be a JSON object"),
])
def test_a_malformed_config_file_is_blamed_on_the_file(tmp_path, capsys, text, words):
    (tmp_path / "config.json").write_bytes(text)
    assert main(["--resume", str(tmp_path), "--env-steps", "100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "config.json is" in err[0] and "--env-steps" not in err[0]


@pytest.mark.parametrize("key, value", [
    ("learner.lr_init", "inf"), ("learner.lr_init", "1e300"), ("learner.value_loss_coeff", "nan"),
    ("learner.consistency_coeff", "inf"), ("learner.weight_decay", "inf"), ("search.dirichlet_alpha", "inf"),
    ("replay.priority_eps", "inf"),
])
def test_values_that_would_break_the_first_update_are_refused(tmp_path, capsys, key, value):
    run_dir = tmp_path / "run"
    assert main([*RUN, "--run-dir", str(run_dir), "--set", f"{key}={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0]
    assert not run_dir.exists()  # nothing written


def test_cleanup_command_removes_segments_of_dead_runs(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    path = Path("/dev/shm") / f"ezr_{int(dead.stdout)}_00000000abcd"
    if not path.parent.is_dir():
        pytest.skip("no /dev/shm")
    path.write_bytes(b"x" * 2048)
    assert main(["--cleanup"]) == 0
    assert not path.exists()
    assert path.name in capsys.readouterr().out
