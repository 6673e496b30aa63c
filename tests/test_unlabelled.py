"""Distillation beyond the labels: unlabelled imagery and mixed views, learnt from the teacher alone."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from satseg import data as D
from satseg.classes import IGNORE_LABEL, TEACHER_ONLY
from satseg.distill import Distiller
from satseg.errors import SatsegError
from satseg.losses import CrossEntropy
from satseg.models import build_model
from satseg.train import TrainConfig, prepare_data, train


@pytest.fixture(scope="module")
def unlabelled_dir(tmp_path_factory, tiny_dataset):
    """Three images of the tiny dataset's kind, without masks, in a folder of their own."""
    from satseg.synthetic import write_dataset

    other = write_dataset(tmp_path_factory.mktemp("other") / "data", tiles=1, images_per_tile=3, size=(96, 128), seed=7)
    out = tmp_path_factory.mktemp("unlabelled") / "imagery"
    out.mkdir()
    for f in sorted(other.rglob("images/*")):
        shutil.copy(f, out / f.name)
    return out


def _crops(tiny_dataset, unlabelled_dir, **kw):
    cfg = TrainConfig(model="student", data=str(tiny_dataset), patch_size=32, seed=2, teacher="t.keras",
                      unlabeled=[str(unlabelled_dir)])
    data = prepare_data(cfg, tiny_dataset, progress=False)
    sampler = D.CropSampler(data.train, 32, 40, None, (0.7, 1.4), 0.5, 0.1, data.normalization, seed=3,
                            unlabelled=data.unlabelled, **kw)
    return data, [y for _, y in sampler()]


def test_unlabelled_images_give_their_share_of_crops_all_teacher_only(tiny_dataset, unlabelled_dir):
    data, masks = _crops(tiny_dataset, unlabelled_dir, unlabelled_fraction=0.5)
    assert len(data.unlabelled) == 3 and all(not li.any_labelled() for li in data.unlabelled)
    teacher_only = [bool((m == TEACHER_ONLY).all()) for m in masks]
    assert 10 <= sum(teacher_only) <= 30  # about half of 40
    assert all(((m < 6) | (m == IGNORE_LABEL)).all() for m, t in zip(masks, teacher_only) if not t)


def test_without_a_share_of_unlabelled_crops_the_crops_are_those_of_a_plain_run(tiny_dataset, unlabelled_dir):
    _, with_none = _crops(tiny_dataset, unlabelled_dir, unlabelled_fraction=0.0)
    cfg = TrainConfig(model="student", data=str(tiny_dataset), patch_size=32, seed=2)
    data = prepare_data(cfg, tiny_dataset, progress=False)
    plain = [y for _, y in D.CropSampler(data.train, 32, 40, None, (0.7, 1.4), 0.5, 0.1, data.normalization,
                                         seed=3)()]
    assert all(np.array_equal(a, b) for a, b in zip(with_none, plain))


def test_cutmix_pastes_one_box_with_its_labels_and_logits():
    rng = np.random.default_rng(0)
    a = [np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.int32), np.zeros((32, 32, 4), np.float16)]
    b = [np.ones((32, 32, 3), np.float32), np.full((32, 32), 2, np.int32), np.ones((32, 32, 4), np.float16)]
    for _ in range(20):
        img, ids, logits = D.mix_crops(a, b, "cutmix", rng)
        box = ids == 2
        ys, xs = np.nonzero(box)
        assert box[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()  # one rectangle
        assert 0.1 < box.mean() < 0.9
        assert (img[..., 0] == box).all() and (logits[..., 0] == box).all()
    assert (a[1] == 0).all()  # the inputs are not changed


def test_mixup_blends_images_and_leaves_only_the_teacher_to_label_them():
    rng = np.random.default_rng(0)
    a = [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.int32)]
    b = [np.ones((8, 8, 3), np.float32), np.full((8, 8), 1, np.int32)]
    b[1][0, 0] = IGNORE_LABEL
    img, ids = D.mix_crops(a, b, "mixup", rng)
    assert 0.2 <= img[0, 0, 0] <= 0.8 and np.allclose(img, img[0, 0, 0])
    assert ids[0, 0] == IGNORE_LABEL and (ids.ravel()[1:] == TEACHER_ONLY).all()
    with pytest.raises(SatsegError, match="online teacher"):
        D.mix_crops(a + [np.zeros((8, 8, 2))], b + [np.zeros((8, 8, 2))], "mixup", rng)


