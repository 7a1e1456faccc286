"""Benchmark suites: games x seeds of normal runs, trained here or on a Ray cluster, resumable,
reported with per-game tables and aggregate human-normalised statistics (`python -m ezero_async.suite`)."""
