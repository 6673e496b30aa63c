"""The data layer: datasets of images and masks in any common layout, with any class set.

:mod:`satseg.data.layouts` pairs images with masks, :mod:`satseg.data.encoding` learns how masks
encode classes, :mod:`satseg.data.splits` splits by group; this module reads and checks the files
up front, cuts patches and random crops and serves deterministic, resumable ``tf.data`` pipelines.
TensorFlow is imported only by :func:`make_tf_dataset`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satseg.classes import DEFAULT_PATCH_SIZE, DUBAI, IGNORE_LABEL, TEACHER_ONLY, as_class_set
from satseg.data.layouts import (  # noqa: F401 (API)
    Pairing,
    Sample,
    find_samples,
    labelled_samples,
    pair_files,
    unlabelled_samples,
)
from satseg.data.splits import image_split, split_samples  # noqa: F401
from satseg.errors import DataError
from satseg.imaging import (
    RowReader,
    crop_grid,
    cut_patches,
    normalize,
    pixel_type,
    read_mask,
    resize,
)
from satseg.progress import progress as bar

SPLITS = ("train", "val", "test")


@dataclass
class LoadedImage:
    sample: Sample
    image: np.ndarray  # (H, W, C) raw pixels
    mask: np.ndarray  # (H, W) class ids; IGNORE_LABEL where ignored, TEACHER_ONLY where the image has no mask
    ignored: int
    nodata: np.ndarray | None = None  # (H, W) bool: pixels that are the raster's nodata

    # what training asks of a scene, here or read in windows (satseg.data.windows.WindowedImage)
    @property
    def hw(self) -> tuple[int, int]:
        return self.mask.shape

    @property
    def bands(self) -> int:
        return self.image.shape[-1]

    @property
    def dtype(self) -> str:
        return pixel_type(self.image.dtype)

    def window(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        return self.image[y:y + h, x:x + w], self.mask[y:y + h, x:x + w]

    def pixel_sample(self) -> np.ndarray:
        return self.image.reshape(-1, self.image.shape[-1])[::97]

    def valid_pixels(self) -> np.ndarray:
        """(N, C) pixels that hold data (all of them when the raster has no nodata)."""
        flat = self.image.reshape(-1, self.image.shape[-1])
        return flat if self.nodata is None else flat[~self.nodata.ravel()]

    def class_points(self, num_classes: int, per_class: int, rng: np.random.Generator) -> list[np.ndarray]:
        return class_points(self.mask, num_classes, per_class, rng)

    def class_counts(self, num_classes: int) -> tuple[np.ndarray, int]:
        return class_counts(self.mask, num_classes), self.ignored

    def any_labelled(self) -> bool:
        return bool((self.mask < TEACHER_ONLY).any())


def open_sample(sample: Sample, classes=DUBAI, bands: int | None = None):
    """A sample decoded whole (:class:`LoadedImage`), or read in windows when it is a scene over
    :data:`satseg.data.windows.WINDOWED_PIXELS` (:class:`satseg.data.windows.WindowedImage`)."""
    from satseg.data.windows import WINDOWED_PIXELS, WindowedImage, scene_pixels

    if scene_pixels(sample.image) > WINDOWED_PIXELS:
        return WindowedImage(sample, classes, bands)
    return load_sample(sample, classes, bands)


def read_image_nodata(path, bands: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(pixels (H, W, C), (H, W) bool of pixels without data or None): the raster's nodata value,
    and the zeros of an alpha channel (transparent pixels hold no imagery)."""
    reader = RowReader(path, bands)
    try:
        return reader.window_and_empty(0, 0, *reader.shape[:2])
    finally:
        reader.close()


