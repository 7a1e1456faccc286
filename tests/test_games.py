"""Games: shapes, dtypes, clipping, life-loss terminals, truncation vs termination, seeding."""
import dataclasses

import numpy as np
import pytest

from ezero_async.config import build_config
from ezero_async.envs import make_game, resolve_game
from ezero_async.envs.game import Game, ObsSpec
from ezero_async.envs.resize import area_weights
from ezero_async.errors import UnknownGameError


def env_cfg(game, preset="atari100k", **changes):
    return dataclasses.replace(build_config(preset, game).env, **changes)


@pytest.mark.parametrize("game, preset, shape, dtype, actions", [
    ("Breakout", "atari100k", (96, 96, 3), np.uint8, 4),
    ("MinAtar/Breakout", "minatar", (10, 10, 4), np.uint8, 3),
    ("CartPole", "cartpole", (4,), np.float32, 2),
])
def test_reset_and_step_shapes(game, preset, shape, dtype, actions):
    g = make_game(env_cfg(game, preset), seed=0, training=True)
    assert g.obs_spec == ObsSpec(shape, np.dtype(dtype)) and g.num_actions == actions
    obs = g.reset()
    assert obs.shape == shape and obs.dtype == dtype
    step = g.step(0)
    assert step.obs.shape == shape and step.obs.dtype == dtype
    assert isinstance(step.reward, float) and isinstance(step.raw_reward, float)
    g.close()


def test_minatar_frames_use_the_full_uint8_range():
    g = make_game(env_cfg("MinAtar/Breakout", "minatar"), seed=0, training=True)
    assert set(np.unique(g.reset())) <= {0, 255} and g.reset().max() == 255


def play(game, steps, rng):
    events = []
    for _ in range(steps):
        s = game.step(int(rng.integers(game.num_actions)))
        events.append(s)
        if s.terminated or s.truncated:
            game.reset()
    return events


def test_breakout_training_life_loss_is_terminal_but_game_goes_on():
    g = make_game(env_cfg("Breakout"), seed=1, training=True)
    g.reset()
    events = play(g, 600, np.random.default_rng(0))
    ends = [e for e in events if e.terminated]
    # Breakout has 5 lives: 4 life-loss terminals that do not end the game, then game over.
    assert len(ends) >= 5
    first_game = ends[:5]
    assert [e.game_over for e in first_game] == [False] * 4 + [True]
    assert all(e.reward == np.sign(e.raw_reward) for e in events)
    assert not any(e.truncated for e in events)


def test_breakout_evaluation_has_no_life_loss_terminal_and_raw_rewards():
    g = make_game(env_cfg("Breakout"), seed=1, training=False)
    g.reset()
    events = play(g, 600, np.random.default_rng(0))
    ends = [e for e in events if e.terminated]
    assert ends and all(e.game_over for e in ends)
    assert all(e.reward == e.raw_reward for e in events)


def test_step_cap_truncates_across_lives_and_is_not_a_terminal():
    g = make_game(env_cfg("Breakout", max_episode_steps=60), seed=1, training=True)
    g.reset()
    steps_in_game = 0
    rng = np.random.default_rng(0)
    while True:
        s = g.step(int(rng.integers(4)))
        steps_in_game += 1
        if s.truncated:
            break
        if s.terminated:
            assert not s.game_over, "the 60-step cap should come before the game ends"
            g.reset()
    assert steps_in_game == 60 and not s.terminated and s.game_over
    with pytest.raises(RuntimeError, match="call reset"):
        g.step(0)


def test_same_seed_same_frames():
    frames = []
    for _ in range(2):
        g = make_game(env_cfg("Breakout"), seed=7, training=True)
        obs = [g.reset()]
        rng = np.random.default_rng(3)
        obs += [s.obs for s in play(g, 50, rng)]
        frames.append(np.stack(obs))
    np.testing.assert_array_equal(frames[0], frames[1])


