"""Windows, masks, TD depths, value and value-prefix targets on small hand-computed trajectories."""
import numpy as np
import pytest

from ezero_async.config.sections import ReplayConfig
from ezero_async.replay.buffer import Replay
from ezero_async.replay.context import ContextBuilder, finish
from ezero_async.replay.sampler import Sample
from ezero_async.replay import targets

G = 0.5


def make(capacity=64, K=2, td=2, S=2, H=1, unit=1000):
    cfg = ReplayConfig(capacity=capacity, unroll_steps=K, td_steps=td, td_age_unit=unit, discount=G,
                       lstm_horizon=H)
    return cfg, Replay(cfg, obs_shape=(1,), obs_dtype="float32", num_actions=2, frame_stack=S, seed=0)


def frame(t):
    return np.array([10.0 + t], np.float32)  # the frame encodes its time


def write_episode(rep, rewards, end, stream=0):
    for t, r in enumerate(rewards):
        rep.append(stream, frame(t), t % 2, r, r, 0.0, np.array([0.25, 0.75], np.float32))
    if end is not None:
        rep.end_episode(stream, frame(len(rewards)), terminated=end == "term", truncated=end == "trunc")


def context_for(rep, cfg, indices, collected=None):
    slots = rep.hot.slot_of_index(np.array(indices))
    assert np.all(slots >= 0)
    b = len(indices)
    sample = Sample(slots, np.ones(b, np.float32), np.ones(b), 1.0)
    return ContextBuilder(rep.hot, cfg, b, 0.0, seed=0).build(sample, step=0, collected=collected)


def last_frame_values(ctx, S):
    """Stand-in network: the value of a stack is its last frame's time."""
    return np.stack([ctx.bootstrap_obs[:, j + S - 1, 0] - 10.0 for j in range(ctx.bootstrap_col.shape[1])], 1)


@pytest.mark.parametrize("end", ["term", "trunc"])
def test_value_targets_hand_computed(end):
    cfg, rep = make()
    try:
        write_episode(rep, [1.0, 0.0, 2.0, 3.0], end)  # T = 4
        ctx = context_for(rep, cfg, [1, 2, 3])
        assert ctx.td.tolist() == [2, 2, 2]
        z = finish(ctx, last_frame_values(ctx, 2), np.zeros((0, 3, 2), np.float32))
        v = lambda u: float(u)  # noqa: E731
        if end == "term":
            expect = [[0 + G * 2 + G**2 * v(3), 2 + G * 3, 3],   # t=1: u=1,2,3
                      [2 + G * 3, 3, 0],                          # t=2: u=2,3,4=T
                      [3, 0, 0]]                                  # t=3: u=3,T,T+1
            vmask = [[1, 1, 1], [1, 1, 1], [1, 1, 0]]
        else:
            expect = [[0 + G * 2 + G**2 * v(3), 2 + G * 3 + G**2 * v(4), 3 + G * v(4)],
                      [2 + G * 3 + G**2 * v(4), 3 + G * v(4), 0],
                      [3 + G * v(4), 0, 0]]
            vmask = [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
        np.testing.assert_allclose(z.target_value, expect, rtol=1e-6)
        assert z.mask.tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 0]]
        assert z.value_mask.tolist() == vmask
        # Policy: stored distribution for u < T, all zero from T on.
        assert z.target_policy[2, 0].tolist() == [0.25, 0.75]
        assert np.all(z.target_policy[2, 1:] == 0) and np.all(z.target_policy[1, 2] == 0)
        # Windows: stack of S=2 before t repeats o_0; past T repeats o_T.
        assert ctx.obs[:, :, 0].tolist() == [[10, 11, 12, 13], [11, 12, 13, 14], [12, 13, 14, 14]]
        assert z.actions[0].tolist() == [1, 0]
    finally:
        rep.close()


def test_running_episode_and_first_frame_repeat():
    cfg, rep = make(K=2, td=2, S=3)
    try:
        rewards = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        write_episode(rep, rewards, None)  # still running: T = infinity
        # Transitions 0 and 1 are sampleable (t + K + td <= 5); 2 is not yet.
        assert rep.sampler.count == 2
        ctx = context_for(rep, cfg, [0, 1])
        assert ctx.obs[:, :, 0].tolist() == [[10, 10, 10, 11, 12], [10, 10, 11, 12, 13]]
        z = finish(ctx, last_frame_values(ctx, 3), np.zeros((0, 3, 2), np.float32))
        # t=0, u=0: 1 + G*2 + G^2 * v(2)
        np.testing.assert_allclose(z.target_value[0], [1 + G * 2 + G**2 * 2, 2 + G * 3 + G**2 * 3,
                                                       3 + G * 4 + G**2 * 4], rtol=1e-6)
        assert np.all(z.mask == 1) and np.all(z.value_mask == 1)
    finally:
        rep.close()


