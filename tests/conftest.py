"""Shared fixtures: tiny synthetic datasets made on the fly, and the real dataset when present."""

import os

import numpy as np
import pytest

from satseg.data.catalog import dataset_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DUBAI = dataset_path("dubai")
needs_dubai = pytest.mark.skipif(not DUBAI.is_dir(), reason=f"real dataset not present at {DUBAI} (README, 'The data')")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """2 tiles x 3 synthetic scenes of 96x128 pixels (Dubai layout and palette)."""
    from satseg.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("tiny") / "data", tiles=2, images_per_tile=3, size=(96, 128), seed=1)


@pytest.fixture(scope="session")
def trained_student(tmp_path_factory, tiny_dataset):
    """A reference student trained for a few epochs on 32x32 patches (a run directory)."""
    from satseg.train import TrainConfig, train

    run = tmp_path_factory.mktemp("runs") / "student"
    train(TrainConfig(model="student", data=str(tiny_dataset), epochs=4, batch_size=8, patch_size=32, crops_per_epoch=64,
                      loss="ce", seed=3, lr=1e-2), run, verbose=0)
    return run


def random_logits(shape, seed=0, scale=3.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


@pytest.fixture(scope="session")
def pixel_tflite(tmp_path_factory):
    """A float32 LiteRT file of the per-pixel test model (tests/helpers.py), with its spec."""
    from satseg.classes import save_spec
    from satseg.export import convert_tflite, with_probs_head

    from .helpers import pixel_model, pixel_spec

    d = tmp_path_factory.mktemp("pixel")
    path = d / "pixel.tflite"
    path.write_bytes(convert_tflite(with_probs_head(pixel_model(64)), "tflite_float32"))
    save_spec(pixel_spec(64), d / "pixel.satseg.json")
    return path
