"""Peak memory of caching a teacher's logits for whole images (offline distillation).

    python benchmarks/logit_cache_memory.py TEACHER.keras --data DATA [--images 4] [--eager]

Runs :func:`satseg.inference.whole_image_logits` on the largest training images of the dataset, as
``satseg train --teacher`` does, and prints the process's peak resident memory. ``--eager`` calls
the Keras model eagerly instead, as satseg did before commit 947acf5, for comparison.
"""

import argparse
import os
import resource
import time

import numpy as np
from results import check_out, emit, output_options, run

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("teacher")
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--eager", action="store_true", help="call the model eagerly (the earlier cache)")
    output_options(ap)
    args = ap.parse_args()
    check_out(args)
    from satseg.classes import load_spec
    from satseg.data import find_samples, load_sample
    from satseg.inference import pad_to_stride, whole_image_logits
    from satseg.models import load_model_file, stride_of

    teacher, spec = load_model_file(args.teacher), load_spec(args.teacher)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from PIL import Image

    def area(sample):
        with Image.open(sample.image) as im:  # reads the header only
            return im.width * im.height

    largest = sorted(find_samples(args.data), key=area, reverse=True)[:args.images]
    images = [load_sample(s).image for s in largest]
    t0 = time.perf_counter()
    stride = stride_of(spec.architecture)

    def eager(image):
        h, w = image.shape[:2]
        return np.asarray(teacher(pad_to_stride(image, stride)[None], training=False))[0, :h, :w].astype(np.float16)

    run = eager if args.eager else whole_image_logits(teacher, stride)
    for im in images:
        run(im)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    emit(args, {"teacher": args.teacher, "eager": args.eager, "images": [list(im.shape) for im in images],
                      "peak_gb": round(peak / 1e9, 2), "before_images_gb": round(base / 1e9, 2),
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2)


if __name__ == "__main__":
    run(main)
