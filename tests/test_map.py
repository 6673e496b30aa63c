"""From pixels to a map: polygons from predict (known answers, seams, merged chips), areas, and
object scores against masks and polygon labels."""

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("shapely")
pytest.importorskip("pyogrio")

import shapely  # noqa: E402

from satseg.classes import ModelSpec  # noqa: E402
from satseg.data.catalog import data_root  # noqa: E402
from satseg.geo.tiles import Tile  # noqa: E402
from satseg.geo.vectors import (  # noqa: E402
    Measure,
    VectorOptions,
    merge_layers,
    parse_measure,
    read_layer,
    scene_place,
    scene_polygons,
)
from satseg.metrics import ObjectCounts  # noqa: E402

from .test_faults import assert_one_line_error, satseg  # noqa: E402

HOTOSM = data_root() / "hotosm-buildings"
TWO = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "building", "color": [255, 0, 0]}]


def square_with_hole() -> np.ndarray:
    ids = np.zeros((40, 60), np.uint8)
    ids[5:25, 5:25] = 1
    ids[10:15, 10:15] = 0  # a courtyard
    ids[30:35, 40:50] = 1  # a second building, 50 px
    return ids


def test_polygons_of_a_square_with_a_hole_and_a_small_building_in_pixels(tmp_path):
    ids = square_with_hole()
    place = scene_place(tmp_path / "plain.png", ids.shape)
    assert place.crs is None
    layer = scene_polygons(ids, place, ["background", "building"], VectorOptions("gpkg", ("building",)))
    assert sorted(g.area for g in layer.geoms) == [50, 375]  # 400 - 25, the hole kept
    big = max(layer.geoms, key=lambda g: g.area)
    assert len(big.interiors) == 1 and layer.class_names == ["building", "building"]
    assert layer.areas_m2 == [None, None]  # no CRS, no metres
    small_dropped = scene_polygons(ids, place, ["background", "building"],
                                   VectorOptions("gpkg", ("building",), min_area=Measure(51, "px")))
    assert [g.area for g in small_dropped.geoms] == [375]


def test_a_named_chip_is_placed_in_web_mercator_and_its_areas_are_geodesic(tmp_path):
    t = Tile(1772464, 966380, 21)  # hotosm folder 4, about 14 degrees north
    ids = np.zeros((256, 256), np.uint8)
    ids[:100, :100] = 1
    place = scene_place(tmp_path / "OAM-1772464-966380-21.png", ids.shape)
    assert place.crs == "EPSG:3857" and "tile 1772464/966380/21" in place.how
    layer = scene_polygons(ids, place, ["background", "building"], VectorOptions("gpkg", ("building",)))
    (g,) = layer.geoms
    w, s, e, n = t.mercator_bounds()
    assert g.bounds == pytest.approx((w, n - (n - s) * 100 / 256, w + (e - w) * 100 / 256, n))
    # on the ellipsoid: the lon/lat rectangle's geodesic area, and a mercator square metre is
    # about cos(lat)^2 of a true one (the sphere against WGS84: under 1 % here)
    from pyproj import Geod

    west, south, east, north = t.lonlat_bounds()
    lon, lat = west + (east - west) * 100 / 256, north - (north - south) * 100 / 256  # mercator rows: ~linear
    ring_area = abs(Geod(ellps="WGS84").polygon_area_perimeter([west, lon, lon, west], [north, north, lat, lat])[0])
    assert layer.areas_m2[0] == pytest.approx(ring_area, rel=1e-4)
    assert layer.areas_m2[0] == pytest.approx(g.area * np.cos(np.radians(north)) ** 2, rel=1e-2)


def test_measures_take_pixels_or_metres_and_refuse_other_units():
    assert parse_measure("4", True, "--min-area") == Measure(4.0, "px")
    assert parse_measure("20m2", True, "--min-area") == Measure(20.0, "m2")
    assert parse_measure("0.5m", False, "--simplify") == Measure(0.5, "m")
    for bad, square in (("20m", True), ("ten", False), ("1km", False), ("-3", False)):
        with pytest.raises(Exception, match="not a number with an optional unit"):
            parse_measure(bad, square, "--x")


