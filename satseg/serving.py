"""The whole-image serving graph that the exporter converts to LiteRT.

A trained model maps raw pixels to logits. On a device we want raw 8-bit pixels of any size in
and 8-bit class ids out, with nothing at full resolution but what must be there. So the graph
is rewritten (the weights are the model's, the maths the same):

- the input normalisation (a per-channel affine) becomes a 1x1 depthwise convolution, which
  XNNPACK runs in int8, unlike the broadcast MUL and ADD it was (folding it into the first
  convolution would save one more full-resolution pass but is not exact: that convolution's
  zero padding would then stand for black pixels instead of the mean pixel);
- where the first convolution has no padding (a patch-embedding stem), the normalisation folds
  into its weights exactly and there is no full-resolution float pass at all; a stem whose
  kernel equals its stride becomes ``space_to_depth`` + a 1x1 convolution (one plain matrix
  product per cell; ``benchmarks/serving_variants.py`` times it against the strided convolution);
- a transposed convolution whose kernel equals its stride (a learned sub-pixel head, a U-Net's
  2x2 up-convolution) becomes a 1x1 convolution + ``depth_to_space``, which XNNPACK runs in int8
  at any size;
- 2x nearest upsampling becomes ``concat + depth_to_space`` and the fixed bilinear transposed
  convolution four 3x3 depthwise "phase" convolutions + ``depth_to_space``: both have constant
  shapes, so XNNPACK runs them at any input size (``RESIZE_*`` with a computed size it cannot);
- a 1x1 classifier followed by that bilinear upsampling becomes one dense 3x3 convolution to the
  four phases' logits + ``depth_to_space`` (``BilinearHead``): int8 dense convolutions run near
  the matmul limit, a 1x1 convolution to a few classes and four depthwise passes do not;
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


class BilinearHead(layers.Layer):
    """A 1x1 convolution to K logits followed by :class:`Up2Bilinear`, as one 3x3 convolution to
    the four phases' 4K logits + ``depth_to_space``.

    The input is first shifted by a constant ``x0`` with ``x0 W = -b`` (the head has more input
    channels than classes), so that the convolution's zero padding stands for logits of zero, as
    the padding of :class:`Up2Bilinear` does: the same logits everywhere, the border included."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, shape):
        c = int(shape[-1])
        self.shift = self.add_weight((c,), name="shift")
        self.kernel = self.add_weight((3, 3, c, 4 * self.filters), name="kernel")

    @staticmethod
    def weights_from_head(kernel: np.ndarray, bias: np.ndarray | None = None) -> list[np.ndarray] | None:
        """From the 1x1 head's kernel (1, 1, C, K) and bias; None when no shift gives -bias (a
        kernel of rank below K, as with fewer channels than classes)."""
        w = kernel[0, 0].astype(np.float64)
        b = np.zeros(w.shape[1]) if bias is None else bias.astype(np.float64)
        shift = -b @ np.linalg.pinv(w)
        if not np.allclose(shift @ w, -b, rtol=0, atol=1e-5 * (1 + np.abs(b).max())):
            return None
        taps = [k[:, :, 0, 0] for k in bilinear_phase_kernels(1)]
        fused = np.concatenate([t[:, :, None, None] * w[None, None] for t in taps], -1)
        return [shift.astype(np.float32), fused.astype(np.float32)]

    def call(self, x):
        tf = _tf()
        return tf.nn.depth_to_space(tf.nn.conv2d(x - self.shift, self.kernel, 1, "SAME"), 2)

    def compute_output_shape(self, s):
        return (s[0], None, None, self.filters)


