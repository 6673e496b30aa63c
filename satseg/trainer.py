"""Supervised segmentation training: one model, an ignore-aware loss, segmentation metrics.

:class:`SegmentationTrainer` reports its losses and :class:`~satseg.metrics.SegMetrics` in the
progress bar and history; ``save`` writes only the trained model, a plain Keras model that loads
without satseg. :class:`satseg.distill.Distiller` extends it with a teacher.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from satseg.losses import CrossEntropy, num_replicas


def _unpack(data):
    x, y = data[0], data[1]
    if isinstance(y, dict):
        return x, y["labels"], y.get("teacher_logits")
    return x, y, None


class SegmentationTrainer(keras.Model):
    """Wraps ``model`` with an ignore-aware loss and segmentation metrics."""

    def __init__(self, model: keras.Model, **kw):
        super().__init__(name=kw.pop("name", f"{model.name}_trainer"), **kw)
        self.student = model
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = model.built

    def compile(self, optimizer="adam", student_loss=None, metrics=None, **kw):
        super().compile(optimizer=optimizer, **kw)
        self.student_loss = student_loss or CrossEntropy()
        self.seg_metrics = list(metrics or [])
        # Optimizer slots exist before fit, so a checkpoint can restore them on resume.
        self.optimizer.build(self.student.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker, *self.seg_metrics]

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Everything is built in __init__/compile. Keras 3.15's symbolic build reduces a
        # distributed batch with strategy.reduce, which fails under MultiWorkerMirroredStrategy.
        return

    def call(self, x, training=False):
        return self.student(x, training=training)

    def _step_losses(self, x, labels, cached, training):
        logits = self.student(x, training=training)
        return logits, {"loss": self.student_loss(labels, logits)}

    def _report(self, labels, logits, parts):
        # Loss values are each replica's share of the global-batch loss; the trackers average
        # over replicas, so scale back up to report the global value.
        n = num_replicas()
        out = {}
        for name, value in parts.items():
            tracker = getattr(self, f"{name}_tracker")
            tracker.update_state(value * n)
            out[name] = tracker.result()
        for m in self.seg_metrics:
            m.update_state(labels, logits)
            out.update(m.result())
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 reduces logs across workers with reduce(MEAN, axis=0), which fails on
            # scalars (tensorflow/tensorflow#72388): hand it shape-(1,) values.
            out = {k: tf.reshape(v, [1]) for k, v in out.items()}
        return out

    def train_step(self, data):
        x, labels, cached = _unpack(data)
        with tf.GradientTape() as tape:
            logits, parts = self._step_losses(x, labels, cached, training=True)
        weights = self.student.trainable_weights
        grads = tape.gradient(parts["loss"], weights)
        self.optimizer.apply_gradients(zip(grads, weights))
        return self._report(labels, logits, parts)

    def test_step(self, data):
        x, labels, _ = _unpack(data)
        logits = self.student(x, training=False)
        return self._report(labels, logits, {"loss": self.student_loss(labels, logits)})

    def save(self, filepath, *args, **kwargs):
        """Save the trained model alone (a plain Keras model)."""
        return self.student.save(filepath, *args, **kwargs)
