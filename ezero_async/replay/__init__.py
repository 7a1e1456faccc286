"""Replay: shared-memory hot tier, zarr store of record, prioritised sampling, reanalysis targets.

Modules: schema (slot layout), shm (shared-memory blocks), hot (the ring), sampler (sum-tree
priorities, beta, TD depth), store (zarr store of record), windows (episode-link walks, frame
gathers), targets (pure target math), context (reanalysis contexts, finish -> TrainingBatch),
buffer (the Replay owner API), batch (TrainingBatch).
"""
