"""Run configuration: documented sections, presets as data, validated overrides."""
from ezero_async.config.presets import PRESETS, build_config, preset_device, preset_names
from ezero_async.config.sections import (
    SECTIONS,
    BatcherConfig,
    EnvConfig,
    LearnerConfig,
    ModelConfig,
    ReplayConfig,
    RunConfig,
    RuntimeConfig,
    SearchConfig,
    TrackingConfig,
)
from ezero_async.config.values import apply_overrides, config_from_dict, config_to_dict, field_docs, parse_override

__all__ = [
    "PRESETS", "SECTIONS", "BatcherConfig", "EnvConfig", "LearnerConfig", "ModelConfig", "ReplayConfig",
    "RunConfig", "RuntimeConfig", "SearchConfig", "TrackingConfig", "apply_overrides", "build_config",
    "config_from_dict", "config_to_dict", "field_docs", "parse_override", "preset_device", "preset_names",
]
