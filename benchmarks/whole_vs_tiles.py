"""A float Keras model's mIoU on whole frames against blended tiles of its training patch size, and
tiles without overlap: whether a whole-frame gap comes from context (the frame against the patch
the model was trained on) or from the ensemble that overlapping tiles make.

    python benchmarks/whole_vs_tiles.py --model exported_models/lite0_unet_512/model.keras [--split val]
                                        [--data DATA] [--overlaps 64 0]

Prints one JSON document: per path, mIoU and per-class IoU on the split's whole images.
"""

import argparse

import numpy as np
from results import check_out, emit, output_options, run

from satseg.classes import class_names, load_spec
from satseg.data import load_sample
from satseg.data.catalog import dataset_path
from satseg.edge import predict_tiled
from satseg.evaluate import select_images
from satseg.imaging import softmax
from satseg.inference import whole_image_logits
from satseg.metrics import ConfusionMatrix
from satseg.models import load_model_file, stride_of
from satseg.run import recorded_data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help=".keras file of a fully convolutional model")
    ap.add_argument("--data", default=str(dataset_path("dubai")))
    ap.add_argument("--split", default="val", choices=["val", "test", "train"])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--overlaps", type=int, nargs="+", default=[64, 0])
    output_options(ap)
    a = ap.parse_args()
    check_out(a)
    model, spec = load_model_file(a.model), load_spec(a.model)
    samples = select_images(a.data, a.split, a.seed, recorded=recorded_data(a.model))

    def probs(x):  # what `satseg evaluate` blends for a .keras file
        return softmax(np.asarray(model(x, training=False), np.float32))

    whole = whole_image_logits(model, stride_of(spec.architecture), np.float32)
    paths = {"whole frame": lambda im: whole(im).argmax(-1)}
    for ov in a.overlaps:
        paths[f"tiles {spec.patch_size} px, overlap {ov}"] = (
            lambda im, ov=ov: predict_tiled(im, probs, spec, ov, batch_size=8).argmax(-1))
    cms = {k: ConfusionMatrix(spec.num_classes) for k in paths}
    for s in samples:
        li = load_sample(s, spec.seg_classes, spec.bands)
        for k, fn in paths.items():
            cms[k].update(li.mask, fn(li.image))
    names = class_names(spec.seg_classes)
    out = {"model": a.model, "split": a.split, "images": len(samples), "paths": {}}
    for k, cm in cms.items():
        r = cm.report(names)
        out["paths"][k] = {"miou": r["miou"], "per_class": {n: v["iou"] for n, v in r["per_class"].items()}}
    emit(a, out, indent=1)


if __name__ == "__main__":
    run(main)
