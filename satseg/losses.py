"""Segmentation losses on logits with an ignore label, in ``keras.ops`` (any backend), correct
under ``tf.distribute``.

Every loss is a ratio of sums over pixels (or classes). Under a distribution strategy the sums
are all-reduced across replicas and the result divided by the replica count, so the gradients
that the optimizer sums over replicas are those of the loss of the *global* batch: N replicas
train exactly like one replica on the same global batch.
"""

from __future__ import annotations

import difflib

import keras
from keras import ops

from satseg.classes import IGNORE_LABEL
from satseg.errors import SatsegError


def _replica_ctx():
    """The TensorFlow replica context of a distributed step with several replicas, else None
    (other backends distribute through Keras' distribution API, which sees the global batch)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


def global_sum(x):
    """Sum of ``x`` over all replicas (differentiable); ``x`` itself outside a strategy."""
    ctx = _replica_ctx()
    if ctx is None:
        return x
    import tensorflow as tf

    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)


def num_replicas() -> int:
    ctx = _replica_ctx()
    return ctx.num_replicas_in_sync if ctx else 1


def global_mean(values, weights):
    """Weighted mean of per-pixel ``values`` over the global batch, scaled for replica sums."""
    num = global_sum(ops.sum(values * weights))
    den = global_sum(ops.stop_gradient(ops.sum(weights)))
    return ops.divide_no_nan(num, den) / num_replicas()


def valid_mask(labels, ignore_label: int = IGNORE_LABEL):
    """1 where a pixel holds imagery (labelled or ``satseg.classes.TEACHER_ONLY``), 0 where it is ignored."""
    return ops.cast(ops.not_equal(ops.cast(labels, "int32"), ignore_label), "float32")


def labelled_mask(labels, num_classes: int, ignore_label: int = IGNORE_LABEL):
    """1 where a pixel has a class label (not ignored, not ``satseg.classes.TEACHER_ONLY``)."""
    labels = ops.cast(labels, "int32")
    return ops.cast(ops.logical_and(ops.not_equal(labels, ignore_label), labels < num_classes), "float32")


def _prepare(labels, logits, ignore_label, class_weights):
    """-> (safe integer labels, valid mask, per-pixel weights, one-hot labels)."""
    labels = ops.cast(labels, "int32")
    if len(labels.shape) == len(logits.shape):
        labels = ops.squeeze(labels, -1)
    n = logits.shape[-1]
    valid = labelled_mask(labels, n, ignore_label)
    safe = ops.where(valid > 0, labels, ops.zeros_like(labels))
    onehot = ops.one_hot(safe, n) * valid[..., None]
    weights = valid
    if class_weights is not None:
        weights = valid * ops.take(ops.convert_to_tensor(class_weights, "float32"), safe)
    return safe, valid, weights, onehot


class SegLoss:
    """Base: ``loss(labels, logits)`` with an ignore label and optional per-class weights."""

    name = "loss"

    def __init__(self, class_weights=None, ignore_label: int = IGNORE_LABEL):
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.ignore_label = ignore_label

    def __call__(self, labels, logits):
        logits = ops.cast(logits, "float32")
        return self.compute(logits, *_prepare(labels, logits, self.ignore_label, self.class_weights))

    def get_config(self):
        return {"name": self.name, "class_weights": self.class_weights, "ignore_label": self.ignore_label}


class CrossEntropy(SegLoss):
    """Categorical cross-entropy averaged over valid (weighted) pixels."""

    name = "ce"

    def compute(self, logits, safe, valid, weights, onehot):
        ce = ops.sparse_categorical_crossentropy(safe, logits, from_logits=True)
        return global_mean(ce, weights)


class Focal(SegLoss):
    """Categorical focal loss (Lin et al. 2017): ``-alpha (1 - p_t)^gamma log p_t``."""

    name = "focal"

    def __init__(self, gamma: float = 2.0, alpha: float = 0.25, **kw):
        super().__init__(**kw)
        self.gamma, self.alpha = gamma, alpha

    def compute(self, logits, safe, valid, weights, onehot):
        logp = ops.log_softmax(logits, axis=-1)
        logp_t = ops.sum(logp * onehot, -1)
        p_t = ops.exp(logp_t)
        fl = -self.alpha * ops.power(1.0 - p_t, self.gamma) * logp_t
        return global_mean(fl, weights)


class Dice(SegLoss):
    """1 - mean over classes of the soft Dice coefficient, over the valid pixels of the batch."""

    name = "dice"

    def __init__(self, smooth: float = 1e-5, **kw):
        super().__init__(**kw)
        self.smooth = smooth

    def compute(self, logits, safe, valid, weights, onehot):
        probs = ops.softmax(logits, axis=-1) * valid[..., None]
        axes = tuple(range(len(probs.shape) - 1))
        inter = global_sum(ops.sum(probs * onehot, axes))
        total = global_sum(ops.sum(probs + onehot, axes))
        dice = (2.0 * inter + self.smooth) / (total + self.smooth)
        cw = ops.ones_like(dice) if self.class_weights is None else ops.convert_to_tensor(self.class_weights, "float32")
        return (1.0 - ops.sum(dice * cw) / ops.sum(cw)) / num_replicas()


class SumLoss(SegLoss):
    """The sum of the losses in ``parts``, each with the same class weights and ignore label."""

    parts: tuple = ()

    def __init__(self, **kw):
        super().__init__(**kw)
        self.terms = [part(**kw) for part in self.parts]

    def compute(self, *args):
        return sum(t.compute(*args) for t in self.terms)


class DiceFocal(SumLoss):
    """The reference project's loss: Dice (class-weighted) + focal."""

    name, parts = "dice_focal", (Dice, Focal)


