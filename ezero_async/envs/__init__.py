"""Games behind one interface (envs/game.py), built by make_game from EnvConfig."""
from ezero_async.envs.game import Game, ObsSpec, Step
from ezero_async.envs.registry import GameId, game_names, make_game, resolve_game
from ezero_async.envs.pool import EnvPool, EnvWorkerError, GameFactory

__all__ = ["EnvPool", "EnvWorkerError", "Game", "GameFactory", "GameId", "ObsSpec", "Step", "game_names", "make_game", "resolve_game"]
