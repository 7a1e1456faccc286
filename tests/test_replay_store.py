"""Store of record (zarr) round trip, corrupt stores, cross-process readers, no leaked /dev/shm."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ezero_async.config.sections import ReplayConfig
from ezero_async.replay.buffer import Replay
from ezero_async.replay.context import ContextBuilder
from ezero_async.replay.hot import HotTier
from ezero_async.replay.store import ReplayStoreError, StoreMeta

CFG = ReplayConfig(capacity=48, unroll_steps=2, td_steps=2, td_age_unit=100, segment_length=8)
FIELDS = ("frames", "action", "reward", "raw_reward", "terminal", "truncated", "episode", "position",
          "root_value", "policy", "index", "prev", "next", "generation")


def fill(rep, steps, seed=0):
    rng = np.random.default_rng(seed)
    t = 0
    for n in range(steps):
        obs = rng.integers(0, 200, (4, 4, 3), dtype=np.uint8)
        rep.append(0, obs, int(rng.integers(3)), 1.0, 3.0, 0.1 * n, rng.dirichlet(np.ones(3)).astype(np.float32))
        t += 1
        if rng.random() < 0.1:
            rep.end_episode(0, obs, terminated=bool(n % 2), truncated=not n % 2)
            t = 0


def new_replay(path, seed=0):
    return Replay(CFG, obs_shape=(4, 4, 3), obs_dtype="uint8", num_actions=3, frame_stack=3, seed=seed,
                  store_dir=path, meta=StoreMeta("Breakout", "smoke"))


def test_round_trip_restores_arrays_and_sampling_state(tmp_path):
    rep = new_replay(tmp_path / "store")
    try:
        fill(rep, 130)  # wraps the 54-slot ring
        s = rep.sample(8, 5)
        rep.update_priorities(rep.hot.index[s.slots], np.linspace(0.5, 4.0, 8))
        rep.flush()
        loaded = Replay.load(tmp_path / "store", CFG, seed=0)
        try:
            for name in FIELDS:
                np.testing.assert_array_equal(getattr(loaded.hot, name), getattr(rep.hot, name), err_msg=name)
            np.testing.assert_array_equal(loaded.sampler.priorities(), rep.sampler.priorities())
            assert loaded.sampler.tree.total == rep.sampler.tree.total
            assert (loaded.hot.write_count, loaded.collected, loaded.hot.episodes) == \
                   (rep.hot.write_count, rep.collected, rep.hot.episodes)
            # Same seed, same state -> same draws; and both continue identically.
            a, b = rep.sample(16, 7), loaded.sample(16, 7)
            np.testing.assert_array_equal(a.slots, b.slots)
            fill(rep, 20, seed=9)
            fill(loaded, 20, seed=9)
            np.testing.assert_array_equal(loaded.sampler.priorities(), rep.sampler.priorities())
            np.testing.assert_array_equal(loaded.hot.frames, rep.hot.frames)
            attrs = json.loads((tmp_path / "store" / "zarr.json").read_text())["attributes"]["schema"]
            assert attrs["game"] == "Breakout" and attrs["obs_shape"] == [4, 4, 3] and attrs["schema_version"] == 1
        finally:
            loaded.close()
    finally:
        rep.close()


def _corrupt(path, how):
    if how == "missing":
        shutil.rmtree(path / "reward")
    elif how in ("version", "cursor"):
        meta = json.loads((path / "zarr.json").read_text())
        if how == "version":
            meta["attributes"]["schema"]["schema_version"] = 99
        else:
            meta["attributes"]["state"]["write_count"] += 1000
        (path / "zarr.json").write_text(json.dumps(meta))
    elif how == "shape":
        meta = json.loads((path / "policy" / "zarr.json").read_text())
        meta["shape"][1] = 5
        meta["chunk_grid"]["configuration"]["chunk_shape"][1] = 5
        (path / "policy" / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("how, words", [("missing", "'reward' missing"), ("version", "schema_version 99"),
                                        ("cursor", "truncated store"), ("shape", "'policy' has shape")])
def test_corrupt_store_gives_clear_error(tmp_path, how, words):
    rep = new_replay(tmp_path / "s")
    fill(rep, 30)
    rep.flush()
    rep.close()
    _corrupt(tmp_path / "s", how)
    before = set(os.listdir("/dev/shm"))
    with pytest.raises(ReplayStoreError, match=words):
        Replay.load(tmp_path / "s", CFG, seed=0)
    assert set(os.listdir("/dev/shm")) <= before  # a failed load leaks nothing


def test_writer_thread_error_reaches_caller(tmp_path):
    rep = new_replay(tmp_path / "s")
    try:
        def boom(job):
            raise OSError("disk full")
        rep.store._write = boom
        with pytest.raises(ReplayStoreError, match="writer thread failed") as info:
            fill(rep, 40)
            rep.flush()
        assert isinstance(info.value.__cause__, OSError)
    finally:
        rep.hot.close()


READER = textwrap.dedent("""
    import pickle, sys, numpy as np
    from ezero_async.replay.hot import HotTier
    handle = pickle.loads(bytes.fromhex(sys.argv[1]))
    hot = HotTier.attach(handle)
    n = hot.published_writes()
    slots = np.arange(max(0, n - hot.num_slots), n) % hot.num_slots
    gens = hot.generation[slots].copy()
    digest = int(hot.frames[slots].astype(np.int64).sum()) + int(hot.index[slots].sum())
    assert hot.unchanged(slots, gens)
    print(n, hot.published_collected(), digest)
    hot.close()