class CeDice(SumLoss):
    """Cross-entropy + Dice: CE for calibrated per-pixel probabilities, Dice to lift rare classes."""

    name, parts = "ce_dice", (CrossEntropy, Dice)


class Lovasz(SegLoss):
    """Lovász-softmax (Berman et al. 2018): a convex surrogate of 1 - IoU per class, averaged
    over the classes present in the batch; optimises the Jaccard index directly.

    Unlike the other losses it is not a ratio of sums (it sorts the batch's errors), so under a
    distribution strategy it is the mean of each replica's Lovász loss, not the global batch's."""

    name = "lovasz"

    def compute(self, logits, safe, valid, weights, onehot):
        n = logits.shape[-1]
        probs = ops.reshape(ops.softmax(logits, axis=-1), (-1, n))
        fg = ops.reshape(onehot, (-1, n))
        keep = ops.reshape(valid, (-1,)) > 0
        losses, present = [], []
        for c in range(n):
            err = ops.where(keep, ops.abs(fg[:, c] - probs[:, c]), -1.0)  # ignored pixels sort last
            order = ops.flip(ops.argsort(err), 0)  # descending
            err_sorted = ops.maximum(ops.take(err, order), 0.0)
            losses.append(ops.sum(err_sorted * ops.stop_gradient(lovasz_grad(ops.take(fg[:, c], order)))))
            present.append(ops.cast(ops.sum(fg[:, c]) > 0, "float32"))
        losses, present = ops.stack(losses), ops.stack(present)
        cw = ops.ones_like(losses) if self.class_weights is None else ops.convert_to_tensor(self.class_weights, "float32")
        return ops.sum(losses * present * cw) / ops.maximum(ops.sum(present * cw), 1e-6) / num_replicas()


def lovasz_grad(fg_sorted):
    """Gradient of the Lovász extension of the Jaccard loss for errors sorted in decreasing order."""
    gts = ops.sum(fg_sorted)
    intersection = gts - ops.cumsum(fg_sorted)
    union = gts + ops.cumsum(1.0 - fg_sorted)
    jaccard = 1.0 - intersection / ops.maximum(union, 1e-6)
    return ops.concatenate([jaccard[:1], jaccard[1:] - jaccard[:-1]], 0)


class CeLovasz(SumLoss):
    """Cross-entropy + Lovász-softmax: CE for calibrated probabilities, Lovász for the IoU."""

    name, parts = "ce_lovasz", (CrossEntropy, Lovasz)


LOSSES = {"ce": CrossEntropy, "dice": Dice, "focal": Focal, "dice_focal": DiceFocal, "ce_dice": CeDice,
          "lovasz": Lovasz, "ce_lovasz": CeLovasz}


def get_loss(name: str, class_weights=None, ignore_label: int = IGNORE_LABEL) -> SegLoss:
    if name not in LOSSES:
        close = difflib.get_close_matches(name, LOSSES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SatsegError(f"unknown loss '{name}'; valid names: {', '.join(LOSSES)}.{hint}")
    return LOSSES[name](class_weights=class_weights, ignore_label=ignore_label)


def distillation_loss(teacher_logits, student_logits, valid, temperature: float):
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2, averaged over valid pixels.

    ``valid`` is a (B, H, W) float mask: ignore pixels contribute nothing.
    """
    t = ops.cast(teacher_logits, "float32") / temperature
    s = ops.cast(student_logits, "float32") / temperature
    p_t = ops.softmax(t, axis=-1)
    kl = ops.sum(p_t * (ops.log_softmax(t, axis=-1) - ops.log_softmax(s, axis=-1)), -1)
    return global_mean(kl, valid) * temperature**2
