"""The learner in a child process (learner.isolation = 'process'): the same updates, versions and
callbacks as the thread, its errors and its death reach the run, a stop keeps its last update,
and a whole run is bit-identical to a thread run."""
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.errors import ConfigError
from ezero_async.learner.learner import Learner
from ezero_async.learner.model import build_model
from ezero_async.learner.process import LearnerProcess, LearnerRecipe, batch_queue
from ezero_async.learner.synthetic import random_batch
from ezero_async.learner.weights import WeightStore
from ezero_async.runtime.trainer import learner_in_process, train
from test_runtime import summary_without_wall_clock

SHAPE, ACTIONS = (4,), 2


def _learner(**overrides):
    cfg = build_config("smoke", "CartPole", overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model, SHAPE, cfg.env.frame_stack, ACTIONS, cfg.learner.lstm_horizon)
    learner = Learner(model, cfg.learner, "cpu", frame_stack=cfg.env.frame_stack, seed=3)
    recipe = LearnerRecipe(cfg.model, SHAPE, cfg.env.frame_stack, ACTIONS, cfg.learner, 3, 1e-6)
    return learner, recipe, cfg


def _batches(cfg, n):
    rng = np.random.default_rng(1)
    return [random_batch(rng, cfg.learner.batch_size, SHAPE, cfg.env.frame_stack, cfg.learner.unroll_steps,
                         ACTIONS, step=i) for i in range(n)]


def _stores(learner):
    online, target = WeightStore(capacity=2, name="online"), WeightStore(capacity=100, name="target")
    online.publish(0, learner.model)
    target.publish(0, learner.model)
    return online, target


def test_the_process_applies_the_updates_the_thread_would():
    overrides = {"learner.publish_interval": 4, "learner.target_update_interval": 5}
    n = 13
    twin, _, cfg = _learner(**overrides)
    learner, recipe, _ = _learner(**overrides)
    batches = _batches(cfg, n)
    expected_priorities = [twin.train_step(_device(b)).priorities for b in batches]

    online, target = _stores(learner)
    q = batch_queue(cfg.learner.queue_size)
    seen, checkpoints = [], []
    process = LearnerProcess(learner, recipe, q, online=online, target=target,
                             on_priorities=lambda idx, pri: seen.append((idx.copy(), pri.copy())),
                             on_checkpoint=lambda step, snap: checkpoints.append((step, snap)), checkpoint_interval=5)
    process.start()
    for b in batches:
        q.put(b)
    q.put(None)
    process.join(timeout=120)
    assert not process.is_alive()
    assert process.step == n and process.steps_done == n and learner.step == n
    for (idx, pri), b, want in zip(seen, batches, expected_priorities):
        assert np.array_equal(idx, b.indices) and np.array_equal(pri, want)
    # The run's Learner holds the child's final state, bit for bit the thread's.
    assert all(torch.equal(v, twin.model.state_dict()[k]) for k, v in learner.model.state_dict().items())
    assert online.versions() == [12, 13] and target.versions() == [0, 5, 10]
    with online.read(13) as (_, state):
        assert all(torch.equal(v, twin.model.state_dict()[k]) for k, v in state.items())
    assert [step for step, _ in checkpoints] == [5, 10]
    step, snapshot = checkpoints[-1]
    assert snapshot["learner"]["step"] == 10 and [v["version"] for v in snapshot["target"]] == [0, 5, 10]
    assert process.timing["update"] > 0.0


def _device(batch):
    from ezero_async.learner.transfer import stage_naive

    return stage_naive(batch, torch.device("cpu"))


def test_an_error_in_the_child_reaches_the_run_with_the_child_traceback():
    learner, recipe, cfg = _learner()
    q = batch_queue(4)
    good, bad = _batches(cfg, 2)
    woken = threading.Event()
    process = LearnerProcess(learner, recipe, q, on_priorities=lambda i, p: None, on_error=lambda exc: woken.set())
    process.start()
    q.put(good)
    q.put(bad._replace(actions=bad.actions.astype(np.int32)))
    assert woken.wait(timeout=60), "on_error was not called"
    with pytest.raises(ValueError, match="TrainingBatch.actions") as info:
        process.join(timeout=30)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "raised in the learner process" in notes and "check_batch" in notes  # the child's own frames
    assert process.step <= 1 and not process.is_alive()  # the bad batch is staged during update 0


def test_a_killed_child_ends_the_run_loudly_within_seconds():
    learner, recipe, cfg = _learner()
    q = batch_queue(4)
    woken = threading.Event()
    process = LearnerProcess(learner, recipe, q, on_priorities=lambda i, p: None, on_error=lambda exc: woken.set())
    process.start()
    q.put(_batches(cfg, 1)[0])
    deadline = time.monotonic() + 60
    while process.step < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = time.monotonic()
    os.kill(process._process.pid, signal.SIGKILL)
    assert woken.wait(timeout=10) and time.monotonic() - killed < 5.0
    with pytest.raises(RuntimeError, match="exited with code -9"):
        process.join(timeout=10)


def test_a_dropping_stop_keeps_the_updates_before_it():
    learner, recipe, cfg = _learner()
    online, target = _stores(learner)
    q = batch_queue(8)
    process = LearnerProcess(learner, recipe, q, on_priorities=lambda i, p: None, online=online, target=target)
    process.start()
    for b in _batches(cfg, 3):
        q.put(b)
    deadline = time.monotonic() + 60
    while process.step < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.stop(drop_update=True)
    process.join(timeout=30)
    assert process.step == 3 and learner.step == 3
    assert process.snapshot()["learner"]["step"] == 3
    assert online.newest == 3  # the final weights are always published


def test_process_isolation_is_for_the_cpu():
    lc = build_config("smoke", "CartPole", {"learner.isolation": "auto"}).learner
    assert learner_in_process(lc, torch.device("cpu"))
    assert not learner_in_process(lc, torch.device("cuda"))
    lc.isolation = "process"
    with pytest.raises(ConfigError, match="learner.isolation"):
        learner_in_process(lc, torch.device("cuda"))
    with pytest.raises(ConfigError, match="learner.isolation"):
        build_config("smoke", "CartPole", {"learner.isolation": "fork"}).check()


def test_a_serial_run_is_bit_identical_with_the_learner_in_a_process(tmp_path):
    overrides = {"runtime.serial": True, "runtime.num_envs": 3, "tracking.aim": False}
    train(build_config("smoke", "CartPole", overrides), tmp_path / "thread", "cpu")
    train(build_config("smoke", "CartPole", {**overrides, "learner.isolation": "process"}), tmp_path / "process",
          "cpu")
    assert summary_without_wall_clock(tmp_path / "thread") == summary_without_wall_clock(tmp_path / "process")
