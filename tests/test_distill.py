import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from satseg.callbacks import read_history
from satseg.classes import IGNORE_LABEL
from satseg.distill import Distiller
from satseg.losses import CrossEntropy
from satseg.metrics import SegMetrics
from satseg.models import build_model
from satseg.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def _batch(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, 3)).astype("float32")
    y = (x[..., 0] * 3).astype("int32") + (x[..., 1] > 0.5) * 3  # learnable from the pixels
    y[rng.random(y.shape) < 0.1] = IGNORE_LABEL
    return x, y


def _distiller(alpha=0.5, T=2.0, seed=0):
    student = build_model("student", (16, 16, 3), seed=seed)
    teacher = build_model("student", (16, 16, 3), seed=seed + 1, widths=(8, 16))
    d = Distiller(student, teacher)
    d.compile(keras.optimizers.Adam(1e-2), student_loss=CrossEntropy(), alpha=alpha, temperature=T,
              metrics=[SegMetrics([str(i) for i in range(6)])])
    return d


def test_train_steps_lower_the_loss():
    x, y = _batch(8)
    d = _distiller()
    h = d.fit(x, y, batch_size=8, epochs=25, verbose=0, shuffle=False).history
    assert h["loss"][-1] < 0.85 * h["loss"][0] and h["student_loss"][-1] < h["student_loss"][0]
    assert {"loss", "student_loss", "distillation_loss", "miou", "pixel_accuracy"} <= set(h)


def test_alpha_one_gives_the_student_only_loss():
    x, y = _batch()
    d = _distiller(alpha=1.0)
    logs = d.train_step((tf.constant(x), tf.constant(y)))
    assert float(logs["loss"]) == pytest.approx(float(logs["student_loss"]), rel=1e-6)
    assert float(logs["distillation_loss"]) > 0


def test_cached_logits_give_the_same_loss_as_the_online_teacher():
    x, y = _batch()
    a, b = _distiller(), _distiller()
    t = np.asarray(a.teacher(x, training=False))
    online = a.train_step((tf.constant(x), tf.constant(y)))
    offline = b.train_step((tf.constant(x), {"labels": tf.constant(y), "teacher_logits": tf.constant(t)}))
    assert float(online["loss"]) == pytest.approx(float(offline["loss"]), rel=1e-5)


def test_teacher_weights_do_not_change_and_save_writes_the_student(tmp_path):
    x, y = _batch()
    d = _distiller()
    before = [w.copy() for w in d.teacher.get_weights()]
    s_before = [w.copy() for w in d.student.get_weights()]
    d.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, d.teacher.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(s_before, d.student.get_weights()))
    d.save(tmp_path / "s.keras")
    loaded = keras.saving.load_model(tmp_path / "s.keras")  # a plain Keras model, no satseg objects
    assert loaded.count_params() == d.student.count_params()
    assert np.allclose(np.asarray(loaded(x)), np.asarray(d.student(x)))