def load_sample(sample: Sample, classes=DUBAI, bands: int | None = None) -> LoadedImage:
    """Pixels and class ids of one sample; pixels that are the image's nodata are ignored, those
    of an image without a mask are :data:`TEACHER_ONLY`."""
    image, nd = read_image_nodata(sample.image, bands)
    if sample.mask is None:
        mask, ignored = np.full(image.shape[:2], TEACHER_ONLY, np.uint8), 0
    else:
        mask, ignored = read_mask(sample.mask, as_class_set(classes))
    if mask.shape != image.shape[:2]:
        raise DataError(f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                        f"{sample.image.name} is {image.shape[1]}x{image.shape[0]}")
    if nd is not None and nd.any():
        ignored += int((nd & (mask != IGNORE_LABEL)).sum())
        mask[nd] = IGNORE_LABEL
    else:
        nd = None
    return LoadedImage(sample, image, mask, ignored, nd)


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
                 normalization: dict | None = None, classes=DUBAI, bands: int | None = None,
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


def class_counts(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels of each class id in a mask (ignored pixels not counted)."""
    return np.bincount(mask[mask < num_classes].ravel(), minlength=num_classes)[:num_classes]


def resolve_classes(samples, classes=None, names=None, progress: bool = False):
    """(class set, notes): the one given (a ClassSet, a class file or a shipped name), else the one
    the masks imply (:func:`satseg.data.encoding.infer_class_set`)."""
    from satseg.classes import ClassSet

    if classes is not None:
        cs = classes if isinstance(classes, ClassSet) else ClassSet.load(classes)
        return cs, [f"classes from {getattr(classes, 'name', '') or classes}"]
    from satseg.data.encoding import infer_class_set, survey_masks

    cs, notes = infer_class_set(survey_masks([s.mask for s in samples], progress), names)
    return cs, ["inferred: " + n for n in notes]


@dataclass
class DataSource:
    """A labelled dataset, settled before any image is read: its samples (paired by the layout,
    ``masks`` or ``pairs``), the class set (given or inferred from the masks) and what was left out."""

    root: Path
    samples: list[Sample]
    classes: object
    class_notes: list[str]
    unlabelled_groups: dict[str, int]
    masks: str | None = None
    pairs: str | None = None


def open_dataset(root, masks=None, pairs=None, classes=None, progress: bool = False) -> DataSource:
    pairing = pair_files(root, masks, pairs)
    samples = labelled_samples(pairing)
    cs, notes = resolve_classes(samples, classes, progress=progress)
    return DataSource(Path(root), samples, cs, notes, pairing.unlabelled_groups(), masks, pairs)


def inspect(root, patch_size: int = DEFAULT_PATCH_SIZE, classes=None, progress: bool = False,
            masks=None, pairs=None, names=None) -> dict:
    """What a dataset holds: how images and masks pair, how masks encode classes (inferred unless
    ``classes`` is given), images, sizes, bands, crop-mode patch count, class pixel shares and
    ignored pixels."""
    pairing = pair_files(root, masks, pairs)
    samples = labelled_samples(pairing)
    cs, notes = resolve_classes(samples, classes, names, progress)
    counts = np.zeros(len(cs), np.int64)
    total = ignored = patches = 0
    images = []
    with bar(samples, progress, desc="inspecting", unit="img", leave=False) as it:
        for s in it:
            li = open_sample(s, cs)
            h, w = li.hw
            n = len(crop_grid(h, w, patch_size))
            patches += n
            cc, ign = li.class_counts(len(cs))
            counts += cc
            total += h * w
            ignored += ign
            images.append({"image": str(s.image), "mask": str(s.mask), "group": s.group, "width": w, "height": h,
                           "bands": li.bands, "dtype": str(getattr(li, "dtype", None) or li.image.dtype),
                           "patches": n, "ignored_pixels": ign})
    labelled = max(int(counts.sum()), 1)
    groups: dict[str, int] = {}
    for s in samples:
        groups[s.group] = groups.get(s.group, 0) + 1
    return {
        "root": str(root),
        "layout": pairing.layout,
        "images": len(samples),
        "groups": groups,
        "unlabelled_images": len(pairing.unlabelled),
        "unlabelled_groups": pairing.unlabelled_groups(),
        "masks_without_image": [str(m) for m in pairing.orphan_masks],
        "skipped_files": [str(f) for f in pairing.skipped],
        "classes": cs.to_dict(),
        "class_notes": notes,
        "bands": sorted({f["bands"] for f in images}),
        "dtypes": sorted({f["dtype"] for f in images}),
        "patches": patches,
        "patch_size": patch_size,
        "pixels": total,
        "class_share": {c.name: counts[c.id] / labelled for c in cs},
        "ignored_share": ignored / max(total, 1),
        "ignored_pixels": ignored,
        "files": images,
    }


# --- whole images and random crops ---------------------------------------------------------

def load_images(samples: list[Sample], classes=DUBAI, bands: int | None = None,
                progress: bool = False) -> list:
    """Open every sample once, checking band counts agree: small ones decoded (raw pixels and
    class ids), scenes larger than memory read in windows (:func:`open_sample`)."""
    out = []
    with bar(samples, progress, desc="reading images", unit="img", leave=False) as it:
        for s in it:
            li = open_sample(s, classes, bands)
            bands = li.bands
            out.append(li)
    return out


MAX_WINDOWED_PATCHES = 256
"""Grid patches taken from a scene read in windows (evenly spread over its grid)."""


def grid_patches(images: list, size: int, mode: str = "crop", normalization=None):
    """Fixed-grid patches of whole images (validation; the reference's training patches):
    (images (N, P, P, C) float32 normalised, masks (N, P, P) uint8, source index (N,)). A scene
    read in windows gives at most :data:`MAX_WINDOWED_PATCHES` patches, evenly spread."""
    xs, ms, src = [], [], []
    for i, li in enumerate(images):
        if isinstance(li, LoadedImage):
            px, pm = cut_patches(li.image, li.mask, size, mode)
        else:
            grid = crop_grid(*li.hw, size)
            keep = np.linspace(0, len(grid) - 1, min(len(grid), MAX_WINDOWED_PATCHES)).round().astype(int) if grid else []
            cut = [li.window(*grid[k], size, size) for k in keep]
            px, pm = [c[0] for c in cut], [c[1] for c in cut]
            pm = np.stack(pm) if pm else np.zeros((0, size, size), np.uint8)
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

    For distillation, ``unlabelled`` images (their pixels :data:`TEACHER_ONLY`) give
    ``unlabelled_fraction`` of the crops, and ``mix`` mixes ``mix_fraction`` of the crops with a
    second one (:func:`mix_crops`); with neither, the crops are those of a plain run.
    """

    def __init__(self, images: list[LoadedImage], size: int, crops_per_epoch: int, logits=None,
                 scale=(0.75, 1.33), rare_fraction: float = 0.5, photometric: float = 0.1,
                 normalization=None, num_classes: int = len(DUBAI), seed: int = 42,
                 unlabelled: list | None = None, unlabelled_fraction: float = 0.5,
                 mix: str = "none", mix_fraction: float = 0.5):
        self.labelled, self.unlabelled = len(images), list(unlabelled or [])
        self.images, self.size, self.n, self.logits = list(images) + self.unlabelled, size, crops_per_epoch, logits
        self.scale, self.rare_fraction, self.photometric = tuple(scale), rare_fraction, photometric
        self.unlabelled_fraction = unlabelled_fraction if self.unlabelled else 0.0
        self.mix, self.mix_fraction = mix, mix_fraction if mix != "none" else 0.0
        self.normalization = normalization or {"kind": "in_model"}
        self.seed, self.epoch = seed, 0
        area = np.array([np.prod(li.hw) for li in self.images], np.float64)
        self.area_p = area[:self.labelled] / area[:self.labelled].sum()
        self.unlabelled_p = area[self.labelled:] / area[self.labelled:].sum() if self.unlabelled else None
        rng = np.random.default_rng([seed, 2**31])
        self.points = [li.class_points(num_classes, 4096, rng) for li in images]
        self.classes = [c for c in range(num_classes) if any(len(p[c]) for p in self.points)]
        self.std = np.concatenate([li.pixel_sample() for li in images]).std(0)

    def __len__(self):
        return self.n

    def _window(self, rng):
        s = float(np.exp(rng.uniform(*np.log(self.scale))))
        if self.unlabelled_fraction and rng.random() < self.unlabelled_fraction:
            i = self.labelled + int(rng.choice(len(self.unlabelled), p=self.unlabelled_p))
            h, w = self.images[i].hw
            cy, cx = rng.integers(h), rng.integers(w)
        elif rng.random() < self.rare_fraction:
            c = self.classes[rng.integers(len(self.classes))]
            have = np.array([len(p[c]) for p in self.points], np.float64)
            i = int(rng.choice(self.labelled, p=have / have.sum()))
            cy, cx = self.points[i][c][rng.integers(len(self.points[i][c]))]
        else:
            i = int(rng.choice(self.labelled, p=self.area_p))
            h, w = self.images[i].hw
            cy, cx = rng.integers(h), rng.integers(w)
        h, w = self.images[i].hw
        win = min(max(int(round(self.size * s)), 8), h, w)
        y0 = int(np.clip(cy - win // 2 + rng.integers(-win // 4, win // 4 + 1), 0, h - win))
        x0 = int(np.clip(cx - win // 2 + rng.integers(-win // 4, win // 4 + 1), 0, w - win))
        return i, y0, x0, win

    def crop(self, rng):
        arrs = self._crop(rng)
        if self.mix_fraction and rng.random() < self.mix_fraction:
            arrs = mix_crops(arrs, self._crop(rng), self.mix, rng)
        arrs[0] = normalize(arrs[0], self.normalization)
        return arrs

    def _crop(self, rng):
        i, y, x, win = self._window(rng)
        li, p = self.images[i], self.size
        img, mask = li.window(y, x, win, win)
        img, mask = resize(img, p, p), resize(mask, p, p, nearest=True)
        arrs = [img, mask.astype(np.int32)]
        if self.logits is not None:
            arrs.append(resize(self.logits[i][y:y + win, x:x + win], p, p).astype(self.logits[i].dtype))
        arrs = augment(arrs, rng)
        if self.photometric:
            c = 1.0 + rng.uniform(-self.photometric, self.photometric)
            b = rng.uniform(-self.photometric, self.photometric) * self.std
            mean = arrs[0].mean((0, 1))
            arrs[0] = ((arrs[0] - mean) * c + mean + b).astype(np.float32)
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
        p, bands = self.size, self.images[0].bands
        logits = None if self.logits is None else ((p, p, self.logits[0].shape[-1]), self.logits[0].dtype)
        return _signature((p, p, bands), logits)


# --- augmentation and tf.data ----------------------------------------------------------------

MIXES = ("none", "cutmix", "mixup")


def mix_crops(a: list[np.ndarray], b: list[np.ndarray], how: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Two crops ``[image, ids(, teacher logits)]`` made one view that no label describes whole.

    ``cutmix`` (Yun et al. 2019) pastes a random box of ``b`` (a quarter to three quarters of the
    area) into ``a``: image, ids and cached logits alike, so every pixel keeps its own label.
    ``mixup`` (Zhang et al. 2018) blends the images with a weight drawn from U(0.2, 0.8); no label
    holds for the blend, so its pixels become :data:`TEACHER_ONLY` (ignored where either is ignored)
    and only an online teacher, which sees the blend itself, can label them."""
    out = [x.copy() for x in a]
    if how == "cutmix":
        h, w = a[1].shape
        area = rng.uniform(0.25, 0.75)
        ratio = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        bh, bw = min(h, int(round(np.sqrt(area * h * w * ratio)))), min(w, int(round(np.sqrt(area * h * w / ratio))))
        y, x = int(rng.integers(h - bh + 1)), int(rng.integers(w - bw + 1))
        for o, src in zip(out, b):
            o[y:y + bh, x:x + bw] = src[y:y + bh, x:x + bw]
        return out
    if how == "mixup":
        lam = rng.uniform(0.2, 0.8)
        out[0] = (lam * a[0] + (1 - lam) * b[0]).astype(np.float32)
        ignored = (a[1] == IGNORE_LABEL) | (b[1] == IGNORE_LABEL)
        out[1] = np.where(ignored, IGNORE_LABEL, TEACHER_ONLY).astype(a[1].dtype)
        if len(out) > 2:
            raise DataError("mixup needs an online teacher (cached logits are not the blend's)")
        return out
    raise DataError(f"unknown mix '{how}'; valid: {', '.join(MIXES)}")


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
