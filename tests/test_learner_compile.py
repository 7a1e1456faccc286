"""learner.compile: the compiled loss applies the updates the eager one does, compiling happens
before the first update and leaves the learner as it was, a stop while the learner process
compiles ends it at once with its starting state, and a thread learner refuses to compile."""
import time

import numpy as np
import pytest
import torch

from ezero_async.errors import ConfigError
from ezero_async.learner.process import LearnerProcess, batch_queue
from ezero_async.learner.transfer import stage_naive
from ezero_async.runtime.trainer import learner_in_process, resolve_compile
from test_learner_process import _batches, _learner, _stores

COMPILE = {"learner.compile": "on", "learner.isolation": "process"}
SHORT = {"learner.unroll_steps": 1, "replay.unroll_steps": 1}  # a smaller graph: a cold compile is still about a minute here


def _state(learner):
    return {k: v.clone() for k, v in learner.model.state_dict().items()}


def test_warm_up_leaves_the_learner_exactly_as_it_was():
    learner, _, cfg = _learner()
    before, generator = _state(learner), learner.generator.get_state()
    learner.warm_up(stage_naive(_batches(cfg, 1)[0], learner.device))
    assert learner.step == 0 and torch.equal(learner.generator.get_state(), generator)
    assert all(torch.equal(v, before[k]) for k, v in learner.model.state_dict().items())  # BatchNorm stats too
    assert all(p.grad is None for p in learner.model.parameters())
    assert not learner.optimizer.state  # no step taken


def test_the_compiled_learner_process_applies_the_eager_updates(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # the child compiles from scratch
    n = 4
    twin, _, cfg = _learner(**SHORT)
    learner, recipe, _ = _learner(**SHORT, **COMPILE)
    batches = _batches(cfg, n)
    expected = [twin.train_step(stage_naive(b, twin.device)) for b in batches]

    online, target = _stores(learner)
    q = batch_queue(cfg.learner.queue_size)
    seen = []
    process = LearnerProcess(learner, recipe, q, online=online, target=target,
                             on_priorities=lambda idx, pri: seen.append(pri.copy()))
    process.start()
    for b in batches:
        q.put(b)
    q.put(None)
    process.join(timeout=600)
    assert process.step == n and learner.step == n
    assert process.timing["compile"] > 0.0 and process.timing["update"] > 0.0
    # Fused kernels round differently: the same updates to float32 precision, not bit for bit.
    for got, want in zip(seen, expected):
        np.testing.assert_allclose(got, want.priorities, rtol=1e-4, atol=1e-5)
    for k, v in learner.model.state_dict().items():
        torch.testing.assert_close(v, twin.model.state_dict()[k], rtol=1e-4, atol=1e-5, msg=k)


def test_a_stop_while_compiling_ends_the_learner_process_with_its_starting_state(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # cold: compiling takes long
    learner, recipe, cfg = _learner(**COMPILE)
    before = _state(learner)
    online, target = _stores(learner)
    q = batch_queue(cfg.learner.queue_size)
    process = LearnerProcess(learner, recipe, q, online=online, target=target, on_priorities=lambda i, p: None)
    process.start()
    for b in _batches(cfg, 2):
        q.put(b)
    time.sleep(8.0)  # the child is up (spawn + import torch) and compiling
    stopped = time.monotonic()
    process.stop(drop_update=True)
    process.join(timeout=60)
    assert time.monotonic() - stopped < 5.0
    assert not process.is_alive() and process.step == 0 and learner.step == 0
    assert all(torch.equal(v, before[k]) for k, v in learner.model.state_dict().items())
    assert process.snapshot()["learner"]["step"] == 0


@pytest.mark.parametrize("isolation", ["thread", "auto"])
def test_a_thread_learner_refuses_to_compile(isolation):
    _, _, cfg = _learner(**{"learner.compile": "on", "learner.isolation": isolation})
    device = torch.device("cuda" if isolation == "auto" else "cpu")  # auto on a GPU is a thread
    with pytest.raises(ConfigError, match="learner.compile"):
        learner_in_process(cfg.learner, device)


@pytest.mark.parametrize("device, compiles", [("cpu", "on"), ("cuda", "off")])
def test_auto_compiles_where_the_learner_has_its_own_process(device, compiles):
    _, _, cfg = _learner(**{"learner.compile": "auto", "learner.isolation": "auto"})
    in_process = learner_in_process(cfg.learner, torch.device(device))
    assert resolve_compile(cfg.learner, in_process).compile == compiles
    assert resolve_compile(cfg.learner, in_process).batch_size == cfg.learner.batch_size


def test_learner_compile_takes_off_on_or_auto():
    with pytest.raises(ConfigError, match="learner.compile: must be off, on or auto"):
        _learner(**{"learner.compile": "yes"})