""")


def test_reader_in_another_process_sees_consistent_data(tmp_path):
    import pickle
    rep = Replay(CFG, obs_shape=(4, 4, 3), obs_dtype="uint8", num_actions=3, frame_stack=3, seed=0)
    try:
        fill(rep, 100)
        out = subprocess.run([sys.executable, "-c", READER, pickle.dumps(rep.handle).hex()],
                             capture_output=True, text=True, timeout=60, check=True)
        n = rep.hot.write_count
        slots = np.arange(n - rep.hot.num_slots, n) % rep.hot.num_slots
        digest = int(rep.hot.frames[slots].astype(np.int64).sum()) + int(rep.hot.index[slots].sum())
        assert out.stdout.split() == [str(n), str(rep.collected), str(digest)]
        # The reader's exit must not have unlinked the owner's segment.
        assert os.path.exists(f"/dev/shm/{rep.hot.shm_name}")
        again = HotTier.attach(rep.handle)
        ctx = ContextBuilder(again, CFG, 4, 0.0, seed=0).build(rep.sample(4, 0), 0)
        assert ctx.obs.shape == (4, 5, 4, 4, 3)
        again.close()
    finally:
        rep.close()
    assert not os.path.exists(f"/dev/shm/{rep.hot.shm_name}")


CRASHER = textwrap.dedent("""
    import sys
    from ezero_async.config.sections import ReplayConfig
    from ezero_async.replay.buffer import Replay
    rep = Replay(ReplayConfig(capacity=64), obs_shape=(8, 8, 3), obs_dtype="uint8", num_actions=4,
                 frame_stack=4, seed=0, store_dir=sys.argv[1])
    print(rep.hot.shm_name, flush=True)
    raise RuntimeError("simulated crash")
