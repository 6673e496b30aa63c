"""Edge runtime: run an exported LiteRT model on whole images with numpy and ai-edge-litert only.

Never imports TensorFlow or Keras, so it runs on a Raspberry Pi or in a slim container:
``pip install satseg`` pulls only numpy, ai-edge-litert, Pillow and tifffile.

The tiled predictor slides the model's patch over an image with overlap, blends the per-class
probabilities of overlapping tiles with a tent-shaped weight (tile centres count more than
tile borders, so there are no seams), and applies the normalisation recorded with the model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satseg.atomic import atomic_write
from satseg.classes import ModelSpec, color_table, load_spec
from satseg.errors import DataError, SatsegError
from satseg.imaging import TIFF_SUFFIXES, RowReader, normalize, softmax, tile_starts
from satseg.progress import progress as bar_for

SHIPPED_MODEL = Path(__file__).resolve().parent / "default_model" / "model_int8.tflite"
"""The default model of `predict` and `evaluate`, installed with the package: of the shipped
students whose int8 file is under 100 KB, the best on the validation split (chosen and copied by
tools/model_cards.py; its name is in default_model/SOURCE)."""


def default_model(path=None) -> str:
    """``path`` (or the shipped model of that name), or the packaged default model when none is given."""
    from satseg.errors import SatsegError
    from satseg.zoo import resolve

    if path is not None and not str(path).strip():
        raise SatsegError("--model is empty: give a model file or a shipped model's name (satseg models)")
    if path:
        return resolve(str(path))
    if not SHIPPED_MODEL.exists():
        raise SatsegError(f"no --model given and the packaged default {SHIPPED_MODEL} is missing")
    return str(SHIPPED_MODEL)


FIXED_SUFFIX = "_fixed.tflite"
"""Name ending of the fixed-size (1, P, P, C) probability file exported beside a whole-image one."""

DEFAULT_OVERLAP = None
"""Tile overlap in pixels; None: a quarter of the patch (64 px for 256 px patches)."""


def blend_weights(size: int) -> np.ndarray:
    """(size, size) tent weights, highest in the centre, never zero."""
    ramp = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5) / (size / 2)
    return np.outer(ramp, ramp).astype(np.float32) + 1e-3


def with_flip_tta(predict_fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Test-time augmentation: the mean of the probabilities for the patches as they are and
    flipped left-right, up-down and both (each flipped back). Four times the work."""
    def fn(x: np.ndarray) -> np.ndarray:
        out = predict_fn(x).astype(np.float32)
        for axes in ((2,), (1,), (1, 2)):
            out += np.flip(predict_fn(np.ascontiguousarray(np.flip(x, axes))), axes)
        return out / 4
    return fn


def check_overlap(overlap: int | None, patch: int) -> int:
    """The tile overlap to use: a quarter of the patch by default; at most half of it (more
    only multiplies the work), never negative."""
    from satseg.errors import SatsegError

    if overlap is None:
        return patch // 4
    if not 0 <= overlap <= patch // 2:
        raise SatsegError(f"--overlap {overlap}: must be between 0 and {patch // 2} (half the model's {patch} px patch)")
    return int(overlap)


def tiled_bands(rows: Callable[[int, int], np.ndarray], h: int, w: int,
                predict_fn: Callable[[np.ndarray], np.ndarray], spec: ModelSpec,
                overlap: int | None = DEFAULT_OVERLAP, batch_size: int = 1, progress=None):
    """Blend overlapping tiles row by row and yield ``(y0, y1, acc, wsum)`` for finished bands of
    rows (probabilities are ``acc / wsum``; both are views, valid until the next band), so memory
    holds one patch-high band, not the whole (H, W, K) image.

    ``rows(y0, y1)`` returns image rows (a strip of a scene on disk, or of an array);
    ``predict_fn`` maps normalised patches (N, P, P, C) to probabilities (N, P, P, K). The image
    must be at least one patch in each direction.
    """
    p, k = spec.patch_size, spec.num_classes
    stride = p - check_overlap(overlap, p)
    ys, xs = tile_starts(h, p, stride), tile_starts(w, p, stride)
    weight = blend_weights(p)[..., None]
    acc = np.zeros((p, w, k), np.float32)
    wsum = np.zeros((p, w, 1), np.float32)
    for j, y in enumerate(ys):
        strip = rows(y, y + p)
        for i in range(0, len(xs), batch_size):
            chunk = xs[i:i + batch_size]
            batch = np.stack([normalize(strip[:, x:x + p], spec.normalization) for x in chunk])
            for x, pr in zip(chunk, predict_fn(batch)):
                acc[:, x:x + p] += pr * weight
                wsum[:, x:x + p] += weight
            if progress is not None:
                progress(len(chunk))
        done = (ys[j + 1] if j + 1 < len(ys) else h) - y  # rows no later tile touches
        yield y, y + done, acc[:done], wsum[:done]
        keep = p - done  # <= done, as the overlap is at most half a patch: the copy never overlaps
        for buf in (acc, wsum):
            buf[:keep] = buf[done:]
            buf[keep:] = 0


