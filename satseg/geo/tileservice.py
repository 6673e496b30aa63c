"""Imagery from a slippy-map tile service (``https://.../{z}/{x}/{y}.png``): the tiles over a
bounding box, fetched politely and mosaicked into one GeoTIFF in EPSG:3857.

HOT's fAIr predicts straight from OpenAerialMap's XYZ service; so can satseg. Fetching keeps a
cache on disk (a rerun fetches nothing twice), retries server errors and timeouts with backoff,
sends a User-Agent naming satseg, holds a bounded number of requests at once, and reports every
tile it could not use (an HTTP error, a corrupt image) by its z/x/y. A missing tile leaves its
pixels without data (nodata in the mosaic), which predict marks as such.
"""

from __future__ import annotations

import math
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satseg.errors import DataError, SatsegError
from satseg.geo.tiles import ORIGIN, Tile

MAX_TILE_PIXELS = 4096 * 4096
"""A tile larger than this is not an image a tile service serves (a decompression bomb): refused."""

MAX_MOSAIC_PIXELS = 256 * 2 ** 20
"""Pixels one mosaic may hold (1 GB as RGBA), whatever the tiles' size."""

MAX_TILES = 4096
"""Tiles one request may mosaic (4096 tiles of 256 px: a 16384 x 16384 scene, 1 GB of RGBA)."""


@dataclass(frozen=True)
class TileRequest:
    """Where to fetch (``template`` with {z}, {x}, {y}), what (``bbox`` W, S, E, N in degrees at
    ``zoom``) and how (requests at once, retries, timeout in seconds)."""

    template: str
    bbox: tuple[float, float, float, float]
    zoom: int
    workers: int = 4
    retries: int = 3
    timeout: float = 20.0
    max_tiles: int = MAX_TILES

    def __post_init__(self):
        if not all(k in self.template for k in ("{z}", "{x}", "{y}")):
            raise SatsegError(f"--tiles: '{self.template}' needs {{z}}, {{x}} and {{y}} in it")
        other = re.findall(r"\{[^}]*\}", self.template.replace("{z}", "").replace("{x}", "").replace("{y}", ""))
        if other:
            raise SatsegError(f"--tiles: '{self.template}' holds {other[0]}; only {{z}}, {{x}} and {{y}} are filled in "
                              "(write a subdomain such as {s} out: a, b or c)")
        if not self.template.startswith(("http://", "https://", "file://")) or any(c.isspace() for c in self.template):
            raise SatsegError(f"--tiles: '{self.template}' is not an http(s) or file URL template (spaces must be "
                              "written %20)")
        w, s, e, n = self.bbox
        if not (-180 <= w < e <= 180 and -85.0511 <= s < n <= 85.0511):
            raise SatsegError(f"--bbox {w},{s},{e},{n}: needs west < east within -180..180 and south < north within "
                              "-85.05..85.05 (degrees, EPSG:4326)")
        if not 0 <= self.zoom <= 24:
            raise SatsegError(f"--zoom {self.zoom}: must be 0..24")

    def tiles(self) -> tuple[range, range]:
        """Columns and rows of the tiles the bbox touches, checked against ``max_tiles``."""
        w, s, e, n = self.bbox
        x0, y0 = lonlat_to_tile(w, n, self.zoom)
        x1, y1 = lonlat_to_tile(e, s, self.zoom)
        xs, ys = range(x0, x1 + 1), range(y0, y1 + 1)
        if len(xs) * len(ys) > self.max_tiles:
            raise SatsegError(f"--bbox at zoom {self.zoom} covers {len(xs) * len(ys)} tiles, more than {self.max_tiles}; "
                              "a smaller box or a lower zoom")
        return xs, ys


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The tile (x, y) holding a point at zoom ``z`` (points on the far edges go to the last tile)."""
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    r = math.radians(lat)
    y = int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not all(math.isfinite(v) for v in parts):
        raise SatsegError(f"--bbox '{text}': four numbers W,S,E,N (degrees, EPSG:4326)")
    return parts


@dataclass
class Fetched:
    """What a request gave: the mosaic's path, tiles used, and why each other tile was not."""

    path: Path
    tiles: int
    used: int
    from_cache: int
    problems: list[str] = field(default_factory=list)


def check_no_links(root: Path, path: Path) -> None:
    """No link on the way from ``root`` to ``path``: a link planted in the cache must not carry a
    write elsewhere."""
    p = root
    for part in path.relative_to(root).parts:
        p = p / part
        if p.is_symlink():
            raise SatsegError(f"{p}: is a link; satseg does not read or write the tile cache through links")


def user_agent() -> str:
    from satseg import __version__

    return f"satseg/{__version__} (+https://github.com/satseg/satseg; segmentation of aerial imagery)"


def fetch_tile(req: TileRequest, tile: Tile, cache: Path) -> tuple[bytes | None, str | None, bool]:
    """(bytes, None, from cache) of one tile, or (None, why not, False). Server errors (5xx, 429)
    and timeouts are retried with exponential backoff; a 404 or another 4xx is not. Answers that
    decode as images are cached."""
    folder = cache_folder(cache, req.template)
    path = folder / str(tile.z) / str(tile.x) / f"{tile.y}.tile"
    check_no_links(cache, path)
    if path.is_file():
        data = path.read_bytes()
        if decode_tile(data) is not None:
            return data, None, True
        path.unlink()  # a damaged cache entry (satseg wrote only whole images there): fetched again
    url = tile_url(req.template, tile)
    why = ""
    for attempt in range(req.retries + 1):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        try:
            r = urllib.request.Request(url, headers={"User-Agent": user_agent()})
            with urllib.request.urlopen(r, timeout=req.timeout) as resp:
                data = resp.read()
            break
        except urllib.error.HTTPError as e:
            why = f"HTTP {e.code}"
            if e.code < 500 and e.code != 429:
                return None, why, False
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            why = f"no answer ({getattr(e, 'reason', e)})"
        except ValueError as e:  # http.client.InvalidURL and the like: asking again will not help
            return None, f"bad URL {url!r} ({e})", False
    else:
        return None, f"{why} after {req.retries + 1} tries", False
    if decode_tile(data) is not None:  # only images are kept: a corrupt answer is asked for again next time
        from satseg.atomic import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: p.write_bytes(data))
    return data, None, False


