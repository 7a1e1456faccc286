"""Random and human reference scores of the Atari 100k benchmark (SPEC_TRAINING.md), for the
human-normalised score HNS = (score - random) / (human - random)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ezero_async.config.sections import EnvConfig
    from ezero_async.envs.registry import GameId

RANDOM_HUMAN = {
    "Alien": (227.8, 7127.7), "Amidar": (5.8, 1719.5), "Assault": (222.4, 742.0), "Asterix": (210.0, 8503.3),
    "BankHeist": (14.2, 753.1), "BattleZone": (2360.0, 37187.5), "Boxing": (0.1, 12.1), "Breakout": (1.7, 30.5),
    "ChopperCommand": (811.0, 7387.8), "CrazyClimber": (10780.5, 35829.4), "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6), "Frostbite": (65.2, 4334.7), "Gopher": (257.6, 2412.5), "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8), "Kangaroo": (52.0, 3035.0), "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3), "MsPacman": (307.3, 6951.6), "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3), "Qbert": (163.9, 13455.0), "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7), "UpNDown": (533.4, 11693.2),
}


PROTOCOL_MAX_FRAMES = 108_000
"""Longest evaluation episode of the Atari 100k protocol: 27k agent steps at frame skip 4 (30
minutes of play). Scores of episodes capped shorter are not comparable with the references."""


def human_normalised(game: GameId, score: float, max_frames: int | None = None) -> float | None:
    """HNS of an Atari 100k game, None for games outside the benchmark (MinAtar reuses some of
    the names, so the family is checked too) and for evaluations whose episodes were capped
    below the protocol's PROTOCOL_MAX_FRAMES (max_frames None: uncapped)."""
    if game.family != "atari" or game.name not in RANDOM_HUMAN:
        return None
    if max_frames is not None and max_frames < PROTOCOL_MAX_FRAMES:
        return None
    random, human = RANDOM_HUMAN[game.name]
    return (score - random) / (human - random)


def episode_cap_frames(env: EnvConfig, max_steps: int | None) -> int:
    """Frames an evaluation episode may last: the env's evaluation cap, or an evaluation's own
    shorter one (max_steps agent steps), times the frame skip."""
    steps = env.eval_max_episode_steps if max_steps is None else min(max_steps, env.eval_max_episode_steps)
    return steps * env.frame_skip
