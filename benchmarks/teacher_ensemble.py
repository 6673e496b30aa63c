"""Whole-frame mIoU of teachers alone, with flip TTA, and averaged together: how much better a
distillation target can be made than one teacher's logits, measured on validation images.

    python benchmarks/teacher_ensemble.py TEACHER.keras [TEACHER.keras ...] [--split val]
                                         [--data DATA]

Each teacher runs on whole frames (as the logit cache of ``satseg train --teacher`` does), as
the image is and flipped left-right, up-down and both. A combination's probabilities are the
mean of its members' softmax. Prints one JSON document: per combination, mIoU and per-class IoU.
"""

import argparse
import itertools

import numpy as np
from results import check_out, emit, output_options, run

from satseg.classes import class_names, load_spec
from satseg.data import load_sample
from satseg.data.catalog import dataset_path
from satseg.evaluate import select_images
from satseg.imaging import softmax
from satseg.inference import whole_image_logits
from satseg.metrics import ConfusionMatrix
from satseg.models import load_model_file, stride_of
from satseg.run import recorded_data

FLIPS = ((), (1,), (0,), (0, 1))


def flip_probs(run, image: np.ndarray) -> list[np.ndarray]:
    """Softmax of one teacher's whole-frame logits for the image as it is and flipped (flipped back)."""
    return [np.flip(softmax(run(np.ascontiguousarray(np.flip(image, axes))).astype(np.float32)), axes)
            if axes else softmax(run(image).astype(np.float32)) for axes in FLIPS]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("teachers", nargs="+", help=".keras files of fully convolutional models with the same classes")
    ap.add_argument("--data", default=str(dataset_path("dubai")))
    ap.add_argument("--split", default="val", choices=["val", "test", "train"])
    ap.add_argument("--seed", type=int, default=42)
    output_options(ap)
    a = ap.parse_args()
    check_out(a)
    specs = [load_spec(t) for t in a.teachers]
    runs = [whole_image_logits(load_model_file(t), stride_of(s.architecture), np.float32)
            for t, s in zip(a.teachers, specs)]
    samples = select_images(a.data, a.split, a.seed, recorded=recorded_data(a.teachers[0]))
    k = len(a.teachers)
    combos = [c for n in range(1, k + 1) for c in itertools.combinations(range(k), n)]
    cms = {(c, tta): ConfusionMatrix(specs[0].num_classes) for c in combos for tta in (False, True)}
    for s in samples:
        li = load_sample(s, specs[0].seg_classes, specs[0].bands)
        probs = [flip_probs(run, li.image) for run in runs]
        for c, tta in cms:
            p = sum(sum(probs[i][:4 if tta else 1]) for i in c)
            cms[c, tta].update(li.mask, p.argmax(-1))
    names = class_names(specs[0].seg_classes)
    out = {"teachers": a.teachers, "split": a.split, "images": len(samples), "combinations": []}
    for (c, tta), cm in cms.items():
        r = cm.report(names)
        out["combinations"].append({"teachers": [a.teachers[i] for i in c], "flip_tta": tta, "miou": r["miou"],
                                    "per_class": {n: v["iou"] for n, v in r["per_class"].items()}})
    emit(a, out, indent=1)


if __name__ == "__main__":
    run(main)
