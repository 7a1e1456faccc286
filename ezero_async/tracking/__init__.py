"""Run tracking: checkpoints, the Aim sink."""
