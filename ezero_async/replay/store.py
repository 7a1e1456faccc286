"""Store of record: the replay as a zarr 3 group on disk, appended by a writer thread.

Layout (group attributes document it; SCHEMA_VERSION guards it):
  attrs.schema      schema_version, game, preset, obs_shape, obs_dtype, num_actions, num_slots,
                    frame_stack, unroll_steps, td_steps, segment_length, zstd_level
  attrs.state       cursors at the last flush: write_count, collected, episodes, streams
                    (per env stream: episode, position, last write, pending write numbers)
  <field>[W, ...]   every durable schema field in write order (write number w is row w), chunks
                    of segment_length rows (frames zstd-compressed at zstd_level)
  priority[num_slots]  raw sampling priorities of the ring slots at the last flush (float64)
The hot tier holds the last num_slots rows (row w lives in slot w % num_slots). Whole segments
are appended as they complete; flush() writes the partial tail, the priorities, and finally the
state attribute (the commit point: rows past state.write_count are ignored on load).

Rows are append-only: row w, once written, never changes. A checkpoint therefore carries the
cursors of the flush it waited for (`Cursors`: the state attribute's contents plus the
priorities), and resuming from it rebuilds the hot tier from those cursors and the rows before
them, whatever the store committed later (a run killed while writing the checkpoint, or a
deleted newest checkpoint, leaves a store ahead of every surviving checkpoint: its extra rows
are then overwritten as the resumed run appends). Every chunk a load reads is checked: a
missing chunk (zarr would read it back as zeros) or one that does not decode is a
ReplayStoreError naming the array and the rows.
Every zarr call runs on the writer thread; an exception there is re-raised on the caller's next
append or flush.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from ezero_async.replay.hot import HotTier, StreamState
from ezero_async.replay.schema import SCHEMA_VERSION, ReplaySchema

# zarr 3 skips chunks equal to the fill value (e.g. 64 rows without an episode end), and reads
# a missing chunk back as that value: with every chunk written, a missing chunk file means
# damage, and loads can check for it. ArrayConfig is not stored with an array, so this is set
# for the process (only this module uses zarr).
zarr.config.set({"array.write_empty_chunks": True})


class ReplayStoreError(RuntimeError):
    """The store of record is missing, truncated, corrupt, or its writer thread failed."""


class StoreMeta(NamedTuple):
    """Descriptive metadata written next to the arrays."""

    game: str
    """Game name."""
    preset: str
    """Preset the run was built from."""


class Cursors(NamedTuple):
    """What a flush commits besides the rows; a checkpoint stores it as a dict (`_asdict()`)."""

    state: dict
    """write_count, collected, episodes, streams, sampler_rng (the state attribute's contents)."""
    priorities: np.ndarray
    """float64[num_slots]: raw sampling priorities."""


class _Job(NamedTuple):
    start: int
    data: dict
    state: dict | None
    priorities: np.ndarray | None
    written: threading.Event | None = None
    """Set once this job (and so every job queued before it) is written, or the writer failed."""


class ReplayStore:
    """Appends the hot tier's rows to a zarr group from a background writer thread."""

    def __init__(self, directory: str | Path, schema: ReplaySchema, meta: StoreMeta, segment_length: int,
                 zstd_level: int, start_at: int | None = None):
        """start_at: the row the next append writes (a resume's checkpoint write_count); default
        the store's committed write_count (0 for a new store)."""
        self.path = Path(directory)
        self.schema, self.segment = schema, segment_length
        if segment_length > schema.num_slots:
            raise ValueError(f"segment_length {segment_length} exceeds the ring size {schema.num_slots}")
        self.fields = [f for f in schema.fields() if f.durable]
        self.group = zarr.open_group(str(self.path), mode="a")
        if "schema" not in self.group.attrs:
            self._create(meta, zstd_level)
        committed = int(self.group.attrs.get("state", {}).get("write_count", 0))
        self.appended = committed if start_at is None else start_at
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="replay-zarr-writer", daemon=True)
        self._thread.start()

    def _create(self, meta: StoreMeta, zstd_level: int) -> None:
        s = self.schema
        for f in self.fields:
            compressors = ZstdCodec(level=zstd_level) if f.name == "frames" else ZstdCodec(level=1)
            self.group.create_array(f.name, shape=(0, *f.shape), chunks=(self.segment, *f.shape), dtype=f.dtype,
                                    compressors=compressors, fill_value=0)
        self.group.create_array("priority", shape=(s.num_slots,), chunks=(s.num_slots,), dtype=np.float64,
                                fill_value=0.0)
        self.group.attrs["schema"] = {
            "schema_version": SCHEMA_VERSION, "game": meta.game, "preset": meta.preset,
            "obs_shape": list(s.obs_shape), "obs_dtype": s.obs_dtype, "num_actions": s.num_actions,
            "num_slots": s.num_slots, "frame_stack": s.frame_stack, "unroll_steps": s.unroll_steps,
            "td_steps": s.td_steps, "segment_length": self.segment, "zstd_level": zstd_level,
            "all_chunks_written": True,
        }

    # ------------------------------------------------------------ caller side
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise ReplayStoreError(f"zarr writer thread failed on {self.path}") from self._error

    def _rows(self, hot: HotTier, start: int, stop: int) -> dict:
        slots = np.arange(start, stop, dtype=np.int64) % hot.num_slots
        return {f.name: getattr(hot, f.name)[slots] for f in self.fields}  # copies: the ring moves on

    def append(self, hot: HotTier) -> None:
        """Queue every segment the hot tier completed since the last call (cheap: one copy per
        segment). Call after appends; raises if the writer thread failed."""
        self._raise_if_failed()
        while hot.write_count - self.appended >= self.segment:
            start = self.appended
            self._queue.put(_Job(start, self._rows(hot, start, start + self.segment), None, None))
            self.appended = start + self.segment

    def flush(self, hot: HotTier, priorities: np.ndarray, sampler_rng: dict | None = None) -> Cursors:
        """Make everything durable: complete segments, the partial tail, priorities
        (`float64[num_slots]`), cursors and the sampler's generator state (`sampler_rng`, a
        numpy bit_generator.state dict); blocks until the writer thread has written them."""
        written, cursors = self.flush_begin(hot, priorities, sampler_rng)
        self.wait(written)
        return cursors

    def wait(self, written: threading.Event) -> None:
        """Block (any thread) until the flush that returned `written` is durable; raises if the
        writer thread failed."""
        written.wait()
        self._raise_if_failed()

    def flush_begin(self, hot: HotTier, priorities: np.ndarray,
                    sampler_rng: dict | None = None) -> tuple[threading.Event, Cursors]:
        """The caller's half of flush(): copy what is to be made durable as it stands now and
        queue it; returns at once with the event wait() blocks on (so an event loop can hand the
        waiting to another thread while appends go on) and the cursors being committed."""
        self.append(hot)
        tail = self._rows(hot, self.appended, hot.write_count)
        streams = {str(k): {"episode": v.episode, "position": v.position, "last": v.last,
                            "pending": [int(x) for x in v.pending]} for k, v in hot.streams.items()}
        state = {"write_count": hot.write_count, "collected": hot.collected, "episodes": hot.episodes,
                 "streams": streams, "sampler_rng": sampler_rng}
        written = threading.Event()
        priorities = np.array(priorities, np.float64)
        self._queue.put(_Job(self.appended, tail, state, priorities, written))
        return written, Cursors(state, priorities)

    def close(self) -> None:
        """Stop the writer thread (after the queued jobs); does not flush."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_if_failed()

    # ------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            jobs = [self._queue.get()]
            # Merge the segments that queued up meanwhile: one zarr call per array for all of them.
            while jobs[-1] is not None and jobs[-1].state is None:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if self._error is None:
                    self._write_all([j for j in jobs if j is not None])
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller, never dropped
                self._error = exc
            finally:
                for job in jobs:
                    self._queue.task_done()
                    if job is not None and job.written is not None:
                        job.written.set()
            if jobs[-1] is None:
                return

    def _write_all(self, jobs: list[_Job]) -> None:
        i = 0
        while i < len(jobs):
            run = [jobs[i]]  # contiguous row ranges become one write
            while (i + len(run) < len(jobs) and run[-1].state is None
                   and jobs[i + len(run)].start == run[-1].start + len(run[-1].data["frames"])):
                run.append(jobs[i + len(run)])
            data = run[0].data if len(run) == 1 else {
                k: np.concatenate([j.data[k] for j in run]) for k in run[0].data}
            last = run[-1]
            self._write(_Job(run[0].start, data, last.state, last.priorities))
            i += len(run)

    def _write(self, job: _Job) -> None:
        stop = job.start + len(job.data["frames"])
        for name, rows in job.data.items():
            arr = self.group[name]
            if arr.shape[0] < stop:
                # Grow geometrically (metadata rewrites are rare); rows past the committed
                # write_count are ignored on load.
                grow = max(stop, 2 * arr.shape[0])
                arr.resize((-(-grow // self.segment) * self.segment, *arr.shape[1:]))
            if stop > job.start:
                arr[job.start:stop] = rows
        if job.priorities is not None:
            self.group["priority"][:] = job.priorities
        if job.state is not None:
            self.group.attrs["state"] = job.state  # commit point


class LoadedStore(NamedTuple):
    """A store read back from disk."""

    schema: ReplaySchema
    meta: StoreMeta
    segment_length: int
    zstd_level: int
    priorities: np.ndarray
    """float64[num_slots]."""
    sampler_rng: dict | None
    """The sampler's bit_generator.state at the flush."""