def _padded(image: np.ndarray, p: int) -> np.ndarray:
    h, w = image.shape[:2]
    return np.pad(image, [(0, max(p - h, 0)), (0, max(p - w, 0)), (0, 0)], mode="edge")


def _check_bands(image, spec):
    if image.shape[-1] != spec.bands:
        raise ValueError(f"image has {image.shape[-1]} bands, the model takes {spec.bands}")


def _array_bands(image, predict_fn, spec, overlap, batch_size, progress):
    _check_bands(image, spec)
    padded = _padded(image, spec.patch_size)
    return padded.shape[:2], tiled_bands(lambda y0, y1: padded[y0:y1], *padded.shape[:2], predict_fn, spec,
                                         overlap, batch_size, progress)


def predict_tiled(image: np.ndarray, predict_fn: Callable[[np.ndarray], np.ndarray], spec: ModelSpec,
                  overlap: int | None = DEFAULT_OVERLAP, batch_size: int = 1, progress=None) -> np.ndarray:
    """Per-class probabilities (H, W, K) for a whole image of any size (tiles blended with tent
    weights; images smaller than the patch are padded by edge replication and cropped back)."""
    h, w = image.shape[:2]
    _, bands = _array_bands(image, predict_fn, spec, overlap, batch_size, progress)
    return np.concatenate([acc / wsum for _, _, acc, wsum in bands])[:h, :w]


def ids_from_bands(shape, bands) -> np.ndarray:
    """Class ids from blended bands; the argmax of ``acc`` is that of ``acc / wsum`` (the
    weight sum is one positive number per pixel), so no division is needed."""
    out = np.empty(shape, np.uint8)
    for y0, y1, acc, _ in bands:
        out[y0:y1] = acc.argmax(-1)
    return out


def predict_ids_tiled(image: np.ndarray, predict_fn: Callable[[np.ndarray], np.ndarray], spec: ModelSpec,
                      overlap: int | None = DEFAULT_OVERLAP, batch_size: int = 1, progress=None) -> np.ndarray:
    """Class ids (H, W) uint8, the same as ``predict_tiled(...).argmax(-1)`` in a fraction of the
    memory: ids are taken band by band."""
    h, w = image.shape[:2]
    shape, bands = _array_bands(image, predict_fn, spec, overlap, batch_size, progress)
    return ids_from_bands(shape, bands)[:h, :w]


WINDOW_PIXELS = 4_000_000
"""Largest window a whole-image model runs in one call: a 2149x1479 image in one; larger scenes
in square windows, so memory depends on the window, not the scene (the interpreter's activations
grow with the window, about 110 bytes a pixel for the default int8 model; speed is about flat
from 0.25 to 3 Mpx: benchmarks/whole_image.py)."""
HELD_WINDOW_PIXELS = 1_000_000
"""Windows over a scene its decoder holds whole (a large JPEG: Pillow has no strip decoder): the
decoded scene takes most of the memory, so windows shrink to keep the sum small (a 12000 x 12000
JPEG: ``python benchmarks/predict_memory.py``), for about a tenth more computation in the overlaps."""


def array_windows(image: np.ndarray) -> Callable[[int, int, int, int], np.ndarray]:
    """``read(y, x, h, w)`` over an array in memory (what :func:`predict_windowed` reads from)."""
    return lambda y, x, h, w: image[y:y + h, x:x + w]