""")


def test_no_leaked_shared_memory_after_crash(tmp_path):
    out = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path / "s")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "simulated crash" in out.stderr
    name = out.stdout.split()[0]
    assert not os.path.exists(f"/dev/shm/{name}")


def test_a_store_ahead_of_the_checkpoint_resumes_at_the_checkpoints_cursors(tmp_path):
    """A checkpoint holds the cursors of its flush; a later flush (a run killed while writing
    the next checkpoint) moves the store ahead, and loading at the cursors ignores the extra rows
    and appends over them."""
    rep = new_replay(tmp_path / "s")
    fill(rep, 60)
    cursors = rep.flush()
    frames_then = rep.hot.frames.copy()
    fill(rep, 45, seed=3)
    rep.flush()  # the store is now 45 transitions ahead of `cursors`
    rep.close()
    loaded = Replay.load(tmp_path / "s", CFG, seed=0, cursors=cursors)
    try:
        assert loaded.hot.write_count == cursors.state["write_count"]
        assert loaded.collected == cursors.state["collected"] == 60
        live = np.arange(max(0, loaded.hot.write_count - loaded.hot.num_slots), loaded.hot.write_count) % 54
        np.testing.assert_array_equal(loaded.hot.frames[live], frames_then[live])
        np.testing.assert_array_equal(loaded.sampler.priorities(), cursors.priorities)
        fill(loaded, 20, seed=5)  # continues from the cursors: rows past them are overwritten
        again = loaded.flush()
    finally:
        loaded.close()
    reread = Replay.load(tmp_path / "s", CFG, seed=0)
    try:
        assert reread.collected == 80 and reread.hot.write_count == again.state["write_count"]
        np.testing.assert_array_equal(np.sort(reread.hot.index[reread.hot.index >= 0])[-20:], np.arange(60, 80))
    finally:
        reread.close()


def test_a_store_behind_the_checkpoint_is_refused(tmp_path):
    rep = new_replay(tmp_path / "s")
    fill(rep, 30)
    first = rep.flush()
    fill(rep, 30, seed=2)
    _, later = rep.flush_begin()
    rep.store.close()
    rep.hot.close()
    assert later.state["write_count"] > first.state["write_count"]
    # The same rows with the first flush's commit: a store that never committed `later`.
    shutil.copytree(tmp_path / "s", tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "zarr.json").read_text())
    meta["attributes"]["state"] = first.state
    (tmp_path / "old" / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ReplayStoreError, match="older than the checkpoint"):
        Replay.load(tmp_path / "old", CFG, seed=0, cursors=later)


@pytest.mark.parametrize("damage, words", [("delete", "array 'action' is missing 1 chunk file"),
                                           ("garble", "array 'action' rows .* do not decode")])
def test_a_damaged_chunk_is_named_not_read_as_zeros(tmp_path, damage, words):
    rep = new_replay(tmp_path / "s")
    fill(rep, 40)
    rep.flush()
    rep.close()
    chunk = tmp_path / "s" / "action" / "c" / "2"  # rows 16..23
    assert chunk.is_file()
    if damage == "delete":
        chunk.unlink()
    else:
        chunk.write_bytes(b"\x00garbage" * 8)
    before = set(os.listdir("/dev/shm"))
    with pytest.raises(ReplayStoreError, match=words) as info:
        Replay.load(tmp_path / "s", CFG, seed=0)
    assert "\n" not in str(info.value)
    if damage == "delete":
        assert "rows 16..23" in str(info.value)
    assert set(os.listdir("/dev/shm")) <= before


def test_all_zero_chunks_are_written_too(tmp_path):
    rep = new_replay(tmp_path / "s")
    for n in range(24):  # no episode ends: every 'terminal' chunk holds only zeros
        rep.append(0, np.zeros((4, 4, 3), np.uint8), 0, 0.0, 0.0, 0.0, np.full(3, 1 / 3, np.float32))
    rep.flush()
    rep.close()
    assert sorted(p.name for p in (tmp_path / "s" / "terminal" / "c").iterdir()) == ["0", "1", "2"]


def test_stale_segments_of_dead_owners_are_removed(tmp_path):
    from ezero_async.replay.shm import remove_stale_segments, segment_name, stale_segments

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f"ezr_{dead_pid}_0123456789ab").write_bytes(b"x" * 100)
    (tmp_path / segment_name()).write_bytes(b"x")  # ours: alive
    (tmp_path / "ezr_0123456789ab").write_bytes(b"x")  # old-style name: owner unknown, kept
    (tmp_path / f"psm_{dead_pid}").write_bytes(b"x")  # not ours
    found = stale_segments(tmp_path)
    assert [(s.pid, s.size) for s in found] == [(dead_pid, 100)]
    assert remove_stale_segments(tmp_path) == found
    assert len(list(tmp_path.iterdir())) == 3 and not stale_segments(tmp_path)


def test_a_leak_check_skips_the_segments_of_other_live_processes():
    from ezero_async.replay.shm import owned_by_live_process, owner_pid, segment_name

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    mine = segment_name()
    assert owner_pid(mine) == os.getpid() and owner_pid("psm_0123") is None
    assert owned_by_live_process(mine)  # another run's, seen from elsewhere
    assert not owned_by_live_process(mine, but=os.getpid())  # this process's own: counts as a leak
    assert not owned_by_live_process(f"ezr_{int(dead.stdout)}_0123456789ab")  # owner gone: a leak
    assert not owned_by_live_process("psm_0123")  # owner unknown: a leak
