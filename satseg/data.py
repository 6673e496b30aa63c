"""Datasets laid out like the Dubai release: ``Tile */images/*.jpg`` with ``Tile */masks/*.png``.

Reads and checks the files up front, cuts patches, splits train/val/test from a seed and serves
deterministic, resumable ``tf.data`` pipelines. TensorFlow is imported only by
:func:`make_tf_dataset`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satseg.classes import DEFAULT_PATCH_SIZE, DUBAI_CLASSES, IGNORE_LABEL
from satseg.errors import DataError
from satseg.imaging import (
    IMAGE_SUFFIXES,
    crop_grid,
    cut_patches,
    normalize,
    read_image,
    read_mask,
    resize,
)
from satseg.progress import progress as bar

MASK_SUFFIXES = (".png", ".tif", ".tiff")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One image and its mask; ``group`` is the tile folder, used to stratify the split."""

    image: Path
    mask: Path | None
    group: str


def find_samples(root, require_masks: bool = True) -> list[Sample]:
    """Pair every ``*/images/<name>.<ext>`` with ``*/masks/<name>.<png|tif>`` under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset directory not found")
    samples = []
    for img_dir in sorted(p for p in root.rglob("images") if p.is_dir()):
        mask_dir = img_dir.parent / "masks"
        for img in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            cands = [mask_dir / (img.stem + s) for s in MASK_SUFFIXES]
            mask = next((c for c in cands if c.exists()), None)
            if mask is None and require_masks:
                raise DataError(f"{img}: image has no mask (looked for {mask_dir / img.stem}.png/.tif)")
            samples.append(Sample(img, mask, str(img_dir.parent.relative_to(root))))
    if not samples:
        raise DataError(f"{root}: empty dataset, no '*/images/*' files found "
                        "(expected the layout 'Tile 1/images/x.jpg' + 'Tile 1/masks/x.png')")
    return samples


@dataclass
class LoadedImage:
    sample: Sample
    image: np.ndarray  # (H, W, C) raw pixels
    mask: np.ndarray  # (H, W) class ids, IGNORE_LABEL where unlabelled
    ignored: int


def load_sample(sample: Sample, classes=DUBAI_CLASSES, bands: int | None = None) -> LoadedImage:
    image = read_image(sample.image, bands=bands)
    mask, ignored = read_mask(sample.mask, classes)
    if mask.shape != image.shape[:2]:
        raise DataError(f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                        f"{sample.image.name} is {image.shape[1]}x{image.shape[0]}")
    return LoadedImage(sample, image, mask, ignored)


@dataclass
class PatchSet:
    """Patches with the index of the source image of each (for leak-free splits)."""

    images: np.ndarray  # (N, P, P, C) float32, normalised
    masks: np.ndarray  # (N, P, P) uint8
    source: np.ndarray  # (N,) index into ``samples``
    samples: list[Sample] = field(default_factory=list)

    def __len__(self):
        return len(self.images)

    def subset(self, idx) -> PatchSet:
        idx = np.asarray(idx, dtype=np.int64)
        return PatchSet(self.images[idx], self.masks[idx], self.source[idx], self.samples)


def load_patches(root, patch_size: int = DEFAULT_PATCH_SIZE, mode: str = "crop",
                 normalization: dict | None = None, classes=DUBAI_CLASSES, bands: int | None = None,
                 progress: bool = False) -> PatchSet:
    """Read a whole dataset into normalised patches (decoded once, kept in memory)."""
    normalization = normalization or {"kind": "minmax"}
    samples = find_samples(root)
    xs, ms, src = [], [], []
    with bar(samples, progress, desc="reading images", unit="img") as it:
        for i, s in enumerate(it):
            li = load_sample(s, classes, bands)
            if bands is None:
                bands = li.image.shape[-1]
            px, pm = cut_patches(li.image, li.mask, patch_size, mode)
            xs.extend(normalize(p, normalization) for p in px)
            ms.append(pm)
            src.extend([i] * len(px))
    if not xs:
        raise DataError(f"{root}: no {patch_size}x{patch_size} patch fits in any image "
                        "(use --patch-mode pad or a smaller --patch-size)")
    return PatchSet(np.stack(xs).astype(np.float32), np.concatenate(ms), np.asarray(src), samples)


def split_indices(patches: PatchSet, by: str = "image", val: float = 0.15, test: float = 0.15,
                  seed: int = 42) -> dict[str, np.ndarray]:
    """Deterministic train/val/test patch indices.

    ``image`` (default): whole source images go to one split, stratified by tile so every tile
    is in every split; no image has patches in two splits. ``patch``: the reference code's
    random patch split (patches of one image leak across splits).
    """
    rng = random.Random(seed)
    if by == "patch":
        order = list(range(len(patches)))
        rng.shuffle(order)
        n_test, n_val = round(test * len(order)), round(val * len(order))
        parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in parts.items()}
    if by != "image":
        raise ValueError(f"unknown split {by!r}: use 'image' or 'patch'")
    assign = image_split(patches.samples, val, test, seed)
    return {k: np.flatnonzero(np.isin(patches.source, ids)) for k, ids in assign.items()}


def image_split(samples: list[Sample], val: float = 0.15, test: float = 0.15, seed: int = 42) -> dict[str, list[int]]:
    """Sample indices per split, stratified by ``group`` (tile); at least one image per split
    for groups of three or more images."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    out = {k: [] for k in SPLITS}
    for g in sorted(groups):
        ids = groups[g][:]
        rng.shuffle(ids)
        n = len(ids)
        n_test = max(round(test * n), 1 if n >= 3 and test > 0 else 0)
        n_val = max(round(val * n), 1 if n >= 3 and val > 0 else 0)
        out["test"] += ids[:n_test]
        out["val"] += ids[n_test:n_test + n_val]
        out["train"] += ids[n_test + n_val:]
    # Small datasets (groups of one or two images): still give val and test an image each.
    for k, frac in (("val", val), ("test", test)):
        if not out[k] and frac > 0 and len(out["train"]) > 1:
            out[k].append(out["train"].pop(rng.randrange(len(out["train"]))))
    return {k: sorted(v) for k, v in out.items()}