def _axis(length: int, stride: int, margin: int, count: int) -> int:
    """Window size that covers ``length`` with ``count`` windows (1: the whole axis)."""
    if count == 1:
        return length
    core = -(-length // count // stride) * stride
    while count * core < length:
        core += stride
    return core + 2 * margin


def _count(length: int, stride: int, margin: int, limit: int) -> int:
    """Fewest windows (two or more) along an axis whose size is at most ``limit``, or as many as
    there can be."""
    n = 2
    while _axis(length, stride, margin, n) > limit and n <= length // stride:
        n += 1
    return n


def window_plan(length: int, stride: int, margin: int, size: int) -> list[tuple[int, int, int]]:
    """(window start, first kept, end kept) along one axis of a frame of ``length`` (a multiple of
    ``stride``), windows of ``size``: each keeps what lies at least ``margin`` from its cuts."""
    if length <= size:
        return [(0, 0, length)]
    core = size - 2 * margin  # a positive multiple of the stride (window_size)
    return [(min(max(k - margin, 0), length - size), k, min(k + core, length)) for k in range(0, length, core)]


def window_size(h: int, w: int, stride: int, margin: int, max_pixels: int = WINDOW_PIXELS) -> tuple[int, int]:
    """(rows, columns) of the windows over an (h, w) frame: the frame when it fits, else the
    window shape within ``max_pixels`` that computes the fewest pixels in all."""
    if h * w <= max_pixels:
        return h, w
    best = None
    for nx in range(1, w // stride + 1):
        wz = _axis(w, stride, margin, nx)
        if wz > w or (nx > 1 and wz - 2 * margin < stride):
            break
        if wz * (2 * margin + stride) > max_pixels:
            continue
        wh = min(_axis(h, stride, margin, _count(h, stride, margin, max_pixels // wz)), h)
        cost = len(window_plan(h, stride, margin, wh)) * wh * len(window_plan(w, stride, margin, wz)) * wz
        if best is None or cost < best[0]:
            best = (cost, wh, wz)
    if best is None:  # the margin alone fills the budget: windows that keep half their side
        side = 2 * margin + max(2 * margin, stride)
        return min(side, h), min(side, w)
    return best[1], best[2]


def predict_windowed(read: Callable[[int, int, int, int], np.ndarray], h: int, w: int,
                     run: Callable[[np.ndarray], np.ndarray], stride: int, margin: int,
                     max_pixels: int = WINDOW_PIXELS) -> np.ndarray:
    """Class ids (h, w) uint8 from a whole-image model, one call per window.

    The frame is padded (edge rows/columns) to multiples of ``stride``. Windows start on the
    stride grid and overlap by ``margin`` (the model's receptive margin) on each side; each keeps
    only what lies at least ``margin`` from a cut, so the result equals one full-frame call.
    ``read(y, x, h, w)`` returns the pixels of one window (:meth:`RowReader.window`, or
    :func:`array_windows`); ``run`` maps (wh, ww, C) pixels to (wh, ww) ids.
    """
    hh, ww = -(-h // stride) * stride, -(-w // stride) * stride
    wh, wz = window_size(hh, ww, stride, margin, max_pixels)
    out = np.empty((h, w), np.uint8)
    for y0, ya, yb in window_plan(hh, stride, margin, wh):
        yb = min(yb, h)
        for x0, xa, xb in window_plan(ww, stride, margin, wz):
            xb = min(xb, w)
            if yb > ya and xb > xa:
                pixels = read(y0, x0, min(wh, h - y0), min(wz, w - x0))
                if pixels.shape[:2] != (wh, wz):
                    pixels = np.pad(pixels, [(0, wh - pixels.shape[0]), (0, wz - pixels.shape[1]), (0, 0)],
                                    mode="edge")
                ids = run(pixels)
                out[ya:yb, xa:xb] = ids[ya - y0:yb - y0, xa - x0:xb - x0]
    return out


def predict_scene(path, predict_fn: Callable[[np.ndarray], np.ndarray], spec: ModelSpec,
                  overlap: int | None = DEFAULT_OVERLAP, batch_size: int = 1, model=None) -> np.ndarray:
    """Class ids of an image file, reading it window by window (or strip by strip in tiles): peak
    memory is about what its decoder holds plus the ids and one window, whatever the scene size.
    Pixels without data (transparent, or the raster's nodata value in every band) get the ignore
    label (255), which outputs declare as nodata."""
    reader = RowReader(path, bands=spec.bands)
    try:
        check_pixel_type(path, reader.dtype, spec, getattr(model, "takes_raw_uint8", False))
        h, w = reader.shape[:2]
        if getattr(model, "whole_image", False):
            held = reader.held and h * w > RowReader.WINDOWED_PIXELS
            ids = model.predict_windows(reader.window, h, w, HELD_WINDOW_PIXELS if held else WINDOW_PIXELS)
        elif h < spec.patch_size or w < spec.patch_size:
            ids = predict_ids_tiled(reader.rows(0, h), predict_fn, spec, overlap, batch_size)
        else:
            ids = ids_from_bands((h, w), tiled_bands(reader.rows, h, w, predict_fn, spec, overlap, batch_size))
        return mark_no_data(reader, ids)
    finally:
        reader.close()


def mark_no_data(reader: RowReader, ids: np.ndarray, strip_pixels: int = 4_000_000) -> np.ndarray:
    """``ids`` with the reader's pixels without data set to the ignore label, strip by strip."""
    from satseg.classes import IGNORE_LABEL

    if reader.alpha is None and reader.nodata is None:
        return ids  # the file cannot mark a pixel empty: nothing to read again
    h, w = ids.shape
    rows = max(strip_pixels // w, 1)
    for y0 in range(0, h, rows):
        _, empty = reader.window_and_empty(y0, 0, rows, w)
        ids[y0:y0 + rows][empty] = IGNORE_LABEL
    return ids


def check_pixel_type(path, dtype: str, spec: ModelSpec, takes_raw_uint8: bool = False):
    """Pixels must be of the type the model was trained on (its spec's ``dtype``), and 8-bit for a
    file that takes raw uint8 pixels: 16-bit reflectance clipped to 255 would be silently wrong."""
    if spec.dtype and dtype != spec.dtype:
        raise DataError(f"{path}: {dtype} pixels, but the model was trained on {spec.dtype} imagery; convert the "
                        f"image (or train on {dtype} imagery)")
    if takes_raw_uint8 and dtype != "uint8":
        raise DataError(f"{path}: {dtype} pixels, but this model file takes 8-bit pixels; convert the image to "
                        "8 bits (or use a float model file)")


class EdgeModel:
    """A LiteRT (``.tflite``) segmentation model with its spec (classes, normalisation, patch).

    Handles float and full-integer (int8/uint8 input and output) models.
    """

    def __init__(self, path, num_threads: int | None = None, spec: ModelSpec | None = None):
        from ai_edge_litert.interpreter import Interpreter

        from satseg.errors import ModelFileError

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: model file not found")
        self.spec = spec or load_spec(self.path)
        from satseg.quiet import native_stderr_silenced

        try:
            with native_stderr_silenced():  # the XNNPACK delegate notice
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads or os.cpu_count())
                self._in = self.interpreter.get_input_details()[0]
                self._out = self.interpreter.get_output_details()[0]
                # (1, H, W) uint8 class ids for any H and W, or (1, P, P, K) probabilities
                self.whole_image = len(self._out["shape_signature"]) == 3
                if self.whole_image:  # a size every layer can take, until the first window
                    s = max(self.spec.stride, 1) * 2
                    self._shape = [1, s, s, int(self._in["shape"][-1])]
                    self.interpreter.resize_tensor_input(self._in["index"], self._shape)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelFileError(f"{self.path}: not a usable LiteRT model ({msg[:160]})") from None
        if self.whole_image:
            if self._out["dtype"] != np.uint8 or -1 not in list(self._in["shape_signature"][1:3]):
                raise ModelFileError(f"{self.path}: a class-id model must take any size and return uint8 ids")
        k = self._argmax_classes() if self.whole_image else int(self._out["shape"][-1])
        if k is not None and k != self.spec.num_classes:
            raise ModelFileError(f"{self.path}: the model predicts {k} classes, its spec lists {self.spec.num_classes}")
        if self.whole_image:
            return
        if tuple(self._in["shape"][1:3]) != (self.spec.patch_size, self.spec.patch_size):
            self.spec.patch_size = int(self._in["shape"][1])

    def _argmax_classes(self) -> int | None:
        """Classes a whole-image file chooses among: the last axis of its ARG_MAX's input, read
        off the flatbuffer (the interpreter lists its operators only through a private call)."""
        from satseg.tflite_metadata import argmax_classes

        try:
            return argmax_classes(self.path)
        except Exception:  # noqa: BLE001 - a graph this reader cannot parse: the spec is trusted
            return None

    @property
    def takes_raw_uint8(self) -> bool:
        """A whole-image file whose input is raw 8-bit pixels (the int8 files)."""
        return self.whole_image and self._in["dtype"] == np.uint8

    def run_window(self, x: np.ndarray) -> np.ndarray:
        """Raw pixels (H, W, C) of a whole-image model -> class ids (H, W) uint8, in one call."""
        shape = [1, *x.shape]
        if shape != self._shape:
            self.interpreter.resize_tensor_input(self._in["index"], shape)
            self.interpreter.allocate_tensors()
            self._shape = shape
        self.interpreter.set_tensor(self._in["index"], self._input(x[None]))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])[0]

    def _input(self, x: np.ndarray) -> np.ndarray:
        dt = self._in["dtype"]
        if dt not in (np.int8, np.uint8):
            return x.astype(dt, copy=False)
        scale, zp = self._in["quantization"]
        if dt == np.uint8 and x.dtype == np.uint8 and (scale, zp) == (1.0, 0):
            return x  # raw 8-bit pixels are the model's input as they are
        info = np.iinfo(dt)
        q = np.divide(x, scale, dtype=np.float32)
        q += zp
        return np.clip(np.round(q, out=q), info.min, info.max, out=q).astype(dt)

    def predict_windows(self, read, h: int, w: int, max_pixels: int = WINDOW_PIXELS) -> np.ndarray:
        """Class ids of an (h, w) image given as ``read(y, x, h, w)``, window by window."""
        return predict_windowed(read, h, w, self.run_window, self.spec.stride, self.spec.margin, max_pixels)

    @property
    def input_dtype(self):
        return self._in["dtype"]

    def predict_patches(self, x: np.ndarray) -> np.ndarray:
        """Normalised float patches (N, P, P, C) -> probabilities (N, P, P, K), float32."""
        if self.whole_image:
            from satseg.errors import SatsegError

            raise SatsegError(f"{self.path}: returns class ids, not probabilities (tiles, --tta); "
                              f"use the fixed-size file beside it ({FIXED_SUFFIX})")
        out = []
        for patch in x:
            self.interpreter.set_tensor(self._in["index"], self._input(patch[None].astype(np.float32)))
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self._out["index"])[0]
            if self._out["dtype"] in (np.int8, np.uint8):
                scale, zp = self._out["quantization"]
                y = np.subtract(y, zp, dtype=np.float32)
                y *= scale
            out.append(y.astype(np.float32, copy=False))
        out = np.stack(out)
        return softmax(out) if self.spec.outputs == "logits" else out

    def predict_probs(self, image: np.ndarray, overlap: int | None = DEFAULT_OVERLAP, progress=None) -> np.ndarray:
        return predict_tiled(image, self.predict_patches, self.spec, overlap, progress=progress)

    def predict(self, image: np.ndarray, overlap: int | None = DEFAULT_OVERLAP) -> np.ndarray:
        """Whole image (H, W, C) raw pixels -> class ids (H, W) uint8 (in windows for a
        whole-image model, else in blended tiles)."""
        if self.whole_image:
            _check_bands(image, self.spec)
            return self.predict_windows(array_windows(image), *image.shape[:2])
        return predict_ids_tiled(image, self.predict_patches, self.spec, overlap)


def write_prediction(ids: np.ndarray, out_path, spec: ModelSpec, source=None) -> list[Path]:
    """Write class ids (8-bit PNG, or TIFF when the input was a TIFF, keeping its georeferencing
    tags) and ``<name>_color.png``. Writes are atomic."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    im = palette_image(ids, spec)
    ids_path, color_path = output_paths(Path(source) if source is not None else Path("ids.png"), out_path)
    if ids_path.suffix == ".tif":
        _write_tiff_like(ids, ids_path, source, spec)
    else:
        atomic_write(ids_path, lambda p: im.save(p, format="PNG"))
    # RGB for viewers that ignore palettes, unless that copy would be large (a palette PNG
    # shows the same colours)
    color = im.convert("RGB") if ids.size <= 64_000_000 else im
    atomic_write(color_path, lambda p: color.save(p, format="PNG"))
    return [ids_path, color_path]


def palette_image(ids: np.ndarray, spec: ModelSpec):
    """Class ids as a palette ("P" mode) image: the values are the ids, the palette the class
    colours, so any viewer shows the colours and any reader gets the ids."""
    from PIL import Image

    im = Image.fromarray(ids.astype(np.uint8, copy=False), mode="L")
    im.putpalette(color_table(spec.seg_classes).reshape(-1).tolist())
    return im


GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737)
"""ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory, GeoDoubleParams,
GeoAsciiParams: the georeferencing (CRS and transform) copied from the source. GDAL_NODATA is not
copied (the source's nodata value, often 0, would mask a class); GDAL_METADATA neither."""

GDAL_NODATA = 42113


def tiff_colormap(spec: ModelSpec) -> np.ndarray:
    """(3, 256) uint16 TIFF colour table: the class colours, black elsewhere."""
    return color_table(spec.seg_classes).T.astype(np.uint16) * 257


def _write_tiff_like(ids: np.ndarray, path: Path, source, spec: ModelSpec):
    """A GeoTIFF of class ids that GIS tools read right: the source's CRS and transform, a
    colour table with the class colours, nodata 255 (the ignore label, never predicted),
    deflate compression in 256 px tiles. Through rasterio when installed, else tifffile."""
    try:
        import rasterio
    except ImportError:
        rasterio = None
    if rasterio is not None:
        return _write_with_rasterio(rasterio, ids, path, source, spec)
    import tifffile

    extratags = []
    with tifffile.TiffFile(source) as tif:
        for tag in tif.pages[0].tags.values():
            if tag.code in GEO_TAGS:
                extratags.append((tag.code, tag.dtype, tag.count, tag.value, True))
    extratags.append((GDAL_NODATA, "s", 0, "255", True))
    tile = (256, 256) if min(ids.shape) >= 256 else None
    atomic_write(path, lambda p: tifffile.imwrite(p, ids.astype(np.uint8), extratags=extratags,
                                                  photometric="palette", colormap=tiff_colormap(spec),
                                                  compression="zlib", tile=tile))


def _write_with_rasterio(rasterio, ids: np.ndarray, path: Path, source, spec: ModelSpec):
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():  # a plain TIFF in gives a plain TIFF out, as expected: no notice
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(source) as src:
            crs, transform = src.crs, src.transform
    profile = {"driver": "GTiff", "height": ids.shape[0], "width": ids.shape[1], "count": 1, "dtype": "uint8",
               "crs": crs, "transform": transform, "nodata": 255, "compress": "deflate",
               "tiled": min(ids.shape) >= 256, "photometric": "palette"}
    if profile["tiled"]:
        profile.update(blockxsize=256, blockysize=256)
    cmap = {i: (*map(int, c), 255) for i, c in enumerate(color_table(spec.seg_classes))}

    def write(p):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p, "w", **profile) as dst:
                dst.write(ids, 1)
                dst.write_colormap(1, cmap)
    atomic_write(path, write)


def collect_inputs(inputs, out_dir=None) -> list[tuple[Path, Path]]:
    """Expand files and folders into (image, relative output stem) pairs.

    A folder's relative layout is mirrored (``Tile 2/images/x``) so equal names never collide;
    files are images by content, not name; in a folder laid out as a dataset only images are
    read, never masks (mask folders, or ``x_mask.tif`` beside ``x.tif``: :mod:`satseg.data.layouts`).
    ``out_dir`` inside an input folder is not walked: earlier outputs are not inputs.
    """
    from satseg.data.layouts import images_in

    out_real = Path(os.path.realpath(out_dir)) if out_dir is not None else None
    pairs = []
    for inp in inputs:
        inp = Path(inp)
        if inp.is_file():
            pairs.append((inp, output_stem(Path(inp.name))))
        elif inp.is_dir():
            # the out folder is skipped only when strictly inside this input folder
            skip = out_real if out_real is not None and out_real != Path(os.path.realpath(inp)) else None
            found = images_in(inp) + broken_images_in(inp)
            pairs += [(f, output_stem(f.relative_to(inp))) for f in sorted(found)
                      if skip is None or not Path(os.path.realpath(f)).is_relative_to(skip)]
        else:
            raise FileNotFoundError(f"{inp}: no such file or folder")
    if not pairs:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, inputs))}")
    return pairs