def test_chips_that_tile_a_region_merge_a_footprint_cut_by_their_border():
    names = ["background", "building"]
    layers = []
    for x in (100, 101):  # two neighbouring tiles; a building crosses their shared edge
        ids = np.zeros((64, 64), np.uint8)
        if x == 100:
            ids[20:40, 50:64] = 1
        else:
            ids[20:40, 0:10] = 1
            ids[50:60, 50:60] = 1
        from rasterio.transform import from_bounds

        from satseg.geo.vectors import Place
        place = Place("EPSG:3857", from_bounds(*Tile(x, 200, 9).mercator_bounds(), 64, 64), "test")
        layers.append(scene_polygons(ids, place, names, VectorOptions("gpkg", ("building",))))
    assert sum(len(lay) for lay in layers) == 3
    grid = min(abs(lay.geoms[0].bounds[2] - lay.geoms[0].bounds[0]) for lay in layers) / 1e5
    merged = merge_layers(layers, grid)
    assert len(merged) == 2  # the cut building is one polygon again
    widths = sorted(g.bounds[2] - g.bounds[0] for g in merged.geoms)
    px = (Tile(0, 0, 9).mercator_bounds()[2] - Tile(0, 0, 9).mercator_bounds()[0]) / 64
    assert widths == pytest.approx([10 * px, 24 * px])


def _threshold_model(max_pixels: int):
    """A whole-image stand-in: building where red > 128, predicted in windows of ``max_pixels``."""
    from satseg.edge import predict_windowed

    class Model:
        spec = ModelSpec(classes=TWO, patch_size=16, architecture="threshold", stride=1, margin=0)
        whole_image = True
        takes_raw_uint8 = False

        def predict_windows(self, read, h, w, _max):
            return predict_windowed(read, h, w, lambda px: (px[..., 0] > 128).astype(np.uint8), 1, 0, max_pixels)

        def predict_patches(self, x):  # not used: whole-image
            raise AssertionError

    return Model()


def test_a_scene_in_windows_gives_the_same_polygons_as_whole(tmp_path):
    from satseg.edge import predict_one

    rng = np.random.default_rng(0)
    img = np.zeros((300, 400, 3), np.uint8)
    img[40:260, 30:370, 0] = 255  # one large footprint across every window seam
    img[100:140, 100:140, 0] = 0  # with a courtyard
    for _ in range(30):  # and small ones anywhere
        y, x = rng.integers(0, 290), rng.integers(0, 390)
        img[y:y + rng.integers(2, 10), x:x + rng.integers(2, 10), 0] = 255
    Image.fromarray(img).save(tmp_path / "scene.png")
    opts = VectorOptions("gpkg", ("building",))
    whole = predict_one(_threshold_model(10**9), tmp_path / "scene.png", tmp_path / "whole" / "scene", vector=opts)
    windows = predict_one(_threshold_model(64 * 64), tmp_path / "scene.png", tmp_path / "win" / "scene", vector=opts)
    a, b = read_layer(whole.paths[-1]), read_layer(windows.paths[-1])
    assert whole.summary["polygons"] == windows.summary["polygons"] == len(a) > 1
    assert sorted(shapely.normalize(g).wkb for g in a.geoms) == sorted(shapely.normalize(g).wkb for g in b.geoms)
    assert max(g.area for g in a.geoms) == 220 * 340 - 40 * 40  # the seam-crossing footprint is one polygon


def test_objects_two_squares_one_split_building_and_an_empty_image():
    truth = np.zeros((50, 50), np.uint8)
    truth[5:15, 5:15] = 1  # found exactly
    truth[30:40, 30:40] = 1  # found as two halves: neither half reaches IoU 0.5
    pred = np.zeros_like(truth)
    pred[5:15, 5:15] = 1
    pred[30:40, 30:34] = 1
    pred[30:40, 36:40] = 1
    pred[20:24, 40:44] = 1  # a false one
    c = ObjectCounts(1).update(truth, pred)
    r = c.report()
    assert (r["true_objects"], r["predicted_objects"], r["matched"]) == (2, 4, 1)
    assert r["precision"] == 0.25 and r["recall"] == 0.5 and r["f1"] == pytest.approx(1 / 3)
    assert r["area_error"] == pytest.approx((100 + 40 + 40 + 16 - 200) / 200)
    empty = ObjectCounts(1).update(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)).report()
    assert (empty["true_objects"], empty["predicted_objects"], empty["f1"], empty["area_error"]) == (0, 0, None, None)
    assert (empty["precision"], empty["recall"]) == (None, None)  # 0 of 0 is no score, not a score of 0
    missed = ObjectCounts(1).update(truth, np.zeros_like(truth)).report()
    assert (missed["precision"], missed["recall"], missed["f1"]) == (None, 0.0, 0.0)
    ignored = truth.copy()
    ignored[20:24, 40:44] = 255  # the false one lies where the truth says nothing
    assert ObjectCounts(1).update(ignored, pred).report()["predicted_objects"] == 3


