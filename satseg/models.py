"""The model zoo: Functional-API builders and a registry by name.

Every model maps ``(H, W, bands)`` to per-pixel **logits** ``(H, W, num_classes)``; softmax and
argmax heads are added where needed (evaluation, export), never in the training graph. Builders
return plain ``keras.Model`` functional graphs of built-in layers, so a saved ``.keras`` file loads
anywhere Keras does, without satseg.
"""

from __future__ import annotations

import difflib

import keras
from keras import layers

from satseg.classes import DEFAULT_PATCH_SIZE
from satseg.errors import SatsegError


def _check_input(input_shape, stride: int, name: str):
    h, w = input_shape[0], input_shape[1]
    for dim in (h, w):
        if dim is not None and dim % stride:
            raise SatsegError(
                f"{name}: input size {h}x{w} is not divisible by {stride} (its total stride); "
                f"use a patch size such as {max(stride, (dim // stride) * stride) or stride}")


# --- blocks --------------------------------------------------------------------------------

def conv_block(x, filters: int, dropout: float, name: str):
    """Two 3x3 ReLU convolutions with dropout between them (the classic U-Net level)."""
    x = layers.Conv2D(filters, 3, activation="relu", kernel_initializer="he_normal",
                      padding="same", name=f"{name}_conv1")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.Conv2D(filters, 3, activation="relu", kernel_initializer="he_normal",
                         padding="same", name=f"{name}_conv2")(x)


def up_block(x, skip, filters: int, dropout: float, name: str):
    """2x2 stride-2 transposed convolution, skip concatenation, then a conv block."""
    x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_up")(x)
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    return conv_block(x, filters, dropout, name)


BN_MOMENTUM = 0.9
"""Batch-norm momentum of the edge model: Keras's 0.99 leaves the moving variance dominated by
its initial 1.0 for hundreds of steps when activations are small, which breaks validation in
short trainings on small datasets."""


def sep_block(x, filters: int, name: str, strides: int = 1):
    """Depthwise-separable 3x3 convolution + batch norm + ReLU6 (MobileNet style)."""
    x = layers.SeparableConv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                               name=f"{name}_sepconv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


# --- builders ------------------------------------------------------------------------------

