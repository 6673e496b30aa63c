"""A tile service as input: a local HTTP server serves slippy-map tiles from disk, with a missing,
a slow, a flaky and a corrupt tile; predict --tiles mosaics what it can, says what it could not,
and writes nothing outside --out."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("rasterio")
pytest.importorskip("pyogrio")

from satseg.geo.tiles import Tile  # noqa: E402

from .test_faults import assert_one_line_error, satseg, snapshot  # noqa: E402

Z, XS, YS, P = 10, (300, 301, 302), (400, 401), 64
MISSING, SLOW, FLAKY, CORRUPT = (301, 400), (302, 400), (300, 401), (302, 401)


def tile_png(x: int, y: int) -> bytes:
    import io

    img = np.zeros((P, P, 3), np.uint8)
    img[8:40, 8:40] = (250, 40, 40) if (x + y) % 2 else (40, 250, 40)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def server():
    """Tiles at /{z}/{x}/{y}.png; records each request's path and User-Agent."""
    seen, failed_once = [], set()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen.append((self.path, self.headers.get("User-Agent", "")))
            try:
                z, x, y = (int(v) for v in self.path.strip("/").removesuffix(".png").split("/"))
            except ValueError:
                return self.send_error(400)
            if z != Z or x not in XS or y not in YS or (x, y) == MISSING or getattr(self.server, "empty", False):
                return self.send_error(404)
            if getattr(self.server, "broken", False):  # a body shorter than it says
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"\x89PNG short")
                self.close_connection = True
                return
            if getattr(self.server, "down", None) is not None:  # every tile 503, with this Retry-After
                self.send_response(503)
                self.send_header("Retry-After", self.server.down)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if (x, y) == FLAKY and (x, y) not in failed_once:
                failed_once.add((x, y))
                return self.send_error(503)
            if (x, y) == SLOW:
                time.sleep(0.4)
            body = b"\x89PNG garbage" if (x, y) == CORRUPT else tile_png(x, y)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}/{{z}}/{{x}}/{{y}}.png", seen
    httpd.shutdown()


def bbox() -> str:
    w = Tile(XS[0], YS[0], Z).lonlat_bounds()[0]
    n = Tile(XS[0], YS[0], Z).lonlat_bounds()[3]
    e = Tile(XS[-1], YS[-1], Z).lonlat_bounds()[2]
    s = Tile(XS[-1], YS[-1], Z).lonlat_bounds()[1]
    dx, dy = (e - w) / 1000, (n - s) / 1000
    return f"{w + dx},{s + dy},{e - dx},{n - dy}"


def test_a_box_over_a_tile_service_becomes_a_georeferenced_prediction_and_polygons(tmp_path, server, pixel_tflite):
    import rasterio

    _, url, seen = server
    (tmp_path / "keep.txt").write_text("not satseg's")
    before = {p: v for p, v in snapshot(tmp_path).items()}
    out = tmp_path / "out"
    r = satseg("predict", "--tiles", url, "--bbox", bbox(), "--zoom", Z, "--model", pixel_tflite, "--out", out,
               "--vector", "gpkg", "--json", "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)["tiles"]
    assert (doc["tiles"], doc["used"], doc["from_cache"]) == (6, 4, 0)
    problems = "\n".join(doc["problems"])
    assert f"tile {Z}/{MISSING[0]}/{MISSING[1]}: HTTP 404" in problems
    assert f"tile {Z}/{CORRUPT[0]}/{CORRUPT[1]}: not an image" in problems
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("satseg: warning: tile")]
    assert len(warnings) == 2
    assert all(ua.startswith("satseg/") for _, ua in seen)
    name = f"tiles_{Z}_{XS[0]}_{YS[0]}_{XS[-1]}_{YS[-1]}"
    with rasterio.open(out / "imagery" / f"{name}.tif") as m:
        assert m.crs.to_string() == "EPSG:3857" and (m.width, m.height) == (3 * P, 2 * P)
        w, s, e, n = Tile(XS[0], YS[0], Z).mercator_bounds()
        assert (m.transform.c, m.transform.f, m.transform.a) == pytest.approx((w, n, (e - w) / P))
    with rasterio.open(out / f"{name}.tif") as ids_file:
        ids = ids_file.read(1)
        assert ids_file.crs.to_string() == "EPSG:3857"
    mx, my = (MISSING[0] - XS[0]) * P, (MISSING[1] - YS[0]) * P
    assert (ids[my:my + P, mx:mx + P] == 255).all()  # the missing tile holds no data
    assert (ids[:P, :P] != 255).all()  # a served one does
    assert (out / f"{name}.gpkg").is_file()
    after = snapshot(tmp_path)
    assert {p: v for p, v in after.items() if not p.is_relative_to(out)} == before  # nothing outside --out

    fetched = len(seen)
    again = satseg("predict", "--tiles", url, "--bbox", bbox(), "--zoom", Z, "--model", pixel_tflite, "--out", out,
                   "--json", "-q", "--force")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["tiles"]["from_cache"] == 4
    assert len(seen) - fetched == 2  # only the two tiles that were never usable are asked for again
    refused = satseg("predict", "--tiles", url, "--bbox", bbox(), "--zoom", Z, "--model", pixel_tflite, "--out", out)
    assert_one_line_error(refused, "exists", "--force")


