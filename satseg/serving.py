"""The whole-image serving graph that the exporter converts to LiteRT.

A trained model maps raw pixels to logits. On a device we want raw 8-bit pixels of any size in
and 8-bit class ids out, with nothing at full resolution but what must be there. So the graph
is rewritten (the weights are the model's, the maths the same):

- the input normalisation (a per-channel affine) becomes a 1x1 depthwise convolution, which
  XNNPACK runs in int8, unlike the broadcast MUL and ADD it was (folding it into the first
  convolution would save one more full-resolution pass but is not exact: that convolution's
  zero padding would then stand for black pixels instead of the mean pixel);
- 2x nearest upsampling becomes ``concat + depth_to_space`` and the fixed bilinear transposed
  convolution four 3x3 depthwise "phase" convolutions + ``depth_to_space``: both have constant
  shapes, so XNNPACK runs them at any input size (``RESIZE_*`` with a computed size it cannot);
- the head takes the argmax inside the graph and returns uint8 class ids.

These layers use TensorFlow ops and exist only in the export graph; trained ``.keras`` files
never contain them.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from satseg.errors import SatsegError


def _tf():
    import tensorflow as tf

    return tf


class Up2Nearest(layers.Layer):
    """2x nearest-neighbour upsampling as ``depth_to_space(concat([x] * 4))``."""

    def call(self, x):
        tf = _tf()
        return tf.nn.depth_to_space(tf.concat([x] * 4, -1), 2)

    def compute_output_shape(self, s):
        return (s[0], None, None, s[3])


def bilinear_phase_kernels(channels: int) -> list[np.ndarray]:
    """The four (3, 3, C, 1) depthwise kernels whose outputs are the pixels (2i+dy, 2j+dx) of a 2x
    bilinear upsampling with half-pixel centres, in depth_to_space order (dy, dx)."""
    taps = {0: (0.25, 0.75, 0.0), 1: (0.0, 0.75, 0.25)}  # weights of rows i-1, i, i+1
    return [np.repeat(np.outer(taps[dy], taps[dx]).astype(np.float32)[:, :, None, None], channels, 2)
            for dy in (0, 1) for dx in (0, 1)]


class Up2Bilinear(layers.Layer):
    """2x bilinear upsampling: four depthwise phase convolutions, then ``depth_to_space``.

    With zero padding the outermost ring is a positive multiple of the edge-clamped value (and
    equals :func:`satseg.models.bilinear_up2`), so the argmax is that of the clamped resize."""

    def build(self, shape):
        self.kernels = bilinear_phase_kernels(int(shape[-1]))

    def call(self, x):
        tf = _tf()
        phases = [tf.nn.depthwise_conv2d(x, tf.constant(k), [1, 1, 1, 1], "SAME") for k in self.kernels]
        return tf.nn.depth_to_space(tf.concat(phases, -1), 2)

    def compute_output_shape(self, s):
        return (s[0], None, None, s[3])


class ClassIds(layers.Layer):
    """argmax over the classes as uint8 ids."""

    def call(self, x):
        tf = _tf()
        return tf.cast(tf.argmax(x, -1, output_type=tf.int32), tf.uint8)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape[:-1], "uint8")


def _is_fixed_bilinear(layer) -> bool:
    return isinstance(layer, layers.Conv2DTranspose) and not layer.trainable and layer.strides == (2, 2)


def _swap(layer):
    if isinstance(layer, layers.UpSampling2D):
        if tuple(layer.size) != (2, 2):
            raise SatsegError(f"layer {layer.name}: only 2x upsampling is supported in the serving graph")
        return Up2Nearest(name=layer.name) if layer.interpolation == "nearest" else Up2Bilinear(name=layer.name)
    if _is_fixed_bilinear(layer):
        return Up2Bilinear(name=layer.name)
    if isinstance(layer, layers.Rescaling) and layer.name == "normalize":
        return layers.DepthwiseConv2D(1, name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def serving_model(model: keras.Model, batch_size: int | None = 1) -> keras.Model:
    """Raw pixels (batch, H, W, bands) of any stride-multiple size -> uint8 class ids (batch, H, W)."""
    clone = keras.models.clone_model(model, clone_function=_swap)
    for layer in clone.layers:
        src = model.get_layer(layer.name)
        if isinstance(src, layers.Rescaling):
            c = model.input_shape[-1]
            layer.set_weights([np.broadcast_to(np.asarray(src.scale, np.float32), (c,)).reshape(1, 1, c, 1),
                               np.broadcast_to(np.asarray(src.offset, np.float32), (c,))])
        elif layer.weights:
            layer.set_weights(src.get_weights())
    inp = keras.Input((None, None, model.input_shape[-1]), batch_size=batch_size, name="image")
    return keras.Model(inp, ClassIds(name="class_ids")(clone(inp)), name=f"{model.name}_ids")


# --- receptive field -----------------------------------------------------------------------

_WINDOWED = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D,
             layers.MaxPooling2D, layers.AveragePooling2D)


def _radius_and_jump(layer, ins):
    """(radius, jump) of a layer's output from its inputs': radius = how far (input pixels) an
    output pixel sees from its centre; jump = input pixels per output pixel."""
    r = max(a for a, _ in ins)
    j = min(b for _, b in ins)
    if isinstance(layer, layers.Conv2DTranspose):
        s, k = layer.strides[0], layer.kernel_size[0]
        return r + (k / s) * j / 2 + j, j / s
    if isinstance(layer, _WINDOWED):
        k = layer.pool_size[0] if hasattr(layer, "pool_size") else layer.kernel_size[0]
        s = layer.strides[0]
        d = getattr(layer, "dilation_rate", (1,))[0]
        return r + ((k - 1) * d / 2 + (s - 1)) * j, j * s  # + where 'same' padding puts the grid
    if isinstance(layer, layers.UpSampling2D):
        return r + j, j / layer.size[0]
    return r, j


def receptive_margin(model: keras.Model, stride: int) -> int:
    """A bound on how many input pixels around a pixel change its prediction (over all paths,
    with slack for 'same' padding's alignment), rounded up to a multiple of ``stride``: windows
    that overlap by this much and drop it reproduce the full-frame result."""
    state = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            state[layer.name] = (0.0, 1.0)
            continue
        ins = [state[t._keras_history.operation.name] for t in keras.tree.flatten(layer.input)]
        state[layer.name] = _radius_and_jump(layer, ins)
    radius = state[model.layers[-1].name][0]
    return int(-(-np.ceil(radius) // stride) * stride)


__all__ = ["serving_model", "receptive_margin", "Up2Nearest", "Up2Bilinear", "ClassIds"]
