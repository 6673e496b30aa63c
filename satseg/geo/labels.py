"""Polygon labels (GeoJSON) burnt onto an image's pixel grid.

hotosm ships building footprints as ``labels.geojson`` beside its chips; a mask raster made
from them lets satseg train and score where no label raster was shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from satseg.errors import DataError


def read_polygons(path: str | Path) -> list[dict]:
    """The polygon geometries of a GeoJSON file, or of every ``*.geojson`` below a folder and
    every ``*.json`` there that is a FeatureCollection (a class file beside them is not) (EPSG:4326
    lon/lat, as GeoJSON requires)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".geojson", ".json")
                       and p.is_file() and not p.is_symlink())
        files = [f for f in found if f.suffix.lower() == ".geojson" or _looks_like_geojson(f)]
        if not files:
            raise DataError(f"{path}: no GeoJSON files (.geojson, or .json holding a FeatureCollection) in this folder")
        return [g for f in files for g in _polygons(f, _collection(f))]
    return _polygons(path, _collection(path))


def _looks_like_geojson(path: Path, head: int = 1 << 20) -> bool:
    """Whether a ``.json`` file is meant as GeoJSON: its first megabyte names a FeatureCollection or
    features (a class file or a COCO file beside the labels is left alone, unread; a GeoJSON file
    that is cut short is still taken, and then refused by name)."""
    try:
        with open(path, "rb") as f:
            start = f.read(head)
    except OSError:
        return True  # then named with its error
    return b'"FeatureCollection"' in start or b'"features"' in start


def _collection(path: Path) -> dict | str:
    """A GeoJSON FeatureCollection's document (a UTF-8 byte-order mark allowed), or why not."""

    def no_constant(name):
        raise ValueError(f"{name} is no coordinate")

    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"), parse_constant=no_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        return f"not a readable GeoJSON file ({type(e).__name__}: {str(e)[:120] or 'nested too deep'})"
    if not (isinstance(doc, dict) and isinstance(doc.get("features"), list)):
        return "not a GeoJSON FeatureCollection"
    return doc


def _polygons(path: Path, doc: dict | str) -> list[dict]:
    if isinstance(doc, str):
        raise DataError(f"{path}: {doc}")
    feats = doc["features"]
    member = doc.get("crs") if isinstance(doc.get("crs"), dict) else {}
    props = member.get("properties") if isinstance(member.get("properties"), dict) else {}
    crs = str(props.get("name") or "")
    if crs and not any(k in crs.upper() for k in ("CRS84", "4326")):
        raise DataError(f"{path}: coordinates in {crs}; GeoJSON labels must be longitude/latitude (EPSG:4326)")
    geoms = [f.get("geometry") for f in feats if isinstance(f, dict)]
    return [g for g in geoms if isinstance(g, dict) and g.get("type") in ("Polygon", "MultiPolygon")]


def burn(geoms: list[dict], bounds: tuple[float, float, float, float], shape: tuple[int, int],
         value: int = 255) -> np.ndarray:
    """A uint8 mask of ``shape`` over ``bounds`` (west, south, east, north, the geometries' CRS):
    ``value`` inside any polygon (holes kept), 0 elsewhere; a pixel is inside when its centre is."""
    from rasterio import features
    from rasterio.transform import from_bounds

    out = np.zeros(shape, np.uint8)
    if geoms:
        transform = from_bounds(*bounds, shape[1], shape[0])
        features.rasterize(((g, value) for g in geoms), out=out, transform=transform)
    return out


