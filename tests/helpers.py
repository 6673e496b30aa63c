"""Small models whose output is known, for exact tiling and export tests."""

import numpy as np

from satseg.bench import BLOCK_IMPORTS
from satseg.classes import ModelSpec

PIXEL_WEIGHTS = np.array([[3.0, -1.0, 0.5, -2.0, 1.0, 0.0],
                          [-1.0, 2.0, 1.5, 0.0, -2.5, 0.3],
                          [0.5, 0.5, -3.0, 2.0, 1.0, -0.2]], np.float32)
PIXEL_BIAS = np.array([0.0, 0.1, -0.1, 0.2, 0.0, -0.5], np.float32)
STANDARD = {"kind": "standard", "mean": [100.0, 110.0, 120.0], "std": [50.0, 40.0, 60.0]}


def pixel_model(patch: int = 64):
    """A 1x1-conv model: its prediction at a pixel depends on that pixel only, so a whole-image
    prediction has a known answer wherever the tiles fall."""
    import keras

    inp = keras.Input((patch, patch, 3))
    out = keras.layers.Conv2D(6, 1, name="logits")(inp)
    m = keras.Model(inp, out, name="pixel")
    m.get_layer("logits").set_weights([PIXEL_WEIGHTS[None, None], PIXEL_BIAS])
    return m


def pixel_logits(image: np.ndarray) -> np.ndarray:
    x = (image.astype(np.float32) - np.array(STANDARD["mean"], np.float32)) / np.array(STANDARD["std"], np.float32)
    return x @ PIXEL_WEIGHTS + PIXEL_BIAS


def pixel_expected(image: np.ndarray) -> np.ndarray:
    return pixel_logits(image).argmax(-1).astype(np.uint8)


def assert_matches_expected(pred: np.ndarray, image: np.ndarray, tie: float = 1e-3):
    """Every pixel equals the known answer, except float ties (top-2 logits within ``tie``)."""
    z = np.sort(pixel_logits(image), -1)
    near_tie = (z[..., -1] - z[..., -2]) < tie
    wrong = pred != pixel_expected(image)
    assert not (wrong & ~near_tie).any(), f"{int((wrong & ~near_tie).sum())} pixels wrong away from ties"
    assert wrong.sum() <= max(near_tie.sum(), 0)


def pixel_spec(patch: int = 64) -> ModelSpec:
    return ModelSpec(normalization=STANDARD, patch_size=patch, bands=3, architecture="pixel")


WITHOUT_TENSORFLOW = BLOCK_IMPORTS.format(blocked=("tensorflow", "keras")) + """
from satseg.cli import main
main(sys.argv[1:])
"""
"""``python -c`` program: the satseg CLI with TensorFlow and Keras impossible to import, as on an
edge install."""
