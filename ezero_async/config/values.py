"""Typed access to config fields by dotted key ('learner.lr_init'): parsing, dict round-trips, docs.

Every value that enters a RunConfig from outside (command line, preset file, checkpoint) passes
through `coerce`, so a wrong key or type is reported the same way wherever it comes from.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import typing
from functools import cache
from typing import Any

from ezero_async.config.sections import SECTIONS, RunConfig
from ezero_async.errors import ConfigError


@cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _known_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _split_key(key: str) -> tuple[str, str]:
    section, dot, name = key.partition(".")
    cls = SECTIONS.get(section)
    if not dot or cls is None or name not in _field_types(cls):
        close = difflib.get_close_matches(key, _known_keys(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see --help-config for all keys)"
        raise ConfigError(f"unknown config key {key!r}{hint}")
    return section, name


def _scalar(kind: type, text: Any, key: str) -> Any:
    """Convert a string (CLI) or an already-typed value (TOML, JSON) to `kind`, strictly."""
    if kind is bool:
        if isinstance(text, bool):
            return text
        if isinstance(text, str) and text.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(text, str) and text.lower() in ("0", "false", "no", "off"):
            return False
    elif kind is int:
        if isinstance(text, int) and not isinstance(text, bool):
            return text
        if isinstance(text, str):
            try:
                return int(text.replace("_", ""))
            except ValueError:
                pass
    elif kind is float:
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return float(text)
        if isinstance(text, str):
            try:
                return float(text.replace("_", ""))
            except ValueError:
                pass
    elif kind is str:
        if isinstance(text, str):
            return text
    raise ConfigError(f"{key}: expected {kind.__name__}, got {text!r}")


def coerce(key: str, value: Any) -> Any:
    """Return `value` converted to the declared type of config field `key` (ConfigError if it can't)."""
    section, name = _split_key(key)
    kind = _field_types(SECTIONS[section])[name]
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, str):
            parts = [p for p in value.replace("(", "").replace(")", "").split(",") if p.strip()]
            value = [p.strip() for p in parts]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a comma-separated list of {item.__name__}, got {value!r}")
        return tuple(_scalar(item, v, key) for v in value)
    return _scalar(kind, value, key)


def parse_override(text: str) -> tuple[str, Any]:
    """'learner.lr_init=0.1' -> ('learner.lr_init', 0.1), typed and checked against the schema."""
    key, eq, raw = text.partition("=")
    if not eq:
        raise ConfigError(f"override {text!r} must look like section.field=value")
    key = key.strip()
    return key, coerce(key, raw.strip())


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of `config` with dotted-key overrides applied (values coerced, not checked)."""
    sections = {name: getattr(config, name) for name in SECTIONS}
    changes: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = _split_key(key)
        changes.setdefault(section, {})[name] = coerce(key, value)
    new = {s: dataclasses.replace(sections[s], **changes.get(s, {})) for s in SECTIONS}
    return dataclasses.replace(config, **new)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """JSON-ready nested dict (tuples become lists)."""
    out: dict[str, Any] = {"preset": config.preset}
    for section in SECTIONS:
        out[section] = {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(getattr(config, section)).items()}
    return out


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Inverse of config_to_dict; unknown sections or keys are errors (a stale or foreign file)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a JSON object of sections, got {type(data).__name__}")
    unknown = set(data) - set(SECTIONS) - {"preset"}
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}")
    for s in SECTIONS:
        if not isinstance(data.get(s, {}), dict):
            raise ConfigError(f"config section {s!r} must be an object of fields, got {data[s]!r:.40}")
    flat = {f"{s}.{k}": v for s in SECTIONS for k, v in data.get(s, {}).items()}
    config = apply_overrides(RunConfig(preset=str(data.get("preset", "atari100k"))), flat)
    config.check()
    return config


@cache
def field_docs() -> dict[str, str]:
    """Dotted key -> the docstring written under the field in sections.py."""
    docs: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        body = ast.parse(inspect.getsource(cls)).body[0].body
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
                docs[f"{section}.{stmt.target.id}"] = str(nxt.value.value).strip()
    return docs