def tile_url(template: str, tile: Tile) -> str:
    """The template with {z}, {x} and {y} filled in (replaced, never formatted: nothing else in the
    URL is evaluated)."""
    return template.replace("{z}", str(tile.z)).replace("{x}", str(tile.x)).replace("{y}", str(tile.y))


def cache_folder(cache: Path, template: str) -> Path:
    """Each service's tiles apart: a folder named by a hash of its URL template."""
    import hashlib

    return cache / hashlib.sha256(template.encode()).hexdigest()[:16]


def decode_tile(data: bytes) -> np.ndarray | None:
    """(H, W, 4) uint8 RGBA of a tile's bytes, or None when they are no image."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_TILE_PIXELS:
                return None
            return np.asarray(im.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def fetch_mosaic(req: TileRequest, out: Path, cache: Path, name: str, progress: bool = True) -> Fetched:
    """Fetch the tiles of ``req`` (through ``cache``) and write them as one GeoTIFF ``out/name.tif``
    (:func:`write_mosaic`: tiles that could not be used hold no data) in EPSG:3857 with the tiles'
    exact transform. An error when no tile of the box could be used."""
    from satseg.progress import progress as bar

    xs, ys = req.tiles()
    jobs = [Tile(x, y, req.zoom) for y in ys for x in xs]
    with ThreadPoolExecutor(max(1, req.workers)) as pool, bar(total=len(jobs), enabled=progress, unit="tile",
                                                              desc="fetching tiles") as b:
        results = []
        for t, r in zip(jobs, pool.map(lambda t: fetch_tile(req, t, cache), jobs)):
            results.append((t, r))
            b.update(1)
    size, pixels, problems, cached = None, {}, [], 0
    for t, (data, why, hit) in results:
        tag = f"tile {t.z}/{t.x}/{t.y}"
        if data is None:
            problems.append(f"{tag}: {why}")
            continue
        rgba = decode_tile(data)
        if rgba is None:
            problems.append(f"{tag}: not an image ({len(data)} bytes)")
            continue
        if size is None:
            size = rgba.shape[:2]
        if rgba.shape[:2] != size or size[0] != size[1]:
            problems.append(f"{tag}: {rgba.shape[1]}x{rgba.shape[0]} px, unlike the other tiles' {size[1]}x{size[0]}")
            continue
        pixels[t] = rgba
        cached += hit
    if not pixels:
        raise DataError(f"{req.template}: none of the {len(jobs)} tiles over --bbox could be used"
                        + (f" ({problems[0]}{', ...' if len(problems) > 1 else ''})" if problems else ""))
    p = size[0]
    if len(xs) * len(ys) * p * p > MAX_MOSAIC_PIXELS:
        raise DataError(f"{req.template}: {len(xs)} x {len(ys)} tiles of {p} px make a mosaic over "
                        f"{MAX_MOSAIC_PIXELS // 2 ** 20} Mpx; a smaller box or a lower zoom")
    mosaic = np.zeros((len(ys) * p, len(xs) * p, 4), np.uint8)
    for t, rgba in pixels.items():
        r, c = (t.y - ys.start) * p, (t.x - xs.start) * p
        mosaic[r:r + p, c:c + p] = rgba
    path = write_mosaic(mosaic, Tile(xs.start, ys.start, req.zoom), p, out / f"{name}.tif")
    return Fetched(path, len(jobs), len(pixels), cached, problems)


def write_mosaic(rgba: np.ndarray, top_left: Tile, tile_px: int, path: Path) -> Path:
    """RGBA as an RGB GeoTIFF in EPSG:3857, pixel size that of ``tile_px`` tiles at the tile's
    zoom, origin at ``top_left``'s north-west corner; written atomically. Transparent pixels (tiles
    that could not be used, and the service's own transparent ones) become nodata 0 in every band,
    which predict marks as without data; an imaged pixel black in every band is written as 1, 1, 1
    so that it is not taken for one (satseg reads every band of a TIFF as data, never as alpha)."""
    import rasterio
    from rasterio.transform import from_origin

    from satseg.atomic import atomic_write

    res = 2 * ORIGIN / 2 ** top_left.z / tile_px
    west, _, _, north = top_left.mercator_bounds()
    rgb = rgba[..., :3].copy()
    rgb[(rgb == 0).all(-1) & (rgba[..., 3] > 0)] = 1
    rgb[rgba[..., 3] == 0] = 0
    profile = {"driver": "GTiff", "height": rgb.shape[0], "width": rgb.shape[1], "count": 3, "dtype": "uint8",
               "crs": "EPSG:3857", "transform": from_origin(west, north, res, res), "compress": "deflate",
               "photometric": "rgb", "nodata": 0, "tiled": True, "blockxsize": 256, "blockysize": 256}
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(np.moveaxis(rgb, -1, 0))

    return atomic_write(path, write)
