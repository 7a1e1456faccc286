"""Config: presets build, overrides are typed and validated, dict round-trip is exact."""
import dataclasses
import json

import pytest

from ezero_async.config import (
    RunConfig, apply_overrides, build_config, config_from_dict, config_to_dict, field_docs, parse_override,
    preset_names,
)
from ezero_async.config.sections import SECTIONS
from ezero_async.errors import ConfigError


@pytest.mark.parametrize("preset", ["atari100k", "minatar", "cartpole", "smoke", "atari100k-v2", "minatar-v2",
                                    "cartpole-v2"])
def test_every_preset_builds_and_checks(preset):
    config = build_config(preset, "CartPole" if preset.startswith("cartpole") else "Breakout")
    config.check()
    assert config.preset == preset


def test_presets_are_listed():
    assert set(preset_names()) >= {"atari100k", "minatar", "cartpole", "smoke", "atari100k-v2", "minatar-v2",
                                   "cartpole-v2"}


def test_atari100k_v2_has_the_gumbel_spec_values():
    c = build_config("atari100k-v2", "Breakout")
    s = c.search
    assert (s.mode, s.num_simulations, s.gumbel_max_considered, s.gumbel_c_visit, s.gumbel_c_scale,
            s.gumbel_scale) == ("gumbel", 16, 0, 50.0, 0.1, 1.0)
    r = c.replay
    assert (r.value_target, r.td_steps, r.mixed_start_step, r.mixed_fresh_transitions) == ("mixed", 5, 30_000, 5_000)
    assert (r.priority_alpha, r.priority_beta_start, r.priority_weight_min) == (1.0, 1.0, 0.1)
    assert c.runtime.reanalyse_fraction == 1.0
    assert c.learner.consistency_coeff == 5.0
    m = c.model
    assert (m.action_embedding, m.head_activation, m.pred_hidden, m.latent_norm) == (True, "elu", 256, "none")
    # Everything else is atari100k's (SPEC_GUMBEL.md: optimiser, schedules, replay ratio, evaluation).
    v1 = build_config("atari100k", "Breakout")
    assert (c.learner.lr_init, c.learner.batch_size, c.runtime.env_steps, c.runtime.tail_train_steps) == (
        v1.learner.lr_init, v1.learner.batch_size, v1.runtime.env_steps, v1.runtime.tail_train_steps)
    assert c.search.discount == v1.search.discount and c.env == v1.env


@pytest.mark.parametrize("v1, v2, sims, changed", [
    ("cartpole", "cartpole-v2", 8, {"search.gumbel_scale": 2.0, "learner.prediction_heads": "joint",
                                    "model.value_readout": "transformed_mean", "learner.target_update_interval": 200,
                                    "learner.compile": "off", "batcher.compile": "off"}),
    ("minatar", "minatar-v2", 16, {"search.gumbel_scale": 2.0, "learner.prediction_heads": "joint"}),
])
def test_small_v2_presets_are_their_v1_preset_with_gumbel_search(v1, v2, sims, changed):
    """Gumbel search and its simulations, plus only the listed settings (measured per preset)."""
    game = "CartPole" if v1 == "cartpole" else "MinAtar/Breakout"
    a, b = build_config(v1, game), build_config(v2, game)
    assert (b.search.mode, b.search.num_simulations) == ("gumbel", sims)
    overrides = {"search.mode": "gumbel", "search.num_simulations": sims, **changed}
    expected = apply_overrides(a, overrides)
    for name in SECTIONS:
        assert getattr(b, name) == getattr(expected, name), name
    for key, value in changed.items():
        section, name = key.split(".")
        assert getattr(getattr(a, section), name) != value, key


def test_preset_base_chains_are_checked(monkeypatch):
    from ezero_async.config import presets
    files = {"a": {"about": {"base": "b"}, "search": {"num_simulations": 3}},
             "b": {"search": {"num_simulations": 7, "discount": 0.9}},
             "loop": {"about": {"base": "loop"}}, "orphan": {"about": {"base": "nowhere"}}}
    assert presets._resolve("a", files, ())["values"] == {"search.num_simulations": 3, "search.discount": 0.9}
    with pytest.raises(ConfigError, match="circular base chain loop -> loop"):
        presets._resolve("loop", files, ())
    with pytest.raises(ConfigError, match="unknown base preset 'nowhere'"):
        presets._resolve("orphan", files, ())