class PatchEmbedding(layers.Layer):
    """A convolution with kernel == stride and no padding as ``space_to_depth`` + 1x1 convolution."""

    def __init__(self, filters: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride = filters, stride

    def build(self, shape):
        self.kernel = self.add_weight((1, 1, self.stride ** 2 * int(shape[-1]), self.filters), name="kernel")
        self.bias = self.add_weight((self.filters,), name="bias")

    @staticmethod
    def weights_from_conv(kernel: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
        """From a convolution's kernel (s, s, C, F): space_to_depth puts (dy, dx, c) at (dy s + dx) C + c."""
        return [kernel.reshape(1, 1, -1, kernel.shape[-1]), bias]

    def call(self, x):
        tf = _tf()
        return tf.nn.conv2d(tf.nn.space_to_depth(x, self.stride), self.kernel, 1, "VALID") + self.bias

    def compute_output_shape(self, s):
        return (s[0], None, None, self.filters)


class SubpixelConv(layers.Layer):
    """A transposed convolution with kernel == stride (a learned sub-pixel head, or a U-Net's 2x2
    up-convolution) as a 1x1 convolution to stride^2 x K channels + ``depth_to_space``: the same
    output, as no taps overlap, in ops that XNNPACK runs in int8 at any size."""

    def __init__(self, filters: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride = filters, stride

    def build(self, shape):
        s, k = self.stride, self.filters
        self.kernel = self.add_weight((1, 1, int(shape[-1]), s * s * k), name="kernel")
        self.bias = self.add_weight((s * s * k,), name="bias")

    @staticmethod
    def weights_from_transposed(kernel: np.ndarray, bias: np.ndarray | None = None) -> list[np.ndarray]:
        """From a ``Conv2DTranspose``'s kernel (s, s, K, C): output channel (dy s + dx) K + k."""
        s, _, k, c = kernel.shape
        bias = np.zeros(k, np.float32) if bias is None else bias
        return [kernel.transpose(3, 0, 1, 2).reshape(1, 1, c, s * s * k), np.tile(bias, s * s)]

    def call(self, x):
        tf = _tf()
        y = tf.nn.conv2d(x, self.kernel, 1, "VALID") + self.bias
        return tf.nn.depth_to_space(y, self.stride)

    def compute_output_shape(self, s):
        return (s[0], None, None, self.filters)


class ClassIds(layers.Layer):
    """argmax over the classes as uint8 ids."""

    def call(self, x):
        tf = _tf()
        return tf.cast(tf.argmax(x, -1, output_type=tf.int32), tf.uint8)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape[:-1], "uint8")


def _is_fixed_bilinear(layer) -> bool:
    return isinstance(layer, layers.Conv2DTranspose) and not layer.trainable and layer.strides == (2, 2)


def _is_subpixel(layer) -> bool:
    return (isinstance(layer, layers.Conv2DTranspose) and layer.trainable and layer.strides[0] > 1
            and tuple(layer.kernel_size) == tuple(layer.strides) == (layer.strides[0],) * 2
            and layer.activation is keras.activations.linear)


def _is_patch(conv) -> bool:
    return tuple(conv.kernel_size) == tuple(conv.strides) and conv.kernel_size[0] == conv.kernel_size[1]


def _users(model: keras.Model, layer) -> list:
    """The layers of ``model`` that take ``layer``'s output."""
    return [other for other in model.layers
            if any(t._keras_history.operation is layer for t in keras.tree.flatten(other.input))]


def _folded_stem(model: keras.Model):
    """The convolution that takes the ``normalize`` layer's output, if it has no padding (so the
    affine folds into it exactly); else None."""
    try:
        norm = model.get_layer("normalize")
    except ValueError:
        return None
    users = _users(model, norm)
    if len(users) == 1 and type(users[0]) is layers.Conv2D and users[0].padding == "valid":
        return users[0]
    return None


def _affine(rescaling, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``Rescaling`` layer's per-band scale and offset."""
    return tuple(np.broadcast_to(np.asarray(v, np.float32), (bands,)) for v in (rescaling.scale, rescaling.offset))


def _fold_normalization(conv, rescaling, bands: int) -> list[np.ndarray]:
    """Weights of ``conv`` applied to raw pixels: conv(x * scale + offset) = conv'(x)."""
    scale, offset = _affine(rescaling, bands)
    weights = conv.get_weights()
    kernel = weights[0]
    bias = weights[1] if conv.use_bias else np.zeros(kernel.shape[-1], np.float32)
    return [kernel * scale[None, None, :, None], bias + np.einsum("hwcf,c->f", kernel, offset)]


def _bilinear_heads(model: keras.Model) -> dict[str, str]:
    """{1x1 head: the fixed bilinear upsampling that alone takes its output} for the heads that
    :class:`BilinearHead` can replace."""
    pairs = {}
    for up in model.layers:
        if not _is_fixed_bilinear(up):
            continue
        head = up.input._keras_history.operation
        if (type(head) is layers.Conv2D and tuple(head.kernel_size) == (1, 1) and tuple(head.strides) == (1, 1)
                and head.activation is keras.activations.linear and _users(model, head) == [up]
                and BilinearHead.weights_from_head(*head.get_weights()) is not None):
            pairs[head.name] = up.name
    return pairs


def _swap(layer, stem=None, heads=None):
    heads = heads or {}
    if layer.name in heads:
        return BilinearHead(layer.filters, name=layer.name)
    if layer.name in heads.values():
        return layers.Identity(name=layer.name)
    if stem is not None and layer.name == "normalize":
        return layers.Identity(name=layer.name)
    if stem is not None and layer.name == stem.name:
        if _is_patch(layer):
            return PatchEmbedding(layer.filters, layer.strides[0], name=layer.name)
        return layers.Conv2D.from_config({**layer.get_config(), "use_bias": True})
    if _is_subpixel(layer):
        return SubpixelConv(layer.filters, layer.strides[0], name=layer.name)
    if isinstance(layer, layers.UpSampling2D):
        if tuple(layer.size) != (2, 2):
            raise SatsegError(f"layer {layer.name}: only 2x upsampling is supported in the serving graph")
        return Up2Nearest(name=layer.name) if layer.interpolation == "nearest" else Up2Bilinear(name=layer.name)
    if _is_fixed_bilinear(layer):
        return Up2Bilinear(name=layer.name)
    if isinstance(layer, layers.Rescaling) and layer.name == "normalize":
        return layers.DepthwiseConv2D(1, name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def _serving_weights(layer, src, model: keras.Model, stem) -> list:
    """The rewritten ``layer``'s weights, from the trained model's layer ``src`` of the same name."""
    bands = model.input_shape[-1]
    if stem is not None and src is stem:
        folded = _fold_normalization(src, model.get_layer("normalize"), bands)
        return PatchEmbedding.weights_from_conv(*folded) if isinstance(layer, PatchEmbedding) else folded
    if isinstance(layer, SubpixelConv):
        return layer.weights_from_transposed(*src.get_weights())
    if isinstance(layer, BilinearHead):
        return layer.weights_from_head(*src.get_weights())
    if isinstance(src, layers.Rescaling):
        scale, offset = _affine(src, bands)
        return [scale.reshape(1, 1, bands, 1), offset]
    return src.get_weights()


def serving_model(model: keras.Model, batch_size: int | None = 1, fuse_head: bool = True) -> keras.Model:
    """Raw pixels (batch, H, W, bands) of any stride-multiple size -> uint8 class ids (batch, H, W).

    ``fuse_head=False`` keeps a 1x1 classifier and the bilinear upsampling after it apart
    (``benchmarks/serving_variants.py`` times both)."""
    stem, heads = _folded_stem(model), _bilinear_heads(model) if fuse_head else {}
    clone = keras.models.clone_model(model, clone_function=lambda layer: _swap(layer, stem, heads))
    for layer in clone.layers:
        if layer.weights:
            layer.set_weights(_serving_weights(layer, model.get_layer(layer.name), model, stem))
    inp = keras.Input((None, None, model.input_shape[-1]), batch_size=batch_size, name="image")
    return keras.Model(inp, ClassIds(name="class_ids")(clone(inp)), name=f"{model.name}_ids")


# --- accelerator graphs ---------------------------------------------------------------------

EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM",
    "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE",
    "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM",
    "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE_CONV",
})
"""The Edge TPU compiler's supported operations (coral.ai/docs/edgetpu/models-intro, "Supported
operations"); every tensor int8, every shape static. Not on it: ARG_MAX, CAST, DEPTH_TO_SPACE,
TILE, DEQUANTIZE (and SOFTMAX maps only for 1-D inputs, so the Edge TPU file ends in logits)."""

GPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXP", "FULLY_CONNECTED",
    "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MINIMUM", "MUL", "PAD", "PRELU", "RELU", "RELU6", "RESHAPE",
    "RESIZE_BILINEAR", "SOFTMAX", "STRIDED_SLICE", "SUB", "TRANSPOSE_CONV", "DEQUANTIZE",
})
"""The LiteRT GPU delegate's documented operations (ai.google.dev/edge/litert/performance/gpu,
"Supported ops"), plus DEQUANTIZE of the constant float16 weights of a float16 file, which the
delegate reads as float16 directly. Not on it: ARG_MAX, CAST, DEPTH_TO_SPACE, TILE,
RESIZE_NEAREST_NEIGHBOR."""


