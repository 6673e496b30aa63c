"""Segmentation metrics from a streaming confusion matrix, skipping the ignore label.

:class:`ConfusionMatrix` works on numpy arrays (evaluation, export parity) and needs no Keras;
:class:`SegMetrics` (in :mod:`satseg.keras_metrics`, also reachable here) is the same matrix as a
Keras metric, so ``val_miou`` can drive checkpoints and early stopping.
"""

from __future__ import annotations

import re

import numpy as np

from satseg.classes import IGNORE_LABEL


def slug(name: str) -> str:
    """'Land (unpaved area)' -> 'land': class names as metric-name suffixes."""
    return re.sub(r"[^a-z0-9]+", "_", name.split("(")[0].strip().lower()).strip("_")


def scores(cm: np.ndarray) -> dict:
    """Per-class IoU / precision / recall / F1, mean IoU and pixel accuracy from a confusion
    matrix (rows: truth, columns: prediction). Classes absent from both give NaN IoU and are
    left out of the mean; precision is NaN for a class never predicted, recall for one never true."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    gt, pred = cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (gt + pred - tp)
        precision = tp / pred  # undefined (NaN, reported n/a) where nothing was predicted the class
        recall = tp / gt  # undefined where the truth has none of it
        f1 = 2 * tp / (gt + pred)  # undefined only where both have none; 0 where one has some and they miss
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "iou": iou, "precision": precision, "recall": recall, "f1": f1,
        "support": gt,
    }


def majority_miou(class_pixels) -> tuple[int, float]:
    """The commonest true class and the mIoU of calling every pixel that class: its share of the
    pixels, over the classes the truth holds (the others are left out of the mean, as in
    :func:`scores`). A model that does not beat it has learnt nothing worth keeping."""
    n = np.asarray(class_pixels, np.float64)
    top = int(np.argmax(n))
    present = int((n > 0).sum())
    return top, float(n[top] / n.sum() / present) if present else 0.0


class ConfusionMatrix:
    """Streaming confusion matrix on numpy arrays of class ids."""

    def __init__(self, num_classes: int, ignore_label: int = IGNORE_LABEL):
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, y_true, y_pred) -> ConfusionMatrix:
        t = np.asarray(y_true).ravel().astype(np.int64)
        p = np.asarray(y_pred).ravel().astype(np.int64)
        keep = (t != self.ignore_label) & (t < self.num_classes)
        n = self.num_classes
        self.matrix += np.bincount(t[keep] * n + p[keep], minlength=n * n).reshape(n, n)
        return self

    def scores(self) -> dict:
        return scores(self.matrix)

    def report(self, class_names, foreground: int | None = None) -> dict:
        """JSON-ready: ``miou``, ``pixel_accuracy``, ``per_class`` name -> iou/precision/recall/f1/share;
        a binary problem's ``foreground`` class IoU when its id is given."""
        s = self.scores()
        total = max(self.matrix.sum(), 1)

        def num(v):
            return None if not np.isfinite(v) else float(v)

        keep = [i for i, n in enumerate(class_names) if n != "Unlabeled"]
        iou_keep = np.asarray(s["iou"])[keep]
        out = {
            "miou": num(s["miou"]),
            # Unlabeled is 0.5 % of the Dubai pixels and near 0 for every published model: report both.
            "miou_without_unlabeled": num(np.nanmean(iou_keep)) if np.isfinite(iou_keep).any()
            and len(keep) < len(class_names) else None,
            "pixel_accuracy": num(s["pixel_accuracy"]),
            "per_class": {
                name: {"iou": num(s["iou"][i]), "precision": num(s["precision"][i]),
                       "recall": num(s["recall"][i]), "f1": num(s["f1"][i]),
                       "share": float(s["support"][i] / total)}
                for i, name in enumerate(class_names)
            },
            "confusion_matrix": self.matrix.tolist(),
        }
        if foreground is not None:
            out["foreground"] = {"class": class_names[foreground], "iou": num(s["iou"][foreground])}
        return out