def _chip_with_polygon(folder, tile: Tile):
    """A 64 px chip named as ``tile``, red in its left half, and a GeoJSON polygon over that half."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32, 0] = 255
    Image.fromarray(img).save(folder / f"OAM-{tile.x}-{tile.y}-{tile.z}.png")
    w, s, e, n = tile.lonlat_bounds()
    half = [[w, s], [(w + e) / 2, s], [(w + e) / 2, n], [w, n], [w, s]]
    (folder / "labels.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [half]}}]}))


def test_evaluate_scores_against_polygon_labels_object_by_object(tmp_path, pixel_tflite):
    from satseg.evaluate import evaluate, load_predictor

    _chip_with_polygon(tmp_path / "chips", Tile(300, 400, 10))
    pred = load_predictor(pixel_tflite)
    # the per-pixel test model: what it says about red pixels is its own business; score class 0 ('Building')
    r = evaluate(pred, tmp_path / "chips", labels=tmp_path / "chips" / "labels.geojson", labels_class="Building",
                 progress=False)
    assert r["split"] == "all" and r["images"] == 1 and r["placed_by"] == ["its name"]
    assert set(r["per_class"]) == {"not Building", "Building"}
    o = r["objects"]["Building"]
    assert o["true_objects"] == 1 and o["iou_threshold"] == 0.5


def test_polygon_labels_give_the_building_iou_the_masks_give_on_hotosm(tmp_path):
    folder = HOTOSM / "data" / "4"
    if not folder.is_dir():
        pytest.skip(f"{folder}: hotosm-buildings not present (../shared)")
    from satseg.evaluate import MaskScoring  # noqa: F401 - the mask path is the reference
    from satseg.geo.labels import PolygonScoring, read_polygons

    classes = ModelSpec(classes=TWO).seg_classes
    s = PolygonScoring(folder, folder / "labels.geojson", classes)
    assert len(s.samples) == 84 and len(read_polygons(folder / "labels.geojson")) == 131
    shipped = HOTOSM / "labels" / "4"
    for sample in s.samples[:12]:  # burnt masks are the shipped rasters (0/255 -> 0/1)
        import tifffile

        li = s.load(sample)
        ref = tifffile.imread(shipped / (sample.image.stem + ".tif"))
        np.testing.assert_array_equal(li.mask, (ref > 0).astype(np.uint8))


def test_predict_writes_polygons_and_hectares_and_merges_named_chips(tmp_path, pixel_tflite):
    for x in (300, 301):
        _chip_with_polygon(tmp_path / "chips" / str(x), Tile(x, 400, 10))
    r = satseg("predict", str(tmp_path / "chips"), "--model", str(pixel_tflite), "--out", str(tmp_path / "out"),
               "--vector", "gpkg", "--merge-vectors", "--json", "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["scenes"]) == 2 and doc["merged"].endswith("merged.gpkg")
    for scene in doc["scenes"]:
        assert "tile" in scene["placed_by"] and scene["polygons"] >= 1
        total = sum(scene["hectares"].values())
        t = Tile(300, 400, 10)
        from satseg.geo.vectors import areas_m2

        w, s, e, n = t.mercator_bounds()
        expect = areas_m2([shapely.box(w, s, e, n)], "EPSG:3857")[0] / 1e4
        assert total == pytest.approx(expect, rel=1e-3)
    layer = read_layer(tmp_path / "out" / "300" / "OAM-300-400-10.gpkg")
    assert layer.crs == "EPSG:3857" and set(layer.class_names) <= set(ModelSpec().class_set.names)
    again = satseg("predict", str(tmp_path / "chips"), "--model", str(pixel_tflite), "--out", str(tmp_path / "out"),
                   "--vector", "gpkg", "--merge-vectors", "-q")
    assert again.returncode == 2 and "exists" in again.stderr
    # a batch resumed with one more chip merges all three
    _chip_with_polygon(tmp_path / "chips" / "302", Tile(302, 400, 10))
    resumed = satseg("predict", str(tmp_path / "chips"), "--model", str(pixel_tflite), "--out", str(tmp_path / "out"),
                     "--vector", "gpkg", "--merge-vectors", "--skip-existing", "--json", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads(resumed.stdout)["scenes"]) == 1
    merged = read_layer(tmp_path / "out" / "merged.gpkg")
    assert max(g.bounds[2] for g in merged.geoms) > Tile(302, 400, 10).mercator_bounds()[0]
    (tmp_path / "out" / "merged.gpkg").write_text("my own notes")  # not satseg's: never replaced
    foreign = satseg("predict", str(tmp_path / "chips"), "--model", str(pixel_tflite), "--out",
                     str(tmp_path / "out"), "--vector", "gpkg", "--merge-vectors", "--skip-existing", "-q")
    assert_one_line_error(foreign, "merged.gpkg: exists and is not a merged layer satseg wrote")
    assert (tmp_path / "out" / "merged.gpkg").read_text() == "my own notes"
    (tmp_path / "out" / "merged.gpkg").unlink()
    (tmp_path / "out" / "merged.gpkg").mkdir()
    folder = satseg("predict", str(tmp_path / "chips"), "--model", str(pixel_tflite), "--out",
                    str(tmp_path / "out"), "--vector", "gpkg", "--merge-vectors", "--force", "-q")
    assert_one_line_error(folder, "merged.gpkg: is a folder")
    named = tmp_path / "named"
    _chip_with_polygon(named, Tile(300, 400, 10))
    (named / "OAM-300-400-10.png").rename(named / "merged.png")  # its own layer would be OUT/merged.gpkg
    clash = satseg("predict", str(named), "--model", str(pixel_tflite), "--out", str(tmp_path / "o2"),
                   "--vector", "gpkg", "--merge-vectors", "-q")
    assert_one_line_error(clash, "merged.png: its polygons would go to", "rename the image")


def test_tracing_in_strips_gives_the_polygons_of_the_whole_scene():
    """Regions cut by strip edges (holes across them, corners touching on them, a class spanning
    every strip) come out as the same polygons as when the scene is traced at once."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    ids = (ndimage.zoom(rng.random((12, 15)), 6, order=1) * 3).astype(np.uint8).clip(0, 2)
    ids[20:50, 20:60] = 1
    ids[28:40, 30:40] = 0  # a hole across a strip edge
    ids[30, 70], ids[31, 71] = 2, 2  # two pixels meeting at a corner on an edge
    place = scene_place("plain.png", ids.shape)
    names = ["a", "b", "c"]
    opts = VectorOptions("gpkg")
    whole = scene_polygons(ids, place, names, opts, strip_rows=10**6)
    for rows in (1, 7, 31):
        strips = scene_polygons(ids, place, names, opts, strip_rows=rows)
        assert sorted(shapely.normalize(g).wkb for g in strips.geoms) == \
            sorted(shapely.normalize(g).wkb for g in whole.geoms), rows
    assert sum(g.area for g in whole.geoms) == ids.size


