"""Peak memory of `satseg train` on a scene larger than memory allows to decode whole.

    python benchmarks/train_large_scene.py [--size 20000] [--work /tmp/satseg-large-scene]

Writes (once; reused on later runs) a SIZE x SIZE four-band uint16 GeoTIFF scene with nodata
borders and its class-id mask (tiled, deflate), plus a small validation scene, in the layout
``data/N`` + ``labels/N``; then runs `satseg train --model edge` on it in a child process and
prints the child's peak resident memory (ru_maxrss) beside the size of the decoded scene.
Training reads the scene in windows (satseg.data.windows), so the peak follows the model and
the crops, not the scene.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results import check_out, emit, output_options, run


def write_scene(path: Path, mask_path: Path, size: int, block: int = 1024, seed: int = 0):
    """The scene block by block (never whole in memory); a 64 px nodata frame around it."""
    import rasterio

    from satseg.synthetic import make_labelled

    profile = {"driver": "GTiff", "width": size, "height": size, "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    for p in (path, mask_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp_img, tmp_mask = path.with_suffix(".partial.tif"), mask_path.with_suffix(".partial.tif")
    with rasterio.open(tmp_img, "w", count=4, dtype="uint16", nodata=0, **profile) as img, \
            rasterio.open(tmp_mask, "w", count=1, dtype="uint8", **profile) as msk:
        for y in range(0, size, block):
            for x in range(0, size, block):
                h, w = min(block, size - y), min(block, size - x)
                pix, ids = make_labelled(3, h, w, 4, "uint16", seed=seed * 100003 + y * 31 + x)
                pix = np.maximum(pix, 1)  # 0 is nodata
                yy, xx = np.mgrid[y:y + h, x:x + w]
                frame = (yy < 64) | (xx < 64) | (yy >= size - 64) | (xx >= size - 64)
                pix[frame] = 0
                win = rasterio.windows.Window(x, y, w, h)
                img.write(np.moveaxis(pix, -1, 0), window=win)
                msk.write(ids[None], window=win)
    os.replace(tmp_img, path)
    os.replace(tmp_mask, mask_path)


def child_peak(cmd: list[str]) -> tuple[int, float, float]:
    """(exit code, peak resident memory in GB, wall seconds) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 2**20, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/satseg-large-scene"))
    ap.add_argument("--model", default="edge")
    ap.add_argument("--crops-per-epoch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    output_options(ap)
    args = ap.parse_args()
    check_out(args)
    data = args.work / f"data-{args.size}"
    scene = data / "data" / "1" / "scene.tif"
    if not scene.exists():
        t0 = time.perf_counter()
        write_scene(scene, data / "labels" / "1" / "scene.tif", args.size)
        write_scene(data / "data" / "2" / "val.tif", data / "labels" / "2" / "val.tif", 2048, seed=1)
        print(f"wrote the scenes in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    run = args.work / f"run-{args.size}-{int(time.time())}"
    cmd = [sys.executable, "-m", "satseg", "train", "--model", args.model, "--data", str(data), "--val-groups", "2",
           "--epochs", str(args.epochs), "--crops-per-epoch", str(args.crops_per_epoch),
           "--out", str(run), "-q"]
    rc, peak, wall = child_peak(cmd)
    decoded = args.size ** 2 * 4 * 2 / 1e9
    emit(args, {"scene": f"{args.size} x {args.size} x 4 uint16", "decoded_scene_gb": round(decoded, 2),
                      "scene_file_gb": round(scene.stat().st_size / 1e9, 2),
                      "command": " ".join(["satseg", *cmd[3:]]).replace(str(args.work), "WORK"),
                      "exit_code": rc, "train_peak_rss_gb": round(peak, 2), "wall_seconds": round(wall, 1),
                      "peak_vs_decoded_scene": round(peak / decoded, 3)}, indent=2)
    sys.exit(rc)


if __name__ == "__main__":
    run(main)
