"""The whole-image serving graph: same ids as the Keras model at any size, and windowed
prediction equal to one full-frame call."""

import numpy as np
import pytest

from satseg.classes import ModelSpec, save_spec
from satseg.edge import EdgeModel, array_windows, predict_windowed, window_size

RNG = np.random.default_rng(0)


def _tiny_edge(arch: str):
    from satseg.models import build_model

    norm = {"mean": [120.0, 110.0, 100.0], "std": [60.0, 55.0, 50.0]}
    kw = {"pretrained": False} if arch == "lite0_edge" else {}
    model = build_model(arch, num_classes=4, seed=1, normalization=norm, **kw)
    for layer in model.layers:  # trained-looking batch norms, so that folding them is tested
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * RNG.uniform(0.5, 2, gamma.shape), RNG.normal(0, 0.5, beta.shape),
                               RNG.normal(0, 0.5, mean.shape), RNG.uniform(0.5, 2, var.shape)])
    return model


@pytest.mark.parametrize("arch", ["edge", "lite0_edge", "fast_edge", "teacher"])
def test_serving_graph_gives_the_keras_argmax_at_any_size(arch):
    from satseg.serving import serving_model

    model = _tiny_edge(arch)
    ids = serving_model(model)
    for h, w in ((64, 64), (48, 112)):
        x = RNG.uniform(0, 255, (1, h, w, 3)).astype(np.float32)
        got = np.asarray(ids(x))
        assert got.dtype == np.uint8 and got.shape == (1, h, w)
        assert (got == np.asarray(model(x)).argmax(-1)).mean() == 1.0


