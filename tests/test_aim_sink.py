"""AimSink: snapshots land in an Aim run (values, steps, hparams), a resumed sink appends to
the same run, and an exception on the Aim thread reaches the owner with its traceback."""
from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import aim
import pytest
from aim.sdk.index_manager import RepoIndexManager

from ezero_async.tracking.aim_sink import AimSink

HPARAMS = {"game": "MinAtar/Breakout-v1", "learner": {"lr": 3e-4, "batch_size": 64, "augment": True},
           "temperatures": [1.0, 0.5], "aim_repo": None}


def read_run(repo_dir: Path, run_hash: str) -> tuple[aim.Run, dict[tuple[str, str | None], dict[int, float]]]:
    """The run and its metrics as {(name, subset): {step: value}} (Aim's own __system__ ones left out)."""
    repo = aim.Repo(str(repo_dir))
    # A finished run is invisible to Repo queries until indexed (`aim up` or `aim storage reindex` do it).
    RepoIndexManager(repo).index(run_hash)
    run = repo.get_run(run_hash)
    assert run is not None, f"run {run_hash} not in {repo_dir}"
    series = {}
    for metric in run.metrics():
        if metric.name.startswith("__system__"):
            continue
        steps, (values, *_) = metric.data.numpy()  # columns: value, epoch, time; sorted by step
        series[metric.name, metric.context.to_dict().get("subset")] = dict(zip(steps.tolist(), values.tolist()))
    return run, series


def test_snapshots_and_hparams_land_in_the_run(tmp_path: Path) -> None:
    sink = AimSink(tmp_path, experiment="breakout", run_name="seed-0", hparams=HPARAMS)
    # emit() only queues: these return before (or while) the background thread creates the run.
    sink.emit(100, 0, {"loss/value": 1.5, "throughput/env_steps_per_s": 50.0, "timing/tree_frac": math.nan})
    sink.emit(250, 10, {"loss/value": 1.25, "throughput/env_steps_per_s": math.inf, "timing/tree_frac": 0.25,
                        "queue/learner_batches": 3})
    sink.emit(400, 20, {"loss/value": 1.0, "eval/return_mean": 7.5, "train/return_last10": None})
    sink.close()
    sink.close()  # idempotent
    assert sink.run_hash is not None

    run, series = read_run(tmp_path, sink.run_hash)
    assert run.name == "seed-0"
    assert run.experiment == "breakout"
    assert run["hparams"] == HPARAMS
    assert series == {
        ("env_steps", "train"): {0: 100.0, 10: 250.0, 20: 400.0},
        ("loss/value", "train"): {0: 1.5, 10: 1.25, 20: 1.0},
        ("throughput/env_steps_per_s", "train"): {0: 50.0},  # inf skipped
        ("timing/tree_frac", "train"): {10: 0.25},  # NaN skipped
        ("queue/learner_batches", "train"): {10: 3.0},
        ("eval/return_mean", "eval"): {20: 7.5},
    }  # None (train/return_last10) skipped: no sequence at all


def test_resumed_sink_appends_to_the_same_run(tmp_path: Path) -> None:
    first = AimSink(tmp_path, experiment="breakout", run_name="seed-0", hparams=HPARAMS)
    first.emit(100, 0, {"loss/value": 1.5})
    first.emit(200, 10, {"loss/value": 1.25})
    first.close()

    resumed = AimSink(tmp_path, experiment="breakout", run_name="seed-0", hparams=HPARAMS, run_hash=first.run_hash)
    assert resumed.run_hash == first.run_hash
    resumed.emit(300, 20, {"loss/value": 1.0})
    resumed.close()

    assert aim.Repo(str(tmp_path)).list_all_runs() == [first.run_hash]
    _, series = read_run(tmp_path, first.run_hash)
    assert series[("loss/value", "train")] == {0: 1.5, 10: 1.25, 20: 1.0}
    assert series[("env_steps", "train")] == {0: 100.0, 10: 200.0, 20: 300.0}


class TrackFailed(RuntimeError):
    pass


