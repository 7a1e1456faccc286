"""One training run: build the components, run them under one supervisor, evaluate, summarise.

Supervisor: every coroutine runs in one asyncio TaskGroup; the learner thread reports errors
through a callback that fails a watcher task; a watchdog names a stage that stops making
progress. Any failure cancels everything, the original traceback is re-raised, and every
resource (env workers, shared memory, threads) is released on every exit path.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import queue
import signal
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ezero_async.config.sections import LearnerConfig, RunConfig
from ezero_async.config.values import config_to_dict
from ezero_async.envs.pool import EnvPool, GameFactory
from ezero_async.envs.registry import resolve_game
from ezero_async.envs.scores import episode_cap_frames
from ezero_async.errors import ConfigError, UserError
from ezero_async.inference.graphs import compiles
from ezero_async.inference.runner import ModelRunner
from ezero_async.inference.search_service import SearchService
from ezero_async.learner.learner import Learner
from ezero_async.learner.model import build_model
from ezero_async.learner.process import LearnerProcess, LearnerRecipe, batch_queue
from ezero_async.learner.thread import LearnerThread
from ezero_async.learner.weights import WeightStore
from ezero_async.replay.buffer import Replay
from ezero_async.replay.store import Cursors, ReplayStoreError, StoreMeta
from ezero_async.runtime.actors import EpisodeStats, self_play
from ezero_async.runtime.evaluate import evaluate
from ezero_async.runtime.fastpath import apply_precision, to_layout
from ezero_async.runtime.monitor import LossMeter, MetricsFile, Monitor, ProgressLine, Sink, eval_metrics
from ezero_async.runtime.pacer import Pacer
from ezero_async.runtime.reanalyse import PriorityFeed, ReanalyseStats, reanalyse
from ezero_async.runtime.sweep import Sweeps
from ezero_async.tracking.atomic import write_text_atomic
from ezero_async.tracking.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ezero_async.tracking.machine import describe_machine
from ezero_async.faults import fault_point
from ezero_async.tracking.run_dir import own_run_dir

WATCH_INTERVAL_S = 0.5
"""How often the supervisor checks the learner thread and the stall watchdog."""


class StallError(RuntimeError):
    """A pipeline stage made no progress for runtime.stall_timeout seconds."""


@dataclass
class RunParts:
    """Everything a run owns that must be released on exit."""

    pool: EnvPool | None = None
    eval_pool: EnvPool | None = None
    replay: Replay | None = None
    runner: ModelRunner | None = None
    learner_thread: LearnerThread | LearnerProcess | None = None
    monitor: Monitor | None = None

    def close(self) -> list[BaseException]:
        """Release everything, in dependency order; returns the errors met on the way (the caller
        re-raises them, or attaches them as notes to the error already unwinding)."""
        errors: list[BaseException] = []
        parts = (self.runner, self.pool, self.eval_pool, self.replay, self.monitor)
        for close in [self._stop_learner] + [part.close for part in parts if part is not None]:
            try:
                close()
            except Exception as exc:  # keep releasing the rest; reported by the caller
                errors.append(exc)
        return errors

    def _stop_learner(self) -> None:
        if self.learner_thread is not None:
            self.learner_thread.stop()
            self.learner_thread.join(timeout=30.0)  # re-raises the thread's own error, if any


def train(config: RunConfig, run_dir: Path, device: str, resume: bool = False, *, sinks: Sequence[Sink] = (),
          stop_when: Callable[[], str | None] | None = None) -> dict[str, Any]:
    """Run training to the end and write RUN_DIR/summary.json; returns the summary. With
    `resume`, continue the run in `run_dir` from its newest checkpoint and its replay store.
    `sinks` get every monitor snapshot too (profiling). `stop_when` is polled by the supervisor
    (on the loop, every WATCH_INTERVAL_S): once it returns a reason, the run stops as on SIGINT
    (checkpoint written, resumable) and raises StopRequested(reason). The run holds RUN_DIR's
    lock throughout (RunDirBusy if another process does)."""
    with own_run_dir(run_dir):
        try:
            import uvloop
        except ImportError:
            import warnings

            warnings.warn("uvloop is not installed: running on the standard asyncio loop (slower hand-offs)")
            return asyncio.run(_train(config, run_dir, torch.device(device), resume, list(sinks), stop_when))
        return uvloop.run(_train(config, run_dir, torch.device(device), resume, list(sinks), stop_when))


class StopRequested(Exception):
    """The run was asked to stop before its end: it stops cleanly, writes a checkpoint, and
    raises this to its caller (no traceback: nothing went wrong)."""


class Interrupted(StopRequested):
    """SIGINT or SIGTERM asked the run to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


