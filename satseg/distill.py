"""Training wrappers: supervised segmentation and knowledge distillation.

:class:`SegmentationTrainer` trains one model with an ignore-aware loss; :class:`Distiller`
adds a frozen teacher (or cached teacher logits). Both report their losses and
:class:`~satseg.metrics.SegMetrics` in the progress bar and history, and ``save`` writes only the
trained model, a plain Keras model that loads without satseg.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from satseg.losses import CrossEntropy, distillation_loss, num_replicas, valid_mask


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
        # Optimizer slots exist before fit, so BackupAndRestore can restore them on resume.
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


class Distiller(SegmentationTrainer):
    """Knowledge distillation (Hinton et al. 2015) for segmentation.

    total = alpha * student_loss(labels) + (1 - alpha) * KL(teacher/T || student/T) * T^2,
    both averaged over valid pixels of the global batch. The teacher runs in inference mode with
    no gradient; when the data carries ``teacher_logits`` (offline distillation) it is not run.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model | None = None, **kw):
        super().__init__(student, name=kw.pop("name", "distiller"), **kw)
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    def compile(self, optimizer="adam", student_loss=None, distillation_loss=distillation_loss,
                alpha: float = 0.1, temperature: float = 3.0, metrics=None, **kw):
        super().compile(optimizer=optimizer, student_loss=student_loss, metrics=metrics, **kw)
        self.distillation_loss_fn = distillation_loss
        self.alpha, self.temperature = float(alpha), float(temperature)

    @property
    def metrics(self):
        return [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker,
                *self.seg_metrics]

    def teacher_logits(self, x):
        if self.teacher is None:
            raise ValueError("Distiller has no teacher: pass teacher= or feed teacher_logits")
        return tf.stop_gradient(self.teacher(x, training=False))

    def _step_losses(self, x, labels, cached, training):
        t_logits = cached if cached is not None else self.teacher_logits(x)
        logits = self.student(x, training=training)
        s_loss = self.student_loss(labels, logits)
        d_loss = self.distillation_loss_fn(t_logits, logits, valid_mask(labels), self.temperature)
        total = self.alpha * s_loss + (1.0 - self.alpha) * d_loss
        return logits, {"loss": total, "student_loss": s_loss, "distillation_loss": d_loss}

    def test_step(self, data):
        x, labels, _ = _unpack(data)
        logits = self.student(x, training=False)
        # Validation scores the student on the labels only (no teacher pass).
        return self._report(labels, logits, {"loss": self.student_loss(labels, logits)})
