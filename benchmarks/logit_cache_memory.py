"""Peak memory of caching a teacher's logits for whole images (offline distillation).

    python benchmarks/logit_cache_memory.py TEACHER.keras --data DATA [--images 4]

Runs :func:`satseg.train.whole_image_logits` on the largest training images of the dataset, as
``satseg train --teacher`` does, and prints the process's peak resident memory.
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("teacher")
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=4)
    args = ap.parse_args()
    from satseg.classes import load_spec
    from satseg.data import find_samples, load_sample
    from satseg.models import STRIDES, load_model_file
    from satseg.train import whole_image_logits

    teacher, spec = load_model_file(args.teacher), load_spec(args.teacher)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from PIL import Image

    def area(sample):
        with Image.open(sample.image) as im:  # reads the header only
            return im.width * im.height

    largest = sorted(find_samples(args.data), key=area, reverse=True)[:args.images]
    images = [load_sample(s).image for s in largest]
    t0 = time.perf_counter()
    run = whole_image_logits(teacher, STRIDES.get(spec.architecture, 32))
    for im in images:
        run(im)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"teacher": args.teacher, "images": [list(im.shape) for im in images],
                      "peak_gb": round(peak / 1e9, 2), "before_images_gb": round(base / 1e9, 2),
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