def test_td_depth_shrinks_with_age_in_targets():
    cfg, rep = make(K=1, td=3, S=1, unit=2)
    try:
        write_episode(rep, [1.0] * 10, "term")
        # collected = 10; ages: t=7 -> 3 (td = 3 - 1 = 2), t=2 -> 8 (td = clip(3 - 4) = 1)
        ctx = context_for(rep, cfg, [7, 2])
        assert ctx.td.tolist() == [2, 1]
        z = finish(ctx, last_frame_values(ctx, 1), np.zeros((0, 2, 2), np.float32))
        expect = [[1 + G * 1 + G**2 * 9, 1 + G * 1],   # u=7: r7 + G r8 + G^2 v(9); u=8: 8+2=T -> r8 + G r9
                  [1 + G * 3, 1 + G * 4]]               # td=1: u=2: r2 + G v(3); u=3: r3 + G v(4)
        np.testing.assert_allclose(z.target_value, expect, rtol=1e-6)
    finally:
        rep.close()


def test_value_prefix_targets_restart_every_horizon():
    r = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]], np.float32)
    # K = 5, H = 2: VP_1 = r0, VP_2 = r0+r1, VP_3 = r2, VP_4 = r2+r3, VP_5 = r4
    assert targets.value_prefix_targets(r, 5, 2).tolist() == [[1, 3, 3, 7, 5]]
    # H = 5: plain prefix sums
    assert targets.value_prefix_targets(r, 5, 5).tolist() == [[1, 3, 6, 10, 15]]


def test_policy_mixing_uses_fresh_rows_and_zero_past_end():
    cfg, rep = make()
    try:
        write_episode(rep, [0.0] * 3, "term")
        write_episode(rep, [0.0] * 8, "trunc")
        slots = rep.hot.slot_of_index(np.array([1, 3, 4, 5]))
        ctx = ContextBuilder(rep.hot, cfg, 4, 0.5, seed=1).build(Sample(slots, np.ones(4, np.float32),
                                                                        np.ones(4), 1.0), 0)
        assert len(ctx.reanalyse_rows) == 2
        fresh = np.full((2, 3, 2), 0.5, np.float32)
        tb = finish(ctx, np.zeros((4, 3), np.float32), fresh)
        for b in range(4):
            want = 0.5 if b in ctx.reanalyse_rows else None
            for k in range(3):
                if not ctx.policy_mask[b, k]:
                    assert np.all(tb.target_policy[b, k] == 0)
                elif want is not None:
                    assert np.all(tb.target_policy[b, k] == want)
                else:
                    assert tb.target_policy[b, k].tolist() == [0.25, 0.75]
        assert ctx.policy_mask[0].tolist() == [True, True, False]  # t=1, T=3
    finally:
        rep.close()


def test_actions_past_end_are_uniform_random():
    cfg, rep = make(K=4, td=1, S=1)
    try:
        write_episode(rep, [0.0, 0.0], "term")  # T = 2; t = 1 has a_1 then 3 random actions
        slots = np.repeat(rep.hot.slot_of_index(np.array([1])), 64)
        ctx = ContextBuilder(rep.hot, cfg, 64, 0.0, seed=5).build(Sample(slots, np.ones(64, np.float32),
                                                                         np.ones(64), 1.0), 0)
        assert np.all(ctx.actions[:, 0] == 1)
        past = ctx.actions[:, 1:]
        assert set(np.unique(past).tolist()) == {0, 1}
    finally:
        rep.close()


def test_search_value_rows_follow_step_and_age():
    idx = np.array([0, 94, 95, 99])
    # N_now = 100, the latest 5 keep TD: i < 95 uses search values, from the start step on.
    assert targets.search_value_rows(idx, 100, 29, 30, 5).tolist() == [False] * 4
    assert targets.search_value_rows(idx, 100, 30, 30, 5).tolist() == [True, True, False, False]