def test_atari100k_has_the_spec_values():
    c = build_config("atari100k", "Breakout")
    assert c.search.discount == 0.997**4 == c.replay.discount
    assert (c.search.num_simulations, c.search.c_init, c.search.c_base) == (50, 1.25, 19652.0)
    assert (c.search.dirichlet_alpha, c.search.root_noise_fraction, c.search.value_delta_max) == (0.3, 0.25, 0.01)
    assert (c.learner.batch_size, c.learner.lr_init, c.learner.lr_warmup_steps) == (256, 0.2, 1000)
    assert (c.learner.momentum, c.learner.weight_decay, c.learner.grad_clip) == (0.9, 1e-4, 5.0)
    assert (c.learner.unroll_steps, c.learner.lstm_horizon, c.replay.td_steps) == (5, 5, 5)
    assert c.learner.target_update_interval == 200
    assert (c.replay.priority_alpha, c.replay.priority_beta_start, c.replay.priority_beta_steps) == (0.6, 0.4, 120_000)
    assert c.replay.td_age_unit == 30_000
    assert (c.runtime.env_steps, c.runtime.start_transitions, c.runtime.tail_train_steps) == (100_000, 2_000, 20_000)
    assert c.runtime.temperature_steps == (50_000, 75_000) and c.runtime.temperatures == (1.0, 0.5, 0.25)
    assert (c.env.frame_skip, c.env.obs_size, c.env.frame_stack, c.env.noop_max) == (4, 96, 4, 30)
    assert c.env.sticky_action_prob == 0.0
    assert (c.env.max_episode_steps, c.env.eval_max_episode_steps) == (3000, 27000)
    assert (c.model.support_size, c.model.lstm_hidden, c.model.proj_hidden, c.model.pred_hidden) == (300, 512, 1024, 512)


@pytest.mark.parametrize("preset", ["minatar", "minatar-v2"])
def test_minatar_presets_play_with_minatars_sticky_actions(preset):
    """MinAtar's protocol (and its DQN baselines'): sticky actions 0.1, in training and evaluation
    alike (one env setting serves both)."""
    assert build_config(preset, "MinAtar/Breakout").env.sticky_action_prob == 0.1


def test_preset_defaults_equal_dataclass_defaults_for_atari100k():
    # The atari100k file restates the section defaults; the two must never drift apart.
    preset = build_config("atari100k", "Breakout")
    default = RunConfig()
    for name in SECTIONS:
        a, b = dataclasses.asdict(getattr(preset, name)), dataclasses.asdict(getattr(default, name))
        differing = {k for k in a if a[k] != b[k]} - {"family", "kind"}
        assert not differing, f"{name}: {differing}"


def test_round_trip_through_json():
    config = build_config("smoke", "CartPole", {"learner.lr_init": 0.123, "runtime.temperatures": (2.0, 1.0, 0.5)})
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(data) == config


@pytest.mark.parametrize("text, key, value", [
    ("learner.lr_init=0.1", "learner.lr_init", 0.1),
    ("learner.batch_size=1_024", "learner.batch_size", 1024),
    ("tracking.aim=false", "tracking.aim", False),
    ("runtime.temperatures=1,0.5,0.25", "runtime.temperatures", (1.0, 0.5, 0.25)),
    ("env.game=Pong", "env.game", "Pong"),
])
def test_parse_override(text, key, value):
    assert parse_override(text) == (key, value)


@pytest.mark.parametrize("text, fragment", [
    ("learner.lr=0.1", "unknown config key 'learner.lr'"),
    ("nosuch.x=1", "unknown config key"),
    ("learner.batch_size=2.5", "learner.batch_size: expected int"),
    ("tracking.aim=maybe", "tracking.aim: expected bool"),
    ("learner.lr_init", "must look like section.field=value"),
])
def test_bad_overrides_name_the_problem(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_override(text)


def test_unknown_key_suggests_close_match():
    with pytest.raises(ConfigError, match="did you mean learner.lr_init"):
        parse_override("learner.lr_int=1")


@pytest.mark.parametrize("overrides, fragment", [
    ({"learner.batch_size": 0}, "learner.batch_size: must be in"),
    ({"search.discount": 1.5}, "search.discount: must be in"),
    ({"runtime.device": "tpu"}, "runtime.device: must be auto, cpu or cuda"),
    ({"replay.discount": 0.9}, "search.discount: must equal replay.discount"),
    ({"runtime.start_transitions": 10**9}, "runtime.start_transitions: must be <="),
    ({"learner.amp": "fp8"}, "learner.amp"),
    ({"batcher.amp": "fp16"}, "batcher.amp: must be off or bf16"),
    ({"batcher.amp_min_rows": -1}, "batcher.amp_min_rows: must be >= 0"),
    ({"batcher.amp": "bf16", "batcher.cuda_graphs": True}, "batcher.amp: bf16 inference does not combine"),
    ({"search.mode": "alphazero"}, "search.mode: must be pucb or gumbel"),
    ({"replay.value_target": "mixed"}, "replay.value_target: 'mixed' needs runtime.reanalyse_fraction = 1"),
    ({"replay.priority_weight_min": 2.0}, "replay.priority_weight_min: must be in"),
    ({"model.head_activation": "tanh"}, "model.head_activation: must be relu or elu"),
])
def test_out_of_range_values_are_rejected(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build_config("smoke", "CartPole", overrides)


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="available: atari100k, atari100k-v2, cartpole, cartpole-v2, minatar, "
                                          "minatar-v2, smoke"):
        build_config("atari200k", "Breakout")


def test_config_from_dict_rejects_foreign_sections():
    with pytest.raises(ConfigError, match="unknown config section"):
        config_from_dict({"trainer": {}})


def test_every_field_is_documented():
    keys = {f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert keys == set(field_docs())
    assert all(field_docs().values())
