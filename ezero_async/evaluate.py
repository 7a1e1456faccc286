"""`python -m ezero_async.evaluate RUN_DIR_OR_CHECKPOINT`: score a saved checkpoint, outside training.

Why a separate command: training evaluates on its own schedule with its own budget; a user also
wants to score a checkpoint again later (more episodes, more simulations, another seed) and to
watch it play. This command rebuilds the run's network from the checkpoint and plays evaluation
episodes through the same pieces training uses (EnvPool in evaluation mode, WeightStore,
ModelRunner, SearchService, runtime.evaluate: argmax of the visit counts, no root noise, raw
scores), so its numbers mean what the training evaluations mean.

Outputs: a short report on stdout, a JSON file (written atomically) and optionally a GIF of the
first episode (image games: their observations; classic-control games, whose observations are
state vectors: the picture of each state, drawn by envs.classic.render_state). Every user error
(missing or corrupt checkpoint, bad flag, unwritable output) is one line on stderr and exit
code 2, and then nothing has been written.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ezero_async.errors import ConfigError, UserError
from ezero_async.tracking.atomic import atomic_path, write_text_atomic
from ezero_async.main import EXIT_USAGE, _Parser, resolve_device

EVAL_SEED_OFFSET = 10_000
"""Evaluation games are seeded seed + 10_000 + i, as the trainer's evaluation games are."""
MAX_VIDEO_FRAMES = 2_000
"""Frames kept for --video (Pillow holds every GIF frame in memory while writing)."""
VIDEO_MIN_SIDE = 192
"""Small frames are scaled up (nearest neighbour) until their long side reaches this many pixels."""
CHANNEL_COLOURS = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                            (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (240, 240, 240)],
                           dtype=np.uint8)
"""RGB of channel i (cycled) when a frame's channels are object masks (MinAtar)."""

FLAG_KEYS = {"--episodes": "runtime.eval_episodes", "--simulations": "search.num_simulations",
             "--seed": "runtime.seed", "--search-mode": "search.mode", "--sticky-actions": "env.sticky_action_prob"}


@dataclass(frozen=True)
class EvalRequest:
    """What the command line asks for, validated (nothing is loaded or written yet)."""

    source: Path
    """Run directory (its newest checkpoint) or one checkpoint file."""
    episodes: int | None
    """Episodes to play; None: the run's runtime.eval_episodes."""
    simulations: int | None
    """Simulations per search; None: the run's search.num_simulations."""
    search_mode: str | None
    """'pucb' or 'gumbel'; None: the run's search.mode."""
    sticky_actions: float | None
    """Probability that the game repeats the previous action (Atari, MinAtar); None: the run's."""
    seed: int | None
    """Seed of the evaluation games; None: the run's runtime.seed."""
    device: str
    """'auto', 'cpu' or 'cuda'."""
    max_steps: int | None
    """Agent steps after which an episode is cut; None: the game's evaluation cap."""
    video: Path | None
    """GIF of the first episode, or None."""
    json_path: Path | None
    """Where the JSON goes; None: RUN_DIR/eval-step<step>.json."""


