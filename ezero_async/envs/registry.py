"""Game names -> families and gymnasium ids, and the one factory that builds a Game from EnvConfig.

Names are forgiving: 'Breakout', 'breakout', 'ALE/Breakout-v5', 'BreakoutNoFrameskip-v4' and
'ms_pacman' all resolve; 'MinAtar/Breakout' picks the MinAtar family. Unknown names raise
UnknownGameError listing close matches.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache

from ezero_async.config.sections import EnvConfig
from ezero_async.envs.game import Game
from ezero_async.errors import UnknownGameError

MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
CLASSIC_GAMES = {"CartPole": "CartPole-v1", "Acrobot": "Acrobot-v1"}
FAMILY_PRESET = {"atari": "atari100k", "minatar": "minatar", "classic": "cartpole"}
FAMILY_DISPLAY = {"atari": "Atari", "minatar": "MinAtar", "classic": "classic-control"}
"""Family -> its name in messages."""


def _a_family(family: str) -> str:
    """'an Atari', 'a MinAtar', 'a classic-control': the family's display name with its article."""
    display = FAMILY_DISPLAY.get(family, family)
    return f"{'an' if display[:1].lower() in 'aeiou' else 'a'} {display}"


@dataclass(frozen=True)
class GameId:
    family: str
    """'atari', 'minatar' or 'classic'."""
    env_id: str
    """gymnasium id, e.g. 'ALE/Breakout-v5'."""
    name: str
    """Short display name, e.g. 'Breakout'."""

    @property
    def label(self) -> str:
        """The name as a user types it, unambiguous across families: 'Breakout' (Atari),
        'MinAtar/Breakout', 'CartPole' (Aim experiments, summaries, reports)."""
        return f"MinAtar/{self.name}" if self.family == "minatar" else self.name

    @property
    def slug(self) -> str:
        """File-name form carrying the family: 'atari-Breakout', 'minatar-Breakout' (run dirs)."""
        return f"{self.family}-{self.name}"


def _key(name: str) -> str:
    name = re.sub(r"^(ALE|MinAtar)/", "", name.strip(), flags=re.IGNORECASE)
    name = re.sub(r"(NoFrameskip|Deterministic)?-v\d+$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]", "", name.lower())


@cache
def atari_games() -> dict[str, str]:
    """Short name -> 'ALE/<Name>-v5' for every ROM shipped with ale-py."""
    import gymnasium as gym

    from ezero_async.envs.atari import register_ale

    register_ale()
    found = (re.fullmatch(r"ALE/(\w+)-v5", env_id) for env_id in gym.registry)
    return {m.group(1): m.group(0) for m in found if m}


def game_names(family: str) -> list[str]:
    if family == "atari":
        return sorted(atari_games())
    if family == "minatar":
        return list(MINATAR_GAMES)
    return list(CLASSIC_GAMES)


def resolve_game(name: str, family: str = "auto") -> GameId:
    """Find `name` in `family` ('auto': MinAtar/ prefix -> minatar, classic names, then Atari)."""
    if family == "auto":
        if name.strip().lower().startswith("minatar/"):
            family = "minatar"
        elif _key(name) in {_key(n) for n in CLASSIC_GAMES}:
            family = "classic"
        else:
            family = "atari"
    names = game_names(family)
    by_key = {_key(n): n for n in names}
    short = by_key.get(_key(name))
    if short is None:
        others = [f for f in ("atari", "minatar", "classic") if f != family
                  and _key(name) in {_key(n) for n in game_names(f)}]
        if others:
            raise UnknownGameError(f"{name!r} is not {_a_family(family)} game but {_a_family(others[0])} one: "
                                   f"use --preset {FAMILY_PRESET[others[0]]} (or set env.family)")
        close = difflib.get_close_matches(_key(name), list(by_key), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(by_key[c] for c in close)}?" if close else \
            "see `python -m ezero_async.main --help` for the list"
        raise UnknownGameError(f"unknown {family} game {name!r}: {hint}")
    if family == "atari":
        return GameId("atari", atari_games()[short], short)
    if family == "minatar":
        return GameId("minatar", f"MinAtar/{short}-v1", short)
    return GameId("classic", CLASSIC_GAMES[short], short)


def make_game(cfg: EnvConfig, *, seed: int, training: bool) -> Game:
    """Build the game named by cfg.game in training or evaluation mode."""
    game = resolve_game(cfg.game, cfg.family)
    max_steps = cfg.max_episode_steps if training else cfg.eval_max_episode_steps
    if game.family == "atari":
        from ezero_async.envs.atari import AtariGame

        return AtariGame(game.env_id, seed=seed, training=training, frame_skip=cfg.frame_skip,
                         noop_max=cfg.noop_max, sticky_action_prob=cfg.sticky_action_prob,
                         obs_size=cfg.obs_size, clip_rewards=cfg.clip_rewards,
                         episode_life=cfg.episode_life, max_steps=max_steps)
    if game.family == "minatar":
        from ezero_async.envs.minatar import MinAtarGame

        return MinAtarGame(game.env_id, seed=seed, training=training, sticky_action_prob=cfg.sticky_action_prob,
                           clip_rewards=cfg.clip_rewards, max_steps=max_steps)
    from ezero_async.envs.classic import ClassicGame

    return ClassicGame(game.env_id, seed=seed, training=training, clip_rewards=cfg.clip_rewards,
                       max_steps=max_steps)