@pytest.mark.parametrize("end", ["term", "trunc"])
def test_mixed_value_targets_on_a_hand_built_replay(end):
    """EZ-V2's mixed target: old samples take the reanalysis root values (0 from a terminal on),
    fresh ones the full-depth TD target; only rows with a fresh search can take search values."""
    cfg = ReplayConfig(capacity=64, unroll_steps=2, td_steps=2, td_age_unit=1, discount=G, lstm_horizon=1,
                       value_target="mixed", mixed_start_step=10, mixed_fresh_transitions=3)
    rep = Replay(cfg, obs_shape=(1,), obs_dtype="float32", num_actions=2, frame_stack=2, seed=0)
    try:
        write_episode(rep, [1.0, 0.0, 2.0, 3.0], end)  # T = 4, N_now = 4: index 0 is old, 1..3 fresh
        indices = [0, 1, 2, 0]
        slots = rep.hot.slot_of_index(np.array(indices))
        sample = Sample(slots, np.ones(4, np.float32), np.ones(4), 1.0)
        builder = ContextBuilder(rep.hot, cfg, 4, 0.75, seed=2)  # 3 of 4 rows get fresh searches
        ctx = builder.build(sample, step=10)
        assert ctx.td.tolist() == [2, 2, 2, 2]  # full depth: no off-policy correction in mixed mode
        rows = ctx.reanalyse_rows.tolist()
        old = [b for b in range(4) if indices[b] == 0]
        assert ctx.search_value.tolist() == [b in old and b in rows for b in range(4)]
        assert any(ctx.search_value)  # seed 2 puts at least one old row among the searched ones
        search_values = np.array([[100.0 + 10 * r + k for k in range(3)] for r in range(len(rows))], np.float32)
        tb = finish(ctx, last_frame_values(ctx, 2), np.full((len(rows), 3, 2), 0.5, np.float32), search_values)
        # The same batch one step before the start step: every row keeps its TD target.
        early = ContextBuilder(rep.hot, cfg, 4, 0.75, seed=2).build(sample, step=9)
        assert not early.search_value.any()
        td = finish(early, last_frame_values(early, 2), np.full((len(rows), 3, 2), 0.5, np.float32), search_values)
        for b in range(4):
            if ctx.search_value[b]:
                r = rows.index(b)
                assert tb.target_value[b].tolist() == [100.0 + 10 * r, 101.0 + 10 * r, 102.0 + 10 * r]  # t=0: u < T
            else:
                np.testing.assert_array_equal(tb.target_value[b], td.target_value[b])  # the TD target
        with pytest.raises(ValueError, match="no fresh_values"):
            finish(ctx, last_frame_values(ctx, 2), np.full((len(rows), 3, 2), 0.5, np.float32))
    finally:
        rep.close()


def test_mix_values_zero_from_the_end_on():
    td = np.ones((2, 3), np.float32)
    search = np.array([[5.0, 6.0, 7.0]], np.float32)
    policy_mask = np.array([[True, False, False], [True, True, True]])
    out = targets.mix_values(td, search, np.array([0]), np.array([True, True]), policy_mask)
    assert out.tolist() == [[5.0, 0.0, 0.0], [1.0, 1.0, 1.0]]  # row 1 had no fresh search
    with pytest.raises(ValueError, match="does not match"):
        targets.mix_values(td, search, np.array([0, 1]), np.array([True, True]), policy_mask)


def test_fresh_obs_windows_come_from_the_given_allocator():
    """learner.zero_copy on CUDA: reanalysis gathers each batch's learner input into memory the
    caller allocates (pinned there); the windows hold the same frames as the builder's own."""
    cfg, rep = make()
    made = []

    def alloc(shape, dtype):
        made.append(np.full(shape, -1.0, dtype))
        return made[-1]

    try:
        write_episode(rep, [1.0] * 6, "term")
        slots = rep.hot.slot_of_index(np.array([1, 3]))
        sample = Sample(slots, np.ones(2, np.float32), np.ones(2), 1.0)
        plain = ContextBuilder(rep.hot, cfg, 2, 0.0, seed=0, fresh_buffers=True).build(sample, 0)
        builder = ContextBuilder(rep.hot, cfg, 2, 0.0, seed=0, fresh_buffers=True, alloc=alloc)
        first, second = builder.build(sample, 0), builder.build(sample, 1)
        assert len(made) == 2 and first.obs is made[0] and second.obs is made[1]
        np.testing.assert_array_equal(first.obs, plain.obs)
        assert first.obs.shape == (2, 2 + 2, 1) and first.bootstrap_obs is not made[0]
    finally:
        rep.close()
