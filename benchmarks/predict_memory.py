"""Peak memory of `satseg predict` on one large synthetic scene (default 12000 x 12000 RGB).

    python benchmarks/predict_memory.py [--size 12000] [--model exported_models/.../model_int8.tflite]

Writes the scene as JPEG in a temporary folder, runs `satseg predict` on it in a child process and
prints the child's peak resident memory (ru_maxrss) next to the decoded image's size. For a
whole-image model it then checks the scene's output against one full-frame call on a 2048 px
crop (with the model's margin around it): `crop_agreement` is the share of equal pixels.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=12000)
    ap.add_argument("--model", help="model file [default: the shipped default model]")
    args = ap.parse_args()
    Image.MAX_IMAGE_PIXELS = None
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        rng = np.random.default_rng(0)
        small = rng.integers(0, 256, (args.size // 16, args.size // 16, 3)).astype(np.uint8)
        Image.fromarray(small).resize((args.size, args.size), Image.BILINEAR).save(d / "scene.jpg", quality=90)
        del small
        cmd = [sys.executable, "-m", "satseg", "predict", str(d / "scene.jpg"), "--out", str(d / "out")]
        if args.model:
            cmd += ["--model", args.model]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            sys.exit(r.stderr)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        decoded = args.size * args.size * 3
        result = {"size": args.size, "peak_bytes": peak, "peak_gb": round(peak / 1e9, 3),
                  "decoded_image_gb": round(decoded / 1e9, 3), "peak_over_image": round(peak / decoded, 2),
                  "seconds": round(wall, 1)}
        result.update(crop_check(d / "scene.jpg", d / "out" / "scene.png", args.model))
        print(json.dumps(result, indent=2))


def crop_check(scene: Path, out: Path, model_path) -> dict:
    """The scene's ids on a centre crop against one full-frame call on that crop plus its margin."""
    from satseg.cli.common import default_model
    from satseg.edge import EdgeModel
    from satseg.imaging import RowReader

    em = EdgeModel(default_model(model_path), num_threads=2)
    if not em.whole_image:
        return {}
    m, s = em.spec.margin, em.spec.stride
    ids = np.asarray(Image.open(out))
    h, w = ids.shape
    c = 2048
    y0, x0 = (h // 2 - c // 2) // s * s, (w // 2 - c // 2) // s * s
    reader = RowReader(scene)  # the decoder `predict` used
    crop = reader.rows(y0 - m, y0 + c + m)[:, x0 - m:x0 + c + m]
    reader.close()
    full = em.run_window(crop)[m:m + c, m:m + c]
    return {"crop": [y0, x0, c], "crop_agreement": float((full == ids[y0:y0 + c, x0:x0 + c]).mean())}


if __name__ == "__main__":
    main()
