"""Peak memory of `satseg predict` on one large synthetic scene (default 12000 x 12000 RGB).

    python benchmarks/predict_memory.py [--size 12000] [--model exported_models/.../model_int8.tflite]

Writes the scene as JPEG in a temporary folder, runs `satseg predict` on it in a child process and
prints the child's peak resident memory (ru_maxrss) next to the decoded image's size.
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
        print(json.dumps({"size": args.size, "peak_bytes": peak, "peak_gb": round(peak / 1e9, 3),
                          "decoded_image_gb": round(decoded / 1e9, 3), "peak_over_image": round(peak / decoded, 2),
                          "seconds": round(wall, 1)}, indent=2))


if __name__ == "__main__":
    main()
