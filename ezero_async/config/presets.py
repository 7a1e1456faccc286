"""Presets are data: TOML files in presets/, each a set of overrides on the section defaults, or on
another preset's values when its [about] table names a `base` (the -v2 presets: a V1 preset plus
EfficientZero V2's settings)."""
from __future__ import annotations

import difflib
import tomllib
from importlib import resources
from typing import Any

from ezero_async.config.sections import RunConfig
from ezero_async.config.values import apply_overrides
from ezero_async.errors import ConfigError


def _load_presets() -> dict[str, dict[str, Any]]:
    files = {}
    for entry in resources.files("ezero_async.config").joinpath("presets").iterdir():
        if entry.name.endswith(".toml"):
            files[entry.name[: -len(".toml")]] = tomllib.loads(entry.read_text())
    return {name: _resolve(name, files, ()) for name in files}


def _resolve(name: str, files: dict[str, dict[str, Any]], chain: tuple[str, ...]) -> dict[str, Any]:
    """A preset's flat values: those of its `[about] base` preset (if any), then its own.
    The about table is the preset's own (device and summary are not inherited)."""
    if name in chain:
        raise ConfigError(f"preset {name!r}: circular base chain {' -> '.join(chain + (name,))}")
    data = files[name]
    about = data.get("about", {})
    values: dict[str, Any] = {}
    base = about.get("base")
    if base is not None:
        if base not in files:
            raise ConfigError(f"preset {name!r}: unknown base preset {base!r}")
        values.update(_resolve(base, files, chain + (name,))["values"])
    values.update({f"{section}.{key}": value for section, table in data.items() if section != "about"
                   for key, value in table.items()})
    return {"about": about, "values": values}


PRESETS: dict[str, dict[str, Any]] = _load_presets()


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_device(preset: str) -> str | None:
    """The device a preset is sized for ([about] device: 'cuda'), None if any will do."""
    return PRESETS.get(preset, {}).get("about", {}).get("device")


def build_config(preset: str, game: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults <- preset file <- game <- explicit overrides; then every check. Raises ConfigError."""
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, preset_names(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"unknown preset {preset!r}: {hint}available: {', '.join(preset_names())}")
    values = dict(PRESETS[preset]["values"])
    if game is not None:
        values["env.game"] = game
    values.update(overrides or {})
    config = apply_overrides(RunConfig(preset=preset), values)
    config.check()
    return config