def test_a_box_over_nothing_is_one_line(tmp_path, server, pixel_tflite):
    httpd, url, _ = server
    httpd.empty = True
    r = satseg("predict", "--tiles", url, "--bbox", bbox(), "--zoom", Z, "--model", pixel_tflite, "--out", tmp_path / "o")
    assert_one_line_error(r, "none of the 6 tiles over --bbox could be used", "HTTP 404")
    assert not list(Path(tmp_path / "o").glob("*.tif"))


@pytest.mark.parametrize("args,message", [
    (["--bbox", "10,20,5,30", "--zoom", "3"], "swapped, write 5.0,20.0,10.0,30.0; if the box crosses the antimeridian, ask for its two halves, 10.0,20.0,180,30.0"),
    (["--bbox", "10,30,20,20", "--zoom", "3"], "needs west < east"),
    (["--bbox", "a,b,c,d", "--zoom", "3"], "four numbers"),
    (["--bbox", "0,0,1,1"], "--tiles needs --bbox W,S,E,N and --zoom Z"),
    (["--bbox", "0,0,10,10", "--zoom", "14"], "more than 4096"),
    (["--bbox", "0,0,1,1", "--zoom", "30"], "must be 0..24"),
])
def test_bad_tile_requests_are_one_line(tmp_path, server, pixel_tflite, args, message):
    _, url, seen = server
    r = satseg("predict", "--tiles", url, *args, "--model", pixel_tflite, "--out", tmp_path / "o")
    assert_one_line_error(r, message)
    assert not seen and not (tmp_path / "o").exists()


def test_tile_options_need_tiles_and_tiles_take_no_inputs(tmp_path, pixel_tflite):
    assert_one_line_error(satseg("predict", "--bbox", "0,0,1,1", "--model", pixel_tflite, "--out", tmp_path / "o"),
                          "--bbox needs --tiles URL")
    assert_one_line_error(satseg("predict", "x.png", "--tiles", "http://h/{z}/{x}/{y}.png", "--bbox", "0,0,1,1",
                                 "--zoom", "3", "--model", pixel_tflite, "--out", tmp_path / "o"), "takes no INPUTS")
    assert_one_line_error(satseg("predict", "--tiles", "http://h/tiles.png", "--bbox", "0,0,1,1", "--zoom", "3",
                                 "--model", pixel_tflite, "--out", tmp_path / "o"), "needs {z}, {x} and one of {y}")
    assert_one_line_error(satseg("predict", "--tiles", "http://h/{z}/{x}/{y}/{-y}.png", "--bbox", "0,0,1,1", "--zoom",
                                 "3", "--model", pixel_tflite, "--out", tmp_path / "o"), "one of {y}")
    assert_one_line_error(satseg("predict", "--model", pixel_tflite, "--out", tmp_path / "o"), "no INPUTS")
    assert_one_line_error(satseg("predict", "--tiles", "http://{s}.h/{z}/{x}/{y}.png", "--bbox", "0,0,1,1", "--zoom",
                                 "3", "--model", pixel_tflite, "--out", tmp_path / "o"), "holds {s}")
    assert not (tmp_path / "o").exists()


