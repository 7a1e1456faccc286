"""Human-normalised scores: Atari 100k games only, and only for evaluations whose episodes may
last as long as the protocol allows (a capped smoke evaluation has no comparable score)."""
from ezero_async.config import build_config
from ezero_async.envs.registry import resolve_game
from ezero_async.envs.scores import PROTOCOL_MAX_FRAMES, episode_cap_frames, human_normalised
from ezero_async.runtime.monitor import eval_metrics


def test_only_protocol_length_atari_evaluations_are_normalised():
    pong = resolve_game("Pong")
    assert human_normalised(pong, 14.6) == 1.0 and human_normalised(pong, 14.6, PROTOCOL_MAX_FRAMES) == 1.0
    assert human_normalised(pong, 14.6, PROTOCOL_MAX_FRAMES - 4) is None
    assert human_normalised(resolve_game("MinAtar/Breakout"), 30.5) is None
    assert "eval/human_normalised" not in eval_metrics([-20.0], [100], pong, max_frames=800)
    assert eval_metrics([-20.0], [100], pong)["eval/human_normalised"] > 0


def test_episode_caps_in_frames():
    atari = build_config("atari100k", "Breakout").env
    assert episode_cap_frames(atari, None) == 27_000 * 4 == PROTOCOL_MAX_FRAMES
    assert episode_cap_frames(atari, 3000) == 12_000  # periodic evaluations are capped
    assert episode_cap_frames(build_config("smoke", "Pong").env, None) == 200 * 4
