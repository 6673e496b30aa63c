"""Scenes larger than memory: pixels and labels read window by window from disk.

A :class:`WindowedImage` offers what training asks of a decoded :class:`satseg.data.LoadedImage`
(a window of pixels and class ids, a pixel sample for statistics, class positions for rare-class
crops, class counts) while holding only the window asked for: pixels come through
:class:`satseg.imaging.RowReader` windows (rasterio with a small block cache; ``hold=False``, so
not even a JPEG is held decoded), masks are decoded by the class set
window by window, and statistics are gathered strip by strip. Scenes over :data:`WINDOWED_PIXELS`
are opened this way.
"""

from __future__ import annotations

import numpy as np

from satseg.classes import IGNORE_LABEL, TEACHER_ONLY, as_class_set
from satseg.errors import DataError
from satseg.imaging import RowReader, nodata_mask

WINDOWED_PIXELS = RowReader.WINDOWED_PIXELS
"""Scenes with more pixels than this are read in windows, not decoded whole."""
STRIP_PIXELS = 4_000_000
"""Pixels per strip when a whole scene is scanned (statistics, class positions)."""
SAMPLE_PIXELS = 2_000_000
"""Pixels a scene contributes to band statistics."""


def scene_pixels(path) -> int:
    """Height x width from the file's header (no pixel is decoded)."""
    r = RowReader(path)
    try:
        return r.shape[0] * r.shape[1]
    finally:
        r.close()


class WindowedImage:
    """One scene, read in windows (see the module's docstring); without a mask its pixels are
    :data:`TEACHER_ONLY`."""

    def __init__(self, sample, classes, bands: int | None = None):
        self.sample, self.classes = sample, as_class_set(classes)
        self._img = RowReader(sample.image, hold=False)  # many scenes stay open: none held decoded
        self._mask = None if sample.mask is None else RowReader(sample.mask, hold=False)
        self.shape = self._img.shape
        if bands is not None and self.shape[-1] != bands:
            raise DataError(f"{sample.image}: has {self.shape[-1]} bands, the model takes {bands}")
        if self._mask is not None and self._mask.shape[:2] != self.shape[:2]:
            h, w = self._mask.shape[:2]
            raise DataError(f"{sample.mask}: mask is {w}x{h} but its image {sample.image.name} is "
                            f"{self.shape[1]}x{self.shape[0]}")
        self.dtype = self._img.dtype
        self._counts = None

    @property
    def hw(self) -> tuple[int, int]:
        return self.shape[0], self.shape[1]

    @property
    def bands(self) -> int:
        return self.shape[-1]

    def window(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(pixels (h, w, C), class ids (h, w) with nodata and unmatched values ignored)."""
        image, empty = self._img.window_and_empty(y, x, h, w)
        if self._mask is None:
            ids = np.full((h, w), TEACHER_ONLY, np.uint8)
        else:
            ids, _ = self.classes.decode(self._mask.window(y, x, h, w))
        if empty is not None:
            ids[empty] = IGNORE_LABEL  # nodata, or transparent: no imagery
        return image, ids

    def strips(self):
        """``(y0, pixels, ids)`` strip by strip over the whole scene."""
        h, w = self.hw
        rows = max(STRIP_PIXELS // w, 1)
        for y0 in range(0, h, rows):
            yield (y0, *self.window(y0, 0, min(rows, h - y0), w))

    def class_counts(self, num_classes: int) -> tuple[np.ndarray, int]:
        """(pixels per class, ignored pixels), counted once strip by strip."""
        if self._counts is None or len(self._counts[0]) != num_classes:
            counts, ignored = np.zeros(num_classes, np.int64), 0
            for _, _, ids in self.strips():
                counts += np.bincount(ids[ids < num_classes].ravel(), minlength=num_classes)[:num_classes]
                ignored += int((ids == IGNORE_LABEL).sum())
            self._counts = (counts, ignored)
        return self._counts

    @property
    def ignored(self) -> int:
        return self.class_counts(len(self.classes))[1]

    def any_labelled(self) -> bool:
        return bool(self.class_counts(len(self.classes))[0].sum())

    def pixel_sample(self, n: int = SAMPLE_PIXELS, bands_of_rows: int = 16) -> np.ndarray:
        """About ``n`` pixels (N, C) from ``bands_of_rows`` runs of whole rows spread evenly over the
        scene (for statistics): contiguous rows, so a tiled file decodes each block once."""
        h, w = self.hw
        rows = min(max(-(-n // w) // bands_of_rows, 1), h)
        starts = np.linspace(0, h - rows, min(bands_of_rows, max(h // rows, 1))).round().astype(int)
        return np.concatenate([self._img.window(int(y), 0, rows, w).reshape(-1, self.bands) for y in starts])

    def valid_pixels(self, n: int = SAMPLE_PIXELS) -> np.ndarray:
        px = self.pixel_sample(n)
        nd = nodata_mask(px[None], self._img.nodata)
        return px if nd is None else px[~nd[0]]

    def class_points(self, num_classes: int, per_class: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Up to ``per_class`` random (y, x) positions of each class, drawn strip by strip with each
        strip's share of the class (so the draw is uniform over the scene)."""
        found = [[] for _ in range(num_classes)]
        for y0, _, ids in self.strips():
            for c in range(num_classes):
                ys, xs = np.nonzero(ids == c)
                if len(ys):
                    keep = rng.choice(len(ys), min(per_class, len(ys)), replace=False)
                    found[c].append((len(ys), np.stack([ys[keep] + y0, xs[keep]], 1)))
        out = []
        for parts in found:
            if not parts:
                out.append(np.zeros((0, 2), np.int64))
                continue
            pts = np.concatenate([p for _, p in parts])
            weight = np.concatenate([np.full(len(p), n / len(p)) for n, p in parts])
            pick = rng.choice(len(pts), min(per_class, len(pts)), replace=False, p=weight / weight.sum())
            out.append(pts[pick])
        return out

    def close(self):
        self._img.close()
        if self._mask is not None:
            self._mask.close()
