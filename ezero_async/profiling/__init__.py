"""Profiling a training run: where the time goes (probe, report, recommendations, traces)."""