def test_a_damaged_cache_entry_is_fetched_again_and_a_link_in_the_cache_is_refused(tmp_path, server, pixel_tflite):
    _, url, seen = server
    out = tmp_path / "out"
    args = ["--tiles", url, "--bbox", bbox(), "--zoom", Z, "--model", pixel_tflite, "--out", out, "--json", "-q"]
    assert satseg("predict", *args).returncode == 0
    entries = sorted((out / "tile-cache").rglob("*.tile"))
    entries[0].write_bytes(b"not a png")
    n = len(seen)
    r = satseg("predict", *args, "--force")
    assert r.returncode == 0, r.stderr[-1500:]
    assert json.loads(r.stdout)["tiles"]["used"] == 4 and len(seen) - n == 3  # the damaged one and the 2 never usable
    folder = entries[0].parent
    victim = tmp_path / "victim"
    victim.mkdir()
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    folder.symlink_to(victim)
    assert_one_line_error(satseg("predict", *args, "--force"), "is a link")
    assert not any(victim.iterdir())


def test_tms_rows_are_counted_from_the_south():
    from satseg.geo.tileservice import TileRequest, tile_url

    assert tile_url("http://h/{z}/{x}/{-y}.png", Tile(3, 1, 2)) == "http://h/2/3/2.png"
    assert tile_url("http://h/{z}/{x}/{y}.png", Tile(3, 1, 2)) == "http://h/2/3/1.png"
    TileRequest("http://h/{z}/{x}/{-y}.png", (0, 0, 1, 1), 3)  # accepted


def test_retry_after_is_obeyed_and_a_server_that_is_down_is_not_asked_for_every_tile(tmp_path, server):
    from satseg.geo.tileservice import Breaker, TileRequest, fetch_tile, retry_delay

    assert [retry_delay(a) for a in (1, 2, 3, 9)] == [0.5, 1.0, 2.0, 8.0]
    assert retry_delay(1, "0") == 0.0 and retry_delay(1, "3600") is None and retry_delay(1, "soon") == 0.5
    assert retry_delay(1, "1_0") == 0.5 and retry_delay(1, "inf") == 0.5  # not whole seconds: backoff
    soon = time.time() + 20
    for form in ("%a, %d %b %Y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y", "%a, %d %b %Y %H:%M:%S -0000"):
        assert 15 < retry_delay(1, time.strftime(form, time.gmtime(soon))) < 21  # GMT, whatever the local zone
    httpd, url, seen = server
    httpd.down = "0"  # come back at once: three tries, no backoff
    req = TileRequest(url, tuple(map(float, bbox().split(","))), Z, retries=2)
    rgba, why, _ = fetch_tile(req, Tile(XS[0], YS[0], Z), tmp_path / "cache")
    assert rgba is None and why == "HTTP 503 after 3 tries" and len(seen) == 3
    httpd.down = "3600"
    rgba, why, _ = fetch_tile(req, Tile(XS[0], YS[0], Z), tmp_path / "cache")
    assert "asks to wait 3600" in why and len(seen) == 4  # not asked again within the hour
    httpd.down, httpd.broken = None, True
    rgba, why, _ = fetch_tile(req, Tile(XS[0], YS[0], Z), tmp_path / "cache")
    assert rgba is None and why == "a broken answer (IncompleteRead) after 3 tries"
    httpd.broken = False
    httpd.down, breaker, seen[:] = "0", Breaker(limit=3), []
    tiles = [Tile(x, y, Z) for x in XS for y in YS if (x, y) != MISSING]  # a 404 is an answer: it resets the count
    answers = [fetch_tile(req, t, tmp_path / "cache", breaker)[1] for t in tiles]
    assert len(seen) == 3 * 3 and answers[3:] == ["not asked: the server failed 3 tiles in a row"] * 2
