"""Hot tier ring: interleaved episodes, wrap-around and eviction, poison never reaches a batch."""
import numpy as np

from ezero_async.config.sections import ReplayConfig
from ezero_async.replay.buffer import Replay
from ezero_async.replay.context import ContextBuilder, finish
from ezero_async.replay.schema import POISON_U8

S, K, TD = 3, 2, 2


def frame(episode, t):
    return np.array([[[episode % 200, t % 200]]], np.uint8)  # (1, 1, 2): episode id and time


def test_interleaved_streams_windows_follow_their_episode():
    cfg = ReplayConfig(capacity=64, unroll_steps=K, td_steps=TD, td_age_unit=10**6)
    rep = Replay(cfg, obs_shape=(1, 1, 2), obs_dtype="uint8", num_actions=2, frame_stack=S, seed=0)
    try:
        # Stream 0 plays episode e0 (5 steps, terminated), stream 1 episode e1 (still running);
        # their writes alternate in the ring.
        for t in range(7):
            if t < 5:
                rep.append(0, frame(0, t), 0, 1.0, 1.0, 0.0, np.full(2, 0.5, np.float32))
            rep.append(1, frame(1, t), 1, 2.0, 2.0, 0.0, np.full(2, 0.5, np.float32))
        rep.end_episode(0, frame(0, 5), terminated=True, truncated=False)
        idx_e0 = [i for i in range(rep.collected) if rep.hot.episode[rep.hot.slot_of_index(np.array([i]))[0]] == 0]
        slots = rep.hot.slot_of_index(np.array(idx_e0))
        b = len(slots)
        from ezero_async.replay.sampler import Sample
        ctx = ContextBuilder(rep.hot, cfg, b, 0.0, seed=0).build(Sample(slots, np.ones(b, np.float32),
                                                                        np.ones(b), 1.0), 0)
        assert np.all(ctx.obs[..., 0] == 0)  # never a frame of the other episode
        times = ctx.obs[:, :, 0, 0, 1].tolist()
        assert times[0] == [0, 0, 0, 1, 2] and times[3] == [1, 2, 3, 4, 5] and times[4] == [2, 3, 4, 5, 5]
        # Stream 1's running episode: only t with t + K + TD <= 6 are sampleable.
        assert rep.sampler.count == 5 + 3
    finally:
        rep.close()


def test_wrap_around_eviction_and_no_poison():
    cfg = ReplayConfig(capacity=32, unroll_steps=K, td_steps=TD, td_age_unit=50)
    rep = Replay(cfg, obs_shape=(1, 1, 2), obs_dtype="uint8", num_actions=2, frame_stack=S, seed=0)
    rng = np.random.default_rng(0)
    try:
        builder = ContextBuilder(rep.hot, cfg, 16, 0.5, seed=0)
        episode, t, checked = 0, 0, 0
        for n in range(600):
            rep.append(n % 2, frame(2 * episode + n % 2, t), int(rng.integers(2)), 1.0, 1.0, 0.0,
                       np.full(2, 0.5, np.float32))
            if n % 2 == 1:
                t += 1
                if rng.random() < 0.12:
                    for s in (0, 1):
                        rep.end_episode(s, frame(2 * episode + s, t), terminated=s == 0, truncated=s == 1)
                    episode, t = episode + 1, 0
            if n > 40 and n % 7 == 0 and rep.sampler.count > 0:
                ctx = builder.build(rep.sample(16, n), n)
                batch = finish(ctx, np.zeros((16, K + 1), np.float32), np.full((8, K + 1, 2), 0.5, np.float32))
                assert not np.any(ctx.obs == POISON_U8) and not np.any(ctx.bootstrap_obs == POISON_U8)
                for arr in (batch.target_value, batch.target_value_prefix, batch.target_policy, batch.weights):
                    assert np.all(np.isfinite(arr))
                # Every window frame belongs to the sampled transition's episode, times consecutive
                # (clamped at the ends).
                ep = rep.hot.episode[ctx.slots] % 200
                assert np.all(ctx.obs[..., 0] == ep[:, None, None, None])
                tt = ctx.obs[:, :, 0, 0, 1].astype(int)
                assert np.all(np.diff(tt, axis=1) >= 0) and np.all(np.diff(tt, axis=1) <= 1)
                assert np.all(tt[:, S - 1] == rep.hot.position[ctx.slots])
                checked += 1
        assert rep.hot.write_count > 3 * rep.hot.num_slots  # wrapped several times
        assert checked > 50
        # Evicted transitions have priority 0; priority updates for them are ignored.
        old = np.arange(0, 20, dtype=np.int64)
        assert np.all(rep.hot.slot_of_index(old) == -1)
        rep.update_priorities(old, np.ones(20))
        live = rep.sampler.priorities() > 0
        assert np.all(rep.hot.index[live] >= 0)
        lo = rep.hot.write_count - rep.hot.num_slots
        assert np.all(rep.hot.generation[live] >= lo)
    finally:
        rep.close()
