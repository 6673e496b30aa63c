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
        # float64 counts where the backend has them (JAX has no float64 unless asked to)
        dtype = "float32" if keras.backend.backend() == "jax" else "float64"
        self.cm = self.add_variable(shape=(n, n), initializer="zeros", dtype=dtype, name="cm")

    def update_state(self, y_true, y_pred, sample_weight=None):
        from keras import ops

        n = len(self.class_names)
        t = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        p = ops.reshape(ops.cast(ops.argmax(y_pred, -1), "int32"), (-1,))
        keep = ops.logical_and(ops.not_equal(t, self.ignore_label), t < n)
        # one-hot rows (ignored pixels all zero) multiplied out: static shapes, so it compiles on any backend
        truth = ops.one_hot(ops.where(keep, t, 0), n) * ops.cast(keep, "float32")[:, None]
        counts = ops.matmul(ops.transpose(truth), ops.one_hot(p, n))
        self.cm.assign_add(ops.cast(counts, self.cm.dtype))

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