def class_counts(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels of each class id in a mask (ignored pixels not counted)."""
    return np.bincount(mask[mask != IGNORE_LABEL].ravel(), minlength=num_classes)[:num_classes]


def inspect(root, patch_size: int = DEFAULT_PATCH_SIZE, classes=DUBAI_CLASSES, progress: bool = False) -> dict:
    """Images, sizes, crop-mode patch count, class pixel shares and off-palette share."""
    samples = find_samples(root)
    counts = np.zeros(len(classes), np.int64)
    total = ignored = patches = 0
    images = []
    with bar(samples, progress, desc="inspecting", unit="img", leave=False) as it:
        for s in it:
            li = load_sample(s, classes)
            h, w = li.mask.shape
            n = len(crop_grid(h, w, patch_size))
            patches += n
            counts += class_counts(li.mask, len(classes))
            total += h * w
            ignored += li.ignored
            images.append({"image": str(s.image), "width": w, "height": h, "bands": li.image.shape[-1],
                           "dtype": str(li.image.dtype), "patches": n, "ignored_pixels": li.ignored})
    labelled = max(int(counts.sum()), 1)
    return {
        "root": str(root),
        "images": len(samples),
        "patches": patches,
        "patch_size": patch_size,
        "pixels": total,
        "class_share": {c.name: counts[c.id] / labelled for c in classes},
        "ignored_share": ignored / max(total, 1),
        "ignored_pixels": ignored,
        "files": images,
    }


# --- whole images and random crops ---------------------------------------------------------

def load_images(samples: list[Sample], classes=DUBAI_CLASSES, bands: int | None = None,
                progress: bool = False) -> list[LoadedImage]:
    """Decode every sample once (raw pixels and class ids), checking band counts agree."""
    out = []
    with bar(samples, progress, desc="reading images", unit="img", leave=False) as it:
        for s in it:
            li = load_sample(s, classes, bands)
            bands = li.image.shape[-1]
            out.append(li)
    return out


def grid_patches(images: list[LoadedImage], size: int, mode: str = "crop", normalization=None):
    """Fixed-grid patches of whole images (validation; the reference's training patches):
    (images (N, P, P, C) float32 normalised, masks (N, P, P) uint8, source index (N,))."""
    xs, ms, src = [], [], []
    for i, li in enumerate(images):
        px, pm = cut_patches(li.image, li.mask, size, mode)
        xs += [normalize(p, normalization or {"kind": "in_model"}) for p in px]
        ms.append(pm)
        src += [i] * len(px)
    if not xs:
        raise DataError(f"no {size}x{size} patch fits in any of {len(images)} images "
                        "(use --patch-mode pad or a smaller --patch-size)")
    return np.stack(xs).astype(np.float32), np.concatenate(ms), np.asarray(src)


def class_points(mask: np.ndarray, num_classes: int, per_class: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``per_class`` random (y, x) positions of each class in a mask (for rare-class crops)."""
    out = []
    for c in range(num_classes):
        ys, xs = np.nonzero(mask == c)
        if len(ys) > per_class:
            keep = rng.choice(len(ys), per_class, replace=False)
            ys, xs = ys[keep], xs[keep]
        out.append(np.stack([ys, xs], 1))
    return out


class CropSampler:
    """Random crops from decoded whole images, new every epoch, seeded by (seed, epoch).

    Each crop: a window of ``size * s`` pixels (``s`` log-uniform in ``scale``) resized to
    ``size``; with probability ``rare_fraction`` it is centred on a pixel of a class drawn
    uniformly (so rare classes are seen as often as common ones), otherwise anywhere (images
    weighted by area); then a flip / 90-degree rotation and a mild brightness/contrast jitter
    (``photometric``, as a fraction of the channel std). Cached teacher logits of whole images
    are cut, resized and turned exactly like the image. Yields raw float32 pixels unless a
    ``normalization`` outside the model (min-max) is given.
    """

    def __init__(self, images: list[LoadedImage], size: int, crops_per_epoch: int, logits=None,
                 scale=(0.75, 1.33), rare_fraction: float = 0.5, photometric: float = 0.1,
                 normalization=None, num_classes: int = len(DUBAI_CLASSES), seed: int = 42):
        self.images, self.size, self.n, self.logits = images, size, crops_per_epoch, logits
        self.scale, self.rare_fraction, self.photometric = tuple(scale), rare_fraction, photometric
        self.normalization = normalization or {"kind": "in_model"}
        self.seed, self.epoch = seed, 0
        area = np.array([li.mask.size for li in images], np.float64)
        self.area_p = area / area.sum()
        rng = np.random.default_rng([seed, 2**31])
        self.points = [class_points(li.mask, num_classes, 4096, rng) for li in images]
        self.classes = [c for c in range(num_classes) if any(len(p[c]) for p in self.points)]
        self.std = np.concatenate([li.image.reshape(-1, li.image.shape[-1])[::97] for li in images]).std(0)

    def __len__(self):
        return self.n

    def _window(self, rng):
        s = float(np.exp(rng.uniform(*np.log(self.scale))))
        if rng.random() < self.rare_fraction:
            c = self.classes[rng.integers(len(self.classes))]
            have = np.array([len(p[c]) for p in self.points], np.float64)
            i = int(rng.choice(len(self.images), p=have / have.sum()))
            cy, cx = self.points[i][c][rng.integers(len(self.points[i][c]))]
        else:
            i = int(rng.choice(len(self.images), p=self.area_p))
            h, w = self.images[i].mask.shape
            cy, cx = rng.integers(h), rng.integers(w)
        h, w = self.images[i].mask.shape
        win = min(max(int(round(self.size * s)), 8), h, w)
        y0 = int(np.clip(cy - win // 2 + rng.integers(-win // 4, win // 4 + 1), 0, h - win))
        x0 = int(np.clip(cx - win // 2 + rng.integers(-win // 4, win // 4 + 1), 0, w - win))
        return i, y0, x0, win

    def crop(self, rng):
        i, y, x, win = self._window(rng)
        li, p = self.images[i], self.size
        img = resize(li.image[y:y + win, x:x + win], p, p)
        mask = resize(li.mask[y:y + win, x:x + win], p, p, nearest=True)
        arrs = [img, mask.astype(np.int32)]
        if self.logits is not None:
            arrs.append(resize(self.logits[i][y:y + win, x:x + win], p, p).astype(self.logits[i].dtype))
        arrs = augment(arrs, rng)
        if self.photometric:
            c = 1.0 + rng.uniform(-self.photometric, self.photometric)
            b = rng.uniform(-self.photometric, self.photometric) * self.std
            mean = arrs[0].mean((0, 1))
            arrs[0] = ((arrs[0] - mean) * c + mean + b).astype(np.float32)
        arrs[0] = normalize(arrs[0], self.normalization)
        return arrs

    def __call__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.n):
            arrs = self.crop(rng)
            if self.logits is not None:
                yield arrs[0], {"labels": arrs[1], "teacher_logits": arrs[2]}
            else:
                yield arrs[0], arrs[1]

    def signature(self):
        p, bands = self.size, self.images[0].image.shape[-1]
        logits = None if self.logits is None else ((p, p, self.logits[0].shape[-1]), self.logits[0].dtype)
        return _signature((p, p, bands), logits)


# --- augmentation and tf.data ----------------------------------------------------------------

def augment(arrays: Iterable[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Apply one random flip / 90-degree rotation identically to every (H, W, ...) array:
    image, mask and cached teacher logits stay aligned."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(0, 1))
        if flip:
            a = a[:, ::-1]
        out.append(np.ascontiguousarray(a))
    return out


class EpochSampler:
    """Yields (image, mask[, teacher logits]) in a seeded order per epoch.

    The order and augmentation of epoch ``e`` depend only on (seed, e), so a resumed run sees
    exactly what an uninterrupted one would. :class:`satseg.callbacks.EpochSetter` sets ``epoch``.
    """

    def __init__(self, images, masks, logits=None, shuffle=True, augment=True, seed=42):
        self.images, self.masks, self.logits = images, masks, logits
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.epoch = 0

    def __len__(self):
        return len(self.images)

    def signature(self):
        logits = None if self.logits is None else (self.logits.shape[1:], self.logits.dtype)
        return _signature(self.images.shape[1:], logits)

    def __call__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.images)) if self.shuffle else np.arange(len(self.images))
        for i in order:
            arrs = [self.images[i], self.masks[i].astype(np.int32)]
            if self.logits is not None:
                arrs.append(self.logits[i])
            if self.augment:
                arrs = augment(arrs, rng)
            if self.logits is not None:  # cached logits stay float16 until the train step
                yield arrs[0], {"labels": arrs[1], "teacher_logits": arrs[2]}
            else:
                yield arrs[0], arrs[1]


def _signature(image_shape, logits=None):
    """tf.data output signature of a sampler: (image, labels) or (image, {labels, teacher_logits});
    ``logits`` is (shape, dtype) of the cached teacher logits."""
    import tensorflow as tf

    y = tf.TensorSpec(tuple(image_shape[:2]), tf.int32)
    if logits is not None:
        y = {"labels": y, "teacher_logits": tf.TensorSpec(tuple(logits[0]), tf.as_dtype(logits[1]))}
    return tf.TensorSpec(tuple(image_shape), tf.float32), y


def make_tf_dataset(sampler: EpochSampler, batch_size: int, drop_remainder: bool = False):
    """A ``tf.data`` pipeline over an :class:`EpochSampler`: batched and prefetched."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_generator(sampler, output_signature=sampler.signature())
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(sampler)))
    if drop_remainder and len(sampler) < batch_size:
        raise ValueError(f"{len(sampler)} patches do not fill one batch of {batch_size}")
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)