def test_background_error_surfaces_with_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_track(self, value, name=None, step=None, epoch=None, *, context=None):
        raise TrackFailed(f"cannot track {name}")

    monkeypatch.setattr(aim.Run, "track", failing_track)
    sink = AimSink(tmp_path, experiment="breakout", run_name="seed-0", hparams=HPARAMS)
    sink.emit(100, 0, {"loss/value": 1.5})
    with pytest.raises(TrackFailed, match="cannot track env_steps") as raised:
        sink.close()
    assert any(entry.name == "failing_track" for entry in raised.traceback)  # the thread's frames
    with pytest.raises(TrackFailed):
        sink.check()
    with pytest.raises(TrackFailed):
        sink.emit(200, 10, {"loss/value": 1.25})
    sink.close()  # reported once; a second close is a no-op


def test_a_smoke_training_run_is_tracked_in_aim(tmp_path: Path) -> None:
    """The trainer's Aim run: hparams, losses, throughput and evaluation series exist afterwards,
    and the final checkpoint names the run so a resume tracks into it."""
    from ezero_async.config import build_config
    from ezero_async.runtime.trainer import train
    from ezero_async.tracking.checkpoint import load_checkpoint

    config = build_config("smoke", "CartPole", {"tracking.aim": True, "tracking.aim_repo": str(tmp_path / "aim"),
                                                "runtime.env_steps": 200, "runtime.tail_train_steps": 0})
    train(config, tmp_path / "run", "cpu")
    run_hash = load_checkpoint(tmp_path / "run")["aim_run"]
    assert run_hash is not None
    run, series = read_run(tmp_path / "aim", run_hash)
    assert run["hparams"]["learner"]["batch_size"] == config.learner.batch_size
    names = {name for name, _ in series}
    for name in ("loss/total", "throughput/env_steps_per_s", "eval/return_mean", "env_steps"):
        assert name in names, sorted(names)
    assert series["eval/return_mean", "eval"]  # at least one evaluation point


def test_wait_run_hash_blocks_until_the_run_exists_and_reraises_its_failure(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint asks for the hash right after start-up: it must get the run's, not None,
    however slow Aim is to create it (seen under load: a checkpoint named no run)."""
    import threading

    release = threading.Event()
    create = AimSink._create_run

    def slow_create(self):
        release.wait(10.0)
        return create(self)

    monkeypatch.setattr(AimSink, "_create_run", slow_create)
    sink = AimSink(tmp_path, experiment="breakout", run_name="seed-0", hparams=HPARAMS)
    assert sink.run_hash is None
    with pytest.raises(TimeoutError):
        sink.wait_run_hash(timeout=0.2)
    release.set()
    run_hash = sink.wait_run_hash()
    assert run_hash and run_hash == sink.run_hash
    sink.close()

    def failing_create(self):
        raise TrackFailed("repository locked")

    monkeypatch.setattr(AimSink, "_create_run", failing_create)
    broken = AimSink(tmp_path / "other", experiment="breakout", run_name="seed-1", hparams=HPARAMS)
    with pytest.raises(TrackFailed, match="repository locked"):
        broken.wait_run_hash()
    with pytest.raises(TrackFailed):
        broken.close()


CREATOR = """
import sys, time
from pathlib import Path
from ezero_async.tracking.aim_sink import AimSink
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # both processes reach the repository at the same moment
sink = AimSink(Path(sys.argv[1]), experiment="breakout", run_name=sys.argv[3], hparams={})
sink.wait_run_hash()
sink.close()
print("ok")
"""


def test_runs_creating_a_new_repository_at_once_both_succeed(tmp_path: Path) -> None:
    """Creation of a brand-new repository is serialised (it raced: RocksIOError on the index LOCK)."""
    for attempt in range(3):  # without the lock, attempt 3 of 4 failed
        repo = tmp_path / f"repo{attempt}"
        at = time.time() + 4.0  # past both interpreters' start-up and `import aim`
        procs = [subprocess.Popen([sys.executable, "-c", CREATOR, str(repo), str(at), f"seed-{i}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and out.strip() == "ok", err[-2000:]
