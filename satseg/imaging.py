"""Image and mask I/O, palette conversion, normalisation and tiling: numpy only, no TensorFlow.

Shared by training (``satseg.data``), evaluation and the edge runtime, so that preprocessing at
inference repeats training exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from satseg.classes import DUBAI, IGNORE_LABEL, as_class_set
from satseg.errors import DataError

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png") + TIFF_SUFFIXES

MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"II*\x00": "tiff", b"MM\x00*": "tiff",
         b"II+\x00": "tiff", b"MM\x00+": "tiff", b"BM": "bmp", b"GIF8": "gif"}
"""Leading bytes of the raster formats satseg reads: a file's format is what it holds, not its name."""


def sniff(path) -> str | None:
    """The raster format of a file from its first bytes (``jpeg``, ``png``, ``tiff``, ...), or None."""
    if not Path(path).is_file():  # a folder, a named pipe (would block), a device
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)


def read_image(path, bands: int | None = None) -> np.ndarray:
    """Read an image as (H, W, C): JPEG/PNG through Pillow, TIFF/GeoTIFF through tifffile.

    TIFFs may have any band count and dtype uint8, uint16 or float32; a planar (C, H, W)
    TIFF is transposed; 16-bit single-band PNGs (class ids) stay 16-bit. ``bands`` checks the
    band count the model takes. NaN or infinite float pixels are refused.
    """
    reader = RowReader(path, bands)
    try:
        return reader.rows(0, reader.shape[0])
    finally:
        reader.close()


PIL_16_BIT = ("I;16", "I;16B", "I;16L", "I")
"""Pillow modes of single-band 16-bit (or 32-bit integer) images: read as uint16, not converted."""


