"""Knowledge distillation: the teachers (loaded and checked against the student), their logits
cached once for offline distillation, and :class:`Distiller`, which adds a frozen teacher (or the
cached logits) to :class:`satseg.trainer.SegmentationTrainer`; ``save`` writes only the student."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import ops

from satseg.classes import TEACHER_ONLY, check_model_classes, load_spec
from satseg.errors import SatsegError
from satseg.inference import predict_logits, whole_image_logits
from satseg.losses import distillation_loss, num_replicas, valid_mask
from satseg.models import load_model_file, stride_of
from satseg.trainer import SegmentationTrainer, unpack_targets

if TYPE_CHECKING:
    from satseg.train import TrainConfig, TrainData


# --- teachers ------------------------------------------------------------------------------

def load_teachers(cfg: TrainConfig, strategy, classes=None) -> list[tuple]:
    """``(model, spec)`` of every teacher, each checked as :func:`load_teacher` does."""
    return [load_teacher(cfg, path, strategy, classes) for path in cfg.teachers]


def load_teacher(cfg: TrainConfig, path: str, strategy, classes=None):
    """A frozen teacher with its spec, checked against the student's classes and sampling."""
    with strategy.scope():  # an online teacher runs on every replica
        teacher = load_model_file(path, "teacher")
    try:
        tspec = load_spec(path)
    except FileNotFoundError as e:
        raise SatsegError(str(e)) from None
    check_model_classes(teacher, tspec, path, "teacher", classes)
    if cfg.sampling == "crops":  # teacher and student see the same crop of a whole image
        if None not in teacher.input_shape[1:3]:
            raise SatsegError(f"{path}: teacher takes only {teacher.input_shape[1]}x{teacher.input_shape[2]} "
                              "inputs; random crops need a fully convolutional teacher (or --sampling grid)")
        if tspec.normalization.get("kind") != "in_model":
            raise SatsegError(f"{path}: a teacher with per-patch normalisation cannot label whole images; "
                              "use --sampling grid")
    elif None not in teacher.input_shape[1:3] and teacher.input_shape[1] != cfg.patch_size:
        raise SatsegError(f"{path}: teacher takes {teacher.input_shape[1]} px patches, "
                          f"--patch-size is {cfg.patch_size}")
    return teacher, tspec


def cache_teacher_logits(cfg: TrainConfig, teachers: list[tuple], data: TrainData, verbose: int = 1):
    """Offline distillation: the teachers' logits, computed once, for every training and
    unlabelled image (crop sampling) or training patch (grid sampling). One teacher's logits are kept as they
    are; several give the log of their mean probabilities, whose softmax is that mean."""
    t0 = time.perf_counter()
    if data.grid is not None:
        for path, (_, tspec) in zip(cfg.teachers, teachers):
            if tspec.normalization != data.normalization:
                raise SatsegError(f"{path}: teacher normalisation {tspec.normalization.get('kind')} differs from "
                                  f"the student's; use --normalization to match it")
        dtype = np.float16 if len(teachers) == 1 else np.float32  # one teacher: no float32 copy of every patch
        outs = [predict_logits(t, data.grid[0], cfg.batch_size, dtype) for t, _ in teachers]
        out = mean_logits(outs).astype(np.float16, copy=False)
    else:
        from satseg.data import LoadedImage

        if not all(isinstance(li, LoadedImage) for li in data.train + data.unlabelled):
            raise SatsegError("scenes read in windows have no cached whole-image teacher logits; "
                              "use --distill-mode online (the teacher labels each crop)")
        runs = [whole_image_logits(t, stride_of(tspec.architecture), np.float32) for t, tspec in teachers]
        out = [mean_logits([run(li.image) for run in runs]).astype(np.float16) for li in data.train + data.unlabelled]
    if verbose:
        print(f"cached the logits of {len(teachers)} teacher{'s' if len(teachers) > 1 else ''} for {len(out)} "
              f"training {'patches' if data.grid is not None else 'images'} in {time.perf_counter() - t0:.1f} s")
    return out


def mean_logits(logits: list[np.ndarray]) -> np.ndarray:
    """One teacher's logits, or the log of several teachers' mean softmax (an ensemble target)."""
    if len(logits) == 1:
        return logits[0]
    from satseg.imaging import softmax

    return np.log(np.maximum(sum(softmax(z) for z in logits) / len(logits), np.finfo(np.float32).tiny))


# --- the trainer ---------------------------------------------------------------------------


class Distiller(SegmentationTrainer):
    """Knowledge distillation (Hinton et al. 2015) for segmentation, on Keras' own step.

    total = alpha * student_loss(labels) + (1 - alpha) * KL(teacher/T || student/T) * T^2: the
    student loss averaged over the labelled pixels of the global batch, the KL over every pixel that
    holds imagery, labelled or not (:meth:`distillation_mask`), so unlabelled images and mixed views
    are learnt from the teacher alone. The teacher runs in inference mode with no gradient; when the
    targets carry ``teacher_logits`` (offline distillation) it is not run. Validation scores the
    student on the labels alone. alpha, T and the confidence have no defaults here: the recipe
    (:class:`satseg.train.TrainConfig`) is their one source.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model | None = None, **kw):
        super().__init__(student, name=kw.pop("name", "distiller"), **kw)
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False

    def compile(self, optimizer, student_loss, alpha: float, temperature: float, confidence: float = 0.0,
                distillation_loss=distillation_loss, metrics=None, **kw):
        # the trackers are made here, in the scope compile runs in (a distribution strategy's)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        super().compile(optimizer=optimizer, student_loss=student_loss, metrics=metrics, **kw)
        self.distillation_loss_fn = distillation_loss
        self.alpha, self.temperature, self.confidence = float(alpha), float(temperature), float(confidence)

    def teacher_logits(self, x):
        if self.teacher is None:
            raise ValueError("Distiller has no teacher: pass teacher= or feed teacher_logits")
        return ops.stop_gradient(self.teacher(x, training=False))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels, cached = unpack_targets(y)
        s_loss = self.student_loss(labels, y_pred)
        if not training:
            return s_loss
        t_logits = cached if cached is not None else self.teacher_logits(x)
        d_loss = self.distillation_loss_fn(t_logits, y_pred, self.distillation_mask(labels, t_logits), self.temperature)
        n = num_replicas()  # the losses are each replica's share of the global batch's: report the whole
        self.student_loss_tracker.update_state(s_loss * n)
        self.distillation_loss_tracker.update_state(d_loss * n)
        return self.alpha * s_loss + (1.0 - self.alpha) * d_loss

    def distillation_mask(self, labels, t_logits):
        """Every pixel that holds imagery, labelled or not; with a ``confidence``, pixels without a
        label only where the teacher's top probability reaches it."""
        mask = valid_mask(labels)
        if self.confidence > 0:
            sure = ops.max(ops.softmax(ops.cast(t_logits, "float32"), axis=-1), axis=-1) >= self.confidence
            labelled = ops.not_equal(ops.cast(labels, "int32"), TEACHER_ONLY)
            mask = mask * ops.cast(ops.logical_or(labelled, sure), "float32")
        return mask