async def _train(config: RunConfig, run_dir: Path, device: torch.device, resume: bool, extra_sinks: list[Sink],
                 stop_when: Callable[[], str | None] | None) -> dict[str, Any]:
    started = time.monotonic()
    game = resolve_game(config.env.game, config.env.family)
    learner_process = learner_in_process(config.learner, device)  # a bad combination fails before anything starts
    compiles(config.batcher, device)  # raises here, not in the first search, for batcher.compile 'on' off a CPU
    checkpoint = _resume_point(run_dir) if resume else None
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.json", json.dumps(config_to_dict(config), indent=2))
    rt, lc, seed = config.runtime, resolve_compile(config.learner, learner_process), config.runtime.seed
    torch.manual_seed(seed)
    if checkpoint is not None:
        torch.set_rng_state(checkpoint["torch_rng"])
    loop = asyncio.get_running_loop()
    parts = RunParts()
    pacer = Pacer(rt, lc)
    progress = ProgressLine(rt.env_steps, pacer.total_steps, mode=config.tracking.progress,
                            plain_interval_s=config.tracking.progress_interval_s, waiting_on=pacer.waiting_on)
    say = progress.note
    signalled: asyncio.Future = loop.create_future()
    stop_signals = _catch_signals(loop, signalled, say)
    write_checkpoint = None
    try:
        workers = 0 if rt.serial else None
        parts.pool = EnvPool(GameFactory(config.env, training=True), num_envs=rt.num_envs, seed=seed,
                             num_workers=workers)
        # One env per evaluation episode, up to a full search group: all episodes then search
        # together, so each network call carries as many roots as it can (with num_envs envs, a
        # 32-episode final test of CartPole made 4x the calls, each as costly as a full one).
        eval_envs = min(max(rt.eval_episodes, rt.final_eval_episodes), config.batcher.max_batch)
        parts.eval_pool = EnvPool(GameFactory(config.env, training=False), num_envs=eval_envs, seed=seed + 10_000,
                                  num_workers=workers)
        spec, num_actions, stack = parts.pool.obs_spec, parts.pool.num_actions, config.env.frame_stack

        apply_precision(rt, device)

        def make_model() -> torch.nn.Module:
            return to_layout(build_model(config.model, spec.shape, stack, num_actions, lc.lstm_horizon).to(device),
                             rt, device)

        model = make_model()
        versions_held = math.ceil((rt.self_play_lag + lc.publish_interval) / lc.publish_interval) + 2
        online = WeightStore(max(2, versions_held), name="online")
        target = WeightStore(3, name="target")
        stats = EpisodeStats()
        reanalysis = ReanalyseStats()
        evaluations: list[dict[str, Any]] = []
        learner = Learner(model, lc, device, frame_stack=stack, seed=seed, priority_eps=config.replay.priority_eps)
        prior_wall = 0.0
        if checkpoint is None:
            online.publish(0, model)  # the initial weights act and reanalyse until the learner publishes
            target.publish(0, model)
            parts.replay = Replay(config.replay, obs_shape=spec.shape, obs_dtype=spec.dtype.name,
                                  num_actions=num_actions, frame_stack=stack, seed=seed, store_dir=run_dir / "replay",
                                  meta=StoreMeta(game.name, config.preset))
        else:
            parts.replay = _restore(checkpoint, run_dir, config, learner, online, target, pacer, make_model())
            evaluations.extend(checkpoint["evaluations"])
            stats.returns.extend(checkpoint["episodes"]["returns"])
            stats.lengths.extend(checkpoint["episodes"]["lengths"])
            prior_wall = float(checkpoint["wall_time_s"])
        resumed_at = (pacer.collected, pacer.trained)
        feed = PriorityFeed(parts.replay, first_step=pacer.trained)
        learner_failed: asyncio.Future = loop.create_future()
        losses = LossMeter()

        def on_priorities(indices: np.ndarray, priorities: np.ndarray) -> None:  # learner thread
            feed.pending.append((indices, priorities))
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(pacer.update_done()))

        def on_error(exc: BaseException) -> None:  # learner thread
            loop.call_soon_threadsafe(lambda: learner_failed.done() or learner_failed.set_exception(exc))

        checkpoints: asyncio.Queue = asyncio.Queue()

        def on_checkpoint(step: int, snapshot: dict) -> None:  # learner thread
            loop.call_soon_threadsafe(checkpoints.put_nowait, (step, snapshot))

        callbacks = dict(on_priorities=on_priorities, online=online, target=target, on_error=on_error,
                         on_step=lambda r: losses.add(r.stats), on_checkpoint=on_checkpoint,
                         checkpoint_interval=config.tracking.checkpoint_interval)
        if learner_process:
            batches = batch_queue(lc.queue_size)
            recipe = LearnerRecipe(config.model, tuple(spec.shape), stack, num_actions, lc, seed,
                                   config.replay.priority_eps)
            parts.learner_thread = LearnerProcess(learner, recipe, batches, **callbacks)
        else:
            batches = queue.Queue(maxsize=lc.queue_size)
            parts.learner_thread = LearnerThread(learner, batches, **callbacks)
        # Evaluations act with a private copy of the weights they test: an evaluation outlives
        # the few versions the online store keeps for self-play.
        evaluation = WeightStore(2, name="evaluation")
        parts.runner = ModelRunner.configured(make_model, device,
                                              {"online": online, "target": target, "evaluation": evaluation},
                                              config.batcher, serial=rt.serial)
        service = SearchService(parts.runner, config.search, config.batcher, num_actions, serial=rt.serial)
        sweeps = None
        if rt.reanalyse_mode == "sweep" and rt.reanalyse_fraction > 0.0:
            sweeps = Sweeps(parts.replay, service, pacer, config.search, interval=lc.target_update_interval,
                            capacity=config.replay.capacity, num_actions=num_actions, seed=seed,
                            start_step=rt.reanalyse_start_step)
        sinks: list[Sink] = [MetricsFile(run_dir / "metrics.jsonl"), progress,
                             *extra_sinks]
        aim = None
        if config.tracking.aim:
            from ezero_async.tracking.aim_sink import AimSink, repo_for

            aim = AimSink(repo_for(config.tracking.aim_repo, run_dir), experiment=game.label, run_name=run_dir.name,
                          hparams=config_to_dict(config),
                          run_hash=checkpoint.get("aim_run") if checkpoint is not None else None)
            sinks.append(aim)  # last: Monitor.close closes the file sinks first
        parts.monitor = Monitor(pacer=pacer, stats=stats, reanalysis=reanalysis, service=service, runner=parts.runner,
                                learner_thread=parts.learner_thread, batches=batches, losses=losses, sinks=sinks,
                                num_envs=rt.num_envs, reanalyse_workers=rt.reanalyse_workers,
                                max_batch=config.batcher.max_batch)
        parts.learner_thread.start()

        saving = threading.Lock()  # one checkpoint file at a time (a periodic one may still be in flight at exit)

        def begin_checkpoint(step: int, snapshot: dict) -> tuple[dict, Callable[[], None]]:
            """On the loop: the checkpoint's state as it stands now, and the replay flush up to
            now started (returns its wait)."""
            wait, cursors = parts.replay.flush_begin()
            # The cursors of this flush travel in the checkpoint: resuming from it rebuilds the
            # replay as it stood here even if the store commits later flushes (one commit point).
            state = {"config": config_to_dict(config), "step": step, **snapshot,
                     "replay": {"write_count": parts.replay.hot.write_count, "collected": parts.replay.collected,
                                "cursors": None if cursors is None else cursors._asdict()},
                     "evaluations": list(evaluations),
                     "episodes": {"returns": list(stats.returns), "lengths": list(stats.lengths)},
                     "wall_time_s": prior_wall + time.monotonic() - started,
                     "torch_rng": torch.get_rng_state()}
            return state, wait

        def commit_checkpoint(state: dict, flushed: Callable[[], None]) -> Path:
            """Any thread: wait for the replay flush, then write the checkpoint that names it (in
            that order: a store is never older than a checkpoint)."""
            flushed()
            fault_point("checkpoint-flushed")
            # Waits for the Aim thread's run (a second or so, at the first checkpoint only).
            state["aim_run"] = aim.wait_run_hash() if aim is not None else None
            with saving:
                return save_checkpoint(run_dir, state, config.tracking.keep_checkpoints)

        def write_checkpoint(step: int, snapshot: dict) -> Path:
            return commit_checkpoint(*begin_checkpoint(step, snapshot))

        async def checkpointer() -> None:
            """Write the checkpoints the learner thread snapshots, one at a time, in order; the
            waiting and the writing (seconds for an Atari model) run off the event loop."""
            while True:
                step, snapshot = await checkpoints.get()
                await asyncio.to_thread(commit_checkpoint, *begin_checkpoint(step, snapshot))
                checkpoints.task_done()

        async def fail_fast() -> None:
            """Raise the learner's exception (traceback intact) or Interrupted the moment either
            arrives, whatever the run is doing (training, a periodic or the final evaluation):
            raising inside the task group cancels every other task."""
            done, _ = await asyncio.wait((learner_failed, signalled), return_when=asyncio.FIRST_COMPLETED)
            for failure in done:
                failure.result()

        async def supervise() -> None:
            """Name a stalled stage; stop when asked; return when training is done."""
            while pacer.trained < pacer.total_steps:
                reason = stop_when() if stop_when is not None else None
                if reason is not None:
                    raise StopRequested(reason)
                stage = pacer.stalled(rt.stall_timeout)
                if stage is not None:
                    raise StallError(f"stage '{stage}' made no progress for {rt.stall_timeout:.0f} s "
                                     f"(collected {pacer.collected}, built {pacer.built}, trained {pacer.trained} "
                                     f"of {pacer.total_steps})")
                await asyncio.sleep(WATCH_INTERVAL_S)

        eval_model = make_model()

        async def run_eval(version: int, max_steps: int | None, episodes: int) -> dict[str, Any]:
            """Evaluate online weights `version` (held by the online store now) over `episodes`
            episodes, report it, and return its row of `evaluations`."""
            if evaluation.newest != version:
                await parts.runner.call(_copy_version, online, evaluation, version, eval_model)
            result = await evaluate(parts.eval_pool, service, version, episodes, stack, max_steps,
                                    kind="evaluation")
            metrics = eval_metrics(result.returns, result.lengths, game, episode_cap_frames(config.env, max_steps),
                                   result.distinct)
            evaluations.append({"training_steps": version, "env_steps": pacer.transitions_for(version),
                                **{k.removeprefix("eval/"): v for k, v in metrics.items()}})
            parts.monitor.emit(metrics, env_steps=pacer.transitions_for(version), training_steps=version)
            return evaluations[-1]

        async def periodic_evals() -> None:
            """Evaluate the online weights at training step 0 and every eval_interval steps."""
            if rt.eval_interval == 0 or rt.eval_episodes == 0:
                return
            done = {row["training_steps"] for row in evaluations}
            for at in range(0, pacer.total_steps, rt.eval_interval):
                if at < pacer.trained or lc.publish_interval * (at // lc.publish_interval) in done:
                    continue  # evaluated before a resume, or its weights are gone
                await pacer.wait_trained(at)
                await run_eval(lc.publish_interval * (at // lc.publish_interval), rt.periodic_eval_max_steps,
                               rt.eval_episodes)

        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(fail_fast(), name="fail-fast")
            dispatcher = group.create_task(service.run(), name="search-dispatcher")
            monitor = group.create_task(parts.monitor.run(config.tracking.log_interval_s), name="monitor")
            evals = group.create_task(periodic_evals(), name="periodic-eval")
            saver = group.create_task(checkpointer(), name="checkpointer")
            for i in range(rt.num_envs):
                group.create_task(self_play(i, parts.pool, service, parts.replay, pacer, rt, config.search, stack,
                                            stats), name=f"self-play-{i}")
            if sweeps is not None:
                sweeper = group.create_task(sweeps.run(), name="reanalyse-sweeps")
            for w in range(rt.reanalyse_workers):
                group.create_task(reanalyse(w, rt.reanalyse_workers, parts.replay, feed, service, pacer, batches,
                                            config.replay, lc, rt, config.search, stack, num_actions, reanalysis,
                                            sweeps),
                                  name=f"reanalyse-{w}")
            await group.create_task(supervise(), name="supervisor")
            parts.learner_thread.stop()
            parts.learner_thread.join(timeout=60.0)
            if sweeps is not None:
                sweeper.cancel()  # its last version's sweep may outlast the last batch that reads it
            train_wall = time.monotonic() - started
            await checkpoints.join()
            saver.cancel()
            await evals
            final = await run_eval(online.newest, None, rt.final_eval_episodes)
            write_checkpoint(parts.learner_thread.step, parts.learner_thread.snapshot())  # also flushes the replay
            parts.monitor.emit(parts.monitor.snapshot())
            monitor.cancel()
            dispatcher.cancel()
            watcher.cancel()
        summary = _summary(config, game.label, final, evaluations, pacer, stats, train_wall,
                           prior_wall + time.monotonic() - started, service, parts, learner.model, resumed_at,
                           device)
        write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    except BaseException as exc:
        _restore_signals(loop, stop_signals)
        _retrieve(signalled)
        interrupt = _interrupt_in(exc)
        if interrupt is not None and write_checkpoint is not None and parts.learner_thread is not None:
            # A requested stop keeps everything so far: a last checkpoint (which flushes the replay).
            thread = parts.learner_thread
            thread.stop(drop_update=True)
            if thread.is_alive():
                say(f"stopping: the learner drops its update in progress ({thread.step} done) ...")
            thread.join(timeout=60.0)
            say(f"stopping: writing the exit checkpoint after {thread.step} updates and flushing the replay ...")
            write_checkpoint(thread.step, thread.snapshot())
        if interrupt is not None:
            say("stopping: closing env workers, inference threads and shared memory ...")
        for error in parts.close():
            if error is not exc:
                exc.add_note(f"while shutting down: {type(error).__name__}: {error}")
        if interrupt is not None:  # a clean, requested stop: no traceback, the caller reports it
            raise interrupt from None
        raise
    _restore_signals(loop, stop_signals)
    _retrieve(signalled)  # a signal during the last moments of a finished run changes nothing
    errors = parts.close()
    if errors:
        raise errors[0]
    return summary


def learner_in_process(lc: LearnerConfig, device: torch.device) -> bool:
    """Whether the learner runs in a child process (learner.isolation), for a learner on `device`;
    raises ConfigError for a combination that cannot run (learner.compile 'on' needs the process)."""
    if lc.isolation == "process" and device.type != "cpu":
        raise ConfigError(f"learner.isolation: 'process' runs the learner on the CPU, not on {device.type}; "
                          "use 'thread' or 'auto'")
    in_process = lc.isolation == "process" or (lc.isolation == "auto" and device.type == "cpu")
    if lc.compile == "on" and not in_process:  # a thread could not give up on a cold compile when the run stops
        raise ConfigError(f"learner.compile: 'on' compiles in the learner's own process, and here it runs as a "
                          f"thread (isolation {lc.isolation!r} on {device.type}); use learner.isolation=process on "
                          "a CPU, or learner.compile=auto")
    return in_process


def resolve_compile(lc: LearnerConfig, in_process: bool) -> LearnerConfig:
    """`lc` with learner.compile 'auto' made 'on' (the learner in its own process) or 'off'."""
    if lc.compile != "auto":
        return lc
    return dataclasses.replace(lc, compile="on" if in_process else "off")


def _catch_signals(loop: asyncio.AbstractEventLoop, signalled: asyncio.Future, say: Callable[[str], None]) -> list[int]:
    """First SIGINT/SIGTERM: stop the run cleanly (the fail-fast task raises Interrupted); the
    handler is then removed, so a second one acts at once (KeyboardInterrupt, or termination)."""
    caught = []

    def handler(signum: int) -> None:
        if not signalled.done():
            signalled.set_exception(Interrupted(signum))
            say(f"stopping ({signal.Signals(signum).name}): a checkpoint of the updates done so far follows; a "
                "second signal stops at once, without one")
        _restore_signals(loop, caught)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: the caller handles signals
            continue
        caught.append(signum)
    return caught


def _retrieve(future: asyncio.Future) -> None:
    """Mark a failure future's exception as seen once the run has dealt with it (asyncio would
    otherwise log 'Future exception was never retrieved' at exit)."""
    if future.done() and not future.cancelled():
        future.exception()


def _restore_signals(loop: asyncio.AbstractEventLoop, signums: list[int]) -> None:
    for signum in signums:
        loop.remove_signal_handler(signum)
    signums.clear()


def _interrupt_in(exc: BaseException) -> StopRequested | None:
    """The StopRequested inside `exc` (possibly nested in exception groups), if that is all it holds."""
    if isinstance(exc, StopRequested):
        return exc
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _interrupt_in(exc.exceptions[0])
    return None


def finished_run(run_dir: Path) -> str | None:
    """Why `run_dir` cannot be resumed because it already finished, or None."""
    if (run_dir / "summary.json").exists():
        return (f"{run_dir} already finished (summary.json exists): nothing to resume; evaluate it with "
                f"python -m ezero_async.evaluate {run_dir}")
    return None


def _resume_point(run_dir: Path) -> dict[str, Any]:
    """The newest checkpoint of a run that can be resumed (UserError with what to do otherwise)."""
    problem = finished_run(run_dir)
    if problem is not None:
        raise UserError(problem)
    checkpoint = load_checkpoint(run_dir)
    for key in ("online", "torch_rng"):
        if key not in checkpoint:
            raise CheckpointError(f"checkpoint {checkpoint['path']} lacks '{key}'; it cannot be resumed "
                                  "(it can still be evaluated)")
    return checkpoint


def _restore(checkpoint: dict[str, Any], run_dir: Path, config: RunConfig, learner: Learner, online: WeightStore,
             target: WeightStore, pacer: Pacer, scratch: torch.nn.Module) -> Replay:
    """Learner, weight stores, replay and pacer as they stood at the checkpoint."""
    where = checkpoint["path"]
    try:
        learner.load_state_dict(checkpoint["learner"])
        for store, versions in ((online, checkpoint["online"]), (target, checkpoint["target"])):
            for held in versions:  # oldest first: exactly the versions the next steps ask for
                scratch.load_state_dict(held["model"])
                store.publish(held["version"], scratch)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {where} does not fit this run's model/config ({str(exc)[:160]}); "
                              "resume with the run's own config.json") from exc
    saved = checkpoint["replay"].get("cursors")
    cursors = None if saved is None else Cursors(**saved)
    try:
        replay = Replay.load(run_dir / "replay", config.replay, config.runtime.seed, cursors=cursors)
    except ReplayStoreError as exc:
        raise UserError(f"cannot resume {run_dir} from {where}: {exc}; restore replay/ from a copy, or start a new "
                        "run (the checkpoints can still be evaluated)") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot resume {run_dir}: its replay store is unreadable ({type(exc).__name__}: "
                        f"{str(exc)[:160]})") from exc
    if replay.collected != checkpoint["replay"]["collected"]:  # a checkpoint without cursors (older format)
        replay.close()
        raise UserError(f"cannot resume {run_dir}: the replay store holds {replay.collected} transitions but "
                        f"checkpoint {where} was written after {checkpoint['replay']['collected']}")
    replay.hot.abandon_open_episodes()  # the envs start new games
    pacer.restore(trained=int(checkpoint["step"]), collected=replay.collected)
    return replay


def _copy_version(source: WeightStore, dest: WeightStore, version: int, scratch: torch.nn.Module) -> None:
    """Publish `version` of `source` into `dest`."""
    source.load_into(scratch, version)
    dest.publish(version, scratch)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, in state_dict order (bit-identity checks)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _summary(config: RunConfig, game: str, final: dict[str, Any], evaluations: list[dict[str, Any]], pacer: Pacer,
             stats: EpisodeStats, train_wall: float, wall: float, service: SearchService, parts: RunParts,
             model: torch.nn.Module, resumed_at: tuple[int, int], device: torch.device) -> dict[str, Any]:
    """resumed_at: (transitions, updates) when this process started (0, 0 unless resumed);
    throughput and `machine` cover this process's share."""
    sizes = np.asarray(service.group_sizes, np.float64)
    return {
        "game": game,
        "preset": config.preset,
        "seed": config.runtime.seed,
        "final_eval": {"episodes": int(final["episodes"]), "return_mean": final["return_mean"],
                       "return_std": final["return_std"], "human_normalised_score": final.get("human_normalised"),
                       "length_mean": final["length_mean"], "distinct_episodes": int(final["distinct_episodes"])},
        "evaluations": evaluations,
        "env_steps": pacer.collected,
        "training_steps": pacer.trained,
        "train_episodes": len(stats.returns),
        "train_return_last10": statistics.fmean(stats.returns[-10:]) if stats.returns else None,
        "weights_sha256": weights_digest(model),
        # Wall-clock figures (the only fields that differ between two --serial runs of one seed on
        # one machine) and the machine that set their pace:
        "wall_time_s": wall,
        "machine": describe_machine(device),
        "throughput": {"env_steps_per_s": (pacer.collected - resumed_at[0]) / train_wall,
                       "training_steps_per_s": (pacer.trained - resumed_at[1]) / train_wall,
                       "search_groups": len(sizes), "roots_searched": service.roots_searched,
                       "group_size_mean": float(sizes.mean()) if len(sizes) else 0.0,
                       "group_size_p10_p50_p90": np.percentile(sizes, [10, 50, 90]).tolist() if len(sizes) else None},
        # Seconds per stage, as Monitor.stage_seconds (threads' busy time; *_wait averaged over
        # the stage's coroutines), plus the batcher's group-forming time summed over groups.
        "timing_s": {"train_wall": train_wall, **parts.monitor.stage_seconds(), "batcher_wait": service.batch_wait_s},
    }
