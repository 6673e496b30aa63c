"""Training on Keras' own step runs on JAX as on TensorFlow: the same recipe reaches the same
validation mIoU within noise, a killed JAX run resumes exactly, and a model trained on JAX exports.

Each backend runs in its own process (Keras picks its backend once, at import)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (the [jax] extra)")

TRAIN = """
import json, sys
from satseg.train import TrainConfig, train
data, out, teacher = sys.argv[1], sys.argv[2], sys.argv[3] or None
base = dict(data=data, epochs=8, batch_size=8, patch_size=32, crops_per_epoch=64, loss="ce", seed=3, lr=1e-2)
scores = {}
for name, kw in (("student", dict(model="student")),
                 ("distilled", dict(model="student", teacher=teacher))):
    if kw.get("teacher") is None and name == "distilled":
        continue
    s = train(TrainConfig(**base, **kw), f"{out}/{name}", verbose=0)
    scores[name] = s["best_val_miou"]
print("SCORES " + json.dumps(scores))
"""

RESUME = """
import json, sys
import keras
import numpy as np
from satseg.callbacks import read_history
from satseg.train import TrainConfig, resume, train

class Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            raise RuntimeError("simulated crash")

data, out = sys.argv[1], sys.argv[2]
cfg = lambda: TrainConfig(model="edge", data=data, epochs=3, batch_size=4, patch_size=32, crops_per_epoch=16, seed=5)
train(cfg(), f"{out}/full", verbose=0)
try:
    train(cfg(), f"{out}/cut", verbose=0, callbacks=[Crash()])
except RuntimeError:
    pass
resume(f"{out}/cut", verbose=0)
rows = [[{k: v for k, v in r.items() if k != "seconds"} for r in read_history(f"{out}/{n}/history.csv")]
        for n in ("full", "cut")]
w = [keras.saving.load_model(f"{out}/{n}/model.keras", compile=False).get_weights() for n in ("full", "cut")]
print("RESUME " + json.dumps({"rows_equal": rows[0] == rows[1],
                              "weights_equal": all(np.array_equal(a, b) for a, b in zip(*w))}))
"""


def _run(code, *args, backend, timeout=900):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _result(r, tag):
    return json.loads(next(line for line in r.stdout.splitlines() if line.startswith(tag)).split(" ", 1)[1])


@pytest.mark.slow
@jax
def test_the_same_recipe_reaches_the_same_validation_miou_on_jax_and_tensorflow(tmp_path, tiny_dataset,
                                                                                trained_student):
    teacher = trained_student / "model.keras"
    scores = {b: _result(_run(TRAIN, tiny_dataset, tmp_path / b, teacher, backend=b), "SCORES")
              for b in ("tensorflow", "jax")}
    for name in ("student", "distilled"):
        tf_score, jax_score = scores["tensorflow"][name], scores["jax"][name]
        assert min(tf_score, jax_score) > 0.3, scores  # both learnt (chance is about 0.08 on 6 classes)
        assert abs(tf_score - jax_score) < 0.08, scores  # the spread of seeds on this tiny set


@pytest.mark.slow
@jax
def test_a_killed_jax_run_resumes_exactly(tmp_path, tiny_dataset):
    assert _result(_run(RESUME, tiny_dataset, tmp_path, backend="jax"), "RESUME") == {"rows_equal": True,
                                                                                      "weights_equal": True}


@pytest.mark.slow
@jax
def test_train_on_jax_then_export_from_the_command_line(tmp_path, tiny_dataset):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}

    def satseg(*args):
        r = subprocess.run([sys.executable, "-m", "satseg", *map(str, args)], capture_output=True, text=True,
                           env=env, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        return r

    satseg("train", "--model", "edge", "--data", tiny_dataset, "--epochs", "1", "--patch-size", "32",
           "--crops-per-epoch", "16", "--out", tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["versions"]["backend"] == "jax"
    satseg("export", "--model", tmp_path / "run" / "model.keras", "--out", tmp_path / "exp", "--formats", "tflite_int8")
    report = json.loads((tmp_path / "exp" / "report.json").read_text())
    assert report["artifacts"][0]["agreement"] > 0.95


PRIVATE = ("_maybe_symbolic_build", "_initial_epoch", "_compute_loss", "_loss_tracker", "_get_ops_details",
           "_distribute_strategy", "_compile_metrics", "_symbolic_build")


@pytest.mark.parametrize("name", PRIVATE)
def test_no_private_keras_or_litert_attribute_is_touched(name):
    """The step plugs into Keras through public methods (compute_loss, compute_metrics,
    fit(initial_epoch=...)): nothing that a Keras release may rename."""
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "satseg").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if f".{name}" in line]
    assert not hits, hits


def test_mixed_float16_computes_in_16_bits_scales_the_loss_and_ships_float32(tmp_path, tiny_dataset):
    import keras

    from satseg.classes import ModelSpec
    from satseg.train import TrainConfig, build_trainer, float32_model, make_strategy, train

    cfg = TrainConfig(model="student", data=str(tiny_dataset), epochs=1, patch_size=32, crops_per_epoch=16,
                      precision="mixed_float16")
    spec = ModelSpec(patch_size=32, architecture="student")
    tr = build_trainer(cfg, spec, None, False, 2, make_strategy("default"))
    assert isinstance(tr.optimizer, keras.optimizers.LossScaleOptimizer)
    assert tr.student.layers[-1].compute_dtype == "float16" and tr.student.layers[-1].variable_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # set back once built
    assert {w.dtype for w in float32_model(tr.student, cfg, spec).weights} == {"float32"}
    s = train(cfg, tmp_path / "run", verbose=0)
    shipped = keras.saving.load_model(s["model"], compile=False)
    assert all(layer.compute_dtype == "float32" for layer in shipped.layers)
