"""ezero_async: a single-node, high-throughput EfficientZero trainer.

Data flow (and package layout): envs -> inference (dynamic batcher) -> search -> replay ->
learner -> tracking; `main` wires them. See shared/DESIGN.md.
"""

__version__ = "0.1.0"