def test_objects_under_a_minimum_size_are_left_out_of_both_sides():
    truth = np.zeros((30, 30), np.uint8)
    truth[2:12, 2:12] = 1
    truth[20:22, 20:22] = 1  # a 4-pixel sliver
    pred = truth.copy()
    pred[20:22, 20:22] = 0
    pred[25, 25] = 1  # a speck
    r = ObjectCounts(1, min_pixels=5).update(truth, pred).report()
    assert (r["true_objects"], r["predicted_objects"], r["matched"], r["f1"]) == (1, 1, 1, 1.0)
    assert ObjectCounts(1).update(truth, pred).report()["f1"] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(8))
def test_strips_of_noise_full_of_corner_touches_give_the_whole_scene_polygons(seed):
    """Pure noise of three classes: regions touch themselves at corners everywhere (holes meeting
    holes and the outline), the hardest case for joining pieces across strip edges."""
    ids = np.random.default_rng(seed).integers(0, 3, (41, 37)).astype(np.uint8)
    place = scene_place("plain.png", ids.shape)
    opts = VectorOptions("gpkg")
    whole = scene_polygons(ids, place, ["a", "b", "c"], opts, strip_rows=10**6)
    want = sorted(shapely.normalize(g).wkb for g in whole.geoms)
    for rows in (1, 2, 5):
        got = scene_polygons(ids, place, ["a", "b", "c"], opts, strip_rows=rows)
        assert all(g.is_valid for g in got.geoms)
        assert sorted(shapely.normalize(g).wkb for g in got.geoms) == want, rows


