"""`python -m ezero_async.main --game NAME`: the command line and the wiring of one run.

Every user error (unknown game, bad flag or override, missing run to resume, no CUDA device)
is one line on stderr and exit code 2, before anything is written to disk.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Sequence

from ezero_async.config import (PRESETS, RunConfig, TrackingConfig, build_config, config_from_dict, field_docs,
                                preset_device, preset_names)
from ezero_async.config.values import apply_overrides, parse_override
from ezero_async.errors import ConfigError, UserError, disk_error, disk_full_message

EXIT_USAGE = 2

# Flag -> config key, so a range error names the flag the user typed.
FLAG_KEYS = {
    "env_steps": ("--env-steps", "runtime.env_steps"),
    "seed": ("--seed", "runtime.seed"),
    "device": ("--device", "runtime.device"),
    "num_envs": ("--num-envs", "runtime.num_envs"),
    "eval_episodes": ("--eval-episodes", "runtime.eval_episodes"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage block too)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _games_epilog() -> str:
    from ezero_async.envs.registry import game_names

    lines = ["presets:"]
    for name in preset_names():
        lines.append(f"  {name:<13} {PRESETS[name]['about'].get('summary', '')}")
    lines.append("")
    lines.append("games (default preset: atari100k for Atari, cartpole for CartPole/Acrobot,")
    lines.append("       minatar for MinAtar/<Name>; --preset smoke works with any):")
    wrap = textwrap.TextWrapper(width=96, initial_indent="    ", subsequent_indent="    ")
    lines.append("  Atari (ale-py ROMs, offline):")
    lines.extend(wrap.wrap(", ".join(game_names("atari"))))
    lines.append("  MinAtar: " + ", ".join(f"MinAtar/{n}" for n in game_names("minatar")))
    lines.append("  classic control: " + ", ".join(game_names("classic")))
    lines.append("")
    lines.append("Any config field can be overridden with --set section.field=value (repeatable);")
    lines.append("--help-config lists every field with its default and meaning.")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m ezero_async.main",
        description="Train EfficientZero on one machine (asyncio runtime, batched Cython search).",
        epilog=_games_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("--run-dir", type=Path, help="directory for this run (default runs/<game>-<preset>-<time>)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    parser.add_argument("--help-config", action="store_true", help="list every config field and exit")
    parser.add_argument("--cleanup", action="store_true",
                        help="remove shared-memory segments left by killed runs and exit (every run start does this too)")
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that make a run's config (config_from_args reads them); shared with the profiler."""
    parser.add_argument("--game", help="game to train on, e.g. Breakout, Pong, MinAtar/Breakout, CartPole")
    parser.add_argument("--preset", help=f"configuration preset ({', '.join(preset_names())}); "
                                         "default: chosen from the game's family")
    parser.add_argument("--env-steps", type=int, help="environment steps to collect (runtime.env_steps)")
    parser.add_argument("--seed", type=int, help="seed of every random stream (runtime.seed)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the networks run (default auto)")
    parser.add_argument("--num-envs", type=int, help="self-play env coroutines (runtime.num_envs)")
    parser.add_argument("--eval-episodes", type=int, help="episodes per evaluation (runtime.eval_episodes)")
    parser.add_argument("--no-aim", action="store_true", help="do not track the run in Aim")
    parser.add_argument("--serial", action="store_true", help="one request at a time, bit-deterministic (debug)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set learner.lr_init=0.1 (repeatable)")


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, (_, key) in FLAG_KEYS.items():
        if getattr(args, attr) is not None:
            out[key] = getattr(args, attr)
    if args.no_aim:
        out["tracking.aim"] = False
    if args.serial:
        out["runtime.serial"] = True
    for text in args.overrides:
        key, value = parse_override(text)
        out[key] = value
    return out


def _name_flag(error: ConfigError, overrides: dict[str, Any]) -> ConfigError:
    """Prefix a range error with the flag the user typed, if the key came from one."""
    for flag, key in FLAG_KEYS.values():
        if str(error).startswith(f"{key}:") and key in overrides:
            return ConfigError(f"{flag} ({error})")
    return error


