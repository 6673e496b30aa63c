import keras
import numpy as np
import pytest
import tensorflow as tf

from satseg.classes import IGNORE_LABEL
from satseg.errors import SatsegError
from satseg.losses import (
    LOSSES,
    CrossEntropy,
    Dice,
    DiceFocal,
    Focal,
    Lovasz,
    distillation_loss,
    get_loss,
)

from .conftest import random_logits


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _labels(shape, k=6, seed=0, ignore_share=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, shape).astype(np.int32)
    y[rng.random(shape) < ignore_share] = IGNORE_LABEL
    return y


def test_cross_entropy_matches_numpy_and_skips_ignore():
    z = random_logits((2, 5, 5, 6))
    y = _labels((2, 5, 5), ignore_share=0.3)
    valid = y != IGNORE_LABEL
    p = _softmax(z)
    expected = -np.log(p[valid, y[valid]]).mean()
    assert float(CrossEntropy()(y, z)) == pytest.approx(expected, rel=1e-5)


def test_class_weights_weight_pixels():
    z = random_logits((1, 4, 4, 3))
    y = _labels((1, 4, 4), k=3)
    w = np.array([1.0, 2.0, 0.5])
    ce = -np.log(_softmax(z)[..., :][np.arange(1)[:, None, None], np.arange(4)[None, :, None], np.arange(4)[None, None, :], y])
    expected = (ce * w[y]).sum() / w[y].sum()
    assert float(CrossEntropy(class_weights=w)(y, z)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", [CrossEntropy(), Dice(), Focal(), DiceFocal(), Lovasz()])
def test_ignore_pixels_contribute_nothing(loss):
    z = random_logits((2, 6, 6, 6))
    y = _labels((2, 6, 6), ignore_share=0.4)
    z2 = z.copy()
    z2[y == IGNORE_LABEL] = random_logits(z2[y == IGNORE_LABEL].shape, seed=9)  # change only ignored pixels
    assert float(loss(y, z)) == pytest.approx(float(loss(y, z2)), rel=1e-6)


def test_dice_is_zero_for_a_perfect_prediction_and_focal_matches_formula():
    y = _labels((1, 8, 8))
    z = (np.eye(6)[y] * 50).astype(np.float32)
    assert float(Dice()(y, z)) == pytest.approx(0.0, abs=1e-4)
    z = random_logits((1, 8, 8, 6))
    pt = _softmax(z)[0][np.arange(8)[:, None], np.arange(8)[None, :], y[0]]
    assert float(Focal(gamma=2.0, alpha=0.25)(y, z)) == pytest.approx(
        (-0.25 * (1 - pt) ** 2 * np.log(pt)).mean(), rel=1e-5)


def test_lovasz_equals_one_minus_iou_for_hard_predictions():
    """At one-hot probabilities the Lovász extension is the Jaccard loss itself: the mean over
    the classes present in the labels of 1 - IoU."""
    y = _labels((2, 9, 9), k=4, ignore_share=0.2)
    pred = _labels((2, 9, 9), k=4, seed=1)
    z = (np.eye(4)[pred] * 60).astype(np.float32)
    valid = y != IGNORE_LABEL
    ious = [((y == c) & (pred == c) & valid).sum() / (((y == c) | (pred == c)) & valid).sum()
            for c in range(4) if (y == c).any()]
    assert float(Lovasz()(y, z)) == pytest.approx(1 - np.mean(ious), abs=1e-4)
    assert float(Lovasz()(y, (np.eye(4)[np.where(valid, y, 0)] * 60).astype(np.float32))) == pytest.approx(0, abs=1e-4)


def test_loss_choices_are_the_registry():
    from satseg.train import CHOICES

    assert CHOICES["loss"] == tuple(LOSSES)


def test_unknown_loss():
    with pytest.raises(SatsegError, match="valid names: ce, dice, focal, dice_focal"):
        get_loss("dice-focal")


@pytest.mark.parametrize("T", [1.0, 3.0, 10.0])
def test_distillation_loss_matches_numpy(T):
    t, s = random_logits((2, 4, 4, 6), 1), random_logits((2, 4, 4, 6), 2)
    y = _labels((2, 4, 4), ignore_share=0.25)
    valid = (y != IGNORE_LABEL)
    pt, ps = _softmax(t / T), _softmax(s / T)
    kl = (pt * (np.log(pt) - np.log(ps))).sum(-1)
    expected = kl[valid].mean() * T * T
    got = float(distillation_loss(t, s, tf.constant(valid, tf.float32), T))
    assert got == pytest.approx(expected, rel=1e-5)


def test_distillation_loss_equals_keras_logits_distillation_without_ignore_pixels():
    t, s = random_logits((2, 8, 8, 6), 3), random_logits((2, 8, 8, 6), 4)
    ours = float(distillation_loss(t, s, tf.ones((2, 8, 8)), 4.0))
    # Keras 3.15's default loss="kl_divergence" resolves to the bare function, which misses the
    # softmax/T^2 branch of LogitsDistillation; the KLDivergence instance takes it.
    kd = keras.distillation.LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence())
    assert ours == pytest.approx(float(kd.compute_loss(t, s)), rel=1e-4)
