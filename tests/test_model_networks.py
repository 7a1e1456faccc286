"""Model shapes and dtypes for every kind, Atari sizes, LSTM reset semantics, input layout."""
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.learner.model import build_model, count_parameters, resolve_kind, stack_frames


CASES = [  # preset, game, frame shape, actions, expected kind, latent shape
    ("smoke", "Breakout", (96, 96, 3), 4, "resnet", (8, 6, 6)),
    ("smoke", "Breakout", (10, 10, 4), 6, "conv", (8, 10, 10)),
    ("smoke", "CartPole", (4,), 2, "mlp", (16,)),
]


def _model(preset, game, shape, actions):
    cfg = build_config(preset, game)
    return build_model(cfg.model, shape, cfg.env.frame_stack, actions, cfg.learner.lstm_horizon), cfg


@pytest.mark.parametrize("preset,game,shape,actions,kind,latent", CASES)
def test_shapes_and_dtypes(preset, game, shape, actions, kind, latent):
    torch.manual_seed(0)
    model, cfg = _model(preset, game, shape, actions)
    model.eval()
    s, b, bins = cfg.env.frame_stack, 5, 2 * cfg.model.support_size + 1
    assert model.kind == kind and model.latent_shape == latent
    if len(shape) == 3:
        frames = torch.randint(0, 256, (b, s, *shape), dtype=torch.uint8)
    else:
        frames = torch.randn(b, s, *shape)
    obs = stack_frames(frames)
    with torch.no_grad():
        lat, v, p = model.initial_inference(obs)
        assert lat.shape == (b, *latent) and lat.dtype == torch.float32
        assert v.shape == (b, bins) and p.shape == (b, actions)
        state = model.initial_lstm_state(b, "cpu")
        act = torch.randint(0, actions, (b,))
        nxt, (hh, cc), vp, v2, p2 = model.recurrent_inference(lat, state, act, torch.ones(b, dtype=torch.bool))
        assert nxt.shape == lat.shape and hh.shape == cc.shape == (b, cfg.model.lstm_hidden)
        assert vp.shape == v2.shape == (b, bins) and p2.shape == (b, actions)
        _, value, logits = model.initial_inference_scalar(obs)
        _, _, prefix, value2, _ = model.recurrent_inference_scalar(lat, state, act, torch.zeros(b, dtype=torch.bool))
        for t in (value, prefix, value2):
            assert t.shape == (b,) and t.dtype == torch.float32
        # Zero-initialised heads: uniform policy, value 0 at initialisation.
        assert torch.all(logits == 0) and torch.all(value.abs() < 1e-4)
        proj = model.project(lat, with_predictor=True)
        assert proj.shape == (b, cfg.model.proj_out)
        if len(shape) == 3:  # uint8 is scaled on the device exactly like float / 255
            lat_f, _, _ = model.initial_inference(obs.float() / 255.0)
            assert torch.allclose(lat, lat_f, atol=1e-5)


def test_stack_frames_layout_is_frame_major():
    frames = torch.arange(2 * 3 * 4 * 4 * 2).reshape(2, 3, 4, 4, 2)  # B, S, H, W, C
    stacked = stack_frames(frames)
    assert stacked.shape == (2, 6, 4, 4)
    assert torch.equal(stacked[:, 2 * 1 + 1], frames[:, 1, :, :, 1])  # frame 1, channel 1
    assert stack_frames(torch.zeros(2, 3, 5)).shape == (2, 15)


def test_atari100k_network_sizes():
    cfg = build_config("atari100k", "Breakout")
    model = build_model(cfg.model, (96, 96, 3), 4, 18, 5)
    inference = sum(count_parameters(getattr(model, n)) for n in ("representation", "dynamics", "prediction"))
    assert model.latent_shape == (64, 6, 6)
    assert 2.7e6 < inference < 2.95e6  # the "2.8M" EfficientZero Atari net
    assert count_parameters(model.projection) == 2304 * 1024 + 1024 + 2 * (1024 * 1024 + 1024) + 3 * 2048
    assert model.dynamics.value_prefix.lstm.input_size == 576 and model.dynamics.value_prefix.lstm.hidden_size == 512
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    with torch.no_grad():
        model.eval()
        lat, v, p = model.initial_inference(torch.zeros(2, 12, 96, 96, dtype=torch.uint8))
    assert lat.shape == (2, 64, 6, 6) and v.shape == (2, 601) and p.shape == (2, 18)


def test_lstm_reset_zeroes_the_incoming_state_per_row():
    torch.manual_seed(1)
    model, cfg = _model("smoke", "CartPole", (4,), 2)
    model.eval()
    b = 4
    with torch.no_grad():
        lat, _, _ = model.initial_inference(torch.randn(b, 4 * cfg.env.frame_stack))
        act = torch.tensor([0, 1, 0, 1])
        state = (torch.randn(b, cfg.model.lstm_hidden), torch.randn(b, cfg.model.lstm_hidden))
        state[0][1] = float("nan")  # garbage in a reset row must not leak
        reset = torch.tensor([True, True, False, False])
        _, (h1, c1), vp1, _, _ = model.recurrent_inference(lat, state, act, reset)
        _, (h0, c0), vp0, _, _ = model.recurrent_inference(lat, model.initial_lstm_state(b, "cpu"), act,
                                                           torch.zeros(b, dtype=torch.bool))
        _, (hk, _), _, _, _ = model.recurrent_inference(lat, state, act, torch.zeros(b, dtype=torch.bool))
    assert torch.allclose(h1[:2], h0[:2]) and torch.allclose(c1[:2], c0[:2]) and torch.allclose(vp1[:2], vp0[:2])
    assert torch.equal(h1[2:], hk[2:])  # kept rows use their state
    assert not torch.allclose(h1[2:], h0[2:])
    assert torch.isfinite(h1).all()