def load_run_config(run_dir: Path) -> RunConfig:
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"cannot resume {run_dir}: {path.name} not found there; pass a run directory "
                        "created by an earlier run")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"cannot resume {run_dir}: {path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                        "restore it from the run's latest checkpoint") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot resume {run_dir}: {path} is not text (byte {exc.start} is not UTF-8); restore "
                        "it from the run's latest checkpoint") from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:  # the file's own fault, never a flag's
        raise UserError(f"cannot resume {run_dir}: {path} is invalid ({exc}); restore it from the run's latest "
                        "checkpoint") from exc


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's configuration: a resumed run's saved config, or defaults <- preset <- game <- flags."""
    overrides = _flag_overrides(args)
    try:
        if args.resume is not None:
            # How progress shows belongs to this invocation (a terminal, a log), not to the run:
            # a run started with progress off by a batch tool shows it when resumed by hand.
            shown = {"tracking.progress": TrackingConfig.progress, **overrides}
            config = apply_overrides(load_run_config(args.resume), shown)
            if args.game is not None:
                raise UserError("--game cannot be combined with --resume (the run's game is fixed)")
            if args.preset is not None:
                raise UserError("--preset cannot be combined with --resume (override fields with --set)")
            config.check()
            return config
        if args.game is None:
            raise UserError("--game is required (e.g. --game Breakout); see --help for the games")
        from ezero_async.envs.registry import FAMILY_PRESET, resolve_game

        preset = args.preset
        if preset is None:
            preset = FAMILY_PRESET[resolve_game(args.game).family]
        return build_config(preset, args.game, overrides)
    except ConfigError as exc:
        raise _name_flag(exc, overrides) from exc


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise UserError(f"--device cuda: no CUDA device is visible to torch {torch.__version__} ({build}); "
                        "use --device cpu, or install the CUDA build of torch (README, 'GPU')")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def print_config_help(config: RunConfig, heading: str) -> None:
    print(f"# {heading}")
    for key, doc in field_docs().items():
        section, name = key.split(".")
        print(f"{key} = {getattr(getattr(config, section), name)!r}\n    {doc}")


def help_config(args: argparse.Namespace) -> int:
    """--help-config: every field with its value in the config the other flags make (the
    defaults when none is given) and its meaning."""
    try:
        if args.game is not None or args.resume is not None:
            config = config_from_args(args)
            where = f"the run {args.resume}" if args.resume is not None else f"game {args.game}"
            heading = f"config of {where}, preset {config.preset}, with the flags given"
        elif args.preset is not None:
            config = build_config(args.preset, None, _flag_overrides(args))
            heading = f"config of preset {args.preset} (before a game's own settings), with the flags given"
        else:
            config = apply_overrides(RunConfig(), _flag_overrides(args))
            heading = "defaults (pass --game and/or --preset to see a run's values)"
    except UserError as exc:
        print(f"ezero_async: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_config_help(config, heading)
    return 0


def slow_preset_warning(config: RunConfig, device: str) -> str | None:
    """A warning when the preset is sized for a GPU and the run would be on a CPU."""
    if preset_device(config.preset) != "cuda" or device != "cpu":
        return None
    return (f"preset {config.preset} is sized for a GPU; on this CPU a run would take weeks (each batch of "
            f"{config.learner.batch_size} first needs its reanalysis searches of {config.search.num_simulations} "
            "simulations, and one update takes seconds). For CPU: --preset minatar with a MinAtar game "
            "(--game MinAtar/Breakout) or --preset cartpole with CartPole; --preset smoke checks the set-up")


def cpu_bf16_warning(config: RunConfig, device: str) -> str | None:
    """A warning when a CPU run asks for bf16 autocast and the CPU has no bf16 instructions."""
    from ezero_async.runtime.fastpath import cpu_has_bf16

    asked = [f"{key} = bf16" for key, amp in (("learner.amp", config.learner.amp), ("batcher.amp", config.batcher.amp))
             if amp == "bf16"]
    if device != "cpu" or not asked or cpu_has_bf16():
        return None
    return (f"{' and '.join(asked)} on a CPU without bf16 instructions (AVX512-BF16 or AMX): bf16 autocast "
            "runs slower than fp32 here; --set learner.amp=off --set batcher.amp=off trains in fp32")


def cleanup() -> int:
    """--cleanup: unlink the shared-memory segments of runs whose process is gone."""
    from ezero_async.replay.shm import remove_stale_segments

    removed = remove_stale_segments()
    for segment in removed:
        print(f"removed /dev/shm/{segment.name} ({segment.size / 2**20:,.1f} MiB, pid {segment.pid} is gone)")
    print(f"ezero_async: {len(removed)} stale shared-memory segment(s) removed", file=sys.stderr)
    return 0


def _start(args: argparse.Namespace, config: RunConfig, run_dir: Path, game_id, device: str) -> dict[str, Any]:
    """Decide what to do with RUN_DIR (its lock held), say it, and train; returns the summary."""
    from ezero_async.replay.shm import remove_stale_segments
    from ezero_async.runtime.trainer import finished_run, train
    from ezero_async.tracking.run_dir import clear_unstarted_run, unstarted_run

    stale = remove_stale_segments()
    if stale:
        size = sum(s.size for s in stale) / 2**20
        pids = ", ".join(sorted({str(s.pid) for s in stale}))
        print(f"ezero_async: removed {len(stale)} shared-memory segment(s) ({size:,.0f} MiB) left by killed runs "
              f"(pid {pids})", file=sys.stderr)
    resume = args.resume is not None
    if resume:
        finished = finished_run(run_dir)
        if finished is not None:  # one line, not "resuming ..." and then the error
            raise UserError(finished)
        if unstarted_run(run_dir):
            print(f"ezero_async: {run_dir} has no checkpoint yet (stopped before its first one): starting it "
                  "again from its saved config", file=sys.stderr)
            clear_unstarted_run(run_dir)
            resume = False
        else:
            print(f"ezero_async: resuming {run_dir} ({game_id.label}, preset {config.preset}, device {device})",
                  file=sys.stderr)
    if not resume:
        if (run_dir / "config.json").exists():
            if not unstarted_run(run_dir):
                raise UserError(f"{run_dir} already holds a run; pass another --run-dir or --resume it")
            print(f"ezero_async: {run_dir} holds a run that stopped before its first checkpoint: starting "
                  "again in place", file=sys.stderr)
            clear_unstarted_run(run_dir)
        print(f"ezero_async: {game_id.label} ({game_id.env_id}), preset {config.preset}, device {device}, "
              f"{config.runtime.env_steps} env steps -> {run_dir}", file=sys.stderr)
    for warning in (slow_preset_warning(config, device), cpu_bf16_warning(config, device)):
        if warning is not None:
            print(f"ezero_async: warning: {warning}", file=sys.stderr)
    return train(config, run_dir, device, resume=resume)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.help_config:
        return help_config(args)
    if args.cleanup:
        return cleanup()
    try:
        config = config_from_args(args)
        from ezero_async.envs.registry import make_game, resolve_game

        game_id = resolve_game(config.env.game, config.env.family)
        device = resolve_device(config.runtime.device)
        game = make_game(config.env, seed=config.runtime.seed, training=True)
        game.close()
    except UserError as exc:
        print(f"ezero_async: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from ezero_async.runtime.trainer import Interrupted
    from ezero_async.tracking.run_dir import own_run_dir

    if args.resume is not None:
        run_dir = args.resume
    else:
        run_dir = args.run_dir or Path("runs") / f"{game_id.slug}-{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    created = not run_dir.exists()
    try:
        # The lock first: what the directory holds is only decided by its one owner.
        with own_run_dir(run_dir):
            summary = _start(args, config, run_dir, game_id, device)
    except UserError as exc:  # also found once the run's files are read (checkpoint, replay store)
        print(f"ezero_async: error: {exc}", file=sys.stderr)
        if created and run_dir.is_dir() and [p.name for p in run_dir.iterdir()] == [".lock"]:
            shutil.rmtree(run_dir)  # nothing half-written: a directory this call made and left empty
        return EXIT_USAGE
    except Interrupted as exc:
        print(f"ezero_async: {exc}; checkpoint written, replay flushed: continue with --resume {run_dir}",
              file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("ezero_async: interrupted; resources released", file=sys.stderr)
        return 130
    except Exception as exc:  # a full or read-only disk is one line; anything else keeps its traceback
        disk = disk_error(exc)
        if disk is None:
            raise
        from ezero_async.tracking.checkpoint import list_checkpoints

        found = list_checkpoints(run_dir)
        print(f"ezero_async: error: {disk_full_message(disk, run_dir, found[-1][1].stat().st_size if found else None)}",
              file=sys.stderr)
        return EXIT_USAGE
    final = summary["final_eval"]
    print(f"ezero_async: done: {summary['env_steps']} env steps, {summary['training_steps']} training steps, "
          f"final evaluation {final['return_mean']:.2f} +- {final['return_std']:.2f} over {final['episodes']} "
          f"episodes ({run_dir / 'summary.json'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