def bootstrap_interval(per_image: np.ndarray, foreground: int | None = None, level: float = 0.95,
                       draws: int = 2000, seed: int = 0) -> dict:
    """How sure a score is: resample whole images with replacement (pixels of one image are not
    independent), pool their confusion matrices and read the spread of mIoU (and of the
    foreground class's IoU). ``per_image`` is (images, classes, classes)."""
    per_image = np.asarray(per_image, np.int64)
    n = len(per_image)
    picks = np.random.default_rng(seed).integers(0, n, (draws, n))
    counts = np.zeros((draws, n), np.int64)  # how often each draw took each image
    np.add.at(counts, (np.arange(draws)[:, None], picks), 1)
    pooled = np.einsum("di,ijk->djk", counts, per_image)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2

    def spread(values):
        v = np.asarray(values, np.float64)
        v = v[np.isfinite(v)]
        return [float(np.percentile(v, lo)), float(np.percentile(v, hi))] if len(v) else None

    drawn = [scores(cm) for cm in pooled]
    out = {"level": level, "draws": draws, "images": n, "seed": seed, "miou": spread([d["miou"] for d in drawn])}
    if foreground is not None:
        out["foreground_iou"] = spread([d["iou"][foreground] for d in drawn])
    return out


class ObjectCounts:
    """Object-by-object scores of one class (SpaceNet's matching): each connected region
    (4-connected, as the polygons ``predict --vector`` writes) of the truth and of the prediction
    is an object; a predicted object matches a true one when their IoU reaches ``threshold``
    (0.5: each object matches at most one), greedily by IoU. Pixels the truth ignores are left
    out of both. Also the class's area in both, for the area error. ``min_pixels`` leaves out
    objects smaller than that, true and predicted alike (specks, and buildings a chip border cut
    to a sliver), as SpaceNet leaves out footprints under a minimum area."""

    def __init__(self, class_id: int, threshold: float = 0.5, ignore_label: int = IGNORE_LABEL, min_pixels: int = 0):
        self.class_id, self.threshold, self.ignore_label = class_id, threshold, ignore_label
        self.min_pixels = min_pixels
        self.tp = self.true = self.pred = 0
        self.true_area = self.pred_area = 0

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> ObjectCounts:
        valid = y_true != self.ignore_label
        t, nt = self._objects((y_true == self.class_id) & valid)
        p, np_ = self._objects((y_pred == self.class_id) & valid)
        self.true, self.pred = self.true + nt, self.pred + np_
        self.true_area += int((t > 0).sum())
        self.pred_area += int((p > 0).sum())
        if nt and np_:
            self.tp += len(match_objects(t, nt, p, np_, self.threshold))
        return self

    def _objects(self, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """Connected regions of ``mask`` labelled 1..n, those under ``min_pixels`` left out."""
        from scipy import ndimage

        lab, n = ndimage.label(mask)
        if self.min_pixels and n:
            size = np.bincount(lab.ravel(), minlength=n + 1)
            kept = size >= self.min_pixels
            kept[0] = False
            relabel = np.zeros(n + 1, np.int64)
            relabel[kept] = np.arange(1, kept.sum() + 1)
            lab, n = relabel[lab], int(kept.sum())
        return lab, n

    def report(self) -> dict:
        # undefined, not 0: precision without predicted objects, recall without true ones, F1 without either
        precision = self.tp / self.pred if self.pred else None
        recall = self.tp / self.true if self.true else None
        f1 = None if not (self.pred or self.true) else 2 * self.tp / (self.pred + self.true)
        return {"iou_threshold": self.threshold, "min_pixels": self.min_pixels, "true_objects": self.true, "predicted_objects": self.pred,
                "matched": self.tp, "precision": precision, "recall": recall, "f1": f1,
                "area_error": (self.pred_area - self.true_area) / self.true_area if self.true_area else None}


def match_objects(t: np.ndarray, nt: int, p: np.ndarray, np_: int, threshold: float) -> list[tuple[int, int, float]]:
    """(true, predicted, IoU) pairs at IoU >= ``threshold``, each object used once, best IoU first."""
    both = (t > 0) & (p > 0)
    pairs = t[both].astype(np.int64) * (np_ + 1) + p[both]
    keys, inter = np.unique(pairs, return_counts=True)
    ti, pi = keys // (np_ + 1), keys % (np_ + 1)
    area_t = np.bincount(t.ravel(), minlength=nt + 1)
    area_p = np.bincount(p.ravel(), minlength=np_ + 1)
    iou = inter / (area_t[ti] + area_p[pi] - inter)
    out, used_t, used_p = [], set(), set()
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < threshold:
            break
        if ti[k] not in used_t and pi[k] not in used_p:
            used_t.add(ti[k])
            used_p.add(pi[k])
            out.append((int(ti[k]), int(pi[k]), float(iou[k])))
    return out


def __getattr__(name):
    # SegMetrics needs Keras; the numpy part of this module must import without it (edge install).
    if name == "SegMetrics":
        from satseg.keras_metrics import SegMetrics

        return SegMetrics
    raise AttributeError(name)