def broken_images_in(folder: Path) -> list[Path]:
    """Files below ``folder`` named as images (``.jpg``, ``.png``, ``.tif``, ...) whose bytes are
    no image (empty, truncated before the header, another format): they are inputs that fail
    with a reason in the batch report, not files skipped without a word."""
    from satseg.data.layouts import _walk, is_mask_path
    from satseg.imaging import IMAGE_SUFFIXES, sniff

    return [f for f in _walk(folder) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
            and not f.is_symlink() and not sniff(f) and not is_mask_path(f, folder)]


@dataclass
class Scene:
    """What predicting one scene wrote (``paths``) and found (``summary``: its files; when asked,
    pixels per class and, when the scene is placed on the Earth, hectares per class; with
    polygons, how many and how the scene was placed)."""

    paths: list[Path]
    summary: dict


def predict_one(model, src: Path, dst: Path, overlap=DEFAULT_OVERLAP, tta: bool = False, vector=None,
                summary: bool = False) -> Scene:
    """One scene, one pure function of (model, scene): read strip by strip, predict, write the
    rasters and, with ``vector`` (:class:`satseg.geo.vectors.VectorOptions`), its polygons;
    ``summary`` adds pixels and hectares per class to what the scene reports."""
    fn = with_flip_tta(model.predict_patches) if tta else model.predict_patches
    ids = predict_scene(src, fn, model.spec, overlap, model=None if tta else model)
    paths = write_prediction(ids, dst, model.spec, source=src)
    names = list(model.spec.seg_classes.names)
    info = {"input": str(src)}
    place = None
    if vector is not None or summary:
        from satseg.geo.vectors import missing_geo
        from satseg.memory import release_freed_memory

        release_freed_memory()  # the pages the scene was decoded into, before tracing needs its own

        if not missing_geo(("rasterio", "shapely", "pyproj")):  # an edge install reports pixels only
            from satseg.geo.vectors import scene_place

            place = scene_place(src, ids.shape)
            info["placed_by"] = place.how
    if summary:
        counts = row_class_counts(ids, len(names))
        info["pixels"] = dict(zip(names, map(int, counts.sum(0))))
        if place is not None:
            from satseg.geo.vectors import class_hectares

            info["hectares"] = class_hectares(counts, place, names)
    if vector is not None:
        from satseg.geo.vectors import trace, write_layers

        path, count = write_layers(output_paths(src, dst, vector)[-1], trace(ids, place, names, vector),
                                   vector.format, dst.name, place.crs)
        paths.append(path)
        info["polygons"] = count
    info["outputs"] = [str(p) for p in paths]
    return Scene(paths, info)


