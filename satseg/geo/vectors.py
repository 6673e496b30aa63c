"""From class ids to a map: polygons of each class, with their area, in the scene's CRS.

Mappers count buildings and open layers in QGIS or JOSM; a class-id raster is where they begin,
not what they want. :func:`scene_polygons` traces the ids of a whole scene (after its windows are
stitched, so a footprint that crosses a window seam is one polygon, the same as when the scene is
predicted whole), keeps holes, drops what is smaller than ``min_area`` and simplifies by a tolerance
in pixels or metres. :func:`write_layer` writes GeoPackage (the scene's CRS) or GeoJSON (EPSG:4326,
as RFC 7946 asks) atomically; :func:`merge_layers` joins the layers of chips that tile a region,
so a footprint cut by a chip border becomes one polygon again.

Needs the ``[geo]`` extra (rasterio, shapely 2, pyogrio, pyproj); :func:`require_geo` says so in
one line where they are missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satseg.errors import DataError, SatsegError
from satseg.memory import release_freed_memory

FORMATS = {"gpkg": ("GPKG", ".gpkg"), "geojson": ("GeoJSON", ".geojson")}
GEO_PACKAGES = ("rasterio", "shapely", "pyogrio", "pyproj")
MERCATOR = "EPSG:3857"


def missing_geo(modules=GEO_PACKAGES) -> list[str]:
    """Those of ``modules`` that cannot be imported here (the ``[geo]`` extra not installed)."""
    import importlib.util

    def found(m):
        try:
            return importlib.util.find_spec(m) is not None
        except ImportError:
            return False

    return [m for m in modules if not found(m)]


def require_geo(what: str) -> None:
    """One line naming what to install when the ``[geo]`` extra is missing."""
    missing = missing_geo()
    if missing:
        raise SatsegError(f"{what} needs {', '.join(missing)}: pip install 'satseg-zoo[geo]'")


# --- options --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """A length or an area with its unit: ``px`` (pixels, or square pixels) or metres (``m``, ``m2``)."""

    value: float
    unit: str

    def in_crs_units(self, pixel_size: float, metres_per_unit: float | None, square: bool) -> float | None:
        """The value in the layer's coordinate units, given the ground metres in one of them
        (None: metres asked of a scene without a CRS)."""
        if self.unit == "px":
            return self.value * (pixel_size ** 2 if square else pixel_size)
        if metres_per_unit is None:
            return None
        return self.value / (metres_per_unit ** 2 if square else metres_per_unit)


_MEASURE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|m2|m)?\s*$")


def parse_measure(text: str, square: bool, option: str) -> Measure:
    """``"4"`` / ``"4px"`` (pixels) or ``"0.5m"`` (``"20m2"`` for an area) -> :class:`Measure`."""
    metre = "m2" if square else "m"
    m = _MEASURE.match(str(text))
    if not m or (m.group(2) not in (None, "px", metre)) or not np.isfinite(float(m.group(1))):
        raise SatsegError(f"{option}: '{text}' is not a number with an optional unit (px or {metre})")
    return Measure(float(m.group(1)), m.group(2) or "px")


@dataclass(frozen=True)
class VectorOptions:
    """What ``predict --vector`` writes: the format, which classes (names; None: all), the
    smallest polygon kept and the simplification tolerance."""

    format: str = "gpkg"
    classes: tuple[str, ...] | None = None
    min_area: Measure | None = None
    simplify: Measure | None = None

    def __post_init__(self):
        if self.format not in FORMATS:
            raise SatsegError(f"--vector: unknown format '{self.format}'; valid: {', '.join(FORMATS)}")

    @property
    def suffix(self) -> str:
        return FORMATS[self.format][1]

    def class_ids(self, names: list[str]) -> list[int]:
        """The ids of the classes asked for, each checked against the model's names."""
        if self.classes is None:
            return list(range(len(names)))
        lower = {n.lower(): i for i, n in enumerate(names)}
        unknown = [c for c in self.classes if c.lower() not in lower]
        if unknown:
            raise SatsegError(f"--vector-classes: no class {', '.join(map(repr, unknown))} in this model "
                              f"(its classes: {', '.join(names)})")
        return sorted({lower[c.lower()] for c in self.classes})