@dataclass(frozen=True)
class Played:
    """What playing the episodes returns."""

    returns: list[float]
    """Raw score of each episode."""
    lengths: list[int]
    """Agent steps of each episode."""
    distinct: int
    """How many different action sequences the episodes played (EvalResult.distinct)."""
    frames: list[np.ndarray]
    """Observations of the first episode, empty without --video: one frame [H, W, C] uint8 each
    (Atari, MinAtar), or the state vector [D] (classic control; drawn when the GIF is written)."""
    video_cut: bool
    """The first episode had more than MAX_VIDEO_FRAMES frames; the video stops there."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m ezero_async.evaluate",
                     description="Evaluate a checkpoint: the search's action without root noise (pUCT: the most "
                                 "visited; Gumbel: zero Gumbel draws), raw scores.")
    parser.add_argument("source", type=Path, metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory (its newest checkpoint) or a checkpoints/step-*.pt file")
    parser.add_argument("--episodes", type=int, help="episodes to play (default: the run's runtime.eval_episodes)")
    parser.add_argument("--simulations", type=int,
                        help="simulations per search (default: the run's search.num_simulations)")
    parser.add_argument("--search-mode", choices=("pucb", "gumbel"),
                        help="search to play with (default: the run's search.mode; any checkpoint works with either)")
    parser.add_argument("--sticky-actions", type=float, metavar="P",
                        help="probability that the game repeats the previous action, Atari and MinAtar (default: "
                             "the run's env.sticky_action_prob; MinAtar's own protocol uses 0.1: without it a "
                             "MinAtar game has few distinct starts and a fixed policy replays them)")
    parser.add_argument("--seed", type=int, help="seed of the evaluation games (default: the run's seed)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the network runs (default auto)")
    parser.add_argument("--max-steps", type=int, help="cut each episode after this many agent steps "
                                                      "(default: the game's evaluation cap)")
    parser.add_argument("--video", type=Path, metavar="PATH.gif", help="write the first episode as an animated GIF")
    parser.add_argument("--json", dest="json_path", type=Path, metavar="PATH",
                        help="results file (default: RUN_DIR/eval-step<step>.json)")
    return parser


def request_from_args(args: argparse.Namespace) -> EvalRequest:
    """Check what can be checked before loading anything (raises UserError)."""
    if args.episodes is not None and args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.video is not None:
        suffix = args.video.suffix.lower()
        if suffix != ".gif":
            why = "writing mp4 needs ffmpeg, which is not a dependency" if suffix == ".mp4" else \
                f"{suffix or 'no extension'} is not a video format this command writes"
            raise UserError(f"--video {args.video}: {why}; pass a .gif path")
        try:
            import PIL  # noqa: F401 - only its presence is checked here
        except ImportError:
            raise UserError("--video needs Pillow (pip install pillow)") from None
        _check_parent(args.video, "--video")
    if args.json_path is not None:
        _check_parent(args.json_path, "--json")
    device = resolve_device(args.device)
    return EvalRequest(args.source, args.episodes, args.simulations, args.search_mode, args.sticky_actions, args.seed,
                       device, args.max_steps, args.video, args.json_path)


def _check_parent(path: Path, flag: str) -> None:
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory; pass a file path")


def load(request: EvalRequest) -> tuple[dict[str, Any], Any]:
    """The checkpoint and its run's config with the request's overrides applied and checked."""
    from ezero_async.config import apply_overrides, config_from_dict
    from ezero_async.tracking.checkpoint import CheckpointError, load_checkpoint

    state = load_checkpoint(request.source)
    path = state["path"]
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"checkpoint {path} holds no config dict")
    learner = state["learner"]
    if not isinstance(learner, dict) or not isinstance(learner.get("model"), dict):
        raise CheckpointError(f"checkpoint {path} holds no learner model weights")
    config = config_from_dict(state["config"])
    overrides: dict[str, Any] = {"runtime.device": request.device}
    for flag, value in (("--episodes", request.episodes), ("--simulations", request.simulations),
                        ("--seed", request.seed), ("--search-mode", request.search_mode),
                        ("--sticky-actions", request.sticky_actions)):
        if value is not None:
            overrides[FLAG_KEYS[flag]] = value
    config = apply_overrides(config, overrides)
    try:
        config.check()
    except ConfigError as exc:
        for flag, key in FLAG_KEYS.items():
            if str(exc).startswith(f"{key}:") and key in overrides:
                raise ConfigError(f"{flag} ({exc})") from exc
        raise
    if request.sticky_actions is not None:
        from ezero_async.envs.registry import resolve_game

        family = resolve_game(config.env.game, config.env.family).family
        if family not in ("atari", "minatar"):
            raise UserError(f"--sticky-actions: {config.env.game} ({family}) has no sticky actions; "
                            "only Atari and MinAtar games do")
    if config.runtime.eval_episodes < 1:
        raise UserError("the run evaluates 0 episodes (runtime.eval_episodes = 0); pass --episodes N")
    return state, config


async def play(config: Any, weights: dict[str, Any], checkpoint: str, max_steps: int | None, *,
               record: bool, banner: str) -> Played:
    """Play config.runtime.eval_episodes evaluation episodes with `weights` (an online-network
    state dict); `banner` goes to stderr once everything is built (after the last possible user
    error, so an error stays the only line). Every resource is released on every exit path."""
    import torch

    from ezero_async.envs.pool import EnvPool, GameFactory
    from ezero_async.envs.registry import resolve_game
    from ezero_async.inference.runner import ModelRunner
    from ezero_async.inference.search_service import SearchService
    from ezero_async.learner.model import build_model
    from ezero_async.learner.weights import WeightStore
    from ezero_async.runtime.evaluate import evaluate
    from ezero_async.runtime.fastpath import apply_precision, to_layout
    from ezero_async.tracking.checkpoint import CheckpointError

    rt, device, stack = config.runtime, torch.device(config.runtime.device), config.env.frame_stack
    torch.manual_seed(rt.seed)
    num_envs = min(rt.num_envs, rt.eval_episodes)
    # One game gains nothing from a worker process: the loop waits on each of its steps anyway.
    pool = EnvPool(GameFactory(config.env, training=False), num_envs=num_envs, seed=rt.seed + EVAL_SEED_OFFSET,
                   num_workers=0 if num_envs == 1 or rt.serial else None)
    runner = None
    try:
        spec = pool.obs_spec
        # Classic-control observations are state vectors: their pictures are drawn when the GIF is written.
        if record and not spec.is_image and resolve_game(config.env.game, config.env.family).family != "classic":
            raise UserError(f"--video: {config.env.game} observations are vectors {spec.shape}, not images; "
                            "drop --video")

        apply_precision(rt, device)

        def make_model() -> torch.nn.Module:
            net = build_model(config.model, spec.shape, stack, pool.num_actions, config.learner.lstm_horizon)
            return to_layout(net.to(device), rt, device)

        model = make_model()
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else lines[0]  # line 0 only names the module
            raise CheckpointError(f"checkpoint {checkpoint}: its weights do not fit the network its config "
                                  f"builds ({detail[:240]})") from exc
        store = WeightStore(2, name="evaluation")
        store.publish(0, model)
        runner = ModelRunner.configured(make_model, device, {"evaluation": store}, config.batcher, serial=rt.serial)
        service = SearchService(runner, config.search, config.batcher, pool.num_actions, serial=rt.serial)
        source = _FirstEpisode(pool) if record else pool
        print(banner, file=sys.stderr)
        async with asyncio.TaskGroup() as group:
            dispatcher = group.create_task(service.run(), name="search-dispatcher")
            result = await group.create_task(evaluate(source, service, 0, rt.eval_episodes, stack, max_steps,
                                                      kind="evaluation"), name="evaluate")
            dispatcher.cancel()
    finally:
        try:
            if runner is not None:
                runner.close()
        finally:
            pool.close()  # owns shared memory and worker processes
    frames = source.frames if isinstance(source, _FirstEpisode) else []
    cut = isinstance(source, _FirstEpisode) and source.cut
    return Played(list(result.returns), list(result.lengths), result.distinct, frames, cut)


class _FirstEpisode:
    """The EnvPool seen by evaluate(), keeping the observations of env 0's first episode (the
    evaluation's episode 0): from its reset to its game over, or to env 0's next reset when
    --max-steps cut it."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.num_envs: int = pool.num_envs
        self.frames: list[np.ndarray] = []
        self.cut = False
        self._recording = True

    def _keep(self, frame: np.ndarray) -> None:
        if len(self.frames) < MAX_VIDEO_FRAMES:
            self.frames.append(frame)
        else:
            self.cut = True

    async def reset(self, env_id: int) -> np.ndarray:
        obs = await self._pool.reset(env_id)
        if env_id == 0 and self._recording:
            if self.frames:  # a second episode of env 0 begins
                self._recording = False
            else:
                self._keep(obs)
        return obs

    async def step(self, env_id: int, action: int) -> Any:
        step = await self._pool.step(env_id, action)
        if env_id == 0 and self._recording:
            self._keep(step.obs)
            self._recording = not step.game_over
        return step


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """One observation [H, W, C] -> uint8 RGB [H*k, W*k, 3], scaled up k-fold (nearest) so the
    long side reaches VIDEO_MIN_SIDE. C = 3: the frame itself (Atari); C = 1: grey; otherwise
    the channels are object masks (MinAtar) and each non-zero channel paints its colour on black,
    a higher channel over a lower one."""
    if frame.ndim != 3:
        raise ValueError(f"frame must be [H, W, C], got shape {frame.shape}")
    height, width, channels = frame.shape
    if channels == 3:
        rgb = np.asarray(frame, dtype=np.uint8)
    elif channels == 1:
        rgb = np.repeat(np.asarray(frame, dtype=np.uint8), 3, axis=2)
    else:
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
        for c in range(channels):
            rgb[frame[:, :, c] > 0] = CHANNEL_COLOURS[c % len(CHANNEL_COLOURS)]
    k = max(1, math.ceil(VIDEO_MIN_SIDE / max(height, width)))
    return rgb.repeat(k, axis=0).repeat(k, axis=1)


