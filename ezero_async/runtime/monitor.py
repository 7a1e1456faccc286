"""Monitor: periodic snapshots of a run's counters, handed to metric sinks.

Every `log_interval_s` the monitor reads counters that other stages already keep (pacer,
episode stats, search service, inference runner, learner thread, replay, learner queue) and
emits one flat dict of namespaced metrics (`train/`, `loss/`, `throughput/`, `timing/`,
`queue/`, `eval/`) to every sink. Reading counters is a few attribute loads on the loop
thread; a sink must return at once (a slow backend gets its own thread).
"""
from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO, Callable, Protocol

from ezero_async.envs.registry import GameId
from ezero_async.envs.scores import human_normalised

Metrics = dict[str, float]
"""Namespaced metric name -> value of one snapshot."""


class Sink(Protocol):
    def emit(self, env_steps: int, training_steps: int, metrics: Metrics) -> None:
        """Record one snapshot (must not block: called on the event loop)."""

    def close(self) -> None: ...


class MetricsFile:
    """RUN_DIR/metrics.jsonl: one JSON object per snapshot, flushed line by line (the record a
    crashed run leaves behind, and what tools/ plot learning curves from)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def emit(self, env_steps: int, training_steps: int, metrics: Metrics) -> None:
        row = {"time": time.time(), "env_steps": env_steps, "training_steps": training_steps}
        row.update({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()})
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


ETA_WINDOW_S = 300.0
"""The ETA uses the training rate over this many seconds: a momentary stop (an evaluation, the
first reanalysed batch) does not make it vanish or jump."""


class ProgressLine:
    """Progress for a person: on a terminal (stderr is a TTY), one line rewritten in place at
    every snapshot; without one (nohup, a batch job, a log file), one plain line to stdout every
    `plain_interval_s`. mode 'plain' forces plain lines, 'off' keeps only evaluation results and
    notes. Evaluation results and notes (`note`) always go to stderr, each on its own line.

    `waiting_on` names what the run waits for; the line shows it whenever neither counter moved
    since the previous line (a run that seems frozen says why)."""

    def __init__(self, total_env_steps: int, total_training_steps: int, *, mode: str = "auto",
                 plain_interval_s: float = 60.0, waiting_on: Callable[[], str] | None = None,
                 stream: IO[str] | None = None, plain_stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.plain_stream = plain_stream if plain_stream is not None else sys.stdout
        self.live = mode == "auto" and self.stream.isatty()
        self.plain = mode == "plain" or (mode == "auto" and not self.live)
        self.plain_interval_s = plain_interval_s
        self.waiting_on = waiting_on
        self.totals = (total_env_steps, total_training_steps)
        self._history: deque[tuple[float, int]] = deque()
        self._last_counters: tuple[int, int] | None = None
        self._last_plain = -math.inf
        self._dirty = False

    def emit(self, env_steps: int, training_steps: int, metrics: Metrics) -> None:
        if "eval/return_mean" in metrics:
            text = (f"eval @ training step {training_steps} ({env_steps} env steps): return "
                    f"{metrics['eval/return_mean']:.2f} +- {metrics['eval/return_std']:.2f} "
                    f"({int(metrics['eval/episodes'])} episodes)")
            self.note(text)
            return
        now = time.monotonic()
        line = self.line(env_steps, training_steps, metrics, now)
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
            self._dirty = True
        elif self.plain and now - self._last_plain >= self.plain_interval_s:
            self._last_plain = now
            self.plain_stream.write(time.strftime("%H:%M:%S ") + line + "\n")
            self.plain_stream.flush()

    def line(self, env_steps: int, training_steps: int, metrics: Metrics, now: float) -> str:
        """The progress line of one snapshot (also keeps the history behind the ETA)."""
        env_total, train_total = self.totals
        parts = [f"env {env_steps}/{env_total}", f"train {training_steps}/{train_total}"]
        rate = metrics.get("throughput/env_steps_per_s")
        if rate is not None:
            parts.append(f"{rate:.0f} env/s, {metrics.get('throughput/training_steps_per_s', 0.0):.1f} upd/s")
        if "train/return_last10" in metrics:
            parts.append(f"return(10) {metrics['train/return_last10']:.1f}")
        if "loss/total" in metrics:
            parts.append(f"loss {metrics['loss/total']:.3f}")
        self._history.append((now, training_steps))
        while len(self._history) > 1 and now - self._history[0][0] > ETA_WINDOW_S:
            self._history.popleft()
        first_time, first_steps = self._history[0]
        if training_steps > first_steps and now > first_time:
            remaining = (train_total - training_steps) / ((training_steps - first_steps) / (now - first_time))
            parts.append(f"eta {_duration(remaining)}")
        counters = (env_steps, training_steps)
        if counters == self._last_counters and self.waiting_on is not None:
            parts.append(f"waiting on {self.waiting_on()}")
        self._last_counters = counters
        return " | ".join(parts)

    def note(self, text: str) -> None:
        """A line of its own on stderr (after the live line, which is redrawn at the next snapshot)."""
        self.stream.write(("\r\x1b[2K" if self._dirty else "") + text + "\n")
        self.stream.flush()
        self._dirty = False

    def close(self) -> None:
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class RateMeter:
    """Per-second rates of monotone counters between two snapshots."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, name: str, value: float, now: float) -> float | None:
        last = self._last.get(name)
        self._last[name] = (now, value)
        if last is None or now <= last[0]:
            return None
        return (value - last[1]) / (now - last[0])


