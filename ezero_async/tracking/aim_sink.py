"""AimSink: the Monitor's snapshots, tracked into an Aim run from a background thread.

Why a thread: the Monitor calls sinks on the event loop, and Aim is slow there: `import aim`
takes ~1 s, `Repo.from_path(init=True)` ~2 s (it runs the schema upgrades, even on an
existing repository), `Run()` ~1 s, each scalar `track()` ~130 us (FACTS.md). So `emit()`
only puts the snapshot on a queue; one daemon thread owns every Aim object (repo, run,
tracking) and writes the backlog.

Failures are loud: an exception on that thread is stored, the thread closes the run and ends,
and the exception is re-raised (same object, original traceback) by the next `emit()`,
`check()` or `close()` on the owner's thread.

Aim specifics this relies on (aim 3.29):
- The repository is initialised before any run is created (two processes creating runs in a
  never-initialised repository can race and one dies "out of date"); `Repo.from_path(init=True)`
  is safe to repeat, and passing the Repo object to `Run` skips the racy version check.
- `capture_terminal_logs=False`: Aim's default patches `sys.stdout.write`/`sys.stderr.write`
  process-wide (from this thread) and would record every progress line into the run.
- A metric's points are keyed by step: a second value at the same training step replaces the
  first (e.g. snapshots taken before the first update all land on step 0).
- A finished run is invisible to `Repo` queries (`get_run`, `query_runs`) until indexed:
  a running `aim up` does that, or `aim storage reindex -y`.
"""
from __future__ import annotations

import copy
import math
import numbers
import queue
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from ezero_async.tracking.run_dir import exclusive

Metrics = dict[str, float]
"""Namespaced metric name -> value of one snapshot (as runtime.monitor.Metrics)."""

EVAL_PREFIX = "eval/"
"""Metrics named eval/... are tracked with context {"subset": "eval"}, all others "train"."""

_JOIN_TIMEOUT_S = 120.0
"""close() gives the thread this long to write its backlog and close the run."""

_SYSTEM_TRACKING_INTERVAL_S = 10
"""Aim's own CPU/memory/disk stats (`__system__*` metrics) every this many seconds."""


def repo_for(aim_repo: str, run_dir: Path) -> Path:
    """The Aim repository of a run: tracking.aim_repo, or else the run directory's parent (so
    the runs under runs/ share one dashboard: `aim up --repo runs`)."""
    return Path(aim_repo) if aim_repo else run_dir.resolve().parent


class Snapshot(NamedTuple):
    """One Monitor snapshot on its way to the Aim thread."""

    env_steps: int
    """Environment steps collected so far (tracked as the metric `env_steps`)."""
    training_steps: int
    """Learner updates so far: the Aim step of every metric of this snapshot."""
    metrics: Metrics
    """Namespaced name ("loss/value", "eval/return_mean", ...) -> value; a private copy."""


_STOP = None
"""Queue sentinel: write what came before, close the run, end the thread."""


class AimSink:
    """Monitor sink that tracks each snapshot into one Aim run (new, or resumed by hash)."""

    def __init__(self, repo: Path, experiment: str, run_name: str, hparams: dict[str, Any],
                 run_hash: str | None = None) -> None:
        """repo: the Aim repository's directory (created if missing). experiment, run_name:
        how the run is grouped and labelled in the UI. hparams: nested dict of plain values
        (str, int, float, bool, None, lists, dicts), stored as run["hparams"]. run_hash:
        an existing run of this repository to append to (None: a new run)."""
        self._repo = Path(repo)
        self._experiment = experiment
        self._run_name = run_name
        self._hparams = copy.deepcopy(hparams)  # the caller may mutate its dict later
        self._run_hash = run_hash
        self._created = threading.Event()
        """Set once the thread has created (or resumed) the run, or failed to."""
        self._queue: queue.SimpleQueue[Snapshot | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._closed = False
        self.busy_s = 0.0
        """Seconds the thread spent tracking (written by that thread only; for timing/tracker)."""
        self._thread = threading.Thread(target=self._work, name="aim-sink", daemon=True)
        self._thread.start()

    @property
    def run_hash(self) -> str | None:
        """The Aim run's hash: the one given to resume, else None until the thread has
        created the run (~1-3 s after construction)."""
        return self._run_hash

    def wait_run_hash(self, timeout: float = _JOIN_TIMEOUT_S) -> str:
        """The run's hash once the thread has created the run (blocks until then: a checkpoint
        written before it would name no run, and a resume would start a second one). Re-raises
        the thread's exception; TimeoutError if Aim takes longer than `timeout` seconds."""
        if not self._created.wait(timeout):
            raise TimeoutError(f"Aim did not create its run in {self._repo} within {timeout:.0f} s")
        self.check()
        assert self._run_hash is not None  # set before _created
        return self._run_hash

    def emit(self, env_steps: int, training_steps: int, metrics: Metrics) -> None:
        """Queue one snapshot (never blocks: called on the event loop)."""
        self.check()
        if self._closed:
            raise RuntimeError("AimSink.emit() after close()")
        self._queue.put(Snapshot(env_steps, training_steps, dict(metrics)))

    def check(self) -> None:
        """Re-raise an exception of the background thread, with its original traceback."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write the backlog, close the Aim run and join the thread (blocks; idempotent).
        Re-raises a background exception on the first call."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(_JOIN_TIMEOUT_S)
        self.check()
        if self._thread.is_alive():
            raise TimeoutError(f"Aim thread still writing to {self._repo} after {_JOIN_TIMEOUT_S:.0f} s")

    # --- background thread: everything below touches Aim ---

    def _work(self) -> None:
        try:
            try:
                run = self._create_run()
                self._run_hash = run.hash
            finally:
                self._created.set()  # on failure too: waiters then re-raise the error
            try:
                run.name = self._run_name
                run["hparams"] = self._hparams
                while (snapshot := self._queue.get()) is not _STOP:
                    started = time.perf_counter()
                    _track(run, snapshot)
                    self.busy_s += time.perf_counter() - started
            finally:
                run.close()  # releases the run's lock and marks it finished
        except BaseException as exc:  # noqa: BLE001 -- re-raised on the owner's thread by check()
            self._error = exc

    def _create_run(self):
        import aim  # ~1 s: paid here, not on the caller's thread

        # Two runs creating a brand-new repository at once can collide on its RocksDB index
        # lock (RocksIOError, 1 of 3 tries): one process at a time creates and opens.
        with exclusive(self._repo / ".ezero-aim-init.lock"):
            repo = aim.Repo.from_path(str(self._repo), init=True)
            return aim.Run(run_hash=self._run_hash, repo=repo, experiment=self._experiment,
                           system_tracking_interval=_SYSTEM_TRACKING_INTERVAL_S, capture_terminal_logs=False)


def _track(run, snapshot: Snapshot) -> None:
    """Track every finite metric of `snapshot` (and env_steps) at step training_steps."""
    step = snapshot.training_steps
    run.track(float(snapshot.env_steps), name="env_steps", step=step, context={"subset": "train"})
    for name, value in snapshot.metrics.items():
        if value is None:
            continue
        if not isinstance(value, numbers.Real):
            raise TypeError(f"metric {name!r}: {value!r} is not a number")
        value = float(value)  # one dtype per sequence (Aim warns when int and float mix)
        if not math.isfinite(value):
            continue
        subset = "eval" if name.startswith(EVAL_PREFIX) else "train"
        run.track(value, name=name, step=step, context={"subset": subset})
