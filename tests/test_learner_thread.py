"""The learner thread: batches in, priorities and weight versions out, errors reach the caller,
stop is clean. Plus the WeightStore contract and the CUDA paths (skipped without a GPU)."""
import queue
import threading
import time
import traceback

import numpy as np
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.learner.learner import Learner
from ezero_async.learner.model import build_model
from ezero_async.learner.schedule import target_version
from ezero_async.learner.synthetic import random_batch
from ezero_async.learner.thread import LearnerThread
from ezero_async.learner.weights import WeightStore


SHAPE, ACTIONS = (4,), 2


def _learner(device="cpu", **overrides):
    cfg = build_config("smoke", "CartPole", overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model, SHAPE, cfg.env.frame_stack, ACTIONS, cfg.learner.lstm_horizon)
    return Learner(model, cfg.learner, device, frame_stack=cfg.env.frame_stack), cfg


def _batches(cfg, n, start=0):
    rng = np.random.default_rng(1)
    return [random_batch(rng, cfg.learner.batch_size, SHAPE, cfg.env.frame_stack, cfg.learner.unroll_steps,
                         ACTIONS, step=start + i) for i in range(n)]


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_thread_trains_publishes_and_refreshes_targets_by_the_rule():
    learner, cfg = _learner(**{"learner.publish_interval": 4, "learner.target_update_interval": 5})
    n = 23
    q: queue.Queue = queue.Queue(maxsize=cfg.learner.queue_size)
    online, target = WeightStore(capacity=2, name="online"), WeightStore(capacity=100, name="target")
    seen, done_batches = [], []
    history = {0: _snapshot(learner.model)}  # weights after s updates, keyed by s

    def on_step(result):
        history[result.step + 1] = _snapshot(learner.model)

    thread = LearnerThread(learner, q, online=online, target=target,
                           on_priorities=lambda idx, pri: seen.append((idx.copy(), pri.copy())),
                           on_step=on_step, on_batch_done=done_batches.append)
    thread.start()
    batches = _batches(cfg, n)
    for b in batches:
        q.put(b)  # bounded queue: blocks while the learner is behind
    q.put(None)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert thread.steps_done == n and learner.step == n and len(done_batches) == n
    assert [s.shape for _, s in seen] == [(cfg.learner.batch_size,)] * n
    for (idx, pri), b in zip(seen, batches):
        assert np.array_equal(idx, b.indices) and np.all(np.isfinite(pri)) and np.all(pri > 0)
    assert thread.last_stats is not None and np.isfinite(thread.last_stats.loss)
    # Online: every 4 steps and the final weights, the last two kept (double buffer); contents
    # are the weights then.
    assert online.versions() == [20, 23]
    for v in online.versions():
        with online.read(v) as (got, state):
            assert got == v and _same(state, history[v])
    # Target: a snapshot at every multiple of I; step s reads version max(0, I*(s//I - 1)).
    assert target.versions() == [0, 5, 10, 15, 20]
    for s in range(n):
        with target.read(target_version(s, 5)) as (_, state):
            assert _same(state, history[target_version(s, 5)])
    assert not _same(history[0], history[n])  # it did learn something


def test_an_error_in_the_thread_reaches_the_caller_with_its_traceback():
    learner, cfg = _learner()
    q: queue.Queue = queue.Queue()
    woken = threading.Event()
    errors = []

    def failing_callback(indices, priorities):
        if learner.step == 3:
            raise RuntimeError("replay rejected the priorities")

    def on_error(exc):
        errors.append(exc)
        woken.set()

    thread = LearnerThread(learner, q, on_priorities=failing_callback, on_error=on_error)
    for b in _batches(cfg, 6):
        q.put(b)
    thread.start()
    assert woken.wait(timeout=30), "on_error was not called"
    thread._thread.join(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="replay rejected") as info:
        thread.check()
    assert info.value is errors[0]
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "failing_callback" in frames and "_loop" in frames  # the original traceback survives
    with pytest.raises(RuntimeError):
        thread.join()
    assert thread.steps_done == 3  # update 2 was applied, its callback failed