# --- where a scene lies ---------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    """A scene's pixel grid on the Earth: CRS (None: pixel coordinates), affine transform, and how
    it was found (its own georeference or its slippy-map tile name)."""

    crs: str | None
    transform: object  # affine.Affine
    how: str

    @property
    def pixel_size(self) -> float:
        t = self.transform
        return float(np.sqrt(abs(t.a * t.e - t.b * t.d)))


def georeference(path: Path):
    """``(crs, transform, (h, w))`` of an image's own georeference, or None: no CRS, an identity
    transform, or a CRS pyproj cannot read (a local engineering CRS, LOCAL_CS)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                if ds.crs is None or ds.transform.is_identity:
                    return None
                crs, transform, hw = ds.crs.to_string(), ds.transform, (ds.height, ds.width)
    except rasterio.errors.RasterioIOError:
        return None
    return (crs, transform, hw) if readable_crs(crs) else None


def scene_place(path: Path, shape_hw: tuple[int, int]) -> Place:
    """The place of the image at ``path``: its georeference, else its name as a web-mercator tile
    (``...-<x>-<y>-<z>``: exact in EPSG:3857), else pixel coordinates (x right, y down)."""
    from affine import Affine

    found = _placed_on_earth(Path(path), lambda: shape_hw)
    return found[0] if found is not None else Place(None, Affine.identity(), "no georeference: pixel coordinates")


def _placed_on_earth(path: Path, shape_hw) -> tuple[Place, tuple[int, int]] | None:
    """(place, (h, w)) of a scene placed by its georeference or its tile name, or None; the file's
    georeference is read once, and ``shape_hw()`` asked only for a tile-named scene."""
    from rasterio.transform import from_bounds

    from satseg.geo.tiles import tile_from_name

    geo = georeference(path)
    if geo is not None:
        return Place(geo[0], geo[1], "its georeference"), geo[2]
    tile = tile_from_name(path.stem)
    if tile is None:
        return None
    h, w = shape_hw()
    place = Place(MERCATOR, from_bounds(*tile.mercator_bounds(), w, h), f"its name (tile {tile.x}/{tile.y}/{tile.z})")
    return place, (h, w)


def check_placement(sources: list, options: VectorOptions, merge: bool = False) -> None:
    """Before any work: what --vector asks of every scene can be done. Metres and GeoJSON (WGS84
    degrees by definition) need a scene placed on the Earth; a merged layer needs every scene
    placed, or none."""
    metres = [m for m in (options.min_area, options.simplify) if m is not None and m.unit != "px"]
    placed, unplaced = [], []
    for src in map(Path, sources):
        if not metres:
            (placed if is_placed(src) else unplaced).append(src)
            continue
        found = _placed_on_earth(src, lambda src=src: _image_hw(src))
        if found is None:
            unplaced.append(src)
            continue
        placed.append(src)
        try:  # a georeference that puts the scene off the Earth has no metres either
            ground_scale(*found)
        except DataError as e:
            raise DataError(f"{src}: {e}") from None
    if not unplaced:
        return
    if metres:
        raise DataError(f"{unplaced[0]}: has no georeference and no slippy-map tile name, so "
                        f"{metres[0].value:g}{metres[0].unit} cannot be measured on it; give it in pixels (px)")
    if options.format == "geojson":
        raise DataError(f"{unplaced[0]}: has no georeference and no slippy-map tile name; GeoJSON is in WGS84 "
                        "degrees, so its polygons would be nowhere (use --vector gpkg: pixel coordinates)")
    if merge and placed:
        raise DataError(f"--merge-vectors: {placed[0]} is placed on the Earth and {unplaced[0]} is not; one layer "
                        "cannot hold both (predict them apart)")


def _image_hw(path: Path) -> tuple[int, int]:
    """An image's (height, width), from its header."""
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


