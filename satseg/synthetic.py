"""Synthetic satellite scenes with the Dubai classes: the built-in data that needs no download.

A scene is a textured land background with water bodies, vegetation patches, a road network,
buildings along the roads and a few unlabeled spots, plus sensor noise. Masks use the real
palette, so everything that reads the Dubai dataset reads these too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from satseg.classes import DUBAI_CLASSES, colorize

BUILDING, LAND, ROAD, VEGETATION, WATER, UNLABELED = range(6)

# Mean surface colours (RGB) and texture strength per class.
_SURFACE = {
    BUILDING: ((190, 185, 180), 25),
    LAND: ((196, 160, 112), 18),
    ROAD: ((92, 92, 98), 8),
    VEGETATION: ((70, 110, 50), 22),
    WATER: ((40, 90, 140), 6),
    UNLABELED: ((128, 128, 128), 30),
}


def _smooth_noise(rng, h, w, scale):
    """Value noise: random grid upsampled bilinearly, in [0, 1]."""
    gh, gw = max(h // scale, 1) + 2, max(w // scale, 1) + 2
    g = rng.random((gh, gw))
    ys = np.linspace(0, gh - 2, h)
    xs = np.linspace(0, gw - 2, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = g[y0][:, x0]
    b = g[y0][:, x0 + 1]
    c = g[y0 + 1][:, x0]
    d = g[y0 + 1][:, x0 + 1]
    return a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx


def make_scene(height: int = 512, width: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (RGB uint8 image, class-id uint8 mask) for one synthetic scene."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    mask = np.full((h, w), LAND, np.uint8)
    mask[_smooth_noise(rng, h, w, 96) > 0.72] = WATER
    veg = (_smooth_noise(rng, h, w, 40) > 0.70) & (mask == LAND)
    mask[veg] = VEGETATION
    # Road grid: a few horizontal and vertical bands.
    roads = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 3)):
        y, t = rng.integers(0, h), rng.integers(6, 14)
        roads[y:y + t] = True
    for _ in range(rng.integers(1, 3)):
        x, t = rng.integers(0, w), rng.integers(6, 14)
        roads[:, x:x + t] = True
    mask[roads & (mask != WATER)] = ROAD
    # Buildings: rectangles on land, not on roads or water.
    for _ in range(int(h * w / 6000)):
        bh, bw = rng.integers(8, 36, size=2)
        y, x = rng.integers(0, h - bh), rng.integers(0, w - bw)
        if np.all(mask[y:y + bh, x:x + bw] == LAND):
            mask[y:y + bh, x:x + bw] = BUILDING
    for _ in range(rng.integers(0, 3)):
        s = rng.integers(6, 16)
        y, x = rng.integers(0, h - s), rng.integers(0, w - s)
        mask[y:y + s, x:x + s] = UNLABELED

    image = np.zeros((h, w, 3), np.float32)
    texture = _smooth_noise(rng, h, w, 6) - 0.5
    for cid, (rgb, tex) in _SURFACE.items():
        sel = mask == cid
        image[sel] = np.asarray(rgb, np.float32) + tex * texture[sel][:, None]
    shade = 0.85 + 0.3 * _smooth_noise(rng, h, w, 128)[..., None]
    image = image * shade + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_dataset(root, tiles: int = 2, images_per_tile: int = 4, size: tuple[int, int] = (512, 512),
                  seed: int = 0) -> Path:
    """Write ``root/Tile N/images/image_part_XXX.jpg`` + ``masks/*.png`` like the Dubai release."""
    from PIL import Image

    root = Path(root)
    for t in range(1, tiles + 1):
        (root / f"Tile {t}" / "images").mkdir(parents=True, exist_ok=True)
        (root / f"Tile {t}" / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(1, images_per_tile + 1):
            img, mask = make_scene(size[0], size[1], seed=seed * 100003 + t * 1000 + i)
            name = f"image_part_{i:03d}"
            Image.fromarray(img).save(root / f"Tile {t}" / "images" / f"{name}.jpg", quality=95)
            Image.fromarray(colorize(mask, DUBAI_CLASSES)).save(root / f"Tile {t}" / "masks" / f"{name}.png")
    return root
