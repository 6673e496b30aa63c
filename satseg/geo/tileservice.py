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
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satseg.errors import DataError, SatsegError
from satseg.geo.tiles import ORIGIN, Tile

MAX_TILE_PIXELS = 1024 * 1024
"""A tile larger than this (services serve 256 and 512 px, 1024 at most) is refused: a
decompression bomb, or a server whose tiles would fill memory long before the mosaic's own check."""

MAX_TILE_BYTES = 16 * 2 ** 20
"""An answer longer than this is no tile (and is not read further)."""

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
        if not all(k in self.template for k in ("{z}", "{x}")) or ("{y}" in self.template) == ("{-y}" in self.template):
            raise SatsegError(f"--tiles: '{self.template}' needs {{z}}, {{x}} and one of {{y}} (rows from the north, "
                              "XYZ) or {-y} (rows from the south, TMS) in it")
        other = re.findall(r"\{[^}]*\}", re.sub(r"\{(z|x|y|-y)\}", "", self.template))
        if other:
            raise SatsegError(f"--tiles: '{self.template}' holds {other[0]}; only {{z}}, {{x}}, {{y}} and {{-y}} are "
                              "filled in (write a subdomain such as {s} out: a, b or c)")
        if not self.template.startswith(("http://", "https://", "file://")) or any(c.isspace() for c in self.template):
            raise SatsegError(f"--tiles: '{self.template}' is not an http(s) or file URL template (spaces must be "
                              "written %20)")
        w, s, e, n = self.bbox
        if -180 <= e < w <= 180 and -85.0511 <= s < n <= 85.0511:
            raise SatsegError(f"--bbox {w},{s},{e},{n}: west is east of east; if they are swapped, write "
                              f"{e},{s},{w},{n}; if the box crosses the antimeridian, ask for its two halves, "
                              f"{w},{s},180,{n} and -180,{s},{e},{n}")
        if not (-180 <= w < e <= 180 and -85.0511 <= s < n <= 85.0511):
            raise SatsegError(f"--bbox {w},{s},{e},{n}: needs west < east within -180..180 and south < north within "
                              "-85.05..85.05 (degrees, EPSG:4326)")
        if not 0 <= self.zoom <= 24:
            raise SatsegError(f"--zoom {self.zoom}: must be 0..24")

    @property
    def name(self) -> str:
        """The mosaic's file stem: zoom, then the first and last tile column and row."""
        xs, ys = self.tiles()
        return f"tiles_{self.zoom}_{xs.start}_{ys.start}_{xs.stop - 1}_{ys.stop - 1}"

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


def user_agent() -> str:
    from satseg import __version__

    return f"satseg/{__version__} (+https://github.com/satseg/satseg; segmentation of aerial imagery)"


MAX_RETRY_AFTER = 60.0
"""Seconds satseg waits when a server's Retry-After asks it to; a longer wait ends the tile's tries."""


def retry_delay(attempt: int, retry_after: str | None = None) -> float | None:
    """Seconds to wait before try ``attempt`` (1, 2, ...): what the server's ``Retry-After`` header
    asks (seconds or an HTTP date), else exponential backoff (0.5, 1, 2, ... up to 8 s); None when
    the server asks for more than :data:`MAX_RETRY_AFTER`."""
    if retry_after:
        wait = _retry_after_seconds(retry_after.strip())
        if wait is not None:
            return max(wait, 0.0) if wait <= MAX_RETRY_AFTER else None
    return min(0.5 * 2 ** (attempt - 1), 8.0)