def eval_metrics(returns: list[float], lengths: list[int], game: GameId, max_frames: int | None = None,
                 distinct: int | None = None) -> Metrics:
    """eval/ metrics of one evaluation of `game`; human-normalised for games with reference scores
    whose episodes were allowed the protocol's length (max_frames: the episodes' cap in frames,
    None for uncapped); distinct: how many different action sequences the episodes played."""
    mean = statistics.fmean(returns) if returns else math.nan
    metrics: Metrics = {
        "eval/episodes": float(len(returns)),
        "eval/return_mean": mean,
        "eval/return_std": statistics.pstdev(returns) if returns else math.nan,
        "eval/length_mean": statistics.fmean(lengths) if lengths else math.nan,
    }
    if distinct is not None:
        metrics["eval/distinct_episodes"] = float(distinct)
    hns = human_normalised(game, mean, max_frames) if returns else None
    if hns is not None:
        metrics["eval/human_normalised"] = hns
    return metrics


class LossMeter:
    """Means of the learner's LossStats between snapshots (fed on the learner thread; a list
    append and a swap are atomic under the GIL, so no lock is needed)."""

    def __init__(self) -> None:
        self._stats: list = []

    def add(self, stats) -> None:  # learner thread
        self._stats.append(stats)

    def drain(self) -> Metrics:
        stats, self._stats = self._stats, []
        if not stats:
            return {}
        names = {"loss": "loss/total", "value": "loss/value", "policy": "loss/policy",
                 "value_prefix": "loss/value_prefix", "consistency": "loss/consistency",
                 "grad_norm": "loss/grad_norm", "lr": "loss/lr", "prior_entropy": "policy/prior_entropy",
                 "target_entropy": "policy/target_entropy", "prior_mode_share": "policy/prior_mode_share",
                 "root_value": "value/root", "root_value_target": "value/root_target"}
        return {metric: statistics.fmean(getattr(s, field) for s in stats) for field, metric in names.items()}


