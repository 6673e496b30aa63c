"""From pixels to a map on real imagery: hotosm folder 4 (a country no training folder shows),
served as a tile service from disk, predicted with the shipped building model in one command
(`satseg predict --tiles ... --vector gpkg`), scored against the folder's polygon labels
(`satseg evaluate --labels`, buildings counted one by one), and drawn: predicted footprints over
the imagery, beside the labels. Writes the JSON, the picture and docs/to-a-map.md's figures.

    python benchmarks/to_a_map.py [--model buildings_lite0_unet] [--work runs/to_a_map]

Every number in the doc block comes from the JSON this writes (exported_models/to_a_map.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results import fail, run

from satseg.atomic import atomic_write, atomic_write_text
from satseg.data.catalog import data_root
from satseg.roofline import machine_info, machine_line

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "examples"))
from model_cards import fill  # noqa: E402
from serve_tiles import chip_index, serving  # noqa: E402

FOLDER = data_root() / "hotosm-buildings" / "data" / "4"
JSON = ROOT / "exported_models" / "to_a_map.json"
PICTURE = ROOT / "docs" / "img" / "to-a-map.png"
MIN_OBJECT = 100
"""Pixels: objects smaller than this (0.5 to 2 m² at zooms 20 and 21) are also left out of a second
object score, true and predicted alike: specks, and buildings a chip border cut to a sliver."""
DOC = ROOT / "docs" / "to-a-map.md"


def block_bbox(index: dict, zoom: int) -> tuple[tuple[float, ...], tuple[int, int, int, int]]:
    """The lon/lat box (inset a little) of the largest rectangle of chips at ``zoom`` with no
    chip missing."""
    from satseg.geo.tiles import Tile

    tiles = {(x, y) for z, x, y in index if z == zoom}
    best = None
    for x0, y0 in tiles:
        for x1, y1 in tiles:
            if x1 < x0 or y1 < y0:
                continue
            area = (x1 - x0 + 1) * (y1 - y0 + 1)
            if (best is None or area > best[0]) and all((x, y) in tiles for x in range(x0, x1 + 1)
                                                        for y in range(y0, y1 + 1)):
                best = (area, x0, y0, x1, y1)
    _, x0, y0, x1, y1 = best
    w, _, _, n = Tile(x0, y0, zoom).lonlat_bounds()
    _, s, e, _ = Tile(x1, y1, zoom).lonlat_bounds()
    dx, dy = (e - w) / 2000, (n - s) / 2000
    return (w + dx, s + dy, e - dx, n - dy), (x0, y0, x1, y1)


def sh(cmd: list[str], log: list[str]) -> str:
    shown = [c if not c.startswith("http://127.0.0.1") else "http://127.0.0.1:8000/{z}/{x}/{y}.png" for c in cmd]
    log.append(" ".join(f"'{c}'" if "{" in c else c for c in shown))
    print("$", log[-1], flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        fail(f"{' '.join(cmd[:3])} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    return r.stdout


def lies_on_labels(gpkg: Path, labels: Path, bounds_4326) -> dict:
    """Area agreement of the predicted footprints (reprojected to EPSG:4326) with the labels,
    inside the served box: intersection over union of the two unions."""
    import shapely

    from satseg.geo.labels import read_polygons
    from satseg.geo.vectors import read_layer, reproject

    layer = read_layer(gpkg)
    pred = shapely.union_all(reproject(layer.geoms, layer.crs, "EPSG:4326"))
    box = shapely.box(*bounds_4326)
    truth = shapely.union_all([shapely.geometry.shape(g) for g in read_polygons(labels)]).intersection(box)
    pred = pred.intersection(box)
    return {"crs": layer.crs, "polygons": len(layer), "area_iou_epsg4326": pred.intersection(truth).area / pred.union(truth).area}


def draw(mosaic: Path, gpkg: Path, labels: Path, out: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    import shapely

    from satseg.geo.labels import read_polygons
    from satseg.geo.vectors import read_layer, reproject

    with rasterio.open(mosaic) as src:
        img = np.moveaxis(src.read(), 0, -1)
        w, s, e, n = src.bounds
    pred = read_layer(gpkg).geoms
    truth = reproject([shapely.geometry.shape(g) for g in read_polygons(labels)], "EPSG:4326", "EPSG:3857")
    aspect = (e - w) / (n - s)
    fig, axes = plt.subplots(1, 2, figsize=(2 * 7 * aspect + 0.6, 7.6), dpi=110)
    for ax, geoms, colour, name in ((axes[0], pred, "#ff3b30", "predicted footprints (satseg predict --vector)"),
                                    (axes[1], truth, "#00e5ff", "labels (labels.geojson)")):
        ax.imshow(img, extent=(w, e, s, n))
        for g in geoms:
            for poly in getattr(g, "geoms", [g]):
                if poly.intersects(shapely.box(w, s, e, n)):
                    ax.plot(*poly.exterior.xy, color=colour, lw=1.2)
                    for hole in poly.interiors:
                        ax.plot(*hole.xy, color=colour, lw=0.8, ls="--")
        ax.set_xlim(w, e)
        ax.set_ylim(s, n)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="buildings_lite0_unet", help="a shipped model's name or a model file")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "to_a_map", help="outputs of the commands run")
    ap.add_argument("--zoom", type=int, default=21)
    args = ap.parse_args()
    if not FOLDER.is_dir():
        fail(f"{FOLDER}: hotosm-buildings not found (SATSEG_DATA sets the data root)")
    folder = Path(os.path.relpath(FOLDER, ROOT))  # commands as a clone runs them, from its root
    work = Path(os.path.relpath(args.work.resolve(), ROOT))
    index = chip_index(FOLDER)
    bbox, (x0, y0, x1, y1) = block_bbox(index, args.zoom)
    log: list[str] = []
    t0 = time.perf_counter()
    with serving(FOLDER) as url:
        out = work / "map"
        doc = json.loads(sh(["satseg", "predict", "--tiles", url, "--bbox", ",".join(f"{v:.7f}" for v in bbox),
                             "--zoom", str(args.zoom), "--model", args.model, "--out", str(out), "--vector", "gpkg",
                             "--vector-classes", "building", "--min-area", "2m2", "--json", "-q", "--force"], log))
    seconds = time.perf_counter() - t0
    scene = doc["scenes"][0]
    gpkg = ROOT / scene["outputs"][-1]
    scores = json.loads(sh(["satseg", "evaluate", "--model", args.model, "--data", str(folder), "--labels",
                            str(folder / "labels.geojson"), "--json", "-q"], log))
    sized = json.loads(sh(["satseg", "evaluate", "--model", args.model, "--data", str(folder), "--labels",
                           str(folder / "labels.geojson"), "--min-object-pixels", str(MIN_OBJECT), "--json", "-q"], log))
    labels = FOLDER / "labels.geojson"
    place = lies_on_labels(gpkg, labels, bbox)
    result = {
        "data": "hotosm-buildings folder 4 (84 chips; a country the training folders do not show)",
        "model": args.model, "served_tiles": f"zoom {args.zoom}, x {x0}-{x1}, y {y0}-{y1}",
        "bbox": bbox, "commands": log, "predict_seconds": round(seconds, 1),
        "machine": machine_line(machine_info()),
        "tiles": {k: v for k, v in doc["tiles"].items() if k != "mosaic"}, "hectares": scene["hectares"], "polygons": scene["polygons"],
        "vector": place,
        "evaluate": {"images": scores["images"], "building_iou": scores["foreground"]["iou"],
                     "objects": scores["objects"]["building"], "objects_sized": sized["objects"]["building"]},
    }
    atomic_write_text(JSON, json.dumps(result, indent=2) + "\n")
    draw(ROOT / doc["tiles"]["mosaic"], gpkg, labels, PICTURE,
         f"hotosm folder 4, tiles {x0}-{x1} x {y0}-{y1} at zoom {args.zoom},\nserved from disk; model {args.model}")
    atomic_write_text(DOC, fill(DOC.read_text(), "to_a_map", block(result)))
    print(json.dumps(result, indent=2))
    return 0


def block(r: dict) -> str:
    o, t, v, z = r["evaluate"]["objects"], r["tiles"], r["vector"], r["evaluate"]["objects_sized"]
    lines = ["```bash", *r["commands"], "```", "",
             f"- **Tiles**: {r['served_tiles']}: {t['used']} of {t['tiles']} tiles used"
             + (f" ({len(t['problems'])} could not be: {'; '.join(t['problems'])})" if t["problems"] else "")
             + f"; one GeoTIFF in EPSG:3857 and {r['polygons']} building polygons of at least 2 m², "
             f"{r['hectares']['building']:.3f} ha of buildings out of {sum(r['hectares'].values()):.3f} ha.",
             f"- **On the map**: the GeoPackage opens with GDAL (layer CRS {v['crs']}); reprojected to EPSG:4326, "
             f"its footprints cover the labels' with an area IoU of {v['area_iou_epsg4326']:.3f} inside the box.",
             f"- **Scored against the polygons** (`evaluate --labels`, all {r['evaluate']['images']} chips of the "
             f"folder): building IoU {r['evaluate']['building_iou']:.4f}; buildings one by one (SpaceNet matching, "
             f"IoU >= 0.5, per chip): precision {o['precision']:.3f}, recall {o['recall']:.3f}, **F1 {o['f1']:.3f}** "
             f"({o['matched']} of {o['true_objects']} labelled buildings found, {o['predicted_objects']} predicted); "
             f"area error {100 * o['area_error']:+.1f} %. Leaving out objects under {z['min_pixels']} px on both "
             f"sides: precision {z['precision']:.3f}, recall {z['recall']:.3f}, **F1 {z['f1']:.3f}** ({z['matched']} "
             f"of {z['true_objects']} found, {z['predicted_objects']} predicted).",
             "", f"Generated by `python benchmarks/to_a_map.py` ({r['machine']}; predict took {r['predict_seconds']} s) "
             "from `exported_models/to_a_map.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    run(main)