def load_into(directory: str | Path, make_hot, cursors: Cursors | None = None) -> tuple[HotTier, LoadedStore]:
    """Validate the store at `directory` and rebuild a hot tier from it, as it stood at
    `cursors` (a checkpoint's) or, by default, at the store's last flush.

    `make_hot(schema)` creates the (empty, owned) hot tier. Raises ReplayStoreError naming the
    array, attribute or rows at fault for a missing, truncated, corrupt or inconsistent store,
    or one that is behind the cursors."""
    path = Path(directory)
    if not (path / "zarr.json").exists():
        raise ReplayStoreError(f"no zarr replay store at {path}")
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    if "schema" not in attrs:
        raise ReplayStoreError(f"{path}: attribute 'schema' missing")
    meta = attrs["schema"]
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ReplayStoreError(f"{path}: schema_version {meta.get('schema_version')!r}, this code reads {SCHEMA_VERSION}")
    if "state" not in attrs:
        raise ReplayStoreError(f"{path}: attribute 'state' missing (never flushed)")
    committed = int(attrs["state"]["write_count"])
    state = attrs["state"] if cursors is None else cursors.state
    schema = ReplaySchema(num_slots=int(meta["num_slots"]), obs_shape=tuple(meta["obs_shape"]),
                          obs_dtype=meta["obs_dtype"], num_actions=int(meta["num_actions"]),
                          frame_stack=int(meta["frame_stack"]), unroll_steps=int(meta["unroll_steps"]),
                          td_steps=int(meta["td_steps"]))
    w = int(state["write_count"])
    if w > committed:
        raise ReplayStoreError(f"{path}: the store committed {committed} rows, the checkpoint needs {w} "
                               "(the store is older than the checkpoint)")
    present = set(group.array_keys())
    arrays = {}
    for f in schema.fields():
        if not f.durable:
            continue
        if f.name not in present:
            raise ReplayStoreError(f"{path}: array '{f.name}' missing")
        arr = group[f.name]
        if tuple(arr.shape[1:]) != f.shape or np.dtype(arr.dtype) != f.dtype:
            raise ReplayStoreError(f"{path}: array '{f.name}' has shape {arr.shape} {arr.dtype}, "
                                   f"expected [*, {', '.join(map(str, f.shape))}] {f.dtype}")
        if arr.shape[0] < w:
            raise ReplayStoreError(f"{path}: array '{f.name}' has {arr.shape[0]} rows but the cursor "
                                   f"write_count is {w} (truncated store)")
        arrays[f.name] = arr
    if "priority" not in present:
        raise ReplayStoreError(f"{path}: array 'priority' missing")
    if group["priority"].shape != (schema.num_slots,):
        raise ReplayStoreError(f"{path}: array 'priority' has shape {group['priority'].shape}, "
                               f"expected ({schema.num_slots},)")
    if cursors is None:
        priorities = np.asarray(group["priority"][:], np.float64)
    else:
        priorities = np.asarray(cursors.priorities, np.float64)
        if priorities.shape != (schema.num_slots,):
            raise ReplayStoreError(f"{path}: the checkpoint holds {priorities.shape} priorities, the store "
                                   f"has {schema.num_slots} slots")

    lo = max(0, w - schema.num_slots)
    seg = int(meta["segment_length"])
    if meta.get("all_chunks_written"):  # stores written before this rule may lack all-zero chunks
        for name, arr in arrays.items():
            _check_chunks(path, name, arr, lo, w, seg)
    hot = make_hot(schema)
    try:
        slots = np.arange(lo, w, dtype=np.int64) % schema.num_slots
        for name, arr in arrays.items():
            try:
                rows = arr[lo:w]
            except Exception as exc:  # noqa: BLE001 -- a codec's own error type; named, with its rows
                first = _first_bad_chunk(arr, lo, w, seg)
                raise ReplayStoreError(f"{path}: array '{name}' rows {first}..{min(first + seg, w) - 1} do not "
                                       f"decode ({type(exc).__name__}: {str(exc)[:100]})") from exc
            getattr(hot, name)[slots] = rows
        streams = {int(k): StreamState(int(v["episode"]), int(v["position"]), int(v["last"]),
                                       deque(v["pending"])) for k, v in state["streams"].items()}
        hot.restore_cursors(w, int(state["collected"]), int(state["episodes"]), streams)
    except BaseException:
        hot.close()
        raise
    loaded = LoadedStore(schema, StoreMeta(meta["game"], meta["preset"]), int(meta["segment_length"]),
                         int(meta["zstd_level"]), priorities,
                         state.get("sampler_rng"))
    return hot, loaded


def _check_chunks(path: Path, name: str, arr, lo: int, stop: int, segment: int) -> None:
    """Every chunk file holding rows lo..stop-1 of `name` exists (zarr 3, default '/' chunk keys:
    <name>/c/<row chunk>/0/.../0). zarr reads a missing chunk back as its fill value, so a
    deleted chunk would otherwise train on zeros."""
    if stop <= lo:
        return
    tail = ["0"] * (arr.ndim - 1)
    missing = [i for i in range(lo // segment, (stop - 1) // segment + 1)
               if not path.joinpath(name, "c", str(i), *tail).is_file()]
    if missing:
        first = missing[0] * segment
        raise ReplayStoreError(f"{path}: array '{name}' is missing {len(missing)} chunk file(s), the first "
                               f"holding rows {first}..{first + segment - 1}")


def _first_bad_chunk(arr, lo: int, stop: int, segment: int) -> int:
    """First row of the first chunk in rows lo..stop-1 that fails to read (lo if none does alone)."""
    for start in range(lo - lo % segment, stop, segment):
        try:
            arr[max(start, lo):min(start + segment, stop)]
        except Exception:  # noqa: BLE001 -- looking for the chunk that raised
            return max(start, lo)
    return lo
