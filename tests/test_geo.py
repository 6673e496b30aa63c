"""Polygon labels on an image's grid: slippy-map tiles placed by name, GeoJSON burnt into masks."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from satseg.data.catalog import data_root
from satseg.geo.tiles import Tile, tile_from_name

HOTOSM = data_root() / "hotosm-buildings"


def test_a_chip_name_places_it_on_its_web_mercator_tile():
    t = tile_from_name("OAM-1772464-966380-21")
    assert t == Tile(1772464, 966380, 21)
    w, s, e, n = t.lonlat_bounds()
    assert (w, e) == pytest.approx((124.26361083984375, 124.2637825012207))
    assert (s, n) == pytest.approx((13.969219210210401, 13.969385794736821))
    assert tile_from_name("image_part_001") is None and tile_from_name("x-9-5-3") is None  # 9 >= 2 ** 3
    assert tile_from_name("photo_2023-05-12") is None  # a date, not a tile (leading zero, mixed separators)
    assert tile_from_name("tile_10_12_5") == Tile(10, 12, 5)
    assert Tile(0, 0, 0).mercator_bounds() == pytest.approx((-20037508.342789244, -20037508.342789244,
                                                               20037508.342789244, 20037508.342789244))


def test_rasterize_burns_a_square_with_a_hole_onto_a_named_chip(tmp_path):
    t = Tile(10, 12, 5)
    w, s, e, n = t.lonlat_bounds()
    dx, dy = (e - w) / 8, (n - s) / 8
    square = [[w + 2 * dx, n - 2 * dy], [w + 6 * dx, n - 2 * dy], [w + 6 * dx, n - 6 * dy], [w + 2 * dx, n - 6 * dy]]
    hole = [[w + 3 * dx, n - 3 * dy], [w + 5 * dx, n - 3 * dy], [w + 5 * dx, n - 5 * dy], [w + 3 * dx, n - 5 * dy]]
    (tmp_path / "labels.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [square, hole]}}]}))
    (tmp_path / "chips").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "chips" / "OAM-10-12-5.png")
    r = subprocess.run([sys.executable, "-m", "satseg", "data", "rasterize", str(tmp_path / "chips"), "--labels",
                        str(tmp_path / "labels.geojson"), "--out", str(tmp_path / "masks")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    mask = tifffile.imread(tmp_path / "masks" / "OAM-10-12-5.tif")
    expected = np.zeros((8, 8), np.uint8)
    expected[2:6, 2:6] = 255
    expected[3:5, 3:5] = 0
    np.testing.assert_array_equal(mask, expected)
    again = subprocess.run([sys.executable, "-m", "satseg", "data", "rasterize", str(tmp_path / "chips"), "--labels",
                            str(tmp_path / "labels.geojson"), "--out", str(tmp_path / "masks")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--force" in again.stderr.strip().splitlines()[-1]


def test_an_image_that_cannot_be_placed_is_named(tmp_path):
    (tmp_path / "chips").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "chips" / "holiday.png")
    (tmp_path / "l.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    r = subprocess.run([sys.executable, "-m", "satseg", "data", "rasterize", str(tmp_path / "chips"), "--labels",
                        str(tmp_path / "l.geojson"), "--out", str(tmp_path / "m")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "holiday.png" in r.stderr and "slippy-map tile" in r.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.skipif(not HOTOSM.is_dir(), reason=f"hotosm-buildings not present at {HOTOSM} (README, 'The data')")
def test_hotosm_polygons_give_exactly_the_shipped_label_rasters(tmp_path):
    from satseg.geo.labels import rasterize_folder

    rasterize_folder(HOTOSM / "data" / "4", HOTOSM / "data" / "4" / "labels.geojson", tmp_path)
    shipped = sorted((HOTOSM / "labels" / "4").glob("*.tif"))
    assert len(shipped) == 84
    for f in shipped:
        np.testing.assert_array_equal(tifffile.imread(tmp_path / f.name), tifffile.imread(f))
