"""Classic-control games with vector observations (CartPole, Acrobot), for CPU-scale learning checks.
Frames are the float32 state vectors; stepping takes a few µs, so EnvPool steps them inline.

render_state draws the picture of a recorded observation (for `evaluate --video`): the game is
played without rendering, and only the recorded episode is drawn afterwards."""
from __future__ import annotations

import math

import numpy as np

from ezero_async.envs.gym_game import GymGame


class ClassicGame(GymGame):
    family = "classic"
    offload = False

    def __init__(self, env_id: str, *, seed: int, training: bool, clip_rewards: bool = False,
                 max_steps: int = 500) -> None:
        super().__init__(env_id, seed=seed, training=training, clip_rewards=clip_rewards, max_steps=max_steps)


def render_state(env_id: str, obs: np.ndarray) -> np.ndarray:
    """One observation (the float state vector) of classic game `env_id` -> its picture, uint8
    RGB [H, W, 3]: gymnasium's render_mode="rgb_array" scene (CartPole's cart, pole and track;
    Acrobot's two links and the height the tip must reach), drawn here with numpy at half of
    gymnasium's pixel sizes, because gymnasium draws with pygame, which is not a dependency."""
    draw = _DRAW.get(_short(env_id))
    if draw is None:
        raise ValueError(f"no picture for {env_id!r}; known: {', '.join(sorted(_DRAW))}")
    return draw(np.asarray(obs, dtype=np.float64).reshape(-1))


def step_ms(env_id: str) -> int:
    """Milliseconds of one agent step at the game's render rate (gymnasium's render_fps)."""
    return round(1000 / _RENDER_FPS[_short(env_id)])


def _short(env_id: str) -> str:
    return env_id.split("-v")[0]


_RENDER_FPS = {"CartPole": 50, "Acrobot": 15}


# --- drawing (gymnasium's scenes and colours at half its pixel sizes) ---

BLACK = (0, 0, 0)
POLE = (202, 152, 101)
AXLE = (129, 132, 203)
LINK = (0, 204, 204)
JOINT = (204, 204, 0)


class _Canvas:
    """A white RGB image with world-to-pixel drawing of discs, thick segments and rectangles
    (pixel centres inside the shape are painted; y grows downwards)."""

    def __init__(self, height: int, width: int) -> None:
        self.image = np.full((height, width, 3), 255, dtype=np.uint8)
        self._y, self._x = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: tuple[int, int, int]) -> None:
        self.image[(self._x >= x0) & (self._x <= x1) & (self._y >= y0) & (self._y <= y1)] = colour

    def segment(self, x0: float, y0: float, x1: float, y1: float, width: float,
                colour: tuple[int, int, int]) -> None:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((self._x - x0) * dx + (self._y - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        dist2 = (self._x - x0 - t * dx) ** 2 + (self._y - y0 - t * dy) ** 2
        self.image[dist2 <= (width / 2) ** 2] = colour

    def disc(self, x: float, y: float, radius: float, colour: tuple[int, int, int]) -> None:
        self.image[(self._x - x) ** 2 + (self._y - y) ** 2 <= radius * radius] = colour


def _draw_cartpole(obs: np.ndarray) -> np.ndarray:
    """gymnasium's CartPole picture at half size: 300 x 200, the world's +-2.4 across the width."""
    width, height = 300, 200
    scale = width / 4.8
    canvas = _Canvas(height, width)
    x, theta = float(obs[0]), float(obs[2])
    cart_x, cart_y = x * scale + width / 2, height - 50  # cart centre; the track runs through it
    axle_y = cart_y - 3.75
    pole_len = scale * 1.0  # 2 * half-length 0.5
    canvas.segment(0, cart_y, width, cart_y, 1.0, BLACK)
    canvas.rect(cart_x - 12.5, cart_y - 7.5, cart_x + 12.5, cart_y + 7.5, BLACK)
    # theta > 0 leans the pole to the right (the direction the cart must move to catch it).
    tip_x, tip_y = cart_x + pole_len * math.sin(theta), axle_y - pole_len * math.cos(theta)
    canvas.segment(cart_x, axle_y, tip_x, tip_y, 5.0, POLE)
    canvas.disc(cart_x, axle_y, 2.5, AXLE)
    return canvas.image


def _draw_acrobot(obs: np.ndarray) -> np.ndarray:
    """gymnasium's Acrobot picture at half size: 250 x 250, two unit links hanging from the
    centre, and the line one link length above the pivot that the tip must reach."""
    size = 250
    scale = size / 4.4  # the world spans +-(1 + 1 + 0.2)
    canvas = _Canvas(size, size)
    t1, t2 = math.atan2(obs[1], obs[0]), math.atan2(obs[3], obs[2])

    def px(wx: float, wy: float) -> tuple[float, float]:
        return size / 2 + wx * scale, size / 2 - wy * scale

    j1 = (math.sin(t1), -math.cos(t1))
    tip = (j1[0] + math.sin(t1 + t2), j1[1] - math.cos(t1 + t2))
    canvas.segment(*px(-2.2, 1.0), *px(2.2, 1.0), 1.0, BLACK)
    canvas.segment(*px(0.0, 0.0), *px(*j1), 10.0, LINK)
    canvas.segment(*px(*j1), *px(*tip), 10.0, LINK)
    canvas.disc(*px(0.0, 0.0), 5.0, JOINT)
    canvas.disc(*px(*j1), 5.0, JOINT)
    return canvas.image


_DRAW = {"CartPole": _draw_cartpole, "Acrobot": _draw_acrobot}