def test_a_malformed_batch_stops_the_thread_loudly():
    learner, cfg = _learner()
    q: queue.Queue = queue.Queue()
    bad = _batches(cfg, 1)[0]
    q.put(bad._replace(actions=bad.actions.astype(np.int32)))
    thread = LearnerThread(learner, q, on_priorities=lambda i, p: None)
    thread.start()
    with pytest.raises(ValueError, match="TrainingBatch.actions"):
        thread.join(timeout=30)


def test_stop_ends_the_thread_cleanly_between_steps():
    learner, cfg = _learner()
    q: queue.Queue = queue.Queue()
    thread = LearnerThread(learner, q, on_priorities=lambda i, p: None, poll_interval=0.01)
    thread.start()
    time.sleep(0.05)  # idle, waiting on an empty queue
    thread.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and thread.error is None and thread.steps_done == 0
    # Stopping while busy: it finishes the step in hand and never starts a half step.
    learner2, cfg2 = _learner()
    q2: queue.Queue = queue.Queue()
    for b in _batches(cfg2, 200):
        q2.put(b)
    count = []
    thread2 = LearnerThread(learner2, q2, on_priorities=lambda i, p: count.append(1))
    thread2.start()
    while not count:
        time.sleep(0.005)
    thread2.stop()
    thread2.join(timeout=10)
    assert not thread2.is_alive() and thread2.error is None
    assert thread2.steps_done == len(count) == learner2.step < 200


@pytest.mark.parametrize("calls_before_abort", [1, 120, 240])  # early, mid forward (230 calls), backward
def test_a_dropped_update_leaves_the_learner_exactly_as_before_it(calls_before_abort):
    """A stop's drop_update raises at the next abort point, forward or backward; the learner's
    state (weights, BatchNorm statistics, optimizer, RNG, step) is as before the update, so the
    next update is bit-identical to that of a learner that never saw the dropped one."""
    from ezero_async.learner.learner import UpdateAborted
    from ezero_async.learner.transfer import stage_naive

    cfg = build_config("smoke", "CartPole", {"learner.augment": True})
    dropped, clean = _learner(**{"learner.augment": True})[0], _learner(**{"learner.augment": True})[0]
    batches = _batches(cfg, 3)
    for learner in (dropped, clean):
        learner.train_step(stage_naive(batches[0], learner.device))
    calls = []

    def count(module, args, grad_output=None):
        calls.append(module)
        if len(calls) == calls_before_abort:
            dropped.abort.set()

    handles = [m.register_forward_pre_hook(count) for m in dropped.model.modules()]
    handles += [m.register_full_backward_pre_hook(lambda m, g: count(m, ())) for m in dropped.model.modules()
                if isinstance(m, torch.nn.Linear)]
    state = _snapshot(dropped.model)
    with pytest.raises(UpdateAborted):
        dropped.launch(stage_naive(batches[1], dropped.device))
    for handle in handles:
        handle.remove()
    assert _same(state, _snapshot(dropped.model)) and dropped.step == 2 - 1
    dropped.abort.clear()
    a = dropped.train_step(stage_naive(batches[1], dropped.device))
    b = clean.train_step(stage_naive(batches[1], clean.device))
    assert _same(_snapshot(dropped.model), _snapshot(clean.model))
    np.testing.assert_array_equal(a.priorities, b.priorities)
    for sa, sb in zip(dropped.optimizer.state.values(), clean.optimizer.state.values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_dropping_stop_ends_the_thread_inside_a_long_update():
    learner, cfg = _learner()
    q: queue.Queue = queue.Queue()
    for b in _batches(cfg, 3):
        q.put(b)
    entered, release = threading.Event(), threading.Event()

    def slow(module, args):  # an update that would take "forever" unless dropped
        if learner.step == 1:
            entered.set()
            release.wait(timeout=30.0)

    handle = next(iter(learner.model.children())).register_forward_pre_hook(slow)
    count = []
    thread = LearnerThread(learner, q, on_priorities=lambda i, p: count.append(1))
    thread.start()
    assert entered.wait(timeout=30.0)
    thread.stop(drop_update=True)
    release.set()
    thread.join(timeout=10)
    handle.remove()
    assert not thread.is_alive() and thread.error is None
    assert thread.steps_done == len(count) == learner.step == 1


def test_weight_store_versions_pinning_and_waiting():
    model = torch.nn.Linear(3, 2)
    store = WeightStore(capacity=2)
    with pytest.raises(LookupError):
        store.latest()
    store.publish(0, model)
    with torch.no_grad():
        model.weight.add_(1.0)
    store.publish(10, model)
    version, state = store.latest()
    assert version == 10 and torch.equal(state["weight"], model.weight)
    with pytest.raises(ValueError):
        store.publish(10, model)
    copy = torch.nn.Linear(3, 2)
    assert store.load_into(copy, 0) == 0 and not torch.equal(copy.weight, model.weight)
    # A reader pins version 0: the next publish must wait for it, not overwrite it.
    published = threading.Event()
    with store.read(0) as (_, pinned):
        before = pinned["weight"].clone()
        writer = threading.Thread(target=lambda: (store.publish(20, model), published.set()))
        writer.start()
        assert not published.wait(0.2)
        assert torch.equal(pinned["weight"], before)
    writer.join(timeout=5)
    assert published.is_set() and store.versions() == [10, 20]
    with pytest.raises(LookupError):
        store.wait_for(0, timeout=0.1)  # evicted
    with pytest.raises(TimeoutError):
        store.wait_for(30, timeout=0.05)
    threading.Timer(0.05, lambda: store.publish(30, model)).start()
    store.wait_for(30, timeout=5)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["off", "auto", "fp16"])
