"""Reanalysis sweeps (runtime.reanalyse_mode = 'sweep'): a sweep's table holds, for every stored
transition, what a direct search of that transition's stack gives; batches read their target
version's table and keep the stored policy where it has nothing; runs are deterministic."""
import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.errors import ConfigError
from ezero_async.inference.runner import ModelRunner
from ezero_async.inference.search_service import SearchService
from ezero_async.learner.model import build_model
from ezero_async.learner.weights import WeightStore
from ezero_async.replay.buffer import Replay
from ezero_async.replay.context import ContextBuilder
from ezero_async.replay.sampler import Sample
from ezero_async.runtime.pacer import Pacer
from ezero_async.runtime.reanalyse import ReanalyseStats, _targets
from ezero_async.runtime.sweep import CHUNK, SweepTable, Sweeps
from ezero_async.runtime.trainer import train
from ezero_async.search import root_noise
from ezero_async.tracking.checkpoint import load_checkpoint

A = 2
S = 2


def config(**overrides):
    return build_config("smoke", "CartPole", {"tracking.aim": False, "runtime.reanalyse_mode": "sweep",
                                              "runtime.reanalyse_fraction": 1.0, **overrides})


def frame(episode: int, t: int) -> np.ndarray:
    return np.array([episode, t, 0.1 * t, -0.05 * t], np.float32)


def fill(replay: Replay, lengths: list[int]) -> dict[int, tuple[int, int]]:
    """Episodes of the given lengths, one after another (each ended); collection index -> (episode, t)."""
    where = {}
    for e, length in enumerate(lengths):
        for t in range(length):
            where[replay.collected] = (e, t)
            replay.append(0, frame(e, t), t % A, 1.0, 1.0, 0.0, np.full(A, 1.0 / A, np.float32))
        replay.end_episode(0, frame(e, length), terminated=True, truncated=False)
    return where


def test_table_lookup_marks_what_the_sweep_did_not_search():
    table = SweepTable(version=0, lo=10, policy=np.arange(8, dtype=np.float32).reshape(4, 2),
                       value=np.array([1, 2, 3, 4], np.float32), have=np.array([True, False, True, True]))
    policy, value, have = table.lookup(np.array([[9, 10, 11], [12, 13, 14]]))
    np.testing.assert_array_equal(have, [[False, True, False], [True, True, False]])
    np.testing.assert_array_equal(policy[have], [[0, 1], [4, 5], [6, 7]])
    np.testing.assert_array_equal(value[have], [1, 3, 4])