class Monitor:
    """Builds snapshots from the run's live objects (see trainer.RunParts); `sinks` get each one."""

    def __init__(self, *, pacer, stats, reanalysis, service, runner, learner_thread, batches, losses: LossMeter,
                 sinks: list[Sink], num_envs: int, reanalyse_workers: int, max_batch: int) -> None:
        self.pacer, self.stats, self.reanalysis = pacer, stats, reanalysis
        self.service, self.runner = service, runner
        self.learner_thread, self.batches, self.losses = learner_thread, batches, losses
        self.sinks = sinks
        self.num_envs, self.reanalyse_workers, self.max_batch = num_envs, reanalyse_workers, max_batch
        self.rates = RateMeter()
        self.started = time.monotonic()
        self.emit_s = 0.0
        """Seconds spent handing snapshots to sinks on the loop (part of timing/tracker_frac)."""
        self._groups_seen = 0
        self._wait_seen = 0.0

    def stage_seconds(self) -> dict[str, float]:
        """Cumulative busy seconds per stage, normalised so that 1.0 per wall second means the
        stage's whole capacity: its one thread fully busy, every inference thread busy (network
        and tree averaged over the inference threads), or every coroutine of the stage waiting
        (the *_wait stages of env and reanalysis coroutines, averaged over coroutines). So every
        timing/*_frac metric is a fraction in [0, 1]."""
        play, re = self.stats.waits.seconds(), self.reanalysis.waits.seconds()
        threads = self.runner.workers
        tree = self.service.tree_s
        return {
            "env_wait": play["env"] / self.num_envs,
            "search_wait": play["search"] / self.num_envs,
            "pacer_wait": play["pacer"] / self.num_envs,
            "replay_append": self.stats.timing["replay"],
            "inference_net": (self.runner.busy_s - tree) / threads,
            "tree": tree / threads,
            "replay_assembly": self.reanalysis.timing["assemble"],
            "reanalyse_targets_wait": re["targets"] / self.reanalyse_workers,
            "reanalyse_queue_full_wait": re["queue_full"] / self.reanalyse_workers,
            **{f"learner_{k}": v for k, v in self.learner_thread.timing.items()},
            "tracker": self.emit_s + sum(getattr(sink, "busy_s", 0.0) for sink in self.sinks),
        }

    def snapshot(self) -> Metrics:
        now = time.monotonic()
        pacer, stats = self.pacer, self.stats
        m: Metrics = {"train/episodes": float(len(stats.returns)), "replay/transitions": float(pacer.collected),
                      "queue/learner_batches": float(self.batches.qsize()),
                      "queue/pending_roots": float(self.service.pending_roots)}
        if stats.returns:
            m["train/return_last10"] = statistics.fmean(stats.returns[-10:])
            m["train/length_last10"] = statistics.fmean(stats.lengths[-10:])
        m.update(self.losses.drain())
        for name, value in (("env_steps", pacer.collected), ("training_steps", pacer.trained),
                            ("searched_roots", self.service.roots_searched)):
            rate = self.rates.rate(name, value, now)
            if rate is not None:
                m[f"throughput/{name}_per_s"] = rate
        sizes = self.service.group_sizes[self._groups_seen:]
        self._groups_seen += len(sizes)
        waited, self._wait_seen = self.service.batch_wait_s - self._wait_seen, self.service.batch_wait_s
        if sizes:
            m["throughput/mean_group_size"] = statistics.fmean(sizes)
            m["batcher/group_fill"] = m["throughput/mean_group_size"] / self.max_batch
            m["batcher/group_wait_ms"] = 1000.0 * waited / len(sizes)
        elapsed = max(now - self.started, 1e-9)
        for name, seconds in self.stage_seconds().items():
            rate = self.rates.rate(f"timing/{name}", seconds, now)
            m[f"timing/{name}_frac"] = rate if rate is not None else seconds / elapsed
        train_rate = m.get("throughput/training_steps_per_s")
        if train_rate:
            m["throughput/eta_s"] = (pacer.total_steps - pacer.trained) / train_rate
        return m

    def emit(self, metrics: Metrics, env_steps: int | None = None, training_steps: int | None = None) -> None:
        """Hand `metrics` to every sink, stamped with the step counters (default: now)."""
        started = time.perf_counter()
        env_steps = self.pacer.collected if env_steps is None else env_steps
        training_steps = self.pacer.trained if training_steps is None else training_steps
        for sink in self.sinks:
            sink.emit(env_steps, training_steps, metrics)
        self.emit_s += time.perf_counter() - started

    async def run(self, interval_s: float) -> None:
        """Emit a snapshot every interval_s until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.emit(self.snapshot())

    def close(self) -> None:
        """Close every sink, then raise the first error met (one failing sink never leaves the
        others open)."""
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # re-raised below, after the other sinks are closed
                errors.append(exc)
        if errors:
            raise errors[0]