def test_resize_kernel_matches_numpy_area_interpolation():
    from ezero_async._ext.frames import MaxPoolResize

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (210, 160, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (210, 160, 3), dtype=np.uint8)
    rows, cols = area_weights(210, 96), area_weights(160, 96)
    np.testing.assert_allclose(rows.sum(1), 1.0, rtol=1e-6)
    ref = np.einsum("ih,hwc,jw->ijc", rows.astype(np.float64), np.maximum(a, b).astype(np.float64),
                    cols.astype(np.float64))
    out = MaxPoolResize(rows, cols, 3)(a, b, np.empty((96, 96, 3), np.uint8))
    assert np.abs(out.astype(np.int64) - np.floor(ref + 0.5)).max() <= 1  # float32 vs float64 sums
    flat = np.full((210, 160, 3), 77, np.uint8)
    assert (MaxPoolResize(rows, cols, 3)(flat, flat, np.empty((96, 96, 3), np.uint8)) == 77).all()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_gather_planes_matches_a_numpy_stack_and_transpose(channels):
    from ezero_async._ext.frames import gather_planes

    rng = np.random.default_rng(channels)
    stacks = rng.integers(0, 256, (5, 4, 7, 6, channels), dtype=np.uint8)  # [n, S, H, W, C]
    ref = stacks.transpose(0, 1, 4, 2, 3).reshape(5, 4 * channels, 7, 6)
    as_tuples = [tuple(frame.copy() for frame in root) for root in stacks]  # how self-play passes roots
    for form in (stacks, list(stacks), as_tuples):
        out = np.full((5, 4 * channels, 7, 6), 0xEE, np.uint8)
        assert gather_planes(form, out) is out
        np.testing.assert_array_equal(out, ref)


def test_gather_planes_rejects_mismatched_frames():
    from ezero_async._ext.frames import gather_planes

    frames = [tuple(np.zeros((7, 6, 3), np.uint8) for _ in range(4)) for _ in range(2)]
    with pytest.raises(ValueError, match="expected"):
        gather_planes(frames, np.empty((2, 12, 6, 7), np.uint8))  # H and W swapped
    with pytest.raises(ValueError, match="frames"):
        gather_planes([frames[0], frames[1][:3]], np.empty((2, 12, 7, 6), np.uint8))
    with pytest.raises(ValueError, match="out holds"):
        gather_planes(frames, np.empty((3, 12, 7, 6), np.uint8))
    with pytest.raises(ValueError):  # not contiguous
        gather_planes([tuple(np.zeros((6, 7, 3), np.uint8).transpose(1, 0, 2) for _ in range(4))],
                      np.empty((1, 12, 7, 6), np.uint8))


class Scripted(Game):
    """A game whose steps are scripted: (raw reward, game over, life lost, emulator truncated)."""

    def __init__(self, script, **kw):
        super().__init__("scripted", **kw)
        self.script = list(script)

    obs_spec = ObsSpec((1,), np.dtype(np.float32))
    num_actions = 2

    def _reset_game(self):
        return np.zeros(1, np.float32)

    def _step(self, action):
        return (np.zeros(1, np.float32), *self.script.pop(0))


def test_clipping_and_terminal_rules_on_a_scripted_game():
    g = Scripted([(4.0, False, False, False), (-7.0, False, True, False), (0.0, True, False, False)],
                 training=True, clip_rewards=True, episode_life=True, max_steps=100)
    g.reset()
    s = g.step(1)
    assert (s.reward, s.raw_reward, s.terminated) == (1.0, 4.0, False)
    s = g.step(1)
    assert (s.reward, s.raw_reward, s.terminated, s.game_over) == (-1.0, -7.0, True, False)
    g.reset()  # life lost: the game continues
    s = g.step(0)
    assert s.terminated and s.game_over and not s.truncated
    fresh = Scripted([], training=True, clip_rewards=True, episode_life=True, max_steps=1)
    fresh.reset()
    with pytest.raises(ValueError, match="action 2 out of range"):
        fresh.step(2)


def test_evaluation_mode_ignores_clipping_and_life_loss():
    g = Scripted([(4.0, False, True, False)], training=False, clip_rewards=True, episode_life=True, max_steps=100)
    g.reset()
    s = g.step(0)
    assert (s.reward, s.terminated, s.game_over) == (4.0, False, False)


