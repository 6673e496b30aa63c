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
        """The value in the layer's coordinate units (None: metres asked of a scene without a CRS)."""
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
    if not m or (m.group(2) not in (None, "px", metre)):
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


def scene_place(path: Path, shape_hw: tuple[int, int]) -> Place:
    """The place of the image at ``path``: its georeference, else its name as a web-mercator tile
    (``...-<x>-<y>-<z>``: exact in EPSG:3857), else pixel coordinates (x right, y down)."""
    import warnings

    import rasterio
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import from_bounds

    from satseg.geo.tiles import tile_from_name

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                if ds.crs is not None and not ds.transform.is_identity:
                    return Place(ds.crs.to_string(), ds.transform, "its georeference")
    except rasterio.errors.RasterioIOError:
        pass
    tile = tile_from_name(Path(path).stem)
    h, w = shape_hw
    if tile is not None:
        return Place(MERCATOR, from_bounds(*tile.mercator_bounds(), w, h), f"its name (tile {tile.x}/{tile.y}/{tile.z})")
    return Place(None, Affine.identity(), "no georeference: pixel coordinates")


def _metres_per_unit(crs: str | None) -> float | None:
    """Metres in one unit of a projected CRS (None: no CRS, or a geographic one, in degrees)."""
    if crs is None:
        return None
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    if c.is_geographic:
        return None
    return float(c.axis_info[0].unit_conversion_factor)


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


def scene_polygons(ids: np.ndarray, place: Place, names: list[str], options: VectorOptions) -> Layer:
    """Polygons of the classes asked for, traced on the whole scene's ids (4-connected, holes
    kept), smaller than ``min_area`` dropped, simplified (topology kept), in ``place``'s CRS."""
    import shapely
    from rasterio import features

    keep = options.class_ids(names)
    mpu = _metres_per_unit(place.crs)
    px = place.pixel_size
    min_area = tol = 0.0
    if options.min_area is not None:
        min_area = _in_units(options.min_area, px, mpu, True, place, "--min-area")
    if options.simplify is not None:
        tol = _in_units(options.simplify, px, mpu, False, place, "--simplify")
    mask = np.isin(ids, keep)
    geoms, cids = [], []
    for shape, value in features.shapes(ids, mask=mask, connectivity=4, transform=place.transform):
        g = shapely.geometry.shape(shape)
        if min_area and g.area < min_area:
            continue
        if tol:
            g = shapely.simplify(g, tol, preserve_topology=True)
        if not g.is_empty:
            geoms.append(g)
            cids.append(int(value))
    return Layer(place.crs, geoms, cids, [names[c] for c in cids], areas_m2(geoms, place.crs))


def _in_units(m: Measure, px: float, mpu: float | None, square: bool, place: Place, option: str) -> float:
    v = m.in_crs_units(px, mpu, square)
    if v is None:
        if place.crs is None:
            raise DataError(f"{option} {m.value:g}{m.unit}: the scene has no georeference; give it in pixels (px)")
        # a geographic CRS: metres are turned into degrees at the scene's latitude
        return _metres_in_degrees(m, place, square)
    return v


def _metres_in_degrees(m: Measure, place: Place, square: bool) -> float:
    lat = place.transform.f
    deg = 1.0 / 111_320.0 / max(np.cos(np.radians(lat)), 1e-6) ** 0.5
    return m.value * (deg ** 2 if square else deg)


def areas_m2(geoms: list, crs: str | None) -> list[float | None]:
    """Each polygon's area in square metres on the ellipsoid (geodesic: right for geographic and
    web-mercator layers alike, where a planar area would be off by 1/cos(latitude)^2); None
    without a CRS."""
    if crs is None:
        return [None] * len(geoms)
    import shapely
    from pyproj import CRS, Geod, Transformer

    c = CRS.from_user_input(crs)
    geod = Geod(ellps="WGS84") if c.geodetic_crs is None else c.geodetic_crs.get_geod()
    to_lonlat = None if c.is_geographic else Transformer.from_crs(c, c.geodetic_crs, always_xy=True)
    out = []
    for g in geoms:
        if to_lonlat is not None:
            g = shapely.transform(g, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))
        out.append(abs(geod.geometry_area_perimeter(g)[0]))
    return out


def class_hectares(counts: np.ndarray, place: Place, names: list[str]) -> dict[str, float] | None:
    """Area of each class in hectares from its pixels per row (``counts``, (h, classes): a pixel's
    area on the ellipsoid depends on its row in geographic and mercator grids); None without a CRS."""
    if place.crs is None:
        return None
    import shapely

    h = counts.shape[0]
    t = place.transform
    rows = np.arange(h, dtype=np.float64)
    col = 0.0  # a pixel's area does not depend on its column in a north-up grid
    corners = [(col, rows), (col + 1, rows), (col + 1, rows + 1), (col, rows + 1)]
    xy = [(t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f) for c, r in corners]
    polys = shapely.polygons(np.stack([np.column_stack([x, y]) for x, y in xy], axis=1))
    row_area = np.array(areas_m2(list(polys), place.crs))
    return {name: round(float(counts[:, i] @ row_area) / 10_000, 6) for i, name in enumerate(names)}


# --- writing and merging --------------------------------------------------------------------

def write_layer(path: Path, layer: Layer, fmt: str, name: str) -> Path:
    """Write ``layer`` atomically: GeoPackage in its CRS, GeoJSON reprojected to EPSG:4326."""
    import pyogrio.raw
    import shapely

    from satseg.atomic import atomic_write

    driver = FORMATS[fmt][0]
    geoms, crs = layer.geoms, layer.crs
    if fmt == "geojson" and crs is not None and crs != "EPSG:4326":
        geoms, crs = reproject(geoms, crs, "EPSG:4326"), "EPSG:4326"
    wkb = np.array([shapely.to_wkb(shapely.geometry.MultiPolygon([g]) if g.geom_type == "Polygon" else g)
                    for g in geoms], dtype=object)
    fields = ["class_id", "class", "area_m2"]
    data = [np.array(layer.class_ids, np.int32), np.array(layer.class_names, dtype=object),
            np.array([np.nan if a is None else a for a in layer.areas_m2], np.float64)]

    def write(tmp: Path):
        import warnings

        tmp.unlink(missing_ok=True)  # GDAL makes the file itself
        with warnings.catch_warnings():  # no CRS: pixel coordinates, as documented; no notice
            warnings.filterwarnings("ignore", message="'crs' was not provided")
            pyogrio.raw.write(str(tmp), wkb, data, fields, layer=name, driver=driver, geometry_type="MultiPolygon",
                              crs=crs)

    return atomic_write(path, write)


def reproject(geoms: list, src: str, dst: str) -> list:
    import shapely
    from pyproj import Transformer

    tr = Transformer.from_crs(src, dst, always_xy=True)
    return [shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))) for g in geoms]


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