def test_cuda_thread_matches_the_protocol(amp):
    learner, cfg = _learner("cuda", **{"learner.amp": amp, "learner.publish_interval": 2})
    q: queue.Queue = queue.Queue()
    online = WeightStore(capacity=2)
    pri = []
    thread = LearnerThread(learner, q, online=online, on_priorities=lambda i, p: pri.append(p))
    for b in _batches(cfg, 7):
        q.put(b)
    q.put(None)
    thread.start()
    thread.join(timeout=120)
    assert thread.steps_done == 7 and all(np.all(np.isfinite(p)) for p in pri)
    assert online.versions() == [4, 6]
    assert online.latest()[1]["representation.mlp.0.weight"].is_cuda


@cuda
@pytest.mark.gpu
def test_cuda_image_batch_staging_round_trips():
    from ezero_async.learner.transfer import BatchMover
    batch = random_batch(np.random.default_rng(0), 8, (96, 96, 3), 4, 5, 4)
    mover = BatchMover(torch.device("cuda"))
    staged = [mover.stage(batch._replace(obs=batch.obs + np.uint8(i))) for i in range(3)]
    for i, dev in enumerate(staged[1:], start=1):
        mover.ready(dev)
        assert np.array_equal(dev.obs.cpu().numpy(), batch.obs + np.uint8(i))
        mover.done(dev)


@cuda
@pytest.mark.gpu
def test_pinned_batches_are_copied_in_place_and_held_until_their_copy_ran():
    from ezero_async.learner.transfer import BatchMover, pinned_array
    batch = random_batch(np.random.default_rng(0), 8, (96, 96, 3), 4, 5, 4)
    mover = BatchMover(torch.device("cuda"))
    pinned = []
    for i in range(4):
        obs = pinned_array(batch.obs.shape, batch.obs.dtype)
        obs[...] = batch.obs + np.uint8(i)
        pinned.append(batch._replace(obs=obs))
    staged = []
    for i, b in enumerate(pinned):
        staged.append(mover.stage(b))
        assert mover._held[staged[-1].slot] is b  # read in place: held until the slot's next stage
    assert mover.direct_copies == 4  # only obs is pinned; the small fields went through staging
    for i, dev in enumerate(staged[2:], start=2):
        mover.ready(dev)
        assert np.array_equal(dev.obs.cpu().numpy(), batch.obs + np.uint8(i))
        assert np.array_equal(dev.target_policy.cpu().numpy(), batch.target_policy)
        mover.done(dev)
    plain = mover.stage(batch)
    assert mover._held[plain.slot] is None and mover.direct_copies == 4