class RowReader:
    """An image file whose pixels are read on demand, so a scene is never held twice:
    ``reader.window(y, x, h, w)`` gives the (h, w, C) pixels of a window (clipped to the image),
    ``reader.rows(y0, y1)`` whole rows, checked (dtype, NaN). Each format has one decoder, whatever
    else is installed, so pixels (and so predictions) never depend on the install: JPEG and the
    other picture formats through Pillow, which holds the decoded scene (``held``; it has no strip
    decoder); PNG through Pillow, except that a plain grey, RGB or RGBA PNG over ``WINDOWED_PIXELS``
    is read in windows through rasterio (GDAL, a small block cache) when it is installed (lossless:
    the same pixels), and a 16-bit colour PNG through rasterio only; uncompressed TIFF
    memory-mapped, compressed TIFF in windows through rasterio over ``WINDOWED_PIXELS``, else whole.
    ``hold=False`` (training, which keeps many scenes open) reads a large JPEG through rasterio
    windows too, so no scene is held: GDAL's libjpeg rounds a little otherwise than Pillow's.
    :func:`read_image` is all rows at once."""

    WINDOWED_PIXELS = 32_000_000
    GDAL_CACHE_MB = 64
    MAX_PIXELS = 1_000_000_000
    """Pixel budget: a file declaring more (a 300 KB PNG can declare 100000 x 100000) is refused
    before anything is allocated; ``SATSEG_MAX_PIXELS`` raises it for scenes that are that big."""

    def __init__(self, path, bands: int | None = None, hold: bool = True):
        self.path = Path(path)
        self._im = self._arr = self._ds = self._mmap = None
        self.nodata = None
        self.alpha = None  # a picture's alpha channel: not a band; its zeros are pixels without data
        try:
            if not self.path.is_file():
                raise FileNotFoundError(self.path)
            kind = sniff(self.path)
            if kind == "tiff":
                self._arr = self._open_tiff()
            else:
                im = self._open_pil()  # the header only: pixels are decoded on the first read
                try:
                    self._choose_decoder(kind, im, hold)
                finally:
                    if self._im is not im:
                        im.close()
            if self._ds is not None and kind == "png" and not _png_complete(self.path):
                raise DataError(f"{self.path}: truncated (the PNG has no IEND chunk at its end)")
            if self._arr is not None:
                self.shape = self._arr.shape
            if self.alpha is not None:
                self.shape = (*self.shape[:2], self.shape[2] - 1)
        except FileNotFoundError:
            raise DataError(f"{self.path}: file not found") from None
        except DataError:
            raise
        except Exception as e:  # corrupt, truncated or unknown formats
            raise DataError(f"{self.path}: cannot read image ({type(e).__name__}: {e})") from None
        if bands is not None and self.shape[-1] != bands:
            raise DataError(f"{self.path}: has {self.shape[-1]} bands, the model takes {bands}")

    def _choose_decoder(self, kind: str, im, hold: bool):
        """Keep Pillow's ``im``, or read through rasterio windows where GDAL gives the same pixels."""
        pixels = self._within_budget(im.height, im.width)
        png = _png_header(self.path) if kind == "png" else None
        if png and png["bits"] == 16 and png["colour"] in (2, 4, 6):
            # Pillow has no 16-bit colour mode and would read 8 bits; GDAL reads all 16
            if not self._open_windowed(pixels, always=True):
                raise DataError(f"{self.path}: a 16-bit colour PNG, which Pillow reads as 8 bits; "
                                "install rasterio (the [train] extra) or convert it to TIFF")
            return
        # GDAL reads plain PNGs as Pillow does (palettes, grey + alpha and tRNS otherwise)
        plain_png = png is not None and png["colour"] in (0, 2, 6) and not png["trns"]
        if not ((plain_png or (kind == "jpeg" and not hold)) and self._open_windowed(pixels)):
            self._im = im

    def _within_budget(self, h: int, w: int) -> int:
        import os

        try:
            budget = int(os.environ.get("SATSEG_MAX_PIXELS", self.MAX_PIXELS))
        except ValueError:
            raise DataError(f"SATSEG_MAX_PIXELS must be a whole number of pixels "
                            f"(got {os.environ['SATSEG_MAX_PIXELS']!r})") from None
        if h * w > budget:
            raise DataError(f"{self.path}: declares {w} x {h} pixels ({h * w / 1e9:.1f} Gpx), over the pixel budget "
                            f"of {budget / 1e9:g} Gpx; set SATSEG_MAX_PIXELS if the scene really is that large")
        return h * w

    def _open_windowed(self, pixels: int, always: bool = False) -> bool:
        """Open through rasterio for windowed reads, if installed and the scene is large (or ``always``)."""
        if pixels <= self.WINDOWED_PIXELS and not always:
            return False
        try:
            import rasterio
        except ImportError:
            return False
        import warnings

        from rasterio.errors import NotGeoreferencedWarning

        with self._gdal(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # plain JPEG/PNG: expected
            self._ds = rasterio.open(self.path)
        self.shape = (self._ds.height, self._ds.width, self._ds.count)
        self.nodata = self._ds.nodata if self.nodata is None else self.nodata
        self.alpha = alpha_band(self._ds)
        return True

    def _gdal(self):
        """GDAL's settings for one call (a small block cache): entered per call, so readers opened
        and closed in any order never unwind each other's environment."""
        import rasterio

        return rasterio.Env(GDAL_CACHEMAX=self.GDAL_CACHE_MB)

    def _open_pil(self):
        """The file opened by Pillow, its header read; pixels are decoded on the first read."""
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # scenes are large on purpose
        im = Image.open(self.path)
        self._pil_mode = im.mode if im.mode in ("RGB", "L", "RGBA") + PIL_16_BIT else (
            "RGBA" if im.mode == "LA" else "RGB")
        if self._pil_mode == "RGBA":
            self.alpha = 3
        self.shape = (im.height, im.width, len(self._pil_mode) if self._pil_mode in ("RGB", "RGBA", "L") else 1)
        self._decoded = False
        return im

    def _pil_pixels(self):
        if not self._decoded:
            try:
                self._im.load()
                if self._im.mode != self._pil_mode:
                    converted = self._im.convert(self._pil_mode)
                    self._im.close()
                    self._im = converted
            except Exception as e:  # corrupt or truncated: found when decoded
                raise DataError(f"{self.path}: cannot read image ({type(e).__name__}: {e})") from None
            self._decoded = True
        return self._im

    def _open_tiff(self) -> np.ndarray:
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages[0]
            tag = page.tags.get(42113)  # GDAL_NODATA
            if tag is not None:
                self.nodata = _nodata_value(tag.value)
            self._within_budget(page.imagelength, page.imagewidth)
            series = tif.series[0] if tif.series else None
            planar = bool(series) and series.axes.startswith("S")
            if series is not None:  # pages read as one array (how tifffile writes (H, W, C) without photometric)
                self._within_budget(int(np.prod(series.shape[:-1])), 1)
        arr = self._map_tiff()
        if arr is None:  # compressed or tiled: not mappable
            with tifffile.TiffFile(self.path) as tif:
                page = tif.pages[0]
                pixels = page.shape[0] * page.shape[1] if page.ndim >= 2 else 0
            if self._open_windowed(pixels):
                return None
            arr = tifffile.imread(self.path)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3:
            raise DataError(f"{self.path}: expected a 2-D image with bands, got shape {arr.shape}")
        if planar or (arr.shape[0] < arr.shape[1] and arr.shape[0] < arr.shape[2] and arr.shape[0] <= 16):
            arr = np.moveaxis(arr, 0, -1)  # planar (bands, H, W)
        return arr

    def _map_tiff(self) -> np.ndarray | None:
        """An uncompressed, contiguous TIFF's pixels as a read-only map of the file (None when the
        pixels are not stored that way). Pages a read touched are dropped from this process after
        it (:meth:`_release`): the file is read window by window, never held."""
        import mmap

        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            series = tif.series[0] if tif.series else None
            offset = series.dataoffset if series is not None else None
            if offset is None:
                return None
            shape, dtype = series.shape, series.dtype
        count = int(np.prod(shape))
        with open(self.path, "rb") as f:
            self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if offset + count * dtype.itemsize > len(self._mmap):
            self._mmap.close()
            raise DataError(f"{self.path}: truncated (the TIFF's pixels run past the end of the file)")
        return np.frombuffer(self._mmap, dtype=dtype, count=count, offset=offset).reshape(shape)

    def _release(self):
        """Drop the mapped file's pages from this process's memory (they stay in the page cache
        and are read again if needed): a mapped scene counts once, as the window being read."""
        import mmap

        if getattr(self, "_mmap", None) is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mmap.madvise(mmap.MADV_DONTNEED)

    @property
    def dtype(self) -> str:
        """The pixel type rows come in (``uint8``, ``uint16`` or ``float32``), from the header."""
        if self._ds is not None:
            raw = np.dtype(self._ds.dtypes[0])
        elif self._im is not None:
            raw = np.dtype({"F": np.float32, **{m: np.uint16 for m in PIL_16_BIT}}.get(self._pil_mode, np.uint8))
        else:
            raw = self._arr.dtype
        return pixel_type(raw)

    @property
    def held(self) -> bool:
        """Whether the decoder holds the whole decoded scene (Pillow), rather than reading on demand."""
        return self._im is not None

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Pixels of rows ``y0:y1`` (H, W, bands), without an alpha channel."""
        return self.window(y0, 0, y1 - y0, self.shape[1])

    def window(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        """Pixels of the window at (y, x) of h x w (h, w, bands), without an alpha channel."""
        return self.window_and_alpha(y, x, h, w)[0]

    def window_and_empty(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(pixels, (h, w) bool of pixels without data, or None when the file has no way to say):
        the raster's nodata value in every band, and the zeros of an alpha channel."""
        pixels, alpha = self.window_and_alpha(y, x, h, w)
        empty = nodata_mask(pixels, self.nodata)
        if alpha is not None:
            empty = (alpha == 0) if empty is None else empty | (alpha == 0)
        return pixels, empty

    def window_and_alpha(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(pixels, alpha (h, w) or None): the alpha channel apart, for the pixels it marks empty."""
        arr = self._raw(y, x, h, w)
        if self.alpha is None:
            return arr, None
        return np.delete(arr, self.alpha, axis=-1), arr[..., self.alpha]

    def _raw(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        y1, x1 = min(y + h, self.shape[0]), min(x + w, self.shape[1])
        y, x = max(y, 0), max(x, 0)
        h, w = max(y1 - y, 0), max(x1 - x, 0)
        if self._ds is not None:
            from rasterio.windows import Window

            try:
                with self._gdal():
                    arr = np.moveaxis(self._ds.read(window=Window(x, y, w, h)), 0, -1)
            except Exception as e:  # GDAL's read errors: a truncated or corrupt file
                raise DataError(f"{self.path}: cannot read image ({type(e).__name__}: {e})") from None
        elif self._im is not None:
            arr = np.asarray(self._pil_pixels().crop((x, y, x + w, y + h)))
        else:
            arr = np.array(self._arr[y:y + h, x:x + w])  # a copy: the map's pages are dropped next
            self._release()
        if arr.ndim == 2:
            arr = arr[..., None]
        return self._checked(arr)

    def _checked(self, arr: np.ndarray) -> np.ndarray:
        if arr.dtype not in (np.uint8, np.uint16, np.float32):
            if np.issubdtype(arr.dtype, np.floating):
                arr = arr.astype(np.float32)
            elif np.issubdtype(arr.dtype, np.integer) and arr.size and arr.min() >= 0 and arr.max() <= 65535:
                arr = arr.astype(np.uint16)  # Pillow's 32-bit "I" mode holding 16-bit values
            else:
                raise DataError(f"{self.path}: unsupported pixel type {arr.dtype} (uint8, uint16 or float32)")
        if arr.dtype == np.float32 and not np.isfinite(arr).all():
            raise DataError(f"{self.path}: holds NaN or infinite pixel values")
        return arr

    def close(self):
        if self._im is not None:
            self._im.close()
        if self._ds is not None:
            self._ds.close()
        self._im = self._arr = self._ds = None
        if getattr(self, "_mmap", None) is not None:
            try:
                self._mmap.close()
            except BufferError:  # a caller still holds a view of it: closed when that goes
                pass
            self._mmap = None


def alpha_band(ds) -> int | None:
    """The alpha channel of a picture format opened through rasterio (PNG, JPEG, WebP). In a TIFF
    every band is data: writers tag a fourth band as alpha by default (tifffile does), and
    multispectral rasters have four bands and more."""
    from rasterio.enums import ColorInterp

    interp = list(ds.colorinterp)
    if ds.driver == "GTiff" or ColorInterp.alpha not in interp or len(interp) < 2:
        return None
    return interp.index(ColorInterp.alpha)


def _png_header(path) -> dict | None:
    """A PNG's bit depth, colour type (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA) and
    whether a tRNS chunk (a transparent colour) comes before the pixels; None if unreadable."""
    with open(path, "rb") as f:
        head = f.read(33)
        if len(head) < 33 or head[12:16] != b"IHDR":
            return None
        trns = False
        while True:
            chunk = f.read(8)
            if len(chunk) < 8 or chunk[4:8] in (b"IDAT", b"IEND"):
                break
            trns |= chunk[4:8] == b"tRNS"
            f.seek(int.from_bytes(chunk[:4], "big") + 4, 1)
    return {"bits": head[24], "colour": head[25], "trns": trns}


def _png_complete(path) -> bool:
    """Whether a PNG ends with its IEND chunk: GDAL reads a truncated PNG as zeros without an error."""
    with open(path, "rb") as f:
        f.seek(-12, 2)
        return f.read(12) == b"\x00\x00\x00\x00IEND\xaeB`\x82"


def pixel_type(dtype) -> str:
    """The type satseg reads pixels of ``dtype`` as: uint8, uint16 (other unsigned integers) or float32."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return "uint8"
    return "float32" if np.issubdtype(dtype, np.floating) else "uint16"


def _nodata_value(text) -> float | None:
    try:
        v = float(str(text).strip("\x00 "))
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def nodata_mask(image: np.ndarray, nodata) -> np.ndarray | None:
    """(H, W) bool: pixels whose every band holds the raster's nodata value (None: no nodata)."""
    if nodata is None:
        return None
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
            return np.zeros(image.shape[:2], bool)  # a value the pixels cannot hold (-9999 in uint16)
    elif np.isnan(nodata):
        return np.isnan(image).all(-1)
    return (image == np.asarray(nodata, image.dtype)).all(-1)


def rgb_to_ids(mask_rgb: np.ndarray, classes=DUBAI) -> tuple[np.ndarray, int]:
    """RGB mask -> (class ids uint8, number of off-palette pixels set to IGNORE_LABEL)."""
    ids = as_class_set(classes)._decode_colors(mask_rgb[..., :3])
    return ids, int((ids == IGNORE_LABEL).sum())


def read_mask(path, classes=DUBAI) -> tuple[np.ndarray, int]:
    """Read a mask as (class ids (H, W) uint8, ignored pixel count), decoded by the class set:
    colours for RGB masks, values, ranges or plain ids for single-band ones; anything else
    becomes IGNORE_LABEL."""
    return as_class_set(classes).decode(read_image(path))


# --- normalisation ---------------------------------------------------------------------------

def normalize(patch: np.ndarray, spec: dict) -> np.ndarray:
    """Normalise one patch (H, W, C) -> float32, as recorded in the model's ``normalization``.

    ``{"kind": "in_model", "mean": [...], "std": [...]}`` (the default): raw pixel values go in,
    the model's first layer applies the fixed per-channel affine. ``{"kind": "minmax"}``:
    per-patch, per-channel min-max to [0, 1] (the reference code's ``MinMaxScaler`` over each
    patch). ``{"kind": "standard", "mean": [...], "std": [...]}``: fixed per-channel statistics
    applied outside the model.
    """
    x = patch.astype(np.float32)
    kind = spec.get("kind")
    if kind == "minmax":
        if patch.ndim == 3:  # channel by channel: several times faster than one strided reduction
            lo = np.array([patch[..., c].min() for c in range(patch.shape[-1])], np.float32)
            hi = np.array([patch[..., c].max() for c in range(patch.shape[-1])], np.float32)
        else:  # a batch: each patch on its own
            lo, hi = x.min(axis=(-3, -2), keepdims=True), x.max(axis=(-3, -2), keepdims=True)
        return (x - lo) / np.maximum(hi - lo, 1e-12)
    if kind == "in_model":  # the model's first layer applies the recorded mean/std
        return x
    if kind == "standard":
        mean = np.asarray(spec["mean"], np.float32)
        std = np.asarray(spec["std"], np.float32)
        return (x - mean) / np.maximum(std, 1e-12)
    raise ValueError(f"unknown normalization {spec!r}: use 'in_model', 'minmax' or 'standard'")


def channel_stats(images) -> dict:
    """Per-channel mean/std over a list of (H, W, C) arrays, for ``{"kind": "standard"}``."""
    n = 0
    s = s2 = 0.0
    for im in images:
        x = im.reshape(-1, im.shape[-1]).astype(np.float64)
        n += x.shape[0]
        s = s + x.sum(0)
        s2 = s2 + (x * x).sum(0)
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0))
    return {"kind": "standard", "mean": mean.tolist(), "std": std.tolist()}


