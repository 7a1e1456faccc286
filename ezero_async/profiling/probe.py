"""ProfileProbe: what a profiling run records while it trains.

The probe is a Monitor sink, so the stage figures it aggregates are exactly those the metrics
file and the Aim dashboard get (timing/, batcher/, queue/, throughput/). It adds what only
the operating system knows, read at the measurement window's start and end: busy share of
each CPU core, CPU time of each thread of this process by its Python name (the event loop is
MainThread; a learner process counts as one thread), and CPU time of the env worker processes.
With CUDA, `nvidia-smi` runs beside the training and samples GPU utilisation every 500 ms.

The window opens `warmup_s` after steady state begins: the learner has updated and self-play
collects again after the learner's warm-up (start-up, the random-policy phase, the warm-up
updates and first compilations are not steady state). It closes at the last snapshot.
"""
from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil

from ezero_async.learner.process import learner_pids

WINDOW_METRICS = ("timing/", "batcher/", "throughput/", "queue/")
"""Snapshot metrics the probe averages over its window (the rest are losses, returns, ...)."""


LEARNER_PROCESS = "learner (process)"
"""The CPU time of a learner process goes under this thread name."""

BUSY_WORKER = 0.05
"""A worker process using more than this share of a core over the window is counted as busy
(self-play env workers; the evaluation pool's workers idle between evaluations)."""


@dataclass
class CpuClock:
    """Cumulative CPU seconds at one moment: per core (busy, total), per thread name of this
    process, and per worker process (multiprocessing children: the env workers)."""

    at: float
    cores: list[tuple[float, float]]
    threads: dict[str, float]
    workers: dict[int, float]

    @classmethod
    def read(cls) -> CpuClock:
        process = psutil.Process()
        names = {t.native_id: t.name for t in threading.enumerate()}
        threads: dict[str, float] = {}
        for t in process.threads():
            name = names.get(t.id, "native (torch/zarr/uvloop pools)")
            threads[name] = threads.get(name, 0.0) + t.user_time + t.system_time
        workers: dict[int, float] = {}
        learners = learner_pids()
        for child in process.children(recursive=True):
            try:  # spawned workers only: not nvidia-smi, py-spy or multiprocessing's resource tracker
                if child.pid in learners:  # learner.isolation 'process': counted as a thread of the run
                    threads[LEARNER_PROCESS] = threads.get(LEARNER_PROCESS, 0.0) + _cpu_seconds(child)
                elif any("spawn_main" in part for part in child.cmdline()):
                    workers[child.pid] = _cpu_seconds(child)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):  # ended between the listing and the read
                continue
        cores = [(t.user + t.nice + t.system + t.irq + t.softirq + t.steal, sum(t))
                 for t in psutil.cpu_times(percpu=True)]
        return cls(time.monotonic(), cores, threads, workers)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@dataclass
class CpuUse:
    """CPU use between two clocks: busy fraction per core, and cores' worth of CPU per thread
    and over the busy worker processes."""

    cores: list[float]
    threads: dict[str, float]
    env_workers: float
    """Cores' worth used by the busy worker processes together."""
    env_worker_count: int
    """Worker processes busier than BUSY_WORKER."""

    @property
    def run_cores(self) -> float:
        """Cores' worth used by this run: its threads and its worker processes."""
        return sum(self.threads.values()) + self.env_workers

    @property
    def other_cores(self) -> float:
        """Cores' worth used by everything else on the machine during the window."""
        return max(sum(self.cores) - self.run_cores, 0.0)

    @classmethod
    def between(cls, start: CpuClock, end: CpuClock) -> CpuUse:
        wall = max(end.at - start.at, 1e-9)
        cores = [(b1 - b0) / max(t1 - t0, 1e-9) for (b0, t0), (b1, t1) in zip(start.cores, end.cores)]
        threads = {name: (seconds - start.threads.get(name, 0.0)) / wall for name, seconds in end.threads.items()}
        workers = [(seconds - start.workers.get(pid, 0.0)) / wall for pid, seconds in end.workers.items()]
        busy = [share for share in workers if share >= BUSY_WORKER]
        return cls(cores, dict(sorted(threads.items(), key=lambda kv: -kv[1])), sum(busy), len(busy))


class GpuSampler:
    """GPU utilisation (%) and memory (MiB) every 500 ms from `nvidia-smi`, a process beside
    the run (no thread of ours, no NVML binding needed). `stop()` returns the samples."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        if shutil.which("nvidia-smi") is not None:
            self._process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "500"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop(self) -> list[tuple[float, float]]:
        if self._process is None:
            return []
        self._process.terminate()
        out, _ = self._process.communicate(timeout=10)
        samples = []
        for line in out.splitlines():
            fields = [f.strip() for f in line.split(",")]
            if len(fields) >= 2 and fields[0].replace(".", "", 1).isdigit():
                samples.append((float(fields[0]), float(fields[1])))
        return samples


@dataclass
class Window:
    """What the probe measured over its window."""

    seconds: float
    metrics: dict[str, float]
    """Time-weighted mean of each window metric over the window's snapshots."""
    peaks: dict[str, float]
    """Maximum of each queue/ metric over the window."""
    cpu: CpuUse
    gpu_util: float | None
    """Mean GPU utilisation in percent (None without nvidia-smi)."""
    gpu_memory_mib: float | None
    env_steps: int
    training_steps: int