def _retry_after_seconds(value: str) -> float | None:
    """Seconds a Retry-After value asks for: whole seconds, or an HTTP date (always GMT, whatever
    form it takes); None when it is neither."""
    import datetime
    import email.utils

    if re.fullmatch(r"\d{1,12}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" forms: HTTP dates are GMT, never local time
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() - time.time()


class Breaker:
    """Stops asking a server that has failed ``limit`` tiles in a row (each after all its retries):
    a service that is down is reported in seconds, not after every tile's backoff."""

    def __init__(self, limit: int = 8):
        self.limit, self.failures, self.lock = limit, 0, threading.Lock()

    @property
    def open(self) -> bool:
        return self.failures >= self.limit

    def record(self, ok: bool):
        with self.lock:
            self.failures = 0 if ok else self.failures + 1


def fetch_tile(req: TileRequest, tile: Tile, cache: Path,
               breaker: Breaker | None = None) -> tuple[np.ndarray | None, str | None, bool]:
    """(RGBA pixels, None, from cache) of one tile, or (None, why not, False). Server errors (5xx,
    429) and timeouts are retried with exponential backoff, or after the wait the server's
    Retry-After asks; a 404 or another 4xx is not. Answers that decode as images are cached; a
    cache entry that does not is fetched again. With a ``breaker`` that has opened, the server is
    not asked at all."""
    from satseg.atomic import atomic_write, check_inside

    path = cache_folder(cache, req.template) / str(tile.z) / str(tile.x) / f"{tile.y}.tile"
    check_inside(cache, path)  # a link planted in the cache must not carry a read or write elsewhere
    if path.is_file():
        rgba = decode_tile(path.read_bytes())
        if rgba is not None:
            return rgba, None, True
        path.unlink()  # a damaged cache entry (satseg wrote only whole images there): fetched again
    if breaker is not None and breaker.open:
        return None, f"not asked: the server failed {breaker.limit} tiles in a row", False
    data, why, down = _download(tile_url(req.template, tile), req, breaker)
    if breaker is not None:
        breaker.record(not down)
    if data is None:
        return None, why, False
    rgba = decode_tile(data)
    if rgba is None:  # not kept: a corrupt answer is asked for again next time
        return None, f"not an image ({len(data)} bytes)", False
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_bytes(data))
    return rgba, None, False


def _download(url: str, req: TileRequest, breaker: Breaker | None = None) -> tuple[bytes | None, str, bool]:
    """(the answer's bytes, "", False) or (None, why not, whether the server seems down: it gave
    5xx, 429 or no answer to every try), with the retries :func:`fetch_tile` describes; no more
    tries once the ``breaker`` has opened."""
    import http.client

    why, wait = "", 0.0
    for attempt in range(req.retries + 1):
        if attempt:
            if breaker is not None and breaker.open:
                return None, f"{why}; not asked again: the server failed {breaker.limit} tiles in a row", True
            time.sleep(wait)
        try:
            r = urllib.request.Request(url, headers={"User-Agent": user_agent()})
            with urllib.request.urlopen(r, timeout=req.timeout) as resp:
                data = resp.read(MAX_TILE_BYTES + 1)
                if resp.length and len(data) <= MAX_TILE_BYTES:  # ended before its Content-Length
                    raise http.client.IncompleteRead(data, resp.length)
            if len(data) > MAX_TILE_BYTES:
                return None, f"an answer over {MAX_TILE_BYTES // 2 ** 20} MB, no tile", False
            return data, "", False
        except http.client.HTTPException as e:  # a broken answer (short body, bad status line): as no answer
            why, wait = f"a broken answer ({type(e).__name__})", retry_delay(attempt + 1)
        except urllib.error.HTTPError as e:
            why = f"HTTP {e.code}"
            if e.code < 500 and e.code != 429:
                return None, why, False
            wait = retry_delay(attempt + 1, e.headers.get("Retry-After") if e.headers else None)
            if wait is None:
                return None, f"{why}, and the server asks to wait {e.headers.get('Retry-After')} (more than " \
                             f"{MAX_RETRY_AFTER:.0f} s; seconds or a date): try later", True
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            why, wait = f"no answer ({getattr(e, 'reason', e)})", retry_delay(attempt + 1)
        except ValueError as e:  # http.client.InvalidURL and the like: asking again will not help
            return None, f"bad URL {url!r} ({e})", False
    return None, f"{why} after {req.retries + 1} tries", True


def tile_url(template: str, tile: Tile) -> str:
    """The template with {z}, {x} and {y} (or {-y}, TMS's row counted from the south) filled in
    (replaced, never formatted: nothing else in the URL is evaluated)."""
    return (template.replace("{z}", str(tile.z)).replace("{x}", str(tile.x)).replace("{y}", str(tile.y))
            .replace("{-y}", str(2 ** tile.z - 1 - tile.y)))


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
        breaker = Breaker()
        for t, r in zip(jobs, pool.map(lambda t: fetch_tile(req, t, cache, breaker), jobs)):
            results.append((t, r))
            b.update(1)
    size, pixels, problems, cached = None, {}, [], 0
    for t, (rgba, why, hit) in results:
        tag = f"tile {t.z}/{t.x}/{t.y}"
        if rgba is None:
            problems.append(f"{tag}: {why}")
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