def test_label_files_with_a_byte_order_mark_or_named_json_are_read(tmp_path):
    from satseg.errors import DataError
    from satseg.geo.labels import read_polygons

    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    doc = json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                                 "geometry": square}]})
    (tmp_path / "a.geojson").write_bytes(b"\xef\xbb\xbf" + doc.encode())  # as Windows tools save it
    (tmp_path / "b.json").write_text(doc)
    (tmp_path / "classes.json").write_text(json.dumps({"classes": [{"name": "building"}]}))  # not labels
    assert read_polygons(tmp_path / "a.geojson") == [square]
    assert read_polygons(tmp_path) == [square, square]
    with pytest.raises(DataError, match="classes.json: not a GeoJSON FeatureCollection"):
        read_polygons(tmp_path / "classes.json")
    (tmp_path / "coco.json").write_text(json.dumps({"images": [], "annotations": []}))  # not read at all
    assert read_polygons(tmp_path) == [square, square]
    (tmp_path / "b.json").write_text(doc[:-30])  # cut short: refused by name, never skipped
    with pytest.raises(DataError, match="b.json: not a readable GeoJSON file"):
        read_polygons(tmp_path)
    (tmp_path / "b.json").write_text(doc.replace("[1, 1]", "[Infinity, 1]"))
    with pytest.raises(DataError, match="b.json: not a readable GeoJSON file .*Infinity is no coordinate"):
        read_polygons(tmp_path)
    (tmp_path / "b.json").write_text('{"features": ' + "[" * 100_000)
    with pytest.raises(DataError, match="b.json: not a readable GeoJSON file"):
        read_polygons(tmp_path)
    (tmp_path / "a.geojson").unlink()
    (tmp_path / "b.json").unlink()
    with pytest.raises(DataError, match="no GeoJSON files"):
        read_polygons(tmp_path)


def test_a_georeference_off_the_earth_gives_no_areas_rather_than_nan():
    from affine import Affine

    from satseg.errors import DataError
    from satseg.geo.vectors import Place, areas_m2, class_hectares, ground_scale

    place = Place("EPSG:4326", Affine(0.01, 0, 10, 0, -0.01, 95.0), "its georeference")  # rows from latitude 95
    counts = np.ones((4, 2), np.int64)
    assert class_hectares(counts, place, ["a", "b"]) is None
    assert areas_m2([shapely.box(10, 91, 11, 92)], "EPSG:4326") == [None]
    with pytest.raises(DataError, match="off the Earth"):
        ground_scale(place, (4, 4))
    good = Place("EPSG:4326", Affine(0.01, 0, 10, 0, -0.01, 45.0), "its georeference")
    assert all(v > 0 for v in class_hectares(counts, good, ["a", "b"]).values())


def test_satseg_knows_its_own_layers_even_empty_ones_and_checks_metres_before_work(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from satseg.errors import DataError
    from satseg.geo.vectors import (
        Layer,
        VectorOptions,
        check_placement,
        is_satseg_layer,
        parse_measure,
        write_layer,
    )

    for fmt, suffix in (("gpkg", ".gpkg"), ("geojson", ".geojson")):
        path = write_layer(tmp_path / f"merged{suffix}", Layer("EPSG:4326", [], [], [], []), fmt, "merged")
        assert is_satseg_layer(path), fmt
    (tmp_path / "merged.gpkg").write_text((tmp_path / "merged.geojson").read_text())  # GeoJSON under .gpkg
    assert not is_satseg_layer(tmp_path / "merged.gpkg")
    off = tmp_path / "off.tif"  # rows from latitude 100: no ground there to measure
    with rasterio.open(off, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8", crs="EPSG:4326",
                       transform=from_origin(10, 100, 0.1, 0.1)) as ds:
        ds.write(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="off.tif: the scene's georeference .* off the Earth"):
        check_placement([off], VectorOptions("gpkg", min_area=parse_measure("20m2", True, "--min-area")))
    check_placement([off], VectorOptions("gpkg", min_area=parse_measure("20", True, "--min-area")))  # pixels: fine
