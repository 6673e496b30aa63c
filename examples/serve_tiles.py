"""Serve a folder of slippy-map chips (``...-<x>-<y>-<z>.png``, as OpenAerialMap and fAIr name
them) as a tile service at ``/{z}/{x}/{y}.png``: what ``satseg predict --tiles`` reads, on your
own machine. Chips of other names are not served; a tile the folder lacks is a 404.

    python examples/serve_tiles.py ../shared/data/hotosm-buildings/data/4 --port 8000
    satseg predict --tiles 'http://127.0.0.1:8000/{z}/{x}/{y}.png' --bbox W,S,E,N --zoom 21 --out map --vector gpkg
"""

from __future__ import annotations

import argparse
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def chip_index(folder: Path) -> dict[tuple[int, int, int], Path]:
    """(z, x, y) -> chip file, for every chip below ``folder`` named as a tile."""
    from satseg.geo.tiles import tile_from_name

    out = {}
    for p in sorted(Path(folder).rglob("*")):
        t = tile_from_name(p.stem) if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg") else None
        if t is not None:
            out[(t.z, t.x, t.y)] = p
    return out


def handler_for(index: dict):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            try:
                z, x, y = (int(v) for v in self.path.split("?")[0].strip("/").rsplit(".", 1)[0].split("/"))
            except ValueError:
                return self.send_error(400, "expected /{z}/{x}/{y}.png")
            path = index.get((z, x, y))
            if path is None:
                return self.send_error(404)
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg" if body[:2] == b"\xff\xd8" else "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@contextmanager
def serving(folder: Path, port: int = 0):
    """A tile server for ``folder`` in a background thread; yields its URL template."""
    index = chip_index(folder)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler_for(index))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    finally:
        httpd.shutdown()
        httpd.server_close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    index = chip_index(args.folder)
    if not index:
        raise SystemExit(f"serve_tiles: error: {args.folder}: no chip named ...-X-Y-Z")
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(index))
    print(f"serving {len(index)} tiles at http://127.0.0.1:{args.port}/{{z}}/{{x}}/{{y}}.png (Ctrl-C stops)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
