"""Peak memory of `satseg predict` on one large synthetic scene (default 12000 x 12000 RGB).

    python benchmarks/predict_memory.py [--size 12000] [--format jpeg|tiff] [--model exported_models/.../model_int8.tflite]
    python benchmarks/predict_memory.py --compare-installs     # the full install against the edge install
    python benchmarks/predict_memory.py --vector gpkg [--vector-classes Building]   # with polygons

Writes the scene as JPEG (or uncompressed TIFF, ``--format tiff``) in a temporary folder, runs `satseg predict` on it in a child process and
prints the child's peak resident memory (VmHWM) next to the decoded image's size. For a
whole-image model it then checks the scene's output against one full-frame call on a 2048 px
crop (with the model's margin around it): `crop_agreement` is the share of equal pixels.
``--compare-installs`` runs it twice, once in a child that cannot import rasterio, TensorFlow or
Keras (the edge install, `.[cli]`), and prints both peaks and the share of pixels whose ids the
two installs agree on. The same measurement is a row of `satseg bench` (`satseg.bench.scene_memory`).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from results import check_out, emit, output_options, run

from satseg.bench import scene_memory

EDGE_INSTALL = ("rasterio", "tensorflow", "keras")


def compare_installs(size: int, model, fmt: str = "jpeg") -> dict:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with tempfile.TemporaryDirectory() as d:
        full = scene_memory(size, model, work=Path(d) / "full", fmt=fmt)
        edge = scene_memory(size, model, without=EDGE_INSTALL, work=Path(d) / "edge", fmt=fmt)
        out = "scene.tif" if fmt == "tiff" else "scene.png"
        a, b = (_ids(Path(d) / k / "out" / out) for k in ("full", "edge"))
        return {"full_install": full, "edge_install": edge, "ids_agreement": float((a == b).mean())}


def _ids(path: Path) -> np.ndarray:
    from satseg.imaging import read_image

    return read_image(path)[..., 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=12000)
    ap.add_argument("--format", dest="fmt", choices=("jpeg", "tiff"), default="jpeg",
                    help="the scene's file: JPEG (Pillow holds it decoded) or uncompressed TIFF (read through a map)")
    ap.add_argument("--model", help="model file or shipped name [default: the shipped default model]")
    ap.add_argument("--vector", choices=("gpkg", "geojson"),
                    help="also write the scene's polygons (predict --vector): the peak then includes tracing them")
    ap.add_argument("--vector-classes", help="with --vector: the classes traced (predict --vector-classes)")
    ap.add_argument("--compare-installs", action="store_true",
                    help="also run as the edge install (no rasterio, TensorFlow or Keras) and compare")
    output_options(ap)
    args = ap.parse_args()
    check_out(args)
    if args.model is not None:
        from satseg.edge import EdgeModel, default_model

        args.model = default_model(args.model)
        EdgeModel(args.model)  # a missing or unusable model is named now, not after the scene is written
    emit(args, compare_installs(args.size, args.model, args.fmt) if args.compare_installs
         else scene_memory(args.size, args.model, fmt=args.fmt,
                           extra=(("--vector", args.vector) if args.vector else ())
                           + (("--vector-classes", args.vector_classes) if args.vector_classes else ())))


if __name__ == "__main__":
    run(main)
