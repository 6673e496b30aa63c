"""Pictures a person would rather look at than read. Non-interactive backend, no display needed."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from satseg.atomic import atomic_write  # noqa: E402
from satseg.classes import DUBAI, colorize  # noqa: E402


def _save(fig, path) -> Path:
    """Atomic write: render to a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _legend_handles(classes):
    from matplotlib.patches import Patch

    return [Patch(color=np.asarray(c.color) / 255, label=c.name) for c in classes]


def plot_history(rows: list[dict], path_loss, path_miou, title: str = ""):
    """``loss.png``: training/validation loss (and the Distiller's parts) vs epoch;
    ``miou.png``: training/validation mIoU vs epoch. ``title`` names the model."""
    epochs = [int(float(r["epoch"])) + 1 for r in rows]
    prefix = f"{title}: " if title else ""
    distilled = bool(rows) and "distillation_loss" in rows[0]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"loss": ("train loss", "-"), "val_loss": ("val loss (student)" if distilled else "val loss", "-"),
              "student_loss": ("train student loss", "--"), "distillation_loss": ("train distillation loss", ":")}
    for key, (label, ls) in styles.items():
        if rows and key in rows[0]:
            ax.plot(epochs, [float(r[key]) for r in rows], ls, marker="o", ms=3, label=label)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(f"{prefix}loss vs epoch")
    ax.set_xlim(0.5, max(epochs, default=1) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path_loss)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label in (("miou", "train mIoU"), ("val_miou", "val mIoU")):
        if rows and key in rows[0]:
            ax.plot(epochs, [float(r[key]) for r in rows], marker="o", ms=3, label=label)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean IoU")
    ax.set_ylim(0, 1)
    ax.set_title(f"{prefix}mean IoU vs epoch")
    ax.set_xlim(0.5, max(epochs, default=1) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path_miou)


def plot_pr_curves(labels: np.ndarray, probs: np.ndarray, path, classes=DUBAI,
                   max_pixels: int = 400_000, seed: int = 0, title: str = ""):
    """One precision-recall curve per class from softmax probabilities (one-vs-rest), average
    precision in the legend (outside the axes, so it never hides a curve). Ignore pixels are
    skipped; a seeded pixel sample keeps it fast. ``title`` names the model and data."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    t = labels.reshape(-1)
    p = probs.reshape(-1, probs.shape[-1])
    keep = np.flatnonzero(t < len(classes))
    if len(keep) > max_pixels:
        keep = np.random.default_rng(seed).choice(keep, max_pixels, replace=False)
    t, p = t[keep], p[keep]
    fig, ax = plt.subplots(figsize=(8.5, 5))
    aps = {}
    for c in classes:
        y = t == c.id
        if not y.any():
            continue
        prec, rec, _ = precision_recall_curve(y, p[:, c.id])
        aps[c.name] = float(average_precision_score(y, p[:, c.id]))
        ax.plot(rec, prec, color=np.asarray(c.color) / 255, lw=2, label=f"{c.name} (AP {aps[c.name]:.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: precision vs recall per class" if title else "Precision vs recall per class")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    _save(fig, path)
    return aps


def _show_image(ax, image):
    im = np.asarray(image, np.float32)
    if im.shape[-1] > 3:
        im = im[..., :3]
    lo, hi = im.min(), im.max()
    im = (im - lo) / max(hi - lo, 1e-12)
    ax.imshow(im.squeeze())


def plot_predictions(images, labels, preds, path, classes=DUBAI, max_rows: int = 10,
                     titles=None, title: str = ""):
    """Rows of (image, ground truth, prediction) in the dataset's colours, with a legend."""
    n = min(len(images), max_rows)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    if title:
        fig.suptitle(title, fontsize=10)
    for i in range(n):
        _show_image(axes[i, 0], images[i])
        axes[i, 1].imshow(colorize(labels[i], classes))
        axes[i, 2].imshow(colorize(preds[i], classes))
        for j, t in enumerate(("image", "ground truth", "prediction")):
            axes[i, j].set_title(t if titles is None else f"{t}: {titles[i]}", fontsize=8)
            axes[i, j].axis("off")
    fig.legend(handles=_legend_handles(classes), loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _save(fig, path)


def plot_confusion(matrix: np.ndarray, path, classes=DUBAI, title: str = ""):
    """Row-normalised confusion matrix (recall on the diagonal) with counts' shares."""
    cm = np.asarray(matrix, np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = [c.name.split(" (")[0] for c in classes]
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: confusion (rows sum to 1)" if title else "Confusion matrix (rows sum to 1)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)


def plot_dataset(pairs, class_share: dict, path, classes=DUBAI):
    """A few image/mask pairs in the dataset's colours and the class histogram."""
    n = len(pairs)
    fig = plt.figure(figsize=(3 * max(n, 2), 7))
    for i, (image, mask) in enumerate(pairs):
        ax = fig.add_subplot(3, n, i + 1)
        _show_image(ax, image)
        ax.axis("off")
        ax = fig.add_subplot(3, n, n + i + 1)
        ax.imshow(colorize(mask, classes))
        ax.axis("off")
    ax = fig.add_subplot(3, 1, 3)
    names = list(class_share)
    ax.bar(range(len(names)), [100 * class_share[k] for k in names],
           color=[np.asarray(c.color) / 255 for c in classes], edgecolor="0.25")  # a white class shows too
    ax.set_xticks(range(len(names)), [k.split(" (")[0] for k in names])
    ax.set_ylabel("% of labelled pixels")
    _save(fig, path)


def class_iou_bars(ious: dict, path, title: str = ""):
    """One bar per class: its IoU (n/a classes, absent from the split, left empty and named so)."""
    names = list(ious)
    vals = [0.0 if ious[k] is None else ious[k] for k in names]
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 1.5), 3.6))
    bars = ax.bar(range(len(names)), vals, color="#4c72b0", edgecolor="0.25")
    for b, k in zip(bars, names):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01,
                "n/a" if ious[k] is None else f"{ious[k]:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), [k.split(" (")[0] for k in names], rotation=25, ha="right")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IoU")
    ax.set_title(f"{title}: IoU per class (test split)" if title else "IoU per class (test split)", fontsize=10)
    _save(fig, path)