def image_place(path: Path):
    """Where an image lies: ``(crs, bounds, (h, w), how)`` from its own georeference, or from its
    slippy-map tile name (EPSG:4326 bounds of the tile, as fAIr's label rasters use); an error
    naming the image when it has neither."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import array_bounds

    from satseg.geo.tiles import tile_from_name
    from satseg.geo.vectors import georeference

    geo = georeference(path)
    if geo is not None:
        crs, transform, (h, w) = geo
        w_, s_, e_, n_ = array_bounds(h, w, transform)
        return crs, (w_, s_, e_, n_), (h, w), "its georeference"
    tile = tile_from_name(path.stem)
    if tile is None:
        raise DataError(f"{path}: has no georeference and its name is not a slippy-map tile (...-X-Y-Z); "
                        "polygon labels cannot be placed on it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            h, w = ds.height, ds.width
    return "EPSG:4326", tile.lonlat_bounds(), (h, w), f"its name (tile {tile.x}/{tile.y}/{tile.z})"


def polygons_in(geoms: list[dict], crs: str, memo: dict) -> list[dict]:
    """The lon/lat polygons in ``crs``, reprojected once per CRS (``memo``), not once per image."""
    if crs == "EPSG:4326":
        return geoms
    if crs not in memo:
        from rasterio.warp import transform_geom

        memo[crs] = [transform_geom("EPSG:4326", crs, g) for g in geoms]
    return memo[crs]


def rasterize_folder(images: str | Path, labels: str | Path, out: str | Path, value: int = 255,
                     force: bool = False, progress=None) -> dict:
    """Write a mask GeoTIFF (uint8, 0 / ``value``) for each image in ``images`` (recursively) from
    the polygons in ``labels``, under ``out`` with the image's relative path and stem.

    Each image is placed by its own georeference, else by its slippy-map tile name; an image that
    cannot be placed is an error naming it. Existing masks are refused unless ``force``.
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_bounds

    from satseg.atomic import atomic_write
    from satseg.imaging import sniff

    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise DataError(f"{images}: not a folder of images")
    geoms = read_polygons(labels)
    files = sorted(p for p in images.rglob("*") if p.is_file() and not p.is_symlink() and sniff(p))
    if not files:
        raise DataError(f"{images}: no images found")
    plan = []
    for p in files:
        place = image_place(p)
        target = out / p.relative_to(images).with_suffix(".tif")
        if target.exists() and not force:
            raise DataError(f"{target}: exists; pass --force to overwrite it")
        plan.append((p, target, place))
    hows, burnt, memo = set(), 0, {}
    for _image, target, (crs, bounds, (h, w), how) in (progress or (lambda x: x))(plan):
        mask = burn(polygons_in(geoms, crs, memo), bounds, (h, w), value)
        burnt += int(mask.any())
        target.parent.mkdir(parents=True, exist_ok=True)
        profile = dict(driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=CRS.from_string(crs),
                       transform=from_bounds(*bounds, w, h), compress="deflate")

        def write(tmp, mask=mask, profile=profile):
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(mask, 1)

        atomic_write(target, write)
        hows.add(how.split(" (")[0])
    return {"images": len(plan), "with_labels": burnt, "polygons": len(geoms), "placed_by": sorted(hows),
            "out": str(out)}


class PolygonScoring:
    """Every image under ``data`` scored against polygon labels burnt onto its grid (as
    :func:`rasterize_folder` burns them): the class the polygons outline against the rest, two
    classes, the outlined one scored object by object too. Pixels without data are ignored."""

    def __init__(self, data, labels, classes, class_name: str | None = None, bands: int | None = None):
        from satseg.classes import ClassSet
        from satseg.data.layouts import Sample, images_in

        data = Path(data)
        self.class_id = outlined_class(classes, class_name, labels)
        c = classes[self.class_id]
        self.classes = ClassSet.from_dict({"classes": [
            {"name": f"not {c.name}", "color": [0, 0, 0]},
            {"name": c.name, "color": list(c.color) if any(c.color) else [255, 255, 255], "objects": True}]})
        self.geoms = read_polygons(labels)
        self.bands = bands
        self.samples = [Sample(p, None, str(p.parent.relative_to(data)) or ".") for p in sorted(images_in(data))]
        # every image placed before any is predicted
        self.places = {sample.image: image_place(sample.image) for sample in self.samples}
        self.memo: dict = {}
        self.placed_by = sorted({how.split(" (")[0] for *_, how in self.places.values()})

    def load(self, sample):
        from satseg.classes import IGNORE_LABEL
        from satseg.data import LoadedImage, read_image_nodata

        image, nodata = read_image_nodata(sample.image, self.bands)
        crs, bounds, (h, w), _ = self.places[sample.image]
        mask = burn(polygons_in(self.geoms, crs, self.memo), bounds, (h, w), 1)
        ignored = 0
        if nodata is not None and nodata.any():
            mask[nodata] = IGNORE_LABEL
            ignored = int(nodata.sum())
        return LoadedImage(sample, image, mask, ignored, nodata)

    def scored(self, probs, pred):
        """The model's output as the two scored classes: the outlined class against the rest."""
        pred = (pred == self.class_id).astype(np.uint8)
        if probs is not None:
            p = probs[..., self.class_id]
            probs = np.stack([1.0 - p, p], axis=-1)
        return probs, pred


def outlined_class(classes, name: str | None, labels) -> int:
    """The id of the class the polygon labels outline: ``name``, else the model's foreground
    (a two-class model), else the one class marked ``objects``."""
    if name is not None:
        lower = {n.lower(): i for i, n in enumerate(classes.names)}
        if name.lower() not in lower:
            raise DataError(f"--labels-class: no class {name!r} (classes: {', '.join(classes.names)})")
        return lower[name.lower()]
    if classes.foreground is not None:
        return classes.foreground
    marked = [c.id for c in classes if c.objects]
    if len(marked) == 1:
        return marked[0]
    raise DataError(f"{labels}: which class do these polygons outline? pass --labels-class NAME "
                    f"(classes: {', '.join(classes.names)})")
