"""Where a suite's runs execute: this machine, `jobs` at a time, or a Ray cluster, one task per run.

Both run the same command per run (RunSpec.command: `python -m ezero_async.main`, or its
`--resume`) and treat its exit code alike: 0 is done; 130/143 (SIGINT/SIGTERM: checkpoint
written) is interrupted, and the suite stops scheduling; anything else is a failure, retried
once (continuing from the failed attempt's last checkpoint), then reported with its error line.
Ctrl-C reaches each run exactly once (runs have their own sessions, so the terminal's signal
hits the coordinator only, which forwards one SIGINT): every run writes its checkpoint.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from typing import Callable

from ezero_async.errors import UserError
from ezero_async.suite.runs import EXIT_INTERRUPTED, Manifest, RunSpec, StatusFile, last_error, last_metrics

ATTEMPTS = 2
"""Attempts per run and call: the first, and one retry."""

POLL_S = 0.2

PROGRESS_S = 300.0
"""A progress line every this many seconds while runs go (a run's own lines are in its log)."""


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a run given `threads` cores: every BLAS/OpenMP pool sized to them."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(max(1, threads))
    return env


class Scheduler:
    """The attempts still to make and what each finished one means (shared by both executors)."""

    def __init__(self, specs: list[RunSpec], status: StatusFile, say: Callable[[str], None]) -> None:
        self.queue: deque[tuple[RunSpec, int]] = deque((spec, 1) for spec in specs if not spec.finished())
        self.status, self.say = status, say
        self.stopped: int | None = None
        """The signal that stopped the suite, once one did."""
        self.total = len(self.queue)
        self.durations: list[float] = []
        """Wall seconds of the runs finished by this call (for the suite's ETA)."""
        self._last_progress = time.monotonic()

    def next(self) -> tuple[RunSpec, int] | None:
        return None if self.stopped is not None or not self.queue else self.queue.popleft()

    def started(self, spec: RunSpec, attempt: int) -> None:
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        verb = "continuing" if (spec.run_dir / "config.json").is_file() else "starting"
        retry = f" (attempt {attempt} of {ATTEMPTS})" if attempt > 1 else ""
        self.say(f"{spec.name}: {verb}{retry}; log {spec.log}")

    def finished(self, spec: RunSpec, attempt: int, code: int, seconds: float) -> None:
        if code == 0 and spec.finished():
            self.status.record(spec, "done", code, None)
            self.durations.append(seconds)
            self.say(f"{spec.name}: done in {seconds / 60:.1f} min")
        elif code in EXIT_INTERRUPTED or self.stopped is not None:
            self.status.record(spec, "interrupted", code, None)
            self.say(f"{spec.name}: stopped with its checkpoint written (continues on the next call)")
        else:
            error = last_error(spec.log)
            if attempt < ATTEMPTS:
                self.say(f"{spec.name}: failed (exit {code}: {error}); retrying once")
                self.queue.append((spec, attempt + 1))
            else:
                self.status.record(spec, "failed", code, error)
                self.say(f"{spec.name}: failed twice (exit {code}: {error}); see {spec.log}")


    def progress(self, running: list[RunSpec], now: float | None = None) -> None:
        """Every PROGRESS_S: runs done, each running run's updates and ETA (its metrics.jsonl),
        runs queued, and the suite's ETA once a run has finished in this call."""
        now = time.monotonic() if now is None else now
        if now - self._last_progress < PROGRESS_S:
            return
        self._last_progress = now
        self.say(self.progress_line(running))

    def progress_line(self, started: list[RunSpec]) -> str:
        """`started`: the runs handed to the executor and not finished (a Ray task may still wait
        for resources: it has no metrics yet, like a run in its first minute)."""
        parts, etas, quiet = [], [], 0
        for spec in started:
            record = last_metrics(spec.run_dir) or {}
            eta = record.get("throughput/eta_s")
            if "training_steps" not in record or eta is None:
                quiet += 1
                continue
            etas.append(eta)
            parts.append(f"{spec.name} ({record['training_steps']:,} updates, eta {eta / 60:.0f} min)")
        finished = len(self.durations)
        line = f"progress: {finished} of {self.total} runs finished; running {', '.join(parts) or 'none'}"
        if quiet:
            line += f"; {quiet} starting or waiting for resources"
        line += f"; {len(self.queue)} queued"
        if self.durations and etas and not quiet:
            # The queue drains through the running slots at the finished runs' mean duration.
            mean = sum(self.durations) / finished
            left = (sum(etas) + len(self.queue) * mean) / len(etas)
            line += f"; suite eta about {left / 60:.0f} min"
        return line


def run_local(specs: list[RunSpec], manifest: Manifest, jobs: int, status: StatusFile,
              say: Callable[[str], None], threads: int | None = None) -> int | None:
    """Run the unfinished specs here, `jobs` at a time, each with `threads` threads (default
    cpu_count // jobs). Returns the signal that stopped the suite, or None when every run got its
    attempts."""
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    scheduler = Scheduler(specs, status, say)
    env = thread_env((os.cpu_count() or 1) // jobs if threads is None else threads)
    running: dict[subprocess.Popen, tuple[RunSpec, int, float]] = {}

    def stop(signum: int, _frame: object) -> None:
        if scheduler.stopped is None:
            scheduler.stopped = signum
            say(f"stopping ({signal.Signals(signum).name}): every run writes its checkpoint; the same command "
                "continues the suite")
            for proc in running:
                proc.send_signal(signal.SIGINT)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            while len(running) < jobs and (item := scheduler.next()) is not None:
                spec, attempt = item
                scheduler.started(spec, attempt)
                with spec.log.open("ab") as log:
                    proc = subprocess.Popen(spec.command(manifest), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
                running[proc] = (spec, attempt, time.monotonic())
            if not running:
                return scheduler.stopped
            time.sleep(POLL_S)
            scheduler.progress([spec for spec, _, _ in running.values()])
            for proc in [p for p in running if p.poll() is not None]:
                spec, attempt, began = running.pop(proc)
                scheduler.finished(spec, attempt, proc.returncode, time.monotonic() - began)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for proc in running:  # only on an error of the coordinator itself: never leave runs behind
            proc.send_signal(signal.SIGINT)
        for proc in running:
            proc.wait()


def _run_command(command: list[str], log: str, env: dict[str, str]) -> int:
    """A Ray task: run one command to its end; a cancellation (KeyboardInterrupt in the task)
    becomes one SIGINT to the run, which then writes its checkpoint."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()


def run_ray(specs: list[RunSpec], manifest: Manifest, address: str, status: StatusFile, say: Callable[[str], None],
            cpus_per_run: int, gpus_per_run: float) -> int | None:
    """Run the unfinished specs as Ray tasks (num_cpus / num_gpus each): `address` 'local' starts
    a cluster on this machine, 'auto' joins the running one, anything else is its address. Run
    directories must be on a path every node sees at the same place."""
    try:
        import ray
    except ImportError as exc:
        raise UserError('--ray needs Ray: pip install -e ".[cluster]"') from exc
    scheduler = Scheduler(specs, status, say)
    ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_run_command)
        env = thread_env(cpus_per_run)
        pending: dict[object, tuple[RunSpec, int, float]] = {}
        while True:
            while (item := scheduler.next()) is not None:
                spec, attempt = item
                scheduler.started(spec, attempt)
                ref = task.remote(spec.command(manifest), str(spec.log), env)
                pending[ref] = (spec, attempt, time.monotonic())
            if not pending:
                return scheduler.stopped
            try:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                scheduler.progress([spec for spec, _, _ in pending.values()])
            except KeyboardInterrupt:
                scheduler.stopped = signal.SIGINT
                say("stopping (SIGINT): every run writes its checkpoint; the same command continues the suite")
                for ref in pending:
                    ray.cancel(ref)  # KeyboardInterrupt inside the task: one SIGINT to its run
                done = list(pending)
            for ref in done:
                spec, attempt, began = pending.pop(ref)
                try:
                    code = ray.get(ref)
                except (ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError):
                    code = EXIT_INTERRUPTED[0] if scheduler.stopped is not None else 1
                scheduler.finished(spec, attempt, code, time.monotonic() - began)
    finally:
        ray.shutdown()