def _nearest_as_transposed(layer, channels: int):
    """2x nearest upsampling as a transposed convolution with an identity 2x2 kernel (exact: each
    input pixel is copied to its four outputs), an op every accelerator has."""
    return layers.Conv2DTranspose(channels, 2, strides=2, use_bias=False, name=layer.name)


def accelerator_model(model: keras.Model, patch: int, target: str) -> keras.Model:
    """The model for a fixed (1, patch, patch, bands) input in ops its accelerator runs:
    ``target`` "edgetpu" (int8 logits out: the host takes the argmax) or "gpu" (probabilities).
    Only the nearest upsampling changes form (a Keras repeat lowers to RESHAPE + TILE); the
    maths is the model's (tested)."""
    from satseg.models import with_input_size

    fixed = with_input_size(model, patch, batch_size=1)
    nearest = {layer.name: layer.input.shape[-1] for layer in fixed.layers
               if isinstance(layer, layers.UpSampling2D) and layer.interpolation == "nearest"}
    for name in nearest:
        if tuple(fixed.get_layer(name).size) != (2, 2):
            raise SatsegError(f"layer {name}: only 2x upsampling is supported in the accelerator graphs")

    def swap(layer):
        if layer.name in nearest:
            return _nearest_as_transposed(layer, nearest[layer.name])
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(fixed, clone_function=swap)
    for layer in clone.layers:
        if layer.name in nearest:
            c = nearest[layer.name]
            layer.set_weights([np.broadcast_to(np.eye(c, dtype=np.float32), (2, 2, c, c)).copy()])
        elif layer.weights:
            layer.set_weights(fixed.get_layer(layer.name).get_weights())
    if target == "edgetpu":
        return keras.Model(clone.input, clone.output, name=f"{model.name}_edgetpu")
    if target == "gpu":
        return keras.Model(clone.input, layers.Softmax(name="probs")(clone.output), name=f"{model.name}_gpu")
    raise SatsegError(f"unknown accelerator {target!r} (edgetpu or gpu)")


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


__all__ = ["serving_model", "receptive_margin", "Up2Nearest", "Up2Bilinear", "BilinearHead", "PatchEmbedding",
           "SubpixelConv", "ClassIds"]
