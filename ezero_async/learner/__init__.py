"""Learner: the EfficientZero model, its loss, and the learner thread.

model.py (networks + build_model), support.py (value supports), augment.py, loss.py,
schedule.py (lr, target version), learner.py (one update), transfer.py (H2D staging),
weights.py (versioned publication), thread.py (LearnerThread).
"""
from ezero_async.learner.learner import Learner, LossStats, UpdateResult, resolve_amp
from ezero_async.learner.model import EfficientZeroNet, build_model, count_parameters, resolve_kind, stack_frames
from ezero_async.learner.schedule import learning_rate, target_version
from ezero_async.learner.support import Support, h, h_inv
from ezero_async.learner.thread import LearnerThread
from ezero_async.learner.transfer import BatchMover, DeviceBatch, check_batch
from ezero_async.learner.weights import WeightStore

__all__ = [
    "BatchMover", "DeviceBatch", "EfficientZeroNet", "Learner", "LearnerThread", "LossStats", "Support",
    "UpdateResult", "WeightStore", "build_model", "check_batch", "count_parameters", "h", "h_inv",
    "learning_rate", "resolve_amp", "resolve_kind", "stack_frames", "target_version",
]