def test_a_sweep_gives_each_stored_transition_its_direct_search():
    """Every transition still stored gets exactly the search a caller would run on its stack (the
    first frames repeat at an episode start) with its chunk's noise draw; evicted ones are marked."""
    cfg = config(**{"replay.capacity": 64})
    torch.manual_seed(0)
    model = build_model(cfg.model, (4,), S, A, cfg.learner.lstm_horizon)
    with torch.no_grad():  # the heads start at zero: make every output depend on the input
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    store = WeightStore(2, name="target")
    store.publish(0, model)
    runner = ModelRunner(lambda: build_model(cfg.model, (4,), S, A, cfg.learner.lstm_horizon), torch.device("cpu"),
                         {"target": store}, inline=True)
    service = SearchService(runner, cfg.search, cfg.batcher, A, serial=True)
    replay = Replay(cfg.replay, obs_shape=(4,), obs_dtype="float32", num_actions=A, frame_stack=S, seed=0)
    try:
        where = fill(replay, [30, 45, 20])  # 95 transitions: the oldest are evicted
        pacer = Pacer(cfg.runtime, cfg.learner)
        pacer.progress = dict.fromkeys(pacer.progress, time.monotonic() - 1000.0)  # all quiet
        sweeps = Sweeps(replay, service, pacer, cfg.search, interval=10,
                        capacity=cfg.replay.capacity, num_actions=A, seed=7)
        lo, hi = 5, replay.collected
        table = asyncio.run(sweeps.sweep(0, lo, hi))
        assert pacer.stalled(100.0) is None  # searching counts as progress for the watchdog
        slot_kept = replay.hot.slot_of_index(np.arange(hi)) >= 0
        # Searchable: the transition and the frames its stack reads (back to its episode's start).
        stored = np.array([all(slot_kept[i - j] for j in range(min(S, where[i][1] + 1))) for i in range(lo, hi)])
        assert not stored.all() and stored.any() and not np.array_equal(stored, slot_kept[lo:])
        np.testing.assert_array_equal(table.have, stored)
        indices = np.arange(lo, hi)[stored]
        stacks = np.stack([[frame(where[i][0], max(0, where[i][1] - j)) for j in range(S - 1, -1, -1)]
                           for i in indices])
        noise = np.concatenate([root_noise(cfg.search, CHUNK, A, np.random.default_rng([7, 3, 0, c]))
                                for c in range(hi // CHUNK + 1)])[indices]
        direct = asyncio.run(service.search("target", 0, stacks, noise, seed=0))
        np.testing.assert_allclose(table.policy[indices - lo], direct.policies, atol=1e-6)
        np.testing.assert_allclose(table.value[indices - lo], direct.root_values, atol=1e-5)
        assert sweeps.roots == len(indices)
    finally:
        replay.close()
        runner.close()


class _Values:
    """Stand-in service: every bootstrap value is 0."""

    async def values(self, kind, version, stacks):
        return np.zeros(len(stacks), np.float32)


class _Sweeps:
    def __init__(self, table):
        self.asked, self._table = [], table

    async def table(self, version):
        self.asked.append(version)
        return self._table


def test_a_batch_reads_its_target_versions_table_and_keeps_stored_policies_past_it():
    cfg = config(**{"replay.capacity": 256})
    replay = Replay(cfg.replay, obs_shape=(4,), obs_dtype="float32", num_actions=A, frame_stack=S, seed=0)
    try:
        fill(replay, [40, 60])
        k1 = cfg.learner.unroll_steps + 1
        indices = np.array([0, 37, 50, 95])  # 37: runs into its episode's end; 95: past the table
        slots = replay.hot.slot_of_index(indices)
        builder = ContextBuilder(replay.hot, cfg.replay, len(indices), 1.0, seed=0)
        ctx = builder.build(Sample(slots, np.ones(4, np.float32), np.ones(4), 1.0), step=25, collected=100)
        hi = 97
        table = SweepTable(version=10, lo=0, policy=np.tile(np.array([0.9, 0.1], np.float32), (hi, 1)),
                           value=np.zeros(hi, np.float32), have=np.ones(hi, bool))
        sweeps = _Sweeps(table)
        batch = asyncio.run(_targets(ctx, _Values(), 10, k1, S, A, cfg.search, 0, ReanalyseStats(), 0, sweeps))
        assert sweeps.asked == [10]
        policy = batch.target_policy
        u = indices[:, None] + np.arange(k1)[None, :]
        from_table = ctx.policy_mask & (u < hi)
        np.testing.assert_allclose(policy[from_table], np.tile([0.9, 0.1], (from_table.sum(), 1)))
        past = ctx.policy_mask & (u >= hi)
        assert past.any()
        np.testing.assert_allclose(policy[past], 0.5)  # the stored (uniform) policy
        assert not ctx.policy_mask.all() and np.all(policy[~ctx.policy_mask] == 0.0)
    finally:
        replay.close()


def summary_without_wall_clock(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("wall_time_s", "throughput", "timing_s")}


def test_serial_sweep_runs_are_bit_identical_and_differ_from_stored_policies(tmp_path: Path):
    cfg = config(**{"runtime.serial": True})
    first = summary_without_wall_clock(train(cfg, tmp_path / "a", "cpu"))
    second = summary_without_wall_clock(train(cfg, tmp_path / "b", "cpu"))
    assert first == second
    stored = config(**{"runtime.serial": True, "runtime.reanalyse_fraction": 0.0})
    stored_sha = summary_without_wall_clock(train(stored, tmp_path / "c", "cpu"))["weights_sha256"]
    assert stored_sha != first["weights_sha256"]
    # Fresh targets from half-way on: a run of its own, neither of the two above.
    half = Pacer(cfg.runtime, cfg.learner).total_steps // 2
    late = config(**{"runtime.serial": True, "runtime.reanalyse_start_step": half})
    late_summary = summary_without_wall_clock(train(late, tmp_path / "d", "cpu"))
    assert late_summary["training_steps"] == first["training_steps"]
    assert late_summary["weights_sha256"] not in (stored_sha, first["weights_sha256"])


def test_an_unknown_reanalyse_mode_is_refused():
    with pytest.raises(ConfigError, match="runtime.reanalyse_mode: must be batch or sweep"):
        config(**{"runtime.reanalyse_mode": "sweeps"})


def test_a_stopped_sweep_run_resumes_to_the_end(tmp_path: Path):
    """A resumed run sweeps its current target version (and the next) again from the checkpoint's
    weights before its first batch; two resumes of one stopped serial run end bit-identical."""
    import shutil

    from ezero_async.runtime.trainer import StopRequested

    cfg = config(**{"runtime.serial": True, "runtime.env_steps": 400, "tracking.checkpoint_interval": 1000})
    polls = iter(range(10**6))
    with pytest.raises(StopRequested):
        train(cfg, tmp_path / "run", "cpu", stop_when=lambda: "test" if next(polls) >= 6 else None)
    total = Pacer(cfg.runtime, cfg.learner).total_steps
    assert 2 * cfg.learner.target_update_interval < load_checkpoint(tmp_path / "run")["step"] < total
    summaries = []
    for name in ("a", "b"):
        shutil.copytree(tmp_path / "run", tmp_path / name)
        summaries.append(summary_without_wall_clock(train(cfg, tmp_path / name, "cpu", resume=True)))
    assert summaries[0] == summaries[1]
    assert summaries[0]["training_steps"] == total


class _QuietPacer:
    """Stand-in pacer: 100 steps, everything trained and collected at once."""

    total_steps, trained = 100, 0

    async def wait_trained(self, version):
        pass

    def transitions_for(self, step):
        return 50 + step

    async def wait_collected(self, n):
        pass


@pytest.mark.parametrize("start, first", [(0, 0), (35, 20), (40, 30)])
def test_sweeps_begin_with_the_target_version_of_the_reanalyse_start_step(start, first):
    """Batch s reads version target_version(s): with runtime.reanalyse_start_step the first sweep
    is the one batch `start` reads, and none is skipped after it."""
    sweeps = Sweeps(None, None, _QuietPacer(), config().search, interval=10, capacity=64, num_actions=A, seed=0,
                    start_step=start)
    swept = []

    async def record(version, lo, hi):
        swept.append((version, lo, hi))
        return SweepTable(version, lo, np.zeros((hi - lo, A), np.float32), np.zeros(hi - lo, np.float32),
                          np.ones(hi - lo, bool))

    sweeps.sweep = record
    asyncio.run(sweeps.run())
    assert [v for v, _, _ in swept] == list(range(first, 81, 10))  # 80: the target of step 99
    assert swept[0][1:] == (max(0, 50 + first - 64), 50 + first)


def test_batches_before_the_reanalyse_start_step_keep_the_stored_policies():
    cfg = config(**{"replay.capacity": 256, "runtime.reanalyse_start_step": 30})
    replay = Replay(cfg.replay, obs_shape=(4,), obs_dtype="float32", num_actions=A, frame_stack=S, seed=0)
    try:
        fill(replay, [40, 60])
        k1 = cfg.learner.unroll_steps + 1
        slots = replay.hot.slot_of_index(np.array([0, 20, 50, 70]))
        sample = Sample(slots, np.ones(4, np.float32), np.ones(4), 1.0)
        table = SweepTable(version=10, lo=0, policy=np.tile(np.array([0.9, 0.1], np.float32), (100, 1)),
                           value=np.zeros(100, np.float32), have=np.ones(100, bool))
        batches = {}
        for step in (29, 30):
            builder = ContextBuilder(replay.hot, cfg.replay, 4, 1.0, seed=0,
                                     reanalyse_start_step=cfg.runtime.reanalyse_start_step)
            ctx = builder.build(sample, step=step, collected=100)
            sweeps = _Sweeps(table)
            batches[step] = asyncio.run(_targets(ctx, _Values(), 10, k1, S, A, cfg.search, 0, ReanalyseStats(), 0,
                                                 sweeps))
            assert len(ctx.reanalyse_rows) == (0 if step < 30 else 4)
            assert sweeps.asked == ([] if step < 30 else [10])
        mask = ctx.policy_mask
        np.testing.assert_allclose(batches[29].target_policy[mask], 1.0 / A)  # fill() stores uniform policies
        np.testing.assert_allclose(batches[30].target_policy[mask], np.tile([0.9, 0.1], (mask.sum(), 1)))
    finally:
        replay.close()


def test_a_mixed_value_target_cannot_start_before_the_fresh_searches():
    with pytest.raises(ConfigError, match="replay.mixed_start_step: must be >= runtime.reanalyse_start_step"):
        config(**{"replay.value_target": "mixed", "replay.mixed_start_step": 10, "runtime.reanalyse_start_step": 20})
    with pytest.raises(ConfigError, match="runtime.reanalyse_start_step: must be >= 0"):
        config(**{"runtime.reanalyse_start_step": -1})