def resize(arr: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    """Resize (H, W, ...) to (h, w, ...): bilinear with half-pixel centres (edges clamped), or
    nearest for class ids. numpy only; output float32 for bilinear, the input dtype for nearest."""
    H, W = arr.shape[:2]
    ys = (np.arange(h) + 0.5) * H / h - 0.5
    xs = (np.arange(w) + 0.5) * W / w - 0.5
    if nearest:
        yi = np.clip(np.floor(ys + 0.5).astype(int), 0, H - 1)
        xi = np.clip(np.floor(xs + 0.5).astype(int), 0, W - 1)
        return arr[yi][:, xi]
    y0 = np.clip(np.floor(ys).astype(int), 0, H - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, W - 1)
    y1, x1 = np.minimum(y0 + 1, H - 1), np.minimum(x0 + 1, W - 1)
    wy = np.clip(ys - y0, 0, 1).astype(np.float32).reshape((-1, 1) + (1,) * (arr.ndim - 2))
    wx = np.clip(xs - x0, 0, 1).astype(np.float32).reshape((1, -1) + (1,) * (arr.ndim - 2))
    top = arr[y0].astype(np.float32)  # separable: rows first (whole-row copies), then columns
    rows = top + (arr[y1].astype(np.float32) - top) * wy
    left = rows[:, x0]
    return left + (rows[:, x1] - left) * wx


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (logits -> class probabilities), numerically stable."""
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- patches and tiles ----------------------------------------------------------------------

def crop_grid(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the reference code's patches: crop to the largest multiple of size."""
    return [(y, x) for y in range(0, h // size * size, size) for x in range(0, w // size * size, size)]


def tile_starts(length: int, size: int, stride: int) -> list[int]:
    """Starts of windows of ``size`` with ``stride`` that cover [0, length); the last one is
    moved back to end at the border, so no window runs past the image (unless it is smaller)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    starts.append(length - size)
    return starts


def pad_to(arr: np.ndarray, h: int, w: int, value=0) -> np.ndarray:
    """Pad (H, W, ...) at the bottom/right to at least (h, w)."""
    ph, pw = max(h - arr.shape[0], 0), max(w - arr.shape[1], 0)
    if not ph and not pw:
        return arr
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, pad, constant_values=value)


def cut_patches(image: np.ndarray, mask: np.ndarray | None, size: int, mode: str = "crop"):
    """Cut an image (and its mask) into size x size patches.

    ``crop``: the reference code's way, dropping the right and bottom remainders.
    ``pad``: every pixel is kept; the image is padded at the bottom/right with zeros and the
    mask with IGNORE_LABEL, so padding never counts in losses or metrics.
    Returns (images (N, size, size, C), masks (N, size, size) or None).
    """
    if mode == "crop":
        grid = crop_grid(image.shape[0], image.shape[1], size)
    elif mode == "pad":
        hp = -(-image.shape[0] // size) * size
        wp = -(-image.shape[1] // size) * size
        image = pad_to(image, hp, wp, 0)
        if mask is not None:
            mask = pad_to(mask, hp, wp, IGNORE_LABEL)
        grid = crop_grid(hp, wp, size)
    else:
        raise ValueError(f"unknown patch mode {mode!r}: use 'crop' or 'pad'")
    xs = np.stack([image[y : y + size, x : x + size] for y, x in grid]) if grid else np.zeros((0, size, size, image.shape[-1]), image.dtype)
    ms = None
    if mask is not None:
        ms = np.stack([mask[y : y + size, x : x + size] for y, x in grid]) if grid else np.zeros((0, size, size), np.uint8)
    return xs, ms