def readable_crs(crs: str) -> bool:
    """Whether pyproj understands ``crs`` (a local engineering CRS, LOCAL_CS, it does not)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        c = CRS.from_user_input(crs)
    except CRSError:
        return False
    return c.geodetic_crs is not None


def is_placed(path: Path) -> bool:
    """Whether a scene has a georeference or a slippy-map tile name (as :func:`scene_place` finds)."""
    from satseg.geo.tiles import tile_from_name

    return tile_from_name(Path(path).stem) is not None or georeference(path) is not None


# --- polygons -------------------------------------------------------------------------------

@dataclass
class Layer:
    """Polygons of one scene (or of merged scenes) in ``crs``: geometry, class id and name, area."""

    crs: str | None
    geoms: list
    class_ids: list[int]
    class_names: list[str]
    areas_m2: list[float | None]

    def __len__(self):
        return len(self.geoms)


STRIP_ROWS = 256
"""Rows traced at once: a scene is traced strip by strip, and a region cut by strip edges is
joined once it is whole, so memory stays bounded by a strip and the regions that cross it,
whatever the scene's size."""


def scene_polygons(ids: np.ndarray, place: Place, names: list[str], options: VectorOptions,
                   strip_rows: int = STRIP_ROWS) -> Layer:
    """Every polygon of :func:`trace` in one layer (for small scenes, tests and merges)."""
    batches = list(trace(ids, place, names, options, strip_rows))
    return Layer(place.crs, [g for b in batches for g in b.geoms], [c for b in batches for c in b.class_ids],
                 [n for b in batches for n in b.class_names], [a for b in batches for a in b.areas_m2])


def trace(ids: np.ndarray, place: Place, names: list[str], options: VectorOptions,
          strip_rows: int = STRIP_ROWS):
    """Polygons of the classes asked for, in batches (:class:`Layer`): 4-connected regions of one
    class, holes kept, in ``place``'s CRS, with collinear vertices removed (one outline per
    region, however the scene was cut); then those smaller than ``min_area`` dropped and the rest
    simplified (topology kept).

    The ids are labelled and traced ``strip_rows`` rows at a time, in pixel coordinates (whole
    numbers: pieces of a region meet exactly). Regions that continue across a strip edge (the same
    class on both sides of it) are linked; a region is joined from its pieces and leaves this
    function when no piece of it reaches the last strip's lower edge."""
    keep = options.class_ids(names)
    min_area, tol = _thresholds(place, options, ids.shape)
    h = ids.shape[0]
    regions = _Regions()
    below = None  # the last strip's lowest row of region labels
    for y0 in range(0, h, strip_rows):
        y1 = min(y0 + strip_rows, h)
        labels, classes = _label_strip(ids[y0:y1], keep, regions.next_label)
        regions.add_pieces(_trace_labels(labels, y0), classes)
        if below is not None:
            regions.link(below, labels[0])
        below = labels[-1]
        open_ = set(np.unique(below[below > 0]).tolist()) if y1 < h else set()
        done = [(_outline(pieces, place.transform, strip_rows), cid) for pieces, cid in regions.finished(open_)]
        release_freed_memory()  # what joining a large region freed, before its polygon is written
        batch = _finish(done, min_area, tol)
        if batch:
            geoms = [g for g, _ in batch]
            yield Layer(place.crs, geoms, [c for _, c in batch], [names[c] for _, c in batch],
                        areas_m2(geoms, place.crs))