def test_fast_edge_serving_graph_has_no_normalisation_pass_and_exact_subpixel_logits():
    """The patch stem takes the normalisation into its weights (space_to_depth + 1x1 convolution),
    and the sub-pixel head rewritten as 1x1 convolution + depth_to_space gives the transposed
    convolution's logits."""
    import keras

    from satseg.serving import PatchEmbedding, SubpixelConv, serving_model

    model = _tiny_edge("fast_edge")
    ids = serving_model(model)
    inner = ids.layers[1]
    assert isinstance(inner.get_layer("normalize"), keras.layers.Identity)
    assert isinstance(inner.get_layer("stem_conv"), PatchEmbedding)
    assert isinstance(inner.get_layer("logits"), SubpixelConv)
    x = RNG.uniform(0, 255, (1, 48, 80, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(inner(x)), np.asarray(model(x)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["edge", "lite0_edge"])
def test_bilinear_head_gives_the_upsampled_logits_border_included(arch):
    """The 1x1 classifier + fixed bilinear upsampling, served as one shifted 3x3 convolution +
    depth_to_space, gives the model's logits at every pixel (the outermost ring too)."""
    import keras

    from satseg.serving import BilinearHead, serving_model

    model = _tiny_edge(arch)
    inner = serving_model(model).layers[1]
    assert isinstance(inner.get_layer("head_logits"), BilinearHead)
    assert isinstance(inner.get_layer("logits"), keras.layers.Identity)
    x = RNG.uniform(0, 255, (1, 48, 80, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(inner(x)), np.asarray(model(x)), rtol=1e-4, atol=1e-4)


def test_bilinear_head_is_not_used_when_no_shift_can_cancel_the_bias():
    from satseg.serving import BilinearHead

    kernel = np.ones((1, 1, 2, 3), np.float32)  # two channels, three classes: rank 1
    assert BilinearHead.weights_from_head(kernel, np.array([1.0, -2.0, 0.5], np.float32)) is None
    assert BilinearHead.weights_from_head(kernel, np.zeros(3, np.float32)) is not None


@pytest.mark.parametrize("arch", ["edge", "fast_edge"])
def test_receptive_margin_bounds_what_changes_a_prediction(arch):
    from satseg.models import stride_of
    from satseg.serving import receptive_margin

    model = _tiny_edge(arch)
    margin = receptive_margin(model, stride_of(arch))
    assert margin % stride_of(arch) == 0 and margin > 0
    x = RNG.uniform(0, 255, (1, 160, 160, 3)).astype(np.float32)
    y = x.copy()
    y[0, 80, 80] = 255 - y[0, 80, 80]  # change one pixel
    changed = np.abs(np.asarray(model(x)) - np.asarray(model(y))).max(-1)[0] > 0
    rows, cols = np.nonzero(changed)
    assert rows.size and max(np.abs(rows - 80).max(), np.abs(cols - 80).max()) <= margin


def test_windowed_prediction_equals_one_full_frame_call():
    """A fake model whose ids depend on a neighbourhood of `reach` pixels (box sum): windows that
    overlap by the margin and drop it must reproduce the full-frame result exactly."""
    reach, stride = 5, 4

    def run(x):
        s = x.astype(np.int64).sum(-1)
        p = np.pad(s, reach)
        box = sum(np.roll(np.roll(p, dy, 0), dx, 1) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1))
        return (box[reach:-reach, reach:-reach] % 7).astype(np.uint8)

    img = RNG.integers(0, 256, (203, 150, 3)).astype(np.uint8)
    full = predict_windowed(array_windows(img), 203, 150, run, stride, margin=8, max_pixels=10 ** 9)
    wh, ww = window_size(204, 152, stride, 8, max_pixels=48 * 48)
    assert wh < 204 and ww < 152  # several windows each way
    windowed = predict_windowed(array_windows(img), 203, 150, run, stride, margin=8, max_pixels=48 * 48)
    assert np.array_equal(full, windowed)


@pytest.fixture(scope="module", params=["edge", "fast_edge"])
def whole_int8(tmp_path_factory, request):
    from satseg.export import convert_tflite
    from satseg.models import stride_of
    from satseg.serving import receptive_margin, serving_model

    arch = request.param
    model = _tiny_edge(arch)
    calib = [RNG.uniform(0, 255, (64, 64, 3)).astype(np.float32) for _ in range(8)]
    d = tmp_path_factory.mktemp("whole")
    path = d / "m.tflite"
    path.write_bytes(convert_tflite(serving_model(model), "tflite_int8", calib, uint8_pixels=True))
    spec = ModelSpec(classes=[{"id": i, "name": str(i), "color": [i, i, i]} for i in range(4)],
                     normalization={"kind": "in_model"}, patch_size=64, architecture=arch,
                     stride=stride_of(arch), margin=receptive_margin(model, stride_of(arch)))
    save_spec(spec, d / "m.satseg.json")
    return path, model


def test_int8_whole_image_file_takes_uint8_pixels_and_returns_ids(whole_int8):
    path, model = whole_int8
    em = EdgeModel(path, num_threads=1)
    assert em.whole_image and em.input_dtype == np.uint8
    assert em._in["quantization"] == (1.0, 0)  # raw pixels go in as they are
    img = RNG.integers(0, 256, (75, 93, 3)).astype(np.uint8)  # not a stride multiple
    ids = em.predict(img)
    assert ids.shape == (75, 93) and ids.dtype == np.uint8
    ref = np.asarray(model(np.pad(img, [(0, 5), (0, 3), (0, 0)], mode="edge")[None].astype(np.float32))).argmax(-1)[0]
    assert (ids == ref[:75, :93]).mean() > 0.9  # int8 against float Keras


def test_int8_whole_image_windows_equal_full_frame(whole_int8):
    import satseg.edge as E

    em = EdgeModel(whole_int8[0], num_threads=1)
    img = RNG.integers(0, 256, (200, 120, 3)).astype(np.uint8)
    full = em.predict(img)
    em2 = EdgeModel(whole_int8[0], num_threads=1)
    windowed = E.predict_windowed(E.array_windows(img), 200, 120, em2.run_window, em2.spec.stride, em2.spec.margin,
                                  max_pixels=(2 * em2.spec.margin + 16) ** 2)
    assert np.array_equal(full, windowed)


def test_whole_image_file_refuses_probabilities(whole_int8):
    from satseg.errors import SatsegError

    with pytest.raises(SatsegError, match="class ids"):
        EdgeModel(whole_int8[0]).predict_patches(np.zeros((1, 64, 64, 3), np.float32))


@pytest.mark.parametrize("fmt,held", [("jpg", True), ("tif", False)])
def test_a_scene_held_whole_by_its_decoder_runs_in_smaller_windows(whole_int8, tmp_path, monkeypatch, fmt, held):
    """A large JPEG is held decoded (Pillow has no strip decoder), so its windows shrink to
    HELD_WINDOW_PIXELS to keep the peak down; a TIFF read on demand keeps WINDOW_PIXELS. The ids
    are those of the array in memory either way."""
    import tifffile
    from PIL import Image

    import satseg.edge as E
    from satseg.imaging import RowReader, read_image

    img = RNG.integers(0, 256, (72, 88, 3)).astype(np.uint8)
    path = tmp_path / f"scene.{fmt}"
    Image.fromarray(img).save(path) if fmt == "jpg" else tifffile.imwrite(path, img)
    monkeypatch.setattr(RowReader, "WINDOWED_PIXELS", 100)
    em = EdgeModel(whole_int8[0], num_threads=1)
    budgets = []
    real = em.predict_windows
    monkeypatch.setattr(em, "predict_windows", lambda *a: (budgets.append(a[-1]), real(*a))[1])
    ids = E.predict_scene(path, None, em.spec, model=em)
    assert budgets == [E.HELD_WINDOW_PIXELS if held else E.WINDOW_PIXELS]
    assert np.array_equal(ids, EdgeModel(whole_int8[0], num_threads=1).predict(read_image(path)))
