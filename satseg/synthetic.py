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


MARKER = ".satseg-synthetic"  # in every folder write_dataset fills: what lets --force replace it


def write_dataset(root, tiles: int = 2, images_per_tile: int = 4, size: tuple[int, int] = (512, 512),
                  seed: int = 0) -> Path:
    """Write ``root/Tile N/images/image_part_XXX.jpg`` + ``masks/*.png`` like the Dubai release."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("a synthetic dataset written by satseg data synth; --force may replace it\n")
    for t in range(1, tiles + 1):
        (root / f"Tile {t}" / "images").mkdir(parents=True, exist_ok=True)
        (root / f"Tile {t}" / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(1, images_per_tile + 1):
            img, mask = make_scene(size[0], size[1], seed=seed * 100003 + t * 1000 + i)
            name = f"image_part_{i:03d}"
            Image.fromarray(img).save(root / f"Tile {t}" / "images" / f"{name}.jpg", quality=95)
            Image.fromarray(colorize(mask, DUBAI_CLASSES)).save(root / f"Tile {t}" / "masks" / f"{name}.png")
    return root


# --- datasets of other shapes: any classes, bands, dtypes, mask encodings and layouts ---------

LAYOUTS = ("tiles", "flat", "parallel", "suffix")
ENCODINGS = ("ids", "colour", "binary255", "soft")


def make_labelled(num_classes: int, height: int, width: int, bands: int, dtype: str = "uint8",
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, bands) of ``dtype``, class ids (H, W)): smooth regions, each class with its
    own mean per band plus texture and noise; uint16 spans 0..~12000 like reflectance, float 0..1."""
    rng = np.random.default_rng(seed)
    field = np.stack([_smooth_noise(rng, height, width, 24) for _ in range(num_classes)], -1)
    ids = field.argmax(-1).astype(np.uint8)
    means = rng.uniform(0.15, 0.85, (num_classes, bands))
    x = means[ids] + 0.08 * (_smooth_noise(rng, height, width, 4)[..., None] - 0.5) + rng.normal(0, 0.02, (height, width, bands))
    x = np.clip(x, 0, 1)
    if dtype == "uint8":
        return (x * 255).astype(np.uint8), ids
    if dtype == "uint16":
        return (x * 12000).astype(np.uint16), ids
    return x.astype(np.float32), ids


def encode_mask(ids: np.ndarray, encoding: str, seed: int = 0) -> np.ndarray:
    """Class ids as a dataset would store them: ``ids`` (uint8 class ids), ``colour`` (RGB in
    :data:`satseg.data.encoding.PALETTE` colours), ``binary255`` (0/255), ``soft`` (0..255 with
    blurred edges: probabilities, not labels)."""
    if encoding == "ids":
        return ids.astype(np.uint8)
    if encoding == "colour":
        from satseg.data.encoding import PALETTE

        return np.array(PALETTE, np.uint8)[ids]
    if encoding == "binary255":
        return (ids > 0).astype(np.uint8) * 255
    if encoding == "soft":
        rng = np.random.default_rng(seed)
        p = (ids > 0).astype(np.float32)
        k = np.ones(5, np.float32) / 5
        p = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, p)
        p = np.apply_along_axis(lambda c: np.convolve(c, k, "same"), 0, p)
        return np.clip(p * 255 + rng.normal(0, 3, p.shape), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")


def write_raster(path, arr: np.ndarray, nodata=None):
    """Write by content: 8-bit RGB or grey as PNG/JPEG (by the suffix), anything else as TIFF."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff") or arr.dtype != np.uint8 or arr.ndim == 3 and arr.shape[-1] not in (1, 3):
        import tifffile

        extra = [(42113, "s", 0, str(nodata), False)] if nodata is not None else []
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        kw = {"photometric": "minisblack"} if arr.ndim == 2 else {
            "photometric": "rgb" if arr.shape[-1] == 3 else "minisblack", "planarconfig": "contig"}
        tifffile.imwrite(path, arr, extratags=extra, **kw)
        return path
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(arr.squeeze()).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def write_custom_dataset(root, layout: str = "flat", num_classes: int = 3, bands: int = 3, dtype: str = "uint8",
                         encoding: str = "ids", groups: int = 2, per_group: int = 3, size=(64, 80),
                         nodata=None, image_suffix: str | None = None, mask_suffix: str = "_mask",
                         seed: int = 0) -> Path:
    """A labelled dataset of another shape than Dubai's, for tests and benchmarks.

    ``layout``: ``tiles`` (``G/images/x`` + ``G/masks/x``), ``flat`` (``images/gG_x`` + ``masks/gG_x``),
    ``parallel`` (``data/G/x`` + ``labels/G/x.tif``), ``suffix`` (``G/x.tif`` + ``G/x<mask_suffix>.tif``).
    ``nodata``: a value written into a corner of every image (and tagged in TIFFs), whose pixels
    must be ignored. ``image_suffix`` overrides the image's file name suffix (``.png`` on JPEG
    bytes, as some projects ship them)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    root = Path(root)
    plain = dtype == "uint8" and bands == 3 and nodata is None
    for g in range(1, groups + 1):
        for i in range(1, per_group + 1):
            image, ids = make_labelled(num_classes, size[0], size[1], bands, dtype, seed=seed * 1000 + g * 100 + i)
            if nodata is not None:
                image[: size[0] // 4, : size[1] // 4] = nodata
            mask = encode_mask(ids, encoding, seed=g * 100 + i)
            name = f"scene_{i:02d}"
            img_name = name + (image_suffix or (".jpg" if plain else ".tif"))
            mask_name = name + (".png" if encoding == "colour" else ".tif")
            if layout == "tiles":
                ip, mp = root / f"Tile {g}" / "images" / img_name, root / f"Tile {g}" / "masks" / mask_name
            elif layout == "flat":
                ip, mp = root / "images" / f"g{g}_{img_name}", root / "masks" / f"g{g}_{mask_name}"
            elif layout == "parallel":
                ip, mp = root / "data" / str(g) / img_name, root / "labels" / str(g) / mask_name
            else:
                ip, mp = root / str(g) / img_name, root / str(g) / (name + mask_suffix + Path(mask_name).suffix)
            if ip.suffix != (".jpg" if plain else ".tif") and plain:  # JPEG bytes under another name
                write_raster(ip.with_suffix(".jpg"), image).rename(ip)
            else:
                write_raster(ip, image, nodata)
            write_raster(mp, mask)
    return root