class _Regions:
    """Pieces of regions (one per strip they cross), linked across strip edges (union-find)."""

    def __init__(self):
        self.parent: dict[int, int] = {}
        self.pieces: dict[int, list] = {}  # root -> polygons, in pixel coordinates
        self.cls: dict[int, int] = {}
        self.next_label = 1

    def add_pieces(self, pieces: list[tuple[object, int]], classes: dict[int, int]):
        for g, label in pieces:
            if label not in self.parent:
                self.parent[label] = label
                self.cls[label] = classes[label]
            self.pieces.setdefault(label, []).append(g)
        self.next_label = max(self.next_label, max(classes, default=0) + 1)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:  # path compression
            self.parent[a], a = root, self.parent[a]
        return root

    def link(self, above: np.ndarray, below: np.ndarray):
        """Regions whose pixels touch across the edge between two strips, of one class, are one."""
        both = (above > 0) & (below > 0)
        pairs = np.unique(np.stack([above[both], below[both]], 1), axis=0) if both.any() else []
        for a, b in pairs:
            a, b = int(a), int(b)
            if self.cls[a] != self.cls[b]:
                continue
            ra, rb = self.find(a), self.find(b)
            if ra != rb:
                self.parent[rb] = ra
                self.pieces[ra] += self.pieces.pop(rb)

    def finished(self, open_labels: set[int]):
        """(pieces, class) of every region none of whose labels is in ``open_labels`` (the lowest
        row's), removed from those held."""
        still = {self.find(a) for a in open_labels}
        done = {r for r in self.pieces if r not in still}
        out = [(self.pieces.pop(r), self.cls[r]) for r in done]
        # labels of finished regions are never seen again: drop them from the forest
        for label in [k for k in self.parent if self.find(k) in done]:
            del self.parent[label]
            del self.cls[label]
        return out


def _label_strip(ids: np.ndarray, keep: list[int], first: int) -> tuple[np.ndarray, dict[int, int]]:
    """4-connected regions of each kept class in a strip, labelled ``first``, ``first + 1``, ...
    (0: a class not kept); and each label's class."""
    from scipy import ndimage

    labels = np.zeros(ids.shape, np.int32)
    classes, nxt = {}, first
    for c in keep:
        lab, n = ndimage.label(ids == c)
        if n:
            sel = lab > 0
            labels[sel] = lab[sel] + (nxt - 1)
            classes.update({nxt + i: c for i in range(n)})
            nxt += n
    return labels, classes


def _trace_labels(labels: np.ndarray, y0: int) -> list[tuple[list[np.ndarray], int]]:
    """(piece, label) of each labelled region of a strip starting at row ``y0``: a piece is its
    rings in whole-pixel coordinates as int32 arrays (8 bytes a vertex where a polygon takes 16 and
    more), the outer ring first, oriented so that the region lies on their left."""
    import shapely
    from affine import Affine
    from rasterio import features

    out = []
    for shape, value in features.shapes(labels, mask=labels > 0, connectivity=4, transform=Affine.translation(0, y0)):
        g = shapely.orient_polygons(shapely.geometry.shape(shape))
        out.append(([shapely.get_coordinates(g.exterior).astype(np.int32)]
                    + [shapely.get_coordinates(h).astype(np.int32) for h in g.interiors], int(value)))
    return out


def _outline(pieces: list, transform, strip_rows: int):
    """A region's polygon in the scene's CRS from its pieces (joined along the strip edges they
    share; collinear vertices removed)."""
    import shapely

    if len(pieces) == 1:
        rings = pieces[0]
    else:
        rings = _stitch(pieces, strip_rows)
        if rings is None:  # a shape the stitcher does not take: GEOS's union of the noded pieces
            g = shapely.coverage_union_all([shapely.Polygon(_noded(p[0], strip_rows),
                                                            [_noded(r, strip_rows) for r in p[1:]]) for p in pieces])
            rings = [shapely.get_coordinates(g.exterior)] + [shapely.get_coordinates(h) for h in g.interiors]
    return shapely.Polygon(*_placed([_drop_collinear(r) for r in rings], transform))


def _placed(rings: list[np.ndarray], t) -> tuple[np.ndarray, list[np.ndarray]]:
    """Whole-pixel rings in the CRS of the affine transform ``t``, the outer ring apart from the
    holes; built in place (a ring of millions of vertices is copied once, not four times)."""
    out = []
    while rings:
        r = rings.pop(0)
        xy = np.empty(r.shape, np.float64)
        for j, (a, b, c) in enumerate(((t.a, t.b, t.c), (t.d, t.e, t.f))):
            col = xy[:, j]
            np.multiply(r[:, 0], a, out=col)
            if b:
                col += b * r[:, 1]
            col += c
        out.append(xy)
    return out[0], out[1:]