class ProfileProbe:
    """Monitor sink recording a measurement window (see the module docstring). Runs on the
    event loop thread, like every sink; `traces` (profiling.traces) are started when the window
    opens, ticked at every snapshot and stopped at close, all on that thread."""

    def __init__(self, warmup_s: float, start_transitions: int = 0, traces: list | None = None,
                 clock=time.monotonic) -> None:
        """start_transitions: env steps collected before self-play waits for the warm-up updates;
        steady state begins once more have been collected."""
        self.warmup_s = warmup_s
        self.start_transitions = start_transitions
        self.traces = traces or []
        self.clock = clock
        self._steady_since: float | None = None
        self._start: CpuClock | None = None
        self._end: CpuClock | None = None
        self._snapshots: list[tuple[float, int, int, dict[str, float]]] = []
        self._gpu: GpuSampler | None = None
        self._gpu_samples: list[tuple[float, float]] = []
        self._error: Exception | None = None

    def emit(self, env_steps: int, training_steps: int, metrics: dict[str, float]) -> None:
        if self._error is not None:
            raise self._error
        if any(name.startswith("eval/") for name in metrics):
            return  # evaluations are not pipeline snapshots
        now = self.clock()
        if self._start is None:
            if training_steps == 0 or env_steps <= self.start_transitions:
                return
            if self._steady_since is None:
                self._steady_since = now
            if now - self._steady_since < self.warmup_s:
                return
            self._start = CpuClock.read()
            self._gpu = GpuSampler()
            self._after_emit("start")
        else:
            self._after_emit("tick")
        self._end = CpuClock.read()
        self._snapshots.append((now, env_steps, training_steps,
                                {k: v for k, v in metrics.items() if k.startswith(WINDOW_METRICS)}))

    def _after_emit(self, method: str) -> None:
        """Start or tick the traces right after this emit, on the loop but outside the monitor's
        emit: a trace stopping and exporting is the profiler's cost, not the tracker's."""
        if self.traces:
            asyncio.get_running_loop().call_soon(self._run_traces, method)

    def _run_traces(self, method: str) -> None:
        try:
            for trace in self.traces:
                getattr(trace, method)()
        except Exception as exc:  # a loop callback's error would only be logged: raised by the next emit
            self._error = exc

    def close(self) -> None:
        """Stop the GPU sampler, then the traces (a trace that fails to write raises here)."""
        if self._gpu is not None:
            self._gpu_samples = self._gpu.stop()
            self._gpu = None
        for trace in self.traces:
            trace.stop()
        if self._error is not None:
            raise self._error

    @property
    def opened(self) -> bool:
        return len(self._snapshots) >= 2

    @property
    def window_seconds(self) -> float:
        """How long the window has lasted so far (0 until it opens)."""
        return self._snapshots[-1][0] - self._snapshots[0][0] if self._snapshots else 0.0

    def window(self) -> Window:
        """The window's aggregate (needs two snapshots after the window opened)."""
        if not self.opened:
            raise RuntimeError("the profiling window never opened: the run ended before two monitor snapshots "
                               "in steady state (after the learner's warm-up and the probe's)")
        snaps = self._snapshots[1:]  # the first snapshot's rates cover time before the window
        weights = [b[0] - a[0] for a, b in zip(self._snapshots, snaps)]
        metrics: dict[str, float] = {}
        for name in sorted({k for _, _, _, m in snaps for k in m}):
            pairs = [(w, m[name]) for w, (_, _, _, m) in zip(weights, snaps)
                     if m.get(name) is not None and math.isfinite(m[name])]
            if pairs:
                metrics[name] = sum(w * v for w, v in pairs) / max(sum(w for w, _ in pairs), 1e-9)
        peaks = {name: max(m.get(name, 0.0) for _, _, _, m in snaps) for name in metrics if name.startswith("queue/")}
        first, last = self._snapshots[0], self._snapshots[-1]
        gpu = self._gpu_samples
        return Window(seconds=last[0] - first[0], metrics=metrics, peaks=peaks,
                      cpu=CpuUse.between(self._start, self._end),
                      gpu_util=sum(u for u, _ in gpu) / len(gpu) if gpu else None,
                      gpu_memory_mib=max(m for _, m in gpu) if gpu else None,
                      env_steps=last[1] - first[1], training_steps=last[2] - first[2])
