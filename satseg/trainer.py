"""Supervised segmentation training on Keras' own training step.

:class:`SegmentationTrainer` says what the loss is (``compute_loss``: an ignore-aware loss on the
labels) and what it reports (``compute_metrics``: :class:`~satseg.keras_metrics.SegMetrics`); Keras
runs the step around them (gradients, loss scaling under mixed precision, the distribution
strategy) on whichever backend it runs, as Keras 3's own ``keras.distillation.Distiller`` does.
``save`` writes only the trained model, a plain Keras model that loads without satseg.
:class:`satseg.distill.Distiller` extends it with a teacher.
"""

from __future__ import annotations

import keras
from keras import ops

from satseg.losses import CrossEntropy


def unpack_targets(y):
    """(labels, cached teacher logits or None) of a batch's targets: the labels alone, or
    ``{"labels": ..., "teacher_logits": ...}`` for offline distillation."""
    if isinstance(y, dict):
        return y["labels"], y.get("teacher_logits")
    return y, None


class SegmentationTrainer(keras.Model):
    """Wraps ``model`` with an ignore-aware loss and segmentation metrics."""

    def __init__(self, model: keras.Model, **kw):
        super().__init__(name=kw.pop("name", f"{model.name}_trainer"), **kw)
        self.student = model
        self.seg_metrics = []
        self.built = model.built  # a checkpoint loads into it before fit calls it

    def compile(self, optimizer="adam", student_loss=None, metrics=None, **kw):
        """``student_loss``: a :mod:`satseg.losses` loss; ``metrics``: Keras metrics over (labels,
        logits), reported as their own results. Keras' ``loss`` and ``metrics`` arguments are not
        used: the targets may carry teacher logits beside the labels."""
        super().compile(optimizer=optimizer, **kw)
        self.student_loss = student_loss or CrossEntropy()
        self.seg_metrics = list(metrics or [])
        # Optimizer slots exist before fit, so a checkpoint can restore them on resume.
        self.optimizer.build(self.student.trainable_variables)

    def call(self, x, training=False):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, _ = unpack_targets(y)
        return self.student_loss(labels, y_pred)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, _ = unpack_targets(y)
        for m in self.seg_metrics:
            m.update_state(labels, y_pred)
        return worker_safe(self.get_metrics_result())

    def save(self, filepath, *args, **kwargs):
        """Save the trained model alone (a plain Keras model)."""
        return self.student.save(filepath, *args, **kwargs)


def multiworker() -> bool:
    """Whether a TensorFlow ``MultiWorkerMirroredStrategy`` is in force."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy)


def worker_safe(logs: dict) -> dict:
    """Keras reduces logs across workers with ``reduce(MEAN, axis=0)``, which fails on scalars
    (tensorflow/tensorflow#72388): under several workers, hand it shape-(1,) values."""
    return {k: ops.reshape(v, (1,)) for k, v in logs.items()} if multiworker() else logs