def _distiller(confidence=0.0):
    student = build_model("student", (16, 16, 3), seed=0)
    teacher = build_model("student", (16, 16, 3), seed=1, widths=(8, 16))
    d = Distiller(student, teacher)
    d.compile(keras.optimizers.Adam(1e-2), student_loss=CrossEntropy(), alpha=0.5, temperature=2.0,
              confidence=confidence)
    return d


def test_teacher_only_pixels_have_no_label_loss_but_are_distilled():
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    y = np.full((2, 16, 16), TEACHER_ONLY, np.int32)
    y[:, :2] = IGNORE_LABEL
    d = _distiller()
    before = [w.numpy().copy() for w in d.student.trainable_weights]
    logs = d.train_step((tf.constant(x), tf.constant(y)))
    assert float(logs["student_loss"]) == 0.0 and float(logs["distillation_loss"]) > 0
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(before, d.student.trainable_weights))


def test_confidence_keeps_only_the_teachers_sure_pixels_without_labels():
    y = tf.constant([[[TEACHER_ONLY, TEACHER_ONLY, 1, IGNORE_LABEL]]], tf.int32)
    t = tf.constant([[[[5.0, 0, 0], [0.1, 0, 0], [0.1, 0, 0], [5.0, 0, 0]]]])
    mask = _distiller(confidence=0.9).distillation_mask(y, t).numpy().ravel()
    assert mask.tolist() == [1.0, 0.0, 1.0, 0.0]  # sure, unsure, labelled, ignored
    assert _distiller().distillation_mask(y, t).numpy().ravel().tolist() == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("kw,message", [
    ({"unlabeled": ["U"]}, "need a --teacher"),
    ({"mix": "mixup", "teacher": "T"}, "--distill-mode online"),
    ({"unlabeled": ["U"], "teacher": "T", "sampling": "grid"}, "--sampling crops"),
    ({"confidence": 1.0, "teacher": "T"}, r"\[0, 1\)"),
])
def test_unusable_settings_are_refused_before_any_work(kw, message, tmp_path):
    (tmp_path / "T").write_bytes(b"")
    (tmp_path / "U").mkdir()
    kw = {k: ([str(tmp_path / p) for p in v] if k == "unlabeled" else str(tmp_path / v) if k == "teacher" else v)
          for k, v in kw.items()}
    with pytest.raises(SatsegError, match=message):
        TrainConfig(model="student", **kw).check()


def test_a_labelled_image_given_as_unlabelled_is_refused(tiny_dataset):
    img = next(tiny_dataset.rglob("images/*"))
    cfg = TrainConfig(model="student", data=str(tiny_dataset), patch_size=32, teacher="t", unlabeled=[str(img)])
    with pytest.raises(SatsegError, match="is a labelled image"):
        prepare_data(cfg, tiny_dataset, progress=False)


@pytest.mark.slow
def test_distilling_with_unlabelled_imagery_and_cutmix_trains_records_and_resumes(tmp_path, tiny_dataset,
                                                                                    trained_student, unlabelled_dir):
    teacher = str(trained_student / "model.keras")
    cfg = TrainConfig(model="student", data=str(tiny_dataset), teacher=teacher, unlabeled=[str(unlabelled_dir)],
                      mix="cutmix", confidence=0.5, epochs=1, batch_size=4, patch_size=32, crops_per_epoch=8, seed=2)
    run = tmp_path / "student"
    assert train(cfg, run, verbose=0)["epochs"] == 1
    doc = json.loads((run / "config.json").read_text())
    assert len(doc["unlabelled"]) == 3 and doc["distillation"]["unlabelled_crops"] == 0.5
    assert doc["distillation"]["mix"] == "cutmix" and "0.5" in doc["distillation"]["loss"]
    (unlabelled_dir / sorted(p.name for p in unlabelled_dir.iterdir())[0]).rename(unlabelled_dir / "moved.png.bak")
    try:
        from satseg.train import resume

        with pytest.raises(SatsegError, match="differs from what the run recorded"):
            resume(run, verbose=0, epochs=2)
    finally:
        (unlabelled_dir / "moved.png.bak").rename(unlabelled_dir / sorted(json.loads(
            (run / "config.json").read_text())["unlabelled"])[0].rsplit("/", 1)[-1])
