"""Honest evaluation: whole images, tiled with the model's patch size, borders included.

Works with a ``.keras`` file, a SavedModel directory (as written by ``satseg export``) or a
``.tflite`` file (through the edge runtime).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from satseg.classes import ModelSpec, class_names, load_spec
from satseg.errors import SatsegError
from satseg.imaging import softmax
from satseg.metrics import bootstrap_interval
from satseg.run import recorded_data

PLOT_FILES = ("pr_curve.png", "predictions.png", "confusion.png")


class Predictor:
    """Anything a model file can be, as ``spec`` + ``predict_patches`` (normalised -> probs)."""

    def __init__(self, spec: ModelSpec, fn, kind: str, path: Path, predict_ids=None, takes_raw_uint8: bool = False):
        self.spec, self._fn, self.kind, self.path = spec, fn, kind, path
        self.predict_ids = predict_ids
        """Whole-image files: raw image (H, W, C) -> class ids, in windows (no probabilities)."""
        self.takes_raw_uint8 = takes_raw_uint8

    def predict_patches(self, x):
        return self._fn(x)


def load_predictor(path, num_threads: int | None = None, trust: bool = False) -> Predictor:
    """A model file as a :class:`Predictor`. A SavedModel runs its own graph when loaded, so it can
    run any op (write files, for one); it is loaded only when ``trust`` says the user made it."""
    path = Path(path)
    if not path.exists():
        raise SatsegError(f"{path}: model not found")
    try:
        spec = load_spec(path)
    except FileNotFoundError as e:
        raise SatsegError(str(e)) from None
    if path.suffix == ".tflite":
        from satseg.edge import EdgeModel

        m = EdgeModel(path, num_threads=num_threads, spec=spec)
        return Predictor(m.spec, m.predict_patches, "tflite", path, m.predict if m.whole_image else None,
                         m.takes_raw_uint8)
    if path.suffix == ".keras":
        from satseg.models import load_model_file

        model = load_model_file(path)
        if model.output_shape[-1] != spec.num_classes:
            raise SatsegError(f"{path}: the model predicts {model.output_shape[-1]} classes, its spec lists "
                              f"{spec.num_classes}")

        def fn(x):
            return softmax(np.asarray(model(x, training=False), np.float32))

        return Predictor(spec, fn, "keras", path)
    if path.is_dir() and (path / "saved_model.pb").exists():
        if not trust:
            raise SatsegError(f"{path}: a SavedModel can run any code when loaded; pass --trust-model if you "
                              "made it yourself (or use its .keras or .tflite file)")
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:  # a damaged SavedModel: protobuf, IO or graph errors
            raise SatsegError(f"{path}: cannot load the SavedModel ({type(e).__name__})") from None
        serve = loaded.serve if hasattr(loaded, "serve") else loaded.signatures["serving_default"]

        def fn(x, loaded=loaded):  # keeps the loaded object (and its variables) alive
            return np.concatenate([np.asarray(serve(tf.constant(x[i:i + 1], tf.float32))) for i in range(len(x))])

        return Predictor(spec, fn, "saved_model", path)
    raise SatsegError(f"{path}: not a model (.keras file, .tflite file or SavedModel directory)")


def select_images(data, split: str = "all", seed: int = 42, val: float = 0.15, test: float = 0.15,
                  recorded: dict | None = None, masks=None, pairs=None):
    """Samples of a dataset, or of one split of it: the image list a training run recorded in its
    config.json when given, else the same seeded split by image that training makes. Images pair
    with masks as ``masks`` / ``pairs`` say, else as the run recorded, else by the layout found."""
    from satseg.data import find_samples, image_split

    recorded = recorded or {}
    masks = masks or recorded.get("masks")
    pairs = pairs or recorded.get("pairs")
    samples = find_samples(data, masks=masks, pairs=pairs)
    if split == "all":
        return samples
    if split not in ("train", "val", "test"):
        raise SatsegError(f"unknown split '{split}'; valid: all, train, val, test")
    names = recorded.get("split", {}).get(split)
    if names is not None:
        names = set(names)
        chosen = [s for s in samples if str(s.image.relative_to(data)) in names]
        if len(chosen) != len(names):
            raise SatsegError(f"{data}: {len(names) - len(chosen)} images of the recorded {split} split are missing "
                              "(another dataset? --split all scores every image of it)")
        return chosen
    return [samples[i] for i in image_split(samples, val, test, seed)[split]]


MIN_INTERVAL_IMAGES = 5
"""Fewer whole images than this get no bootstrap interval."""


def evaluate(predictor: Predictor, data, split: str = "test", seed: int = 42, overlap: int | None = None,
             plots_dir=None, progress: bool = True, keep_panels: int = 10, tta: bool = False,
             masks=None, pairs=None, objects: list[str] | None = None, labels=None, labels_class: str | None = None,
             min_object_pixels: int = 0) -> dict:
    """Score whole images; returns the JSON-ready result (and writes plots if asked). ``tta``
    averages the model over four flips of every tile (reported as such in the result).

    ``objects`` (class names; default: the classes the model's class set marks ``objects``) adds
    object-by-object precision, recall and F1 at IoU >= 0.5 and the area error of those classes.
    ``labels`` (a GeoJSON file, or a folder of them) scores every image under ``data`` against
    polygons burnt onto its grid instead of masks: one class (``labels_class``, default the
    model's foreground) against the rest, its objects included."""
    from satseg.edge import check_pixel_type, predict_tiled, with_flip_tta
    from satseg.metrics import ConfusionMatrix, ObjectCounts

    spec = predictor.spec
    if labels is not None:
        from satseg.geo.labels import PolygonScoring

        scoring = PolygonScoring(data, labels, spec.seg_classes, labels_class, spec.bands)
        split = "all"
    else:
        scoring = MaskScoring(select_images(data, split, seed, recorded=recorded_data(predictor.path), masks=masks,
                                            pairs=pairs), spec)
    samples, classes = scoring.samples, scoring.classes
    if not samples:
        raise SatsegError(f"{data}: no images in the {split} split to score (--split all scores every image)")
    names = class_names(classes)
    counters = {i: ObjectCounts(i, min_pixels=min_object_pixels)
                for i in object_classes(classes, objects)}
    cm = ConfusionMatrix(len(names))
    per_image = []
    pixels = 0
    pr_labels, pr_probs, panels = [], [], []
    rng = np.random.default_rng(seed)
    from satseg.progress import progress as bar

    if predictor.predict_ids is not None and tta:
        fixed = predictor.path.with_name(predictor.path.stem + "_fixed.tflite")
        hint = f"the fixed-size file {fixed}" if fixed.exists() else (
            "a fixed-size file (satseg export writes model_int8_fixed.tflite; the shipped ones are "
            "exported_models/NAME/model_int8_fixed.tflite)")
        raise SatsegError(f"{predictor.path}: returns class ids, not probabilities; for --tta use {hint}")
    fn = with_flip_tta(predictor.predict_patches) if tta else predictor.predict_patches
    with bar(samples, progress, unit="img", desc="evaluating") as it:
        for s in it:
            li = scoring.load(s)
            check_pixel_type(s.image, li.dtype, spec, predictor.takes_raw_uint8)
            if predictor.predict_ids is not None:
                probs, pred = None, predictor.predict_ids(li.image)
            else:
                probs = predict_tiled(li.image, fn, spec, overlap, batch_size=1 if predictor.kind == "tflite" else 8)
                pred = probs.argmax(-1)
            probs, pred = scoring.scored(probs, pred)
            for c in counters.values():
                c.update(li.mask, pred)
            per_image.append(ConfusionMatrix(len(names)).update(li.mask, pred).matrix)
            cm.matrix += per_image[-1]
            pixels += li.mask.size
            if plots_dir is not None:
                sel = rng.choice(li.mask.size, min(20000, li.mask.size), replace=False)
                if probs is not None:
                    pr_labels.append(li.mask.reshape(-1)[sel])
                    pr_probs.append(probs.reshape(-1, probs.shape[-1])[sel])
                if len(panels) < keep_panels:
                    panels.append((li.image, li.mask, pred.astype(np.uint8), f"{s.group}/{s.image.name}"))
    if cm.matrix.sum() == 0:
        raise SatsegError(f"{data}: no mask pixel of {len(samples)} images matches a class of the model "
                          f"({', '.join(names)}); wrong --data, or masks in another encoding?")
    if labels is not None and cm.matrix[1].sum() == 0:
        raise SatsegError(f"{labels}: no polygon falls on any of the {len(samples)} images under {data} (polygons "
                          "in another place, or not longitude/latitude?)")
    result = {"model": str(predictor.path), "kind": predictor.kind, "data": str(data), "split": split,
              **({"labels": str(labels), "placed_by": scoring.placed_by} if labels is not None else {}),
              "seed": seed, "images": len(samples), "pixels": int(pixels),
              "ignored_pixels": int(pixels - cm.matrix.sum()), "tta": bool(tta),
              "path": "whole image (windows)" if predictor.predict_ids is not None else f"tiles (overlap {overlap})",
              "overlap": overlap,
              **cm.report(names, classes.foreground),
              # a bootstrap over fewer images says nothing: no interval then
              "interval": bootstrap_interval(per_image, classes.foreground, seed=seed)
              if len(per_image) >= MIN_INTERVAL_IMAGES else None}
    if counters:
        result["objects"] = {names[i]: c.report() for i, c in counters.items()}
    if plots_dir is not None:
        title = f"{spec.architecture or predictor.path.stem} ({predictor.kind}), {split} split"
        with made_folder(Path(plots_dir)):  # under --force, old plots are overwritten, never removed
            write_plots(Path(plots_dir), result, classes, cm, panels, pr_labels, pr_probs, title)
    return result


class MaskScoring:
    """Images scored against their masks, in the model's classes."""

    def __init__(self, samples, spec: ModelSpec):
        self.samples, self.spec, self.classes = samples, spec, spec.seg_classes

    def load(self, sample):
        from satseg.data import load_sample

        return load_sample(sample, self.classes, self.spec.bands)

    def scored(self, probs, pred):
        return probs, pred


def object_classes(classes, asked: list[str] | None) -> list[int]:
    """Ids of the classes scored object by object: those asked for by name, else those the class
    set marks ``objects`` (the class polygon labels outline is marked so)."""
    if asked:
        lower = {n.lower(): i for i, n in enumerate(classes.names)}
        unknown = [a for a in asked if a.lower() not in lower]
        if unknown:
            raise SatsegError(f"--objects: no class {', '.join(map(repr, unknown))} (classes: "
                              f"{', '.join(classes.names)})")
        return sorted({lower[a.lower()] for a in asked})
    return sorted(c.id for c in classes if c.objects)


def write_plots(plots_dir: Path, result: dict, classes, cm, panels, pr_labels, pr_probs, title: str):
    from satseg.plots import plot_confusion, plot_pr_curves, plot_predictions

    if pr_probs:  # whole-image files give ids only
        result["average_precision"] = plot_pr_curves(np.concatenate(pr_labels), np.concatenate(pr_probs),
                                                     plots_dir / "pr_curve.png", classes, title=title)
    imgs, masks, preds, names = zip(*panels)
    plot_predictions(imgs, masks, preds, plots_dir / "predictions.png", classes, titles=names, title=title)
    plot_confusion(cm.matrix, plots_dir / "confusion.png", classes, title=title)


@contextmanager
def made_folder(folder: Path, files=PLOT_FILES):
    """Run the body; if it fails, remove what it made: those of ``files`` in ``folder`` that were
    not there before, then the folders created on the way to ``folder`` once empty (a full disk
    leaves no half set of plots, no empty plots/). What was there before stays."""
    missing, p = [], folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    new = [folder / f for f in files if not (folder / f).exists() and not (folder / f).is_symlink()]
    try:
        yield
    except BaseException:
        for f in new:
            if f.is_file() and not f.is_symlink():
                f.unlink()
        for d in missing:  # deepest first
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _or_na(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def format_table(result: dict) -> str:
    lines = [f"{'class':<22}{'IoU':>8}{'precision':>11}{'recall':>9}{'F1':>8}{'share':>9}"]
    f = _or_na
    for name, m in result["per_class"].items():
        lines.append(f"{name:<22}{f(m['iou']):>8}{f(m['precision']):>11}{f(m['recall']):>9}{f(m['f1']):>8}"
                     f"{100 * m['share']:>8.2f}%")
    ci = result.get("interval") or {}

    def sure(key):
        r = ci.get(key)
        return f" ({100 * ci['level']:.0f} % interval over images {r[0]:.4f}-{r[1]:.4f})" if r else ""

    fg = result.get("foreground")
    if fg:
        lines.append(f"foreground IoU ({fg['class']}) {fg['iou']:.4f}" + sure("foreground_iou"))
    for name, o in (result.get("objects") or {}).items():
        err = "n/a" if o["area_error"] is None else f"{100 * o['area_error']:+.1f} %"
        lines.append(f"{name} objects at IoU >= {o['iou_threshold']}"
                     + (f" (of at least {o['min_pixels']} px)" if o.get("min_pixels") else "")
                     + f": precision {_or_na(o['precision'])} recall {_or_na(o['recall'])} F1 {_or_na(o['f1'])} "
                     f"({o['matched']} of {o['true_objects']} true, "
                     f"{o['predicted_objects']} predicted); area error {err}")
    m5 = result.get("miou_without_unlabeled")
    lines.append(f"mean IoU {result['miou']:.4f}" + (f" (without Unlabeled {m5:.4f})" if m5 is not None else "")
                 + f"   pixel accuracy {result['pixel_accuracy']:.4f}   "
                 f"({result['images']} images, {result['pixels']:,} pixels, split: {result['split']}"
                 + (", flip TTA" if result.get("tta") else "") + ")")
    if ci.get("miou"):
        lines.append(f"mean IoU{sure('miou')}; imagery unlike these images scores lower")
    return "\n".join(lines)