def test_resolve_kind():
    assert resolve_kind("auto", (96, 96, 3)) == "resnet"
    assert resolve_kind("auto", (64, 64, 1)) == "resnet"
    assert resolve_kind("auto", (10, 10, 4)) == "conv"
    assert resolve_kind("auto", (4,)) == "mlp"
    assert resolve_kind("conv", (96, 96, 3)) == "conv"
    with pytest.raises(ValueError):
        resolve_kind("mlp", (10, 10, 4))
    with pytest.raises(ValueError):
        resolve_kind("resnet", (4,))
    with pytest.raises(ValueError):
        resolve_kind("auto", (4, 4))


@pytest.mark.parametrize("latent_norm,game,shape,normalized", [
    ("auto", "MinAtar/Breakout", (10, 10, 4), False), ("auto", "CartPole", (4,), True),
    ("minmax", "CartPole", (4,), True), ("minmax", "MinAtar/Breakout", (10, 10, 4), True),
    ("none", "MinAtar/Breakout", (10, 10, 4), False), ("none", "CartPole", (4,), False)])
def test_latent_norm_scales_every_latent_to_the_unit_range(latent_norm, game, shape, normalized):
    """Root and unrolled latents share one range, so the prediction BatchNorm's running
    statistics (collected over all unroll depths) fit the roots too."""
    cfg = build_config("smoke", game, {"model.latent_norm": latent_norm})
    torch.manual_seed(0)
    model = build_model(cfg.model, shape, cfg.env.frame_stack, 3, cfg.learner.lstm_horizon).eval()
    obs = torch.randint(0, 256, (6, cfg.env.frame_stack * shape[-1], *shape[:2]), dtype=torch.uint8) \
        if len(shape) == 3 else torch.randn(6, cfg.env.frame_stack * shape[0]) * 5
    with torch.no_grad():
        latent, _, _ = model.initial_inference(obs)
        latents = [latent]
        state = model.initial_lstm_state(6, "cpu")
        for depth in range(3):
            latent, state, *_ = model.recurrent_inference(latent, state, torch.full((6,), depth % 3),
                                                          torch.zeros(6, dtype=torch.bool))
            latents.append(latent)
    for latent in latents:
        flat = latent.flatten(1)
        low, high = flat.min(1).values, flat.max(1).values
        if normalized:
            assert torch.allclose(low, torch.zeros(6), atol=1e-6) and torch.allclose(high, torch.ones(6), atol=1e-5)
        else:
            assert not torch.allclose(high, torch.ones(6), atol=1e-3)


def test_latent_norm_rejects_unknown_values():
    from ezero_async.errors import ConfigError

    with pytest.raises(ConfigError, match="model.latent_norm"):
        build_config("smoke", "CartPole", {"model.latent_norm": "layer"})


def test_atari100k_v2_network_options():
    """EZ-V2: the action plane is embedded (1x1 conv to 16, LayerNorm over [16, 6, 6], ReLU) before
    the dynamics conv; head MLPs use ELU; the predictor is 256 wide. V1 has none of these."""
    v2 = build_model(build_config("atari100k-v2", "Breakout").model, (96, 96, 3), 4, 18, 5)
    v1 = build_model(build_config("atari100k", "Breakout").model, (96, 96, 3), 4, 18, 5)
    embed = v2.dynamics.embed
    assert isinstance(embed[0], torch.nn.Conv2d) and embed[0].out_channels == 16
    assert tuple(embed[1].normalized_shape) == (16, 6, 6)
    assert v2.dynamics.conv.in_channels == 64 + 16 and v1.dynamics.conv.in_channels == 64 + 1
    assert v1.dynamics.embed is None
    heads = (v2.prediction.value, v2.prediction.policy, v2.dynamics.value_prefix)
    assert all(any(isinstance(m, torch.nn.ELU) for m in h.modules()) for h in heads)
    assert not any(isinstance(m, torch.nn.ELU) for m in v1.modules())
    assert v2.predictor.mlp[0].out_features == 256
    # Different actions give different next latents through the embedding, and gradients reach it.
    v2.train()
    lat, _, _ = v2.initial_inference(torch.rand(4, 12, 96, 96))
    nxt, _, vp, _, _ = v2.recurrent_inference(lat, v2.initial_lstm_state(4, "cpu"), torch.tensor([0, 5, 9, 17]),
                                              torch.ones(4, dtype=torch.bool))
    assert not torch.allclose(nxt[0], nxt[1])
    (nxt.square().mean() + vp.sum()).backward()
    assert embed[0].weight.grad is not None and embed[0].weight.grad.abs().sum() > 0