def test_emulator_truncation_is_a_truncation():
    g = Scripted([(0.0, False, False, True)], training=True, clip_rewards=True, episode_life=True, max_steps=100)
    g.reset()
    s = g.step(0)
    assert s.truncated and not s.terminated and s.game_over


@pytest.mark.parametrize("name, family, env_id", [
    ("Breakout", "atari", "ALE/Breakout-v5"), ("breakout", "atari", "ALE/Breakout-v5"),
    ("ALE/Pong-v5", "atari", "ALE/Pong-v5"), ("BreakoutNoFrameskip-v4", "atari", "ALE/Breakout-v5"),
    ("ms_pacman", "atari", "ALE/MsPacman-v5"), ("MinAtar/Breakout", "minatar", "MinAtar/Breakout-v1"),
    ("CartPole", "classic", "CartPole-v1"),
])
def test_resolve_names(name, family, env_id):
    game = resolve_game(name)
    assert (game.family, game.env_id) == (family, env_id)


def test_unknown_game_lists_close_matches():
    with pytest.raises(UnknownGameError, match="did you mean Pong"):
        resolve_game("Pongg")


@pytest.mark.parametrize("name, family, message", [
    ("Acrobot", "minatar", "'Acrobot' is not a MinAtar game but a classic-control one: use --preset cartpole"),
    ("Pong", "minatar", "'Pong' is not a MinAtar game but an Atari one: use --preset atari100k"),
    ("Pong", "classic", "'Pong' is not a classic-control game but an Atari one"),
    ("CartPole", "atari", "'CartPole' is not an Atari game but a classic-control one: use --preset cartpole"),
])
def test_wrong_family_names_the_right_one(name, family, message):
    with pytest.raises(UnknownGameError) as info:
        resolve_game(name, family)
    assert str(info.value).startswith(message), str(info.value)


def _colour_pixels(image: np.ndarray, colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the pixels of `colour`."""
    return np.nonzero((image == np.array(colour, dtype=np.uint8)).all(axis=2))


def test_cartpole_state_is_drawn_as_gymnasium_draws_it():
    from ezero_async.envs.classic import POLE, render_state, step_ms

    upright = render_state("CartPole-v1", np.zeros(4, np.float32))
    assert upright.shape == (200, 300, 3) and upright.dtype == np.uint8
    ys, xs = _colour_pixels(upright, POLE)
    assert len(xs) > 200 and abs(xs.mean() - 150) < 2 and ys.max() < 150  # above the cart, centred
    leaning = render_state("CartPole-v1", np.array([1.0, 0.0, 0.2, 0.0], np.float32))
    cart_ys, cart_xs = _colour_pixels(leaning, (0, 0, 0))
    cart_x = cart_xs[cart_ys == 150 - 5].mean()  # a row through the cart, above the track line
    assert abs(cart_x - (150 + 62.5)) < 2  # x = 1.0 of +-2.4 across 300 pixels
    ys, xs = _colour_pixels(leaning, POLE)
    assert xs[ys == ys.min()].mean() > cart_x + 5  # theta > 0: the pole leans right
    assert step_ms("CartPole-v1") == 20


def test_acrobot_state_is_drawn_from_its_cos_sin_observation():
    from ezero_async.envs.classic import LINK, render_state

    hanging = render_state("Acrobot-v1", np.array([1.0, 0.0, 1.0, 0.0, 0.0, 0.0], np.float32))
    assert hanging.shape == (250, 250, 3) and hanging.dtype == np.uint8
    ys, xs = _colour_pixels(hanging, LINK)
    assert abs(xs.mean() - 125) < 2 and ys.min() >= 120 and ys.max() > 220  # straight down from the pivot
    up = render_state("Acrobot-v1", np.array([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0], np.float32))  # t1 = pi
    ys, _ = _colour_pixels(up, LINK)
    assert ys.max() <= 130 and ys.min() < 30  # swung over the pivot, above the goal line
    with pytest.raises(ValueError, match="no picture for 'MountainCar-v0'"):
        render_state("MountainCar-v0", np.zeros(2))