def test_validation_scores_the_student_on_labels_only():
    x, y = _batch()
    d = _distiller()
    logs = d.evaluate(x, y, verbose=0, return_dict=True)
    expected = float(CrossEntropy()(y, d.student(x)))
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def _run(code: str, env=None, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.mark.slow
def test_mirrored_strategy_on_two_devices_gives_the_same_loss_and_weights():
    code = """
    import json, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from satseg.distill import Distiller
    from satseg.losses import DiceFocal
    from satseg.models import build_model
    from tests.test_distill import _batch
    x, y = _batch(4)
    out = {}
    for name, strat in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                        ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        with strat.scope():
            d = Distiller(build_model("student", (16, 16, 3), seed=0),
                          build_model("student", (16, 16, 3), seed=1, widths=(8, 16)))
            d.compile(keras.optimizers.SGD(0.1), student_loss=DiceFocal(), alpha=0.3, temperature=2.0)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        h = d.fit(ds, epochs=1, verbose=0).history
        out[name] = {"loss": h["loss"][0], "d": h["distillation_loss"][0],
                     "w": float(sum(np.abs(w).sum() for w in d.student.get_weights()))}
    print(json.dumps(out))
    """
    r = _run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["two"]["loss"] == pytest.approx(out["one"]["loss"], rel=1e-5)
    assert out["two"]["d"] == pytest.approx(out["one"]["d"], rel=1e-5)
    assert out["two"]["w"] == pytest.approx(out["one"]["w"], rel=1e-6)


def test_existing_run_directory_is_not_overwritten(tmp_path, tiny_dataset):
    from satseg.errors import SatsegError

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    cfg = TrainConfig(model="student", data=str(tiny_dataset), epochs=1, patch_size=32, crops_per_epoch=8)
    with pytest.raises(SatsegError, match="run directory exists; pass --force"):
        train(cfg, tmp_path / "run", verbose=0)
    assert (tmp_path / "run" / "keep.txt").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_worker_multiworker_run_ends_with_identical_weights(tmp_path, tiny_dataset):
    ports = [_free_port(), _free_port()]
    code = """
    import sys
    from satseg.train import TrainConfig, train
    train(TrainConfig(model="student", data=sys.argv[1], epochs=1, batch_size=8, patch_size=32, sampling="grid",
                      max_patches=32, strategy="multiworker", seed=1), sys.argv[2], verbose=0)
    """
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), "TF_CONFIG": json.dumps(tf_config)}
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tiny_dataset),
                                       str(tmp_path / f"w{i}")], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    w0 = keras.saving.load_model(tmp_path / "w0" / "model.keras").get_weights()
    w1 = keras.saving.load_model(tmp_path / "w1" / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    assert len(read_history(tmp_path / "w0" / "history.csv")) == 1


def test_whole_image_logits_pad_to_the_stride_and_match_the_eager_model():
    """The graph that caches a teacher's logits gives what the model gives eagerly on the image
    padded by edge replication to its stride, cropped back, for any image size."""
    from satseg.inference import whole_image_logits

    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(6, 3, strides=4, padding="same", kernel_initializer="glorot_normal")(inp)
    teacher = keras.Model(inp, keras.layers.UpSampling2D(4)(x))
    run = whole_image_logits(teacher, 4, np.float32)
    rng = np.random.default_rng(0)
    for h, w in ((37, 50), (40, 41), (8, 8)):
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
        padded = np.pad(image, [(0, -h % 4), (0, -w % 4), (0, 0)], mode="edge")
        expected = np.asarray(teacher(padded[None]))[0, :h, :w]
        got = run(image)
        assert got.shape == (h, w, 6)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_cached_whole_image_logits_follow_every_crop_exactly(tiny_dataset):
    """Offline distillation with random crops: the teacher's logits are cached per whole image once,
    then cut, scaled, flipped and turned with the image. For a pointwise linear teacher (which
    commutes with all of these) the cut logits must equal the teacher run on the crop itself."""
    from satseg import data as D
    from satseg.inference import whole_image_logits
    from satseg.train import prepare_data

    inp = keras.Input((None, None, 3))
    teacher = keras.Model(inp, keras.layers.Conv2D(6, 1, kernel_initializer="glorot_normal", bias_initializer="ones")(inp))
    cfg = TrainConfig(model="student", data=str(tiny_dataset), patch_size=32, seed=2)
    data = prepare_data(cfg, tiny_dataset, progress=False)
    run = whole_image_logits(teacher, 1, np.float32)
    logits = [run(li.image) for li in data.train]
    sampler = D.CropSampler(data.train, 32, 12, logits, (0.7, 1.4), 0.5, 0.0, data.normalization, seed=3)
    n = 0
    for x, y in sampler():
        np.testing.assert_allclose(y["teacher_logits"], np.asarray(teacher(x[None]))[0], rtol=1e-4, atol=1e-3)
        n += 1
    assert n == 12


def test_several_teachers_are_cached_as_the_log_of_their_mean_probabilities(tiny_dataset):
    """Distilling an ensemble: the cached target's softmax is the mean of the teachers' softmax,
    per pixel of every whole training image; one teacher's logits are cached as they are."""
    from satseg.classes import ModelSpec
    from satseg.distill import cache_teacher_logits
    from satseg.imaging import softmax
    from satseg.train import prepare_data

    def pointwise(seed):
        inp = keras.Input((None, None, 3))
        init = keras.initializers.GlorotNormal(seed)
        return keras.Model(inp, keras.layers.Conv2D(6, 1, kernel_initializer=init)(inp))

    cfg = TrainConfig(model="student", data=str(tiny_dataset), patch_size=32, seed=2)
    data = prepare_data(cfg, tiny_dataset, progress=False)
    spec = ModelSpec(architecture="edge")
    a, b = pointwise(1), pointwise(2)
    one = cache_teacher_logits(cfg, [(a, spec)], data)
    two = cache_teacher_logits(cfg, [(a, spec), (b, spec)], data)
    assert len(two) == len(data.train)
    for li, z1, z2 in zip(data.train, one, two):
        za, zb = (np.asarray(m(li.image[None].astype(np.float32)))[0] for m in (a, b))
        np.testing.assert_allclose(z1.astype(np.float32), za, rtol=2e-3, atol=2e-3)
        assert z2.dtype == np.float16 and z2.shape == za.shape
        np.testing.assert_allclose(softmax(z2.astype(np.float32)), (softmax(za) + softmax(zb)) / 2, atol=2e-3)
        assert not np.allclose(softmax(za), softmax(zb), atol=2e-2)  # the two teachers do disagree


@pytest.mark.slow
def test_offline_distillation_with_crops_trains(tmp_path, tiny_dataset):
    teacher_run = tmp_path / "teacher"
    train(TrainConfig(model="edge", data=str(tiny_dataset), epochs=1, batch_size=4, patch_size=32,
                      crops_per_epoch=8, seed=1), teacher_run, verbose=0)
    cfg = TrainConfig(model="lite0_edge", data=str(tiny_dataset), teacher=str(teacher_run / "model.keras"), epochs=1,
                      batch_size=4, patch_size=32, crops_per_epoch=8, seed=2)
    summary = train(cfg, tmp_path / "student", verbose=0)
    assert summary["epochs"] == 1
    hist = read_history(tmp_path / "student" / "history.csv")
    assert {"student_loss", "distillation_loss"} <= set(hist[0])
