import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, jaccard_score, precision_recall_fscore_support

from satseg.classes import IGNORE_LABEL
from satseg.metrics import ConfusionMatrix, SegMetrics, slug


def _random(seed=0, n=5000, k=6):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.6, t, rng.integers(0, k, n))
    return t, p


def test_confusion_matrix_and_scores_agree_with_scikit_learn():
    t, p = _random()
    cm = ConfusionMatrix(6).update(t[:2000], p[:2000]).update(t[2000:], p[2000:])  # streaming
    assert np.array_equal(cm.matrix, confusion_matrix(t, p, labels=range(6)))
    s = cm.scores()
    prec, rec, f1, _ = precision_recall_fscore_support(t, p, labels=range(6), zero_division=0)
    np.testing.assert_allclose(s["precision"], prec)
    np.testing.assert_allclose(s["recall"], rec)
    np.testing.assert_allclose(s["f1"], f1)
    np.testing.assert_allclose(s["iou"], jaccard_score(t, p, labels=range(6), average=None))
    assert s["miou"] == pytest.approx(jaccard_score(t, p, labels=range(6), average="macro"))
    assert s["pixel_accuracy"] == pytest.approx((t == p).mean())


def test_scores_are_undefined_not_zero_where_a_class_is_never_predicted_or_never_true():
    t, p = _random(1)
    p = np.where(p == 4, 0, p)  # class 4 never predicted
    t = np.where(t == 5, 1, t)
    p = np.where(p == 5, 1, p)  # class 5 neither true nor predicted
    s = ConfusionMatrix(6).update(t, p).scores()
    prec, rec, f1, _ = precision_recall_fscore_support(t, p, labels=range(6), zero_division=np.nan)
    np.testing.assert_allclose(s["precision"], prec)
    np.testing.assert_allclose(s["recall"], rec)
    np.testing.assert_allclose(s["f1"], f1)
    assert np.isnan(s["precision"][4]) and s["f1"][4] == 0.0 and np.isnan(s["f1"][5])
    rep = ConfusionMatrix(6).update(t, p).report([f"c{i}" for i in range(6)])
    assert rep["per_class"]["c4"]["precision"] is None and rep["per_class"]["c4"]["f1"] == 0.0


def test_ignore_label_is_skipped():
    t, p = _random(1)
    t2 = t.copy()
    t2[::3] = IGNORE_LABEL
    keep = t2 != IGNORE_LABEL
    a = ConfusionMatrix(6).update(t2, p).matrix
    b = ConfusionMatrix(6).update(t[keep], p[keep]).matrix
    assert np.array_equal(a, b) and a.sum() == keep.sum()


def test_absent_class_is_left_out_of_the_mean():
    t = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 1])
    s = ConfusionMatrix(3).update(t, p).scores()
    assert np.isnan(s["iou"][2]) and s["miou"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_keras_metric_matches_numpy_matrix():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 6, (3, 8, 8))
    y[0, :2] = IGNORE_LABEL
    logits = rng.normal(size=(3, 8, 8, 6)).astype("float32")
    m = SegMetrics([f"c{i}" for i in range(6)])
    m.update_state(y[:2], logits[:2])
    m.update_state(y[2:], logits[2:])
    r = {k: float(v) for k, v in m.result().items()}
    s = ConfusionMatrix(6).update(y, logits.argmax(-1)).scores()
    assert r["miou"] == pytest.approx(s["miou"], rel=1e-6)
    assert r["pixel_accuracy"] == pytest.approx(s["pixel_accuracy"], rel=1e-6)
    assert r["iou_c3"] == pytest.approx(s["iou"][3], rel=1e-6)


def test_report_json_keys():
    t, p = _random(3)
    rep = ConfusionMatrix(6).update(t, p).report([f"class {i}" for i in range(6)])
    json.dumps(rep)
    assert set(rep) >= {"miou", "pixel_accuracy", "per_class"}
    assert set(rep["per_class"]["class 0"]) >= {"iou", "precision", "recall", "f1"}


def test_slug():
    assert slug("Land (unpaved area)") == "land" and slug("Building") == "building"


def test_bootstrap_interval_over_images_holds_the_score_and_shrinks_when_images_agree():
    import numpy as np

    from satseg.metrics import ConfusionMatrix, bootstrap_interval, scores

    rng = np.random.default_rng(0)
    per = []
    for i in range(8):  # images of different difficulty: the interval must be wide
        t = rng.integers(0, 3, 2000)
        p = np.where(rng.random(2000) < 0.3 + 0.08 * i, t, rng.integers(0, 3, 2000))
        per.append(ConfusionMatrix(3).update(t, p).matrix)
    ci = bootstrap_interval(per, foreground=1, seed=1)
    point = scores(np.sum(per, 0))["miou"]
    assert ci["miou"][0] < point < ci["miou"][1] and ci["miou"][1] - ci["miou"][0] > 0.05
    assert ci["foreground_iou"][0] < scores(np.sum(per, 0))["iou"][1] < ci["foreground_iou"][1]
    same = bootstrap_interval([per[0]] * 8)
    assert same["miou"][0] == same["miou"][1] == scores(per[0])["miou"]
    assert bootstrap_interval(per, seed=3) == bootstrap_interval(per, seed=3)  # seeded: reproducible


def test_the_majority_baseline_is_the_miou_of_calling_every_pixel_the_commonest_class():
    from satseg.cli.train import no_better_note
    from satseg.metrics import majority_miou

    t = np.array([0] * 60 + [1] * 30 + [2] * 10)
    top, base = majority_miou(np.bincount(t, minlength=4))  # class 3 absent: out of the mean
    s = ConfusionMatrix(4).update(t, np.zeros_like(t)).scores()
    assert top == 0 and base == pytest.approx(s["miou"]) == pytest.approx(0.6 / 3)
    summary = {"majority_val_miou": {"class": "Land", "miou": 0.2}, "best_model_val_miou": 0.19}
    assert "no better than calling every pixel Land" in no_better_note(summary)
    assert no_better_note({**summary, "best_model_val_miou": 0.5}) is None
