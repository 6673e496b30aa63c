"""Running a Keras model over arrays: batches of patches and whole images of any size.

Training (validation plots, cached teacher logits), evaluation and export share these, so a
model's logits are computed the same way wherever they are needed.
"""

from __future__ import annotations

import numpy as np


def predict_logits(model, x: np.ndarray, batch_size: int = 16, dtype=np.float32) -> np.ndarray:
    """Logits of a stack of patches, ``batch_size`` at a time."""
    out = [np.asarray(model(x[i:i + batch_size], training=False)).astype(dtype)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), dtype)


def whole_image_logits(model, stride: int, dtype=np.float16):
    """``image -> logits`` for whole images of a fully convolutional model (padded by edge
    replication to a multiple of ``stride``, cropped back). The model runs as one graph: called
    eagerly, Keras keeps every layer's output for the whole frame alive until the call ends
    (``benchmarks/logit_cache_memory.py --eager``: 11.5 GB at peak for ``lite0_unet`` on four
    2062 x 1817 images, 2.4 GB as a graph), where the graph frees each one as soon as it is used."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        graph = tf.function(lambda x: model(x, training=False),
                            input_signature=[tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)])
    else:  # JAX and PyTorch free each layer's output when it is no longer needed
        def graph(x):
            return model(x, training=False)

    def run(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        out = keras.ops.convert_to_numpy(graph(pad_to_stride(image, stride)[None]))
        return out[0, :h, :w].astype(dtype)

    return run


def pad_to_stride(image: np.ndarray, stride: int) -> np.ndarray:
    """The image as float32, padded at the bottom and right by edge replication to multiples of ``stride``."""
    h, w = image.shape[:2]
    return np.pad(image.astype(np.float32), [(0, -h % stride), (0, -w % stride), (0, 0)], mode="edge")
