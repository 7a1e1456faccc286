"""Game lists of a suite, as data: named lists (`atari26`, `minatar5`) or comma-separated names."""
from __future__ import annotations

from ezero_async.envs.registry import GameId, resolve_game
from ezero_async.envs.scores import RANDOM_HUMAN
from ezero_async.errors import UserError

GAME_LISTS: dict[str, tuple[str, ...]] = {
    "atari26": tuple(RANDOM_HUMAN),  # the Atari 100k benchmark, in its usual (alphabetical) order
    "minatar5": ("MinAtar/Asterix", "MinAtar/Breakout", "MinAtar/Freeway", "MinAtar/Seaquest",
                 "MinAtar/SpaceInvaders"),
}


def parse_games(text: str) -> list[GameId]:
    """`atari26`, `minatar5`, or names separated by commas (lists may be mixed in); each name
    is resolved as `--game` resolves it. UserError for an unknown name or an empty list."""
    games: list[GameId] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        for name in GAME_LISTS.get(item, (item,)):
            game = resolve_game(name)  # UnknownGameError (a UserError) names the alternatives
            if game not in games:
                games.append(game)
    if not games:
        raise UserError(f"--games {text!r} names no game; give a list ({', '.join(GAME_LISTS)}) or names")
    return games