def _stitch(pieces: list, strip_rows: int) -> list[np.ndarray] | None:
    """The rings (outer first) of one polygon from the pieces of a 4-connected region that meet
    only on strip edges, in numpy: with every ring oriented (the region on its left) and the strip
    edges noded to single pixels, the edges two pieces share run both ways and cancel; the rest are
    linked end to start into rings (where the outline touches itself at a corner, the next edge is
    the first met turning counter-clockwise from the way back, which keeps the rings simple, as
    GDAL traces them). One counter-clockwise ring is the outer one, the clockwise ones its holes.
    Memory is a few arrays per edge, where a GEOS union of a region with millions of vertices
    takes a gigabyte. None when the result is not one outer ring (the caller unions with GEOS)."""
    rings = [_noded(r, strip_rows) for piece in pieces for r in piece]
    lo = np.min([r.min(0) for r in rings], axis=0).astype(np.int64)
    hi = np.max([r.max(0) for r in rings], axis=0) - lo
    if (hi[0] + 1) * (hi[1] + 1) >= 2 ** 31:
        return None
    width = int(hi[0]) + 1
    # each vertex as one whole number (int32 halves the memory of a region with millions of edges)
    ps = np.concatenate([((r[:-1, 1] - lo[1]) * width + r[:-1, 0] - lo[0]) for r in rings]).astype(np.int32)
    pe = np.concatenate([((r[1:, 1] - lo[1]) * width + r[1:, 0] - lo[0]) for r in rings]).astype(np.int32)
    del rings
    # an edge run both ways is shared by two pieces, not outline: only strip edges can be
    row = ps // width
    seam = np.flatnonzero((row == pe // width) & ((row + lo[1]) % strip_rows == 0))
    shared = seam[np.isin(ps[seam].astype(np.int64) << 32 | pe[seam], pe[seam].astype(np.int64) << 32 | ps[seam])]
    del row, seam
    if len(shared):
        keep = np.ones(len(ps), bool)
        keep[shared] = False
        ps, pe = ps[keep], pe[keep]
        del keep
    dx, dy = np.sign(pe % width - ps % width), np.sign(pe // width - ps // width)
    # east 0, north 1, west 2, south 3: counter-clockwise
    direction = np.select([dx == 1, dy == 1, dx == -1], [0, 1, 2], 3).astype(np.int8)
    del dx, dy
    order = np.argsort(ps, kind="stable").astype(np.int32)
    sorted_ps = ps[order]
    first = np.searchsorted(sorted_ps, pe, "left").astype(np.int32)
    count = (np.searchsorted(sorted_ps, pe, "right") - first).astype(np.int8)
    del sorted_ps
    if (count < 1).any() or (count > 2).any():
        return None
    nxt = order[np.minimum(first, len(order) - 1)]
    for i in np.flatnonzero(count == 2):  # the outline touches itself here
        back = (direction[i] + 2) % 4
        options = order[first[i]:first[i] + 2]
        turns = (direction[options] - back) % 4  # counter-clockwise steps from the way back
        nxt[i] = options[np.argmin(turns)]
    del order, first, count, direction
    walk, bounds = _cycles(nxt)
    del nxt
    shell, holes = None, []
    for a, b in bounds:
        k = ps[walk[a:b]]
        ring = np.empty((b - a + 1, 2), np.int32)
        ring[:-1, 0], ring[:-1, 1] = k % width + lo[0], k // width + lo[1]
        ring[-1] = ring[0]
        if _twice_area(ring) > 0:
            if shell is not None:
                return None
            shell = ring
        else:
            holes.append(ring)
    return None if shell is None else [shell] + holes


def _twice_area(ring: np.ndarray) -> float:
    """Twice the signed area of a closed ring (shoelace; positive: counter-clockwise)."""
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _cycles(nxt: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The cycles of a permutation: its elements cycle after cycle, and each cycle's slice."""
    n = len(nxt)
    seen = np.zeros(n, bool)
    walk = np.empty(n, np.int32)
    bounds, pos = [], 0
    for s in range(n):
        if seen[s]:
            continue
        a, i = pos, s
        while not seen[i]:
            seen[i] = True
            walk[pos] = i
            pos += 1
            i = nxt[i]
        bounds.append((a, pos))
    return walk, bounds


def _noded(ring: np.ndarray, strip_rows: int) -> np.ndarray:
    """A ring (whole-pixel coordinates) with a vertex at every whole pixel along its edges that
    lie on a strip edge (rows that are multiples of ``strip_rows``), so that two pieces meeting
    there share every vertex."""
    a, b = ring[:-1], ring[1:]
    dx = (b[:, 0] - a[:, 0]).astype(np.int64)
    seam = (a[:, 1] == b[:, 1]) & (a[:, 1] % strip_rows == 0)
    extra = np.where(seam, np.maximum(np.abs(dx) - 1, 0), 0)
    if not extra.any():
        return ring
    seg = np.repeat(np.arange(len(a)), 1 + extra)
    starts = np.concatenate([[0], np.cumsum(1 + extra)[:-1]])
    k = np.arange(len(seg)) - starts[seg]  # 0: the segment's own first vertex; then one per pixel
    xs = a[seg, 0] + np.sign(dx[seg]) * k
    return np.concatenate([np.column_stack([xs, a[seg, 1]]).astype(ring.dtype), ring[-1:]])


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """A closed ring (whole-pixel coordinates, exact) without the vertices that lie on a straight
    line between their neighbours: one outline per region, however it was cut and joined."""
    out_ = np.diff(ring, axis=0)  # edge i leaves vertex i (the ring is closed: its last vertex is its first)
    in_ = np.roll(out_, 1, axis=0)  # the edge that reaches vertex i
    turn = in_[:, 0].astype(np.int64) * out_[:, 1] - in_[:, 1].astype(np.int64) * out_[:, 0]
    del in_, out_
    keep = ring[:-1][turn != 0]
    return np.concatenate([keep, keep[:1]])


def _finish(done: list, min_area: float, tol: float) -> list:
    import shapely

    out = []
    for g, cid in done:
        if min_area and g.area < min_area:
            continue
        if tol:
            g = shapely.simplify(g, tol, preserve_topology=True)
        if not g.is_empty:
            out.append((g, cid))
    return out


def _thresholds(place: Place, options: VectorOptions, shape_hw: tuple[int, int]) -> tuple[float, float]:
    """--min-area and --simplify in the layer's units. Metres are ground metres at the scene's
    centre (a web-mercator metre is 1/cos(latitude) of one; a degree is no metre at all)."""
    px = place.pixel_size
    scale = None
    if any(m is not None and m.unit != "px" for m in (options.min_area, options.simplify)):
        if place.crs is None:
            m = options.min_area if options.min_area is not None and options.min_area.unit != "px" else options.simplify
            raise DataError(f"{'--min-area' if m is options.min_area else '--simplify'} {m.value:g}{m.unit}: the "
                            "scene has no georeference; give it in pixels (px)")
        scale = ground_scale(place, shape_hw)
    min_area = options.min_area.in_crs_units(px, scale, True) if options.min_area is not None else 0.0
    tol = options.simplify.in_crs_units(px, scale, False) if options.simplify is not None else 0.0
    return min_area, tol


def ground_scale(place: Place, shape_hw: tuple[int, int]) -> float:
    """Ground metres in one unit of the scene's CRS, at its centre: from the geodesic area of the
    centre pixel against its area in CRS units."""
    h, w = shape_hw
    true = pixel_areas_m2(place, w // 2, np.array([h // 2], np.float64))[0]
    if true is None:
        raise DataError(f"the scene's georeference ({place.crs}) puts its centre off the Earth: metres are unknown "
                        "there; give --min-area and --simplify in pixels (px)")
    t = place.transform
    return float(np.sqrt(true / abs(t.a * t.e - t.b * t.d))) if true else 1.0


def pixel_areas_m2(place: Place, col: int, rows: np.ndarray) -> np.ndarray:
    """The geodesic area of the pixel at column ``col`` of each of ``rows``, in square metres."""
    import shapely

    t = place.transform
    corners = [(col, rows), (col + 1, rows), (col + 1, rows + 1), (col, rows + 1)]
    xy = [(t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f) for c, r in corners]
    polys = shapely.polygons(np.stack([np.column_stack([x, y]) for x, y in xy], axis=1))
    return np.array(areas_m2(list(polys), place.crs))


def areas_m2(geoms: list, crs: str | None) -> list[float | None]:
    """Each polygon's area in square metres on the ellipsoid (geodesic: right for geographic and
    web-mercator layers alike, where a planar area would be off by 1/cos(latitude)^2); None
    without a CRS."""
    if crs is None:
        return [None] * len(geoms)
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    lonlat = geoms if c.is_geographic else reproject(geoms, c, c.geodetic_crs)
    geod = c.geodetic_crs.get_geod()
    areas = (abs(geod.geometry_area_perimeter(g)[0]) for g in lonlat)
    return [a if np.isfinite(a) else None for a in areas]  # off the Earth (a latitude past 90): unknown


def class_hectares(counts: np.ndarray, place: Place, names: list[str]) -> dict[str, float] | None:
    """Area of each class in hectares from its pixels per row (``counts``, (h, classes): a pixel's
    area on the ellipsoid depends on its row in geographic and mercator grids, not on its column in
    a north-up one); None without a CRS, or where the georeference puts pixels off the Earth."""
    if place.crs is None:
        return None
    row_area = pixel_areas_m2(place, 0, np.arange(counts.shape[0], dtype=np.float64))
    if any(a is None for a in row_area):
        return None
    row_area = row_area.astype(np.float64)
    return {name: round(float(counts[:, i] @ row_area) / 10_000, 6) for i, name in enumerate(names)}


# --- writing and merging --------------------------------------------------------------------

def write_layer(path: Path, layer: Layer, fmt: str, name: str) -> Path:
    """Write ``layer`` atomically: GeoPackage in its CRS, GeoJSON reprojected to EPSG:4326."""
    return write_layers(path, [layer], fmt, name, layer.crs)[0]


def write_layers(path: Path, batches, fmt: str, name: str, crs: str | None) -> tuple[Path, int]:
    """Write batches of polygons (:class:`Layer`) as one layer, batch by batch (a scene's polygons
    are never all in memory), atomically: GeoPackage in ``crs``, GeoJSON reprojected to EPSG:4326.
    Returns the path and the number of polygons written."""
    import warnings

    import pyogrio.raw
    import shapely

    from satseg.atomic import atomic_write

    driver = FORMATS[fmt][0]
    out_crs = "EPSG:4326" if fmt == "geojson" and crs is not None else crs
    fields = ["class_id", "class", "area_m2"]
    count = [0]

    def write(tmp: Path):
        tmp.unlink(missing_ok=True)  # GDAL makes the file itself
        first = True
        for layer in _at_least_one(batches, Layer(crs, [], [], [], [])):
            geoms = layer.geoms if out_crs == crs else reproject(layer.geoms, crs, out_crs)
            wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
            data = [np.array(layer.class_ids, np.int32), np.array(layer.class_names, dtype=object),
                    np.array([np.nan if a is None else a for a in layer.areas_m2], np.float64)]
            with warnings.catch_warnings():  # no CRS: pixel coordinates, as documented; no notice
                warnings.filterwarnings("ignore", message="'crs' was not provided")
                pyogrio.raw.write(str(tmp), wkb, data, fields, layer=name, driver=driver,
                                  geometry_type="MultiPolygon", promote_to_multi=True, crs=out_crs,
                                  append=not first)
            first = False
            count[0] += len(geoms)
            del wkb, data, geoms
            release_freed_memory()

    return atomic_write(path, write), count[0]


def _at_least_one(items, empty):
    """``items`` as they come, or ``empty`` alone when there are none (an empty layer is written)."""
    seen = False
    for item in items:
        seen = True
        yield item
    if not seen:
        yield empty


def reproject(geoms: list, src, dst) -> list:
    """``geoms`` from CRS ``src`` to ``dst`` (x, y order: longitude first)."""
    import shapely
    from pyproj import Transformer

    tr = Transformer.from_crs(src, dst, always_xy=True)
    return [shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))) for g in geoms]


def is_satseg_layer(path: Path) -> bool:
    """Whether ``path`` is a polygon layer as :func:`write_layers` writes it: one layer named
    after the file, its fields class_id, class and area_m2 (what a rerun may replace)."""
    import pyogrio

    path = Path(path)
    driver = next((d for d, suffix in FORMATS.values() if suffix == path.suffix), None)
    try:
        layers = pyogrio.list_layers(str(path))
        info = pyogrio.read_info(str(path))
    except Exception:  # noqa: BLE001 - whatever GDAL cannot read is not satseg's layer
        return False
    fields = list(info["fields"])
    empty_geojson = driver == "GeoJSON" and info["features"] == 0 and not fields  # GeoJSON keeps no fields then
    return (info.get("driver") == driver and len(layers) == 1 and layers[0][0] == path.stem
            and (fields == ["class_id", "class", "area_m2"] or empty_geojson))


def read_layer(path: Path) -> Layer:
    """A layer :func:`write_layer` wrote (or any polygon layer with those fields)."""
    import pyogrio.raw
    import shapely

    meta, _, wkb, data = pyogrio.raw.read(str(path))
    fields = list(meta["fields"])
    col = {f: data[i] for i, f in enumerate(fields)}
    geoms = [shapely.from_wkb(g) for g in wkb]
    n = len(geoms)
    return Layer(meta["crs"], geoms, [int(v) for v in col.get("class_id", [0] * n)],
                 [str(v) for v in col.get("class", [""] * n)],
                 [None if v is None or np.isnan(v) else float(v) for v in col.get("area_m2", [np.nan] * n)])


def merge_layers(layers: list[Layer], grid: float | None = None) -> Layer:
    """One layer from the layers of scenes that tile a region: polygons of one class that touch
    across a scene border become one polygon; all in the first layer's CRS (others reprojected).
    ``grid`` (CRS units) snaps coordinates so edges shared by neighbouring chips coincide."""
    import shapely

    if not layers:
        raise DataError("no polygon layers to merge")
    crs = layers[0].crs
    by_class: dict[tuple[int, str], list] = {}
    for layer in layers:
        if (layer.crs is None) != (crs is None):
            raise DataError("cannot merge scenes with a georeference and scenes without one")
        geoms = layer.geoms if layer.crs == crs else reproject(layer.geoms, layer.crs, crs)
        for g, cid, name in zip(geoms, layer.class_ids, layer.class_names):
            by_class.setdefault((cid, name), []).append(g)
    geoms, cids, names = [], [], []
    for (cid, name), gs in sorted(by_class.items()):
        if grid:
            gs = [shapely.set_precision(g, grid) for g in gs]
        merged = shapely.union_all(gs)
        parts = list(getattr(merged, "geoms", [merged]))
        for p in parts:
            if p.geom_type == "Polygon" and not p.is_empty:
                geoms.append(p)
                cids.append(cid)
                names.append(name)
    return Layer(crs, geoms, cids, names, areas_m2(geoms, crs))


def merge_files(paths: list[Path], out: Path, fmt: str) -> Path:
    """:func:`merge_layers` of the layers in ``paths``, written to ``out``. Coordinates are snapped
    to a thousandth of the finest pixel, so chips' shared edges coincide exactly."""
    layers = [read_layer(p) for p in paths]
    grid = None
    sizes = [_pixel_size_hint(layer) for layer in layers if len(layer)]
    if sizes:
        grid = min(sizes) / 1000
    return write_layer(out, merge_layers(layers, grid), fmt, out.stem)


def _pixel_size_hint(layer: Layer) -> float:
    """The side of the smallest step between two vertices: one pixel, for traced (unsimplified) outlines."""
    import shapely

    coords = np.concatenate([shapely.get_coordinates(g) for g in layer.geoms])
    steps = np.abs(np.diff(coords, axis=0)).max(axis=1)
    steps = steps[steps > 0]
    return float(steps.min()) if len(steps) else 1.0
