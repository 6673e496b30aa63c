"""Segment satellite images on a device without TensorFlow.

Copy this file and a LiteRT model with its sidecar (``model_int8.tflite`` +
``model_int8.satseg.json``, e.g. from ``exported_models/lite0_edge_scratch/``: a whole-image file
that takes uint8 pixels of any size and returns class ids) to the device, then:

    pip install "satseg-zoo[cli]"   # numpy, ai-edge-litert, Pillow, tifffile: no TensorFlow
    python edge_inference.py model_int8.tflite image.jpg [more images ...]

Writes ``<image>_classes.png`` (class ids) and ``<image>_color.png`` next to each image and prints
the class shares.
"""

import sys
from pathlib import Path

import numpy as np

from satseg.edge import EdgeModel, write_prediction
from satseg.imaging import read_image


def main(model_path, *images):
    model = EdgeModel(model_path)  # classes, normalisation and patch size come with the model
    names = [c.name for c in model.spec.seg_classes]
    for path in map(Path, images):
        ids = model.predict(read_image(path, bands=model.spec.bands))
        write_prediction(ids, path.with_name(path.stem + "_classes"), model.spec, source=path)
        shares = np.bincount(ids.ravel(), minlength=len(names)) / ids.size
        print(path.name, ", ".join(f"{n} {100 * s:.1f} %" for n, s in zip(names, shares)))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
