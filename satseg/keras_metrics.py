"""The confusion-matrix metrics of :mod:`satseg.metrics` as a Keras metric for ``fit``."""

from __future__ import annotations

import keras

from satseg.classes import IGNORE_LABEL
from satseg.metrics import slug


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