def row_class_counts(ids: np.ndarray, num_classes: int, strip_pixels: int = 4_000_000) -> np.ndarray:
    """(h, num_classes) pixels of each class in each row, strip by strip (a bincount of a whole
    12000 x 12000 scene would widen 144 M ids to int64); the ignore label is not counted."""
    h, w = ids.shape
    out = np.zeros((h, num_classes), np.int64)
    rows = max(strip_pixels // max(w, 1), 1)
    for y0 in range(0, h, rows):
        strip = ids[y0:y0 + rows]
        r = strip.shape[0]
        keys = (np.arange(r, dtype=np.int64)[:, None] * 256 + strip).ravel()
        out[y0:y0 + r] = np.bincount(keys, minlength=r * 256).reshape(r, 256)[:, :num_classes]
    return out


_WORKER: dict = {}


_MODELS = threading.local()
_LOADS = {"count": 0}


def models_loaded() -> int:
    """How many interpreters :func:`cached_model` has made in this process (one per thread and model)."""
    return _LOADS["count"]


def cached_model(path: str, threads: int = 1) -> EdgeModel:
    """One interpreter per (model, threads) per thread: what a long-lived worker (a predict
    --jobs process, a Dask worker, a server) keeps between scenes. Per thread, as an interpreter
    runs one call at a time and a threaded worker (Dask's) runs tasks side by side."""
    cache = getattr(_MODELS, "cache", None)
    if cache is None:
        cache = _MODELS.cache = {}
    if (path, threads) not in cache:
        cache[(path, threads)] = EdgeModel(path, num_threads=threads)
        _LOADS["count"] += 1
    return cache[(path, threads)]


def _init_worker(path: str, threads: int, parent: int):
    exit_with_parent(parent)
    _WORKER["model"] = cached_model(path, threads)


def exit_with_parent(parent: int, poll_seconds: float = 0.5):
    """End this worker process when its ``parent`` is gone (``kill -9`` of ``predict --jobs N`` left
    its workers running): a daemon thread watches the parent process id (given by the parent, as it
    may die before this runs)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _work(job):
    return predict_or_reason(_WORKER["model"], *job)


def predict_or_reason(model, src: Path, dst: Path, overlap=DEFAULT_OVERLAP, tta: bool = False,
                      vector=None, summary: bool = False) -> Scene | str:
    """What one scene wrote and found, or why it could not be read (the batch goes on)."""
    try:
        return predict_one(model, src, dst, overlap, tta, vector, summary)
    except DataError as e:
        return str(e)
    except OSError as e:  # a reader's I/O error on a damaged file (rasterio, Pillow); not a full disk
        if e.errno is not None:
            raise
        return f"{src}: cannot read image ({e})"


def output_paths(src: Path, dst: Path, vector=None) -> list[Path]:
    """The files :func:`predict_one` writes for ``src`` at ``dst`` (an output stem: its name is
    extended, never cut, so ``x.jpg.png`` and ``x.jpg`` keep apart): ids, colours, then polygons
    with ``vector``."""
    ids = dst.with_name(dst.name + (".tif" if src.suffix.lower() in TIFF_SUFFIXES else ".png"))
    out = [ids, dst.with_name(dst.name + "_color.png")]
    return out + [dst.with_name(dst.name + vector.suffix)] if vector is not None else out


def output_stem(path: Path) -> Path:
    """``path`` without its last suffix (``a/x.jpg`` -> ``a/x``), kept whole where that would
    leave no name (``..jpg``)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(stem if stem not in ("", ".", "..") else path.name)


def plan_outputs(pairs, out_dir: Path, force: bool = False, skip_existing: bool = False,
                 vector=None) -> list[tuple[Path, Path]]:
    """Every output path before anything is written: two inputs that would write one file are
    refused naming both, no output may pass through a link, and existing files need ``force``
    (with ``skip_existing``, inputs whose outputs all exist are left out instead: a resumed batch)."""
    from satseg.atomic import check_inside

    owner: dict[Path, Path] = {}
    inputs = {Path(os.path.realpath(src)) for src, _ in pairs}
    work = []
    for src, rel in pairs:
        dst = out_dir / rel
        for p in output_paths(src, dst, vector):
            if p in owner:
                raise FileExistsError(f"{owner[p]} and {src} would both write {p}; predict them into separate "
                                      "--out folders (or pass their folder: its layout is mirrored)")
            owner[p] = src
            check_inside(out_dir, p)
            if p.is_dir() and not p.is_symlink():
                raise FileExistsError(f"{p}: is a folder where an output file goes")
            if Path(os.path.realpath(p)) in inputs:
                raise FileExistsError(f"{p}: is an input image; predict into another --out")
        work.append((src, dst))
    if skip_existing:  # done inputs are left out; a killed run's partial outputs are written again
        work = [(src, dst) for src, dst in work
                if not all(output_complete(p) for p in output_paths(src, dst, vector))]
    elif not force:
        planned = {p for src, dst in work for p in output_paths(src, dst, vector)}
        clash = [p for p in owner if p in planned and (p.exists() or p.is_symlink())]
        if clash:
            raise FileExistsError(f"{clash[0]}: output exists ({len(clash)} in all); pass --force to overwrite")
    return work


def output_complete(path: Path) -> bool:
    """Whether an earlier run finished ``path``: a regular file (not a link) that reads as a whole
    image (a PNG up to its IEND chunk, a TIFF whose first page decodes); a zero-byte or cut file is
    not done."""
    from satseg.imaging import _png_complete, sniff

    if path.is_symlink() or not path.is_file() or path.stat().st_size == 0:
        return False
    if path.suffix in (".gpkg", ".geojson"):
        try:
            import pyogrio

            pyogrio.read_info(str(path))
            return True
        except Exception:  # noqa: BLE001 - unreadable: written again
            return False
    kind = sniff(path)
    try:
        if kind == "png":
            from PIL import Image

            if not _png_complete(path):
                return False
            with Image.open(path) as im:  # the pixels decode too (a damaged IDAT keeps the chunk shape)
                im.load()
            return True
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as t:
                t.pages[0].asarray()
            return True
    except Exception:  # noqa: BLE001 - any failure to decode means "not done": it is written again
        return False
    return False


class BatchError(SatsegError):
    """Some scenes of a batch could not be predicted; the others were. ``failed``: (input, reason)."""

    def __init__(self, written: list[Path], failed: list[tuple[Path, str]], total: int):
        self.written, self.failed = written, failed
        super().__init__(f"{len(failed)} of {total} images failed (the other {total - len(failed)} were written; "
                         "rerun with --skip-existing once they are fixed)")


def predict_files(model, inputs, out_dir, overlap: int | None = DEFAULT_OVERLAP, force: bool = False,
                  progress: bool = True, tta: bool = False, jobs: int = 1, skip_existing: bool = False,
                  vector=None, merged: Path | None = None,
                  on_scene: Callable[[dict], None] | None = None) -> list[Path]:
    """Predict every image under ``inputs`` into ``out_dir``; returns the files written.

    ``vector`` (:class:`satseg.geo.vectors.VectorOptions`) adds each scene's polygons, and
    ``merged`` a layer of them all (those of every input, also ones a ``skip_existing`` run left),
    footprints cut by chip borders joined (:func:`satseg.geo.vectors.merge_files`). ``on_scene``
    receives each scene's summary (:class:`Scene`, pixels and hectares included) as it is done.

    A scene that cannot be read is reported and the others are done: :class:`BatchError` at the
    end lists the failures. ``skip_existing`` leaves out scenes whose outputs all exist.

    ``model`` is an :class:`EdgeModel` or anything with ``spec`` and ``predict_patches``. Outputs
    are planned and checked first (:func:`plan_outputs`) and ``out_dir`` is held by one writer
    (:class:`satseg.atomic.OutputLock`). With ``jobs`` > 1 and a LiteRT model, images are spread
    over that many processes, each with its own interpreter and an equal share of the cores; the
    files are identical to ``jobs=1``.
    """
    from satseg.atomic import OutputLock, remove_temporaries

    out_dir = Path(out_dir)
    check_overlap(overlap, model.spec.patch_size)
    pairs = collect_inputs(inputs, out_dir)
    with OutputLock(out_dir, "satseg predict"):
        planned = plan_outputs(pairs, out_dir, force, skip_existing, vector)
        if vector is not None:  # what the polygons ask of each scene, before any is predicted
            from satseg.geo.vectors import check_placement

            vector.class_ids(list(model.spec.seg_classes.names))
            check_placement([src for src, _ in pairs], vector, merge=merged is not None)
        layers = [output_paths(src, out_dir / rel, vector)[-1] for src, rel in pairs] if merged is not None else []
        for (src, _), layer in zip(pairs, layers):
            if layer.absolute() == Path(merged).absolute():
                raise DataError(f"{src}: its polygons would go to {merged}, where --merge-vectors writes the "
                                "merged layer; rename the image or leave out --merge-vectors")
        for src, dst in planned:
            for p in output_paths(src, dst, vector):
                remove_temporaries(p)  # a killed run's; no other writer holds the folder
        jobs = max(1, min(jobs, len(planned))) if isinstance(model, EdgeModel) else 1
        work = [(src, dst, overlap, tta, vector, on_scene is not None) for src, dst in planned]
        written, failed = [], []

        def done(src, result):
            if isinstance(result, str):
                failed.append((src, result))
            else:
                written.extend(result.paths)
                if on_scene is not None:
                    on_scene(result.summary)
            bar.update(1)

        with bar_for(total=len(planned), enabled=progress, unit="img", desc="predicting") as bar:
            if jobs == 1:
                for job in work:
                    done(job[0], predict_or_reason(model, *job))
            else:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor

                threads = max(1, (os.cpu_count() or 1) // jobs)
                with ProcessPoolExecutor(jobs, mp.get_context("spawn"), _init_worker,
                                         (str(model.path), threads, os.getpid())) as pool:
                    for job, result in zip(work, pool.map(_work, work)):
                        done(job[0], result)
        if merged is not None and not failed:
            from satseg.geo.vectors import merge_files

            written.append(merge_files([p for p in layers if p.is_file()], Path(merged), vector.format))
    if failed and len(planned) == 1:
        raise DataError(failed[0][1])  # one image: its own line is the whole story
    if failed:
        raise BatchError(written, failed, len(planned))
    return written


__all__ = ["EdgeModel", "predict_tiled", "predict_ids_tiled", "predict_scene", "predict_one", "predict_files",
           "write_prediction", "blend_weights"]
