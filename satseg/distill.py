"""Knowledge distillation: :class:`Distiller` adds a frozen teacher (or cached teacher logits) to
:class:`satseg.trainer.SegmentationTrainer`; ``save`` writes only the student."""

from __future__ import annotations

import keras
import tensorflow as tf

from satseg.losses import distillation_loss, valid_mask
from satseg.trainer import SegmentationTrainer, _unpack


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
