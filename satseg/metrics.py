"""Segmentation metrics from a streaming confusion matrix, skipping the ignore label.

:class:`ConfusionMatrix` works on numpy arrays (evaluation, export parity); :class:`SegMetrics`
is the same matrix as a Keras metric, so ``val_miou`` can drive checkpoints and early stopping.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from satseg.classes import IGNORE_LABEL


def slug(name: str) -> str:
    """'Land (unpaved area)' -> 'land': class names as metric-name suffixes."""
    return re.sub(r"[^a-z0-9]+", "_", name.split("(")[0].strip().lower()).strip("_")


def scores(cm: np.ndarray) -> dict:
    """Per-class IoU / precision / recall / F1, mean IoU and pixel accuracy from a confusion
    matrix (rows: truth, columns: prediction). Classes absent from both give NaN IoU and are
    left out of the mean."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    gt, pred = cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (gt + pred - tp)
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = tp / gt
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "iou": iou, "precision": precision, "recall": recall, "f1": f1,
        "support": gt,
    }


class ConfusionMatrix:
    """Streaming confusion matrix on numpy arrays of class ids."""

    def __init__(self, num_classes: int, ignore_label: int = IGNORE_LABEL):
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, y_true, y_pred) -> ConfusionMatrix:
        t = np.asarray(y_true).ravel().astype(np.int64)
        p = np.asarray(y_pred).ravel().astype(np.int64)
        keep = (t != self.ignore_label) & (t < self.num_classes)
        n = self.num_classes
        self.matrix += np.bincount(t[keep] * n + p[keep], minlength=n * n).reshape(n, n)
        return self

    def scores(self) -> dict:
        return scores(self.matrix)

    def report(self, class_names) -> dict:
        """JSON-ready: ``miou``, ``pixel_accuracy``, ``per_class`` name -> iou/precision/recall/f1/share."""
        s = self.scores()
        total = max(self.matrix.sum(), 1)

        def num(v):
            return None if not np.isfinite(v) else float(v)

        return {
            "miou": num(s["miou"]),
            "pixel_accuracy": num(s["pixel_accuracy"]),
            "per_class": {
                name: {"iou": num(s["iou"][i]), "precision": num(s["precision"][i]),
                       "recall": num(s["recall"][i]), "f1": num(s["f1"][i]),
                       "share": float(s["support"][i] / total)}
                for i, name in enumerate(class_names)
            },
            "confusion_matrix": self.matrix.tolist(),
        }


@keras.saving.register_keras_serializable("satseg")
class SegMetrics(keras.metrics.Metric):
    """Keras metric over logits: reports ``miou``, ``pixel_accuracy`` and ``iou_<class>``.

    One confusion matrix feeds all of them (one pass over the pixels per batch).
    """

    def __init__(self, class_names, ignore_label: int = IGNORE_LABEL, name="seg", **kw):
        super().__init__(name=name, **kw)
        self.class_names = list(class_names)
        self.ignore_label = ignore_label
        n = len(self.class_names)
        self.cm = self.add_variable(shape=(n, n), initializer="zeros", dtype="float64", name="cm")

    def update_state(self, y_true, y_pred, sample_weight=None):
        import tensorflow as tf

        n = len(self.class_names)
        t = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        p = tf.reshape(tf.argmax(y_pred, -1, output_type=tf.int32), [-1])
        keep = tf.logical_and(tf.not_equal(t, self.ignore_label), t < n)
        idx = tf.boolean_mask(t, keep) * n + tf.boolean_mask(p, keep)
        counts = tf.math.bincount(idx, minlength=n * n, maxlength=n * n, dtype=tf.float64)
        self.cm.assign_add(tf.reshape(counts, (n, n)))

    def result(self):
        from keras import ops

        cm = ops.convert_to_tensor(self.cm)
        tp = ops.diagonal(cm)
        union = ops.sum(cm, 0) + ops.sum(cm, 1) - tp
        iou = ops.where(union > 0, tp / ops.maximum(union, 1.0), 0.0)
        present = ops.cast(union > 0, "float64")
        out = {
            "miou": ops.sum(iou) / ops.maximum(ops.sum(present), 1.0),
            "pixel_accuracy": ops.sum(tp) / ops.maximum(ops.sum(cm), 1.0),
        }
        for i, name in enumerate(self.class_names):
            out[f"iou_{slug(name)}"] = iou[i]
        return out

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names, "ignore_label": self.ignore_label}
