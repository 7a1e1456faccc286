"""ProfileReport: one profiling window as a per-stage table, and as flat metrics for Aim/JSON.

Busy shares are seconds per wall-clock second. For a thread's own stages (inference, tree,
learner, replay work on the event loop, tracker) 100% is one thread fully busy, and stages of
several threads of one kind are summed (two busy inference threads show 200%). For the
waits of coroutines (env coroutines awaiting env steps, search or the pacer; reanalysis
coroutines awaiting targets or room in the learner's queue) 100% means every coroutine of
that kind waited all the time (runtime/waits.py counts open waits up to now, so a share never
jumps past 100% when a long wait ends).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ezero_async.config.sections import RunConfig
from ezero_async.profiling.probe import CpuUse, Window


@dataclass(frozen=True)
class Setup:
    """The settings a profile was taken with (the knobs recommendations talk about)."""

    game: str
    preset: str
    device: str
    cores: int
    num_envs: int
    max_batch: int
    max_wait_ms: float
    searches_in_flight: int
    reanalyse_workers: int
    reanalyse_fraction: float
    reanalyse_mode: str
    queue_size: int
    batch_size: int
    num_simulations: int
    search_mode: str
    log_interval_s: float
    amp: str
    total_updates: int = 0
    """Updates of the whole configured run (warm-up, collection and tail), for the projection."""
    final_eval_episodes: int = 0
    isolation: str = "thread"
    """learner.isolation ('thread', 'process' or 'auto')."""
    fast_path: str = ""
    """The CUDA switches in effect ('cuda_graphs tf32 channels_last', any of them; 'none' when
    off or on a CPU)."""
    inference_amp: str = "off"
    """batcher.amp."""
    cpu_bf16: bool = False
    """The profiled machine's CPU has bf16 instructions (AVX512-BF16 or AMX), where learner.amp
    and batcher.amp 'bf16' run faster than fp32."""
    learner_compile: str = "off"
    """learner.compile ('off', 'on' or 'auto')."""
    inference_compile: str = "off"
    """batcher.compile ('off', 'on' or 'auto')."""

    @classmethod
    def of(cls, config: RunConfig, device: str, cores: int, planned: RunConfig | None = None) -> Setup:
        """`config`: as profiled; `planned`: the run as configured, which the projection is for
        (the profiler's own overrides make the profiled run endless)."""
        from ezero_async.runtime.fastpath import cpu_has_bf16
        from ezero_async.runtime.pacer import Pacer

        rt, b = config.runtime, config.batcher
        plan = (planned or config).runtime
        return cls(game=config.env.game, preset=config.preset, device=device, cores=cores, num_envs=rt.num_envs,
                   max_batch=b.max_batch, max_wait_ms=b.max_wait_ms,
                   searches_in_flight=b.searches_in_flight, reanalyse_workers=rt.reanalyse_workers,
                   reanalyse_fraction=rt.reanalyse_fraction, reanalyse_mode=rt.reanalyse_mode,
                   queue_size=config.learner.queue_size,
                   batch_size=config.learner.batch_size, num_simulations=config.search.num_simulations,
                   search_mode=config.search.mode, log_interval_s=config.tracking.log_interval_s, amp=config.learner.amp,
                   total_updates=Pacer(plan, (planned or config).learner).total_steps,
                   final_eval_episodes=plan.final_eval_episodes, isolation=config.learner.isolation,
                   fast_path=fast_path(config, device), inference_amp=b.amp, cpu_bf16=cpu_has_bf16(),
                   learner_compile=config.learner.compile, inference_compile=b.compile)


def fast_path(config: RunConfig, device: str) -> str:
    """The CUDA fast-path switches a run on `device` uses, by config name ('none' if none)."""
    import torch

    from ezero_async.envs.registry import resolve_game
    from ezero_async.runtime.fastpath import in_effect

    image = config.model.kind != "mlp" and resolve_game(config.env.game, config.env.family).family != "classic"
    return " ".join(in_effect(config, torch.device(device), image)) or "none"


STAGES: tuple[tuple[str, str, str], ...] = (
    # (stage key of Monitor.stage_seconds, row label, who does it)
    ("env_wait", "env stepping (await step/reset)", "env coroutines"),
    ("search_wait", "self-play: awaiting its search", "env coroutines"),
    ("pacer_wait", "self-play: held by the pacer", "env coroutines"),
    ("replay_append", "replay append", "event loop"),
    ("inference_net", "inference (network)", "inference threads"),
    ("tree", "tree select/backup", "inference threads"),
    ("replay_assembly", "replay assembly (sample, targets)", "event loop"),
    ("reanalyse_targets_wait", "reanalysis: awaiting values/search", "reanalysis coroutines"),
    ("reanalyse_queue_full_wait", "reanalysis: learner queue full", "reanalysis coroutines"),
    ("learner_update", "learner compute", "learner thread"),
    ("learner_wait_batch", "learner data wait", "learner thread"),
    ("learner_stage", "learner batch staging (H2D)", "learner thread"),
    ("tracker", "tracker (metrics, Aim)", "loop + aim thread"),
)


@dataclass
class ProfileReport:
    setup: Setup
    seconds: float
    env_steps_per_s: float
    training_steps_per_s: float
    roots_per_s: float
    stages: dict[str, float]
    """Stage key (STAGES) -> busy share over the window."""
    group_fill: float
    """Mean roots per search group / max_batch."""
    group_size: float
    group_wait_ms: float
    learner_queue_mean: float
    learner_queue_peak: float
    pending_roots_mean: float
    pending_roots_peak: float
    cpu: CpuUse
    gpu_util: float | None = None
    gpu_memory_mib: float | None = None
    episode_length: float = 0.0
    """Mean length of the last training episodes (train/length_last10) in the window."""
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_window(cls, setup: Setup, window: Window) -> ProfileReport:
        m, seconds = window.metrics, max(window.seconds, 1e-9)
        return cls(setup=setup, seconds=window.seconds, env_steps_per_s=window.env_steps / seconds,
                   training_steps_per_s=window.training_steps / seconds,
                   roots_per_s=m.get("throughput/searched_roots_per_s", 0.0),
                   stages={key: m.get(f"timing/{key}_frac", 0.0) for key, _, _ in STAGES},
                   group_fill=m.get("batcher/group_fill", 0.0), group_size=m.get("throughput/mean_group_size", 0.0),
                   group_wait_ms=m.get("batcher/group_wait_ms", 0.0),
                   learner_queue_mean=m.get("queue/learner_batches", 0.0),
                   learner_queue_peak=window.peaks.get("queue/learner_batches", 0.0),
                   pending_roots_mean=m.get("queue/pending_roots", 0.0),
                   pending_roots_peak=window.peaks.get("queue/pending_roots", 0.0),
                   cpu=window.cpu, gpu_util=window.gpu_util, gpu_memory_mib=window.gpu_memory_mib,
                   episode_length=m.get("train/length_last10", 0.0))

    def projection(self) -> tuple[float, float | None]:
        """(seconds to train the whole run at the window's update rate, seconds of its final
        evaluation or None): the final evaluation searches one root per episode step, estimated
        as final_eval_episodes x the window's mean training episode length at its roots/s.
        Periodic evaluations run beside training and are inside the update rate only if one
        fell in the window; start-up is not counted."""
        s = self.setup
        train = s.total_updates / self.training_steps_per_s if self.training_steps_per_s > 0 else math.inf
        if self.roots_per_s <= 0 or self.episode_length <= 0:
            return train, None
        return train, s.final_eval_episodes * self.episode_length / self.roots_per_s

    @property
    def loop_busy(self) -> float:
        """CPU share of the event loop thread (cores' worth)."""
        return self.cpu.threads.get("MainThread", 0.0)

    @property
    def cores_busy(self) -> float:
        """Mean busy share of the machine's cores."""
        return sum(self.cpu.cores) / len(self.cpu.cores) if self.cpu.cores else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat profile/ metrics (Aim, JSON)."""
        out = {"profile/env_steps_per_s": self.env_steps_per_s,
               "profile/training_steps_per_s": self.training_steps_per_s,
               "profile/roots_per_s": self.roots_per_s, "profile/group_fill": self.group_fill,
               "profile/group_wait_ms": self.group_wait_ms, "profile/learner_queue_mean": self.learner_queue_mean,
               "profile/pending_roots_mean": self.pending_roots_mean, "profile/cores_busy": self.cores_busy,
               "profile/loop_cpu": self.loop_busy, "profile/env_workers_cpu": self.cpu.env_workers,
               "profile/run_cores": self.cpu.run_cores, "profile/other_cores": self.cpu.other_cores,
               **{f"profile/stage/{key}": value for key, value in self.stages.items()}}
        if self.gpu_util is not None:
            out["profile/gpu_util"] = self.gpu_util / 100.0
        train, final = self.projection()
        out["profile/projected_hours"] = (train + (final or 0.0)) / 3600.0
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def to_dict(self) -> dict:
        return asdict(self)


def _runs_on(who: str, setup: Setup) -> str:
    counts = {"env coroutines": setup.num_envs, "reanalysis coroutines": setup.reanalyse_workers,
              "inference threads": setup.searches_in_flight}
    return f"{counts[who]} {who}" if who in counts else who


def _hours(seconds: float) -> str:
    return "never (no updates in the window)" if not math.isfinite(seconds) else (
        f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min")


def _projection_line(report: ProfileReport) -> str:
    train, final = report.projection()
    s = report.setup
    line = (f"projected wall clock for this run: {_hours(train + (final or 0.0))} ({s.total_updates:,} updates at "
            f"{report.training_steps_per_s:,.2f}/s")
    if final is None:
        return line + "; the final evaluation is not estimated: no episode ended or no search in the window)"
    return line + (f", plus about {_hours(final)} of final evaluation: {s.final_eval_episodes} episodes x "
                   f"{report.episode_length:,.0f} steps at {report.roots_per_s:,.0f} roots/s)")


def format_report(report: ProfileReport, advice: list) -> str:
    """The report as text: header, per-stage table, utilisation, queues, recommendations."""
    s = report.setup
    lines = [
        f"# profile: {s.game} ({s.preset}) on {s.device}, {s.cores} cores; {report.seconds:.1f} s window",
        f"# {s.num_envs} env coroutines, {s.search_mode} search of {s.num_simulations} "
        f"simulations, max_batch {s.max_batch}, max_wait {s.max_wait_ms:g} ms, {s.searches_in_flight} searches in "
        f"flight, {s.reanalyse_workers} reanalysis workers (fraction {s.reanalyse_fraction:g}, {s.reanalyse_mode} "
        f"mode), learner batch {s.batch_size}, queue {s.queue_size}; amp {s.amp} (inference {s.inference_amp}), fast path {s.fast_path or 'none'}",
        f"throughput: {report.env_steps_per_s:,.1f} env steps/s, {report.training_steps_per_s:,.2f} updates/s, "
        f"{report.roots_per_s:,.0f} searched roots/s",
        _projection_line(report),
        "",
        f"{'stage':<36} {'runs on':<24} {'busy':>6}",
    ]
    for key, label, who in STAGES:
        lines.append(f"{label:<36} {_runs_on(who, s):<24} {100 * report.stages[key]:>5.0f}%")
    lines.append(f"{'batcher: group fill':<36} {'search groups':<24} {100 * report.group_fill:>5.0f}%  "
                 f"(mean {report.group_size:.1f} of {s.max_batch} roots, launched {report.group_wait_ms:.1f} ms after "
                 f"the first request)")
    lines += [
        "",
        "CPU cores busy: " + " ".join(f"{100 * c:.0f}%" for c in report.cpu.cores)
        + f" (mean {100 * report.cores_busy:.0f}%): this run {report.cpu.run_cores:.2f} cores, other processes "
        f"{report.cpu.other_cores:.2f}",
        "CPU by thread (cores' worth): " + ", ".join(f"{name} {share:.2f}" for name, share in report.cpu.threads.items()
                                                     if share >= 0.005)
        + f"; busy worker processes (env stepping): {report.cpu.env_worker_count}, {report.cpu.env_workers:.2f}",
        "GPU: " + ("n/a (no CUDA device or no nvidia-smi)" if report.gpu_util is None else
                   f"{report.gpu_util:.0f}% utilised, peak memory {report.gpu_memory_mib:,.0f} MiB"),
        f"queues: learner batches mean {report.learner_queue_mean:.1f} / peak {report.learner_queue_peak:.0f} of "
        f"{s.queue_size}; roots waiting for a group mean {report.pending_roots_mean:.1f} / peak "
        f"{report.pending_roots_peak:.0f}",
    ]
    if report.env_steps_per_s == 0.0:
        lines.append("note: no env steps in the window: self-play waited for the learner all along (the replay "
                     "ratio held it; see 'held by the pacer')")
    lines += [f"note: {note}" for note in report.notes]
    lines += ["", "recommendations:"]
    lines += [f"  {i}. {a.finding}\n     -> {a.action}" for i, a in enumerate(advice, 1)]
    return "\n".join(lines)