def build_teacher(input_shape=(DEFAULT_PATCH_SIZE, DEFAULT_PATCH_SIZE, 3), num_classes: int = 6,
                  widths=(16, 32, 64, 128, 256), dropouts=(0.1, 0.1, 0.2, 0.2, 0.3),
                  name: str = "teacher") -> keras.Model:
    """The classic multi-class U-Net (16-32-64-128-256), as in the reference project.

    Encoder: per level two 3x3 ReLU convs with dropout between them, then 2x2 max-pooling.
    Decoder: 2x2 stride-2 transposed conv, skip concatenation, two 3x3 convs. 1x1 classifier.
    With the defaults, 256x256x3 input and 6 classes: 23 conv layers, 1,941,190 parameters.

    Args:
        widths: filters per level, encoder top to bottleneck; the decoder mirrors them.
        dropouts: dropout rate inside each encoder level (the decoder reuses them mirrored).
    """
    _check_input(input_shape, 2 ** (len(widths) - 1), name)
    inputs = keras.Input(input_shape, name="image")
    x, skips = inputs, []
    for i, (f, d) in enumerate(zip(widths[:-1], dropouts[:-1]), start=1):
        x = conv_block(x, f, d, f"enc{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    x = conv_block(x, widths[-1], dropouts[-1], "bottleneck")
    for i in range(len(widths) - 1, 0, -1):
        x = up_block(x, skips[i - 1], widths[i - 1], dropouts[i - 1], f"dec{i}")
    outputs = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_student(input_shape=(DEFAULT_PATCH_SIZE, DEFAULT_PATCH_SIZE, 3), num_classes: int = 6,
                  widths=(16, 32), name: str = "student") -> keras.Model:
    """The reference project's student: a one-level U-Net without dropout.

    Two 16-filter and two 32-filter 3x3 convs around one pooling, a 2x2 transposed conv back
    up, skip concatenation, two 16-filter 3x3 convs and a 1x1 classifier.
    With the defaults, 256x256x3 input and 6 classes: 8 conv layers, 25,766 parameters.
    """
    _check_input(input_shape, 2, name)
    inputs = keras.Input(input_shape, name="image")
    skip = conv_block(inputs, widths[0], 0.0, "enc1")
    x = layers.MaxPooling2D(2, name="enc1_pool")(skip)
    x = conv_block(x, widths[1], 0.0, "bottleneck")
    x = up_block(x, skip, widths[0], 0.0, "dec1")
    outputs = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_edge(input_shape=(DEFAULT_PATCH_SIZE, DEFAULT_PATCH_SIZE, 3), num_classes: int = 6,
               widths=(16, 32, 64), name: str = "edge") -> keras.Model:
    """An edge student: stride-2 stem, depthwise-separable encoder/decoder, cheap head.

    The stem halves the resolution at once, so no convolution runs at full resolution; the
    encoder goes down to 1/8 for context; bilinear upsampling and concatenated skips bring the
    features back to 1/2, where a 1x1 classifier predicts logits that are bilinearly resized to
    the input size. About 14x fewer multiply-accumulates than the reference student.
    """
    stride = 2 ** len(widths)
    _check_input(input_shape, stride, name)
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    x = sep_block(x, widths[0], "enc1")
    skips = [x]
    for i, f in enumerate(widths[1:], start=2):
        x = sep_block(x, f, f"enc{i}_down", strides=2)
        x = sep_block(x, f, f"enc{i}")
        skips.append(x)
    for i in range(len(widths) - 1, 0, -1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i - 1]])
        x = sep_block(x, widths[i - 1], f"dec{i}")
    x = layers.Conv2D(num_classes, 1, name="head_logits")(x)
    outputs = layers.UpSampling2D(2, interpolation="bilinear", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


MODELS = {
    "teacher": build_teacher,
    "student": build_student,
    "edge": build_edge,
}
"""Registry: model name -> builder. The CLI, the Distiller and the exporter use these names."""


def build_model(name: str, input_shape=(DEFAULT_PATCH_SIZE, DEFAULT_PATCH_SIZE, 3),
                num_classes: int = 6, seed: int | None = None, **kwargs) -> keras.Model:
    """Build a registered model by name; ``seed`` makes the initial weights reproducible."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SatsegError(f"unknown model '{name}'; valid names: {', '.join(MODELS)}.{hint}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


# --- statistics ----------------------------------------------------------------------------

CONV_TYPES = (layers.Conv2D, layers.Conv2DTranspose, layers.SeparableConv2D, layers.DepthwiseConv2D)


def _hw(shape):
    return shape[1] * shape[2]


def layer_macs(layer) -> int:
    """Multiply-accumulates of one layer for its built input/output shapes."""
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin = layer.input.shape[-1]
        dm = layer.depth_multiplier
        return _hw(layer.output.shape) * (kh * kw * cin * dm + cin * dm * layer.filters)
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return _hw(layer.output.shape) * kh * kw * layer.input.shape[-1] * layer.depth_multiplier
    if isinstance(layer, layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        return _hw(layer.input.shape) * kh * kw * layer.input.shape[-1] * layer.filters
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        return _hw(layer.output.shape) * kh * kw * layer.input.shape[-1] // layer.groups * layer.filters
    if isinstance(layer, layers.Dense):
        return layer.input.shape[-1] * layer.units
    return 0


def model_stats(model: keras.Model) -> dict:
    """Parameters, conv layers (Conv2D-family incl. transposed), MACs per input, fp32 bytes."""
    params = int(model.count_params())
    return {
        "name": model.name,
        "params": params,
        "conv_layers": sum(isinstance(layer, CONV_TYPES) for layer in model.layers),
        "macs": int(sum(layer_macs(layer) for layer in model.layers)),
        "weight_bytes": params * 4,
        "input_shape": list(model.input_shape[1:]),
    }


def zoo_table(patch_size: int = DEFAULT_PATCH_SIZE, bands: int = 3, num_classes: int = 6) -> list[dict]:
    """Statistics of every registered model for one patch size."""
    return [model_stats(build_model(n, (patch_size, patch_size, bands), num_classes)) for n in MODELS]