def write_gif(path: Path, frames: Sequence[np.ndarray], frame_ms: int,
              picture: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """An animated, looping GIF of `frames` (observations), written atomically. `picture` turns
    one observation into its image [H, W, C] (a classic game's state vector into its drawing);
    without it each observation is its own image."""
    from PIL import Image

    def image(frame: np.ndarray) -> Image.Image:
        return Image.fromarray(to_rgb(frame if picture is None else picture(frame)))

    def images() -> Iterator[Image.Image]:  # converted one at a time: no second copy of the episode
        for frame in frames[1:]:
            yield image(frame)

    first = image(frames[0])
    with atomic_path(path) as tmp:
        first.save(tmp, format="GIF", save_all=True, append_images=images(), duration=frame_ms, loop=0)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def default_json_path(checkpoint: Path, step: int) -> Path:
    """RUN_DIR/eval-step<step>.json for RUN_DIR/checkpoints/step-*.pt (else beside the file)."""
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run_dir / f"eval-step{step}.json"


def summarise(config: Any, state: dict[str, Any], played: Played, request: EvalRequest,
              wall_s: float) -> dict[str, Any]:
    from ezero_async.envs.registry import resolve_game
    from ezero_async.envs.scores import episode_cap_frames
    from ezero_async.runtime.monitor import eval_metrics

    game = resolve_game(config.env.game, config.env.family)
    # Human reference scores exist for Atari only (a MinAtar game may share an Atari game's
    # name), and only for episodes allowed the protocol's length.
    metrics = eval_metrics(played.returns, played.lengths, game, episode_cap_frames(config.env, request.max_steps),
                           played.distinct)
    return {
        "game": game.name, "family": game.family, "env_id": game.env_id,
        "checkpoint": str(Path(state["path"]).resolve()), "step": int(state["step"]),
        "episodes": len(played.returns), "simulations": config.search.num_simulations,
        "search_mode": config.search.mode, "seed": config.runtime.seed, "max_steps": request.max_steps, "device": config.runtime.device,
        "sticky_actions": config.env.sticky_action_prob if game.family in ("atari", "minatar") else None,
        "returns": played.returns, "lengths": played.lengths,
        "return_mean": metrics["eval/return_mean"], "return_std": metrics["eval/return_std"],
        "return_min": min(played.returns), "return_max": max(played.returns),
        "length_mean": metrics["eval/length_mean"], "distinct_episodes": played.distinct,
        "hns": metrics.get("eval/human_normalised"),
        "video": None if request.video is None else str(request.video),
        "wall_time_s": wall_s,
    }


def report(summary: dict[str, Any], json_path: Path, played: Played) -> str:
    name = summary["game"] if summary["family"] == "atari" else summary["env_id"]
    lines = [
        f"{name}: checkpoint step {summary['step']} ({summary['checkpoint']})",
        f"  {_count(summary['episodes'], 'episode')}, {summary['search_mode']} search of "
        f"{_count(summary['simulations'], 'simulation')}, "
        + (f"sticky actions {summary['sticky_actions']:g}, " if summary["sticky_actions"] else "")
        + f"device {summary['device']}, {summary['wall_time_s']:.1f} s",
        f"  return {summary['return_mean']:.2f} ± {summary['return_std']:.2f} "
        f"(min {summary['return_min']:.2f}, max {summary['return_max']:.2f}), "
        f"mean length {summary['length_mean']:.1f}, {_count(summary['distinct_episodes'], 'distinct episode')}",
    ]
    if summary["hns"] is not None:
        lines.append(f"  human-normalised score {summary['hns']:.3f}")
    if summary["video"] is not None:
        cut = f", cut at {MAX_VIDEO_FRAMES} frames" if played.video_cut else ""
        lines.append(f"  video of episode 1: {summary['video']} ({len(played.frames)} frames{cut})")
    lines.append(f"  results: {json_path}")
    return "\n".join(lines)


def write_outputs(request: EvalRequest, config: Any, summary: dict[str, Any], played: Played,
                  json_path: Path) -> None:
    """The GIF (if asked for), then the JSON; an unwritable path is a UserError."""
    path = request.video
    try:
        if path is not None:
            picture = None
            if summary["family"] == "atari":  # an agent step is frame_skip Atari frames at 60 Hz
                frame_ms = round(1000 * config.env.frame_skip / 60)
            elif summary["family"] == "classic":  # state vectors: drawn, at the game's render rate
                from ezero_async.envs.classic import render_state, step_ms

                frame_ms = step_ms(summary["env_id"])
                picture = functools.partial(render_state, summary["env_id"])
            else:
                frame_ms = 100
            write_gif(path, played.frames, frame_ms, picture)
        path = json_path
        write_json(json_path, summary)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        request = request_from_args(args)
        state, config = load(request)
        banner = (f"ezero_async.evaluate: {config.env.game}, step {state['step']}, "
                  f"{_count(config.runtime.eval_episodes, 'episode')} of "
                  f"{config.search.mode} search of {_count(config.search.num_simulations, 'simulation')} on "
                  f"{config.runtime.device}")
        started = time.monotonic()
        played = _run(play(config, state["learner"]["model"], state["path"], request.max_steps,
                           record=request.video is not None, banner=banner))
        json_path = request.json_path or default_json_path(Path(state["path"]), int(state["step"]))
        summary = summarise(config, state, played, request, time.monotonic() - started)
        write_outputs(request, config, summary, played, json_path)
    except UserError as exc:
        print(f"ezero_async.evaluate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ezero_async.evaluate: interrupted; resources released", file=sys.stderr)
        return 130
    print(report(summary, json_path, played))
    return 0


if __name__ == "__main__":
    sys.exit(main())
