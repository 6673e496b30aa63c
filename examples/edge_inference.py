"""Segment an image with a satseg LiteRT file using numpy, Pillow and ai-edge-litert only (no
satseg, no TensorFlow): what a client on a phone or a board does.

    pip install numpy pillow ai-edge-litert
    python edge_inference.py model_int8.tflite image.jpg ids.png [--window-pixels 4000000]

The contract of a whole-image file (every file `satseg export` writes for a model that normalises
inside its graph, such as satseg/default_model/model_int8.tflite):
- input (1, H, W, bands) raw pixels (uint8 for int8 files, else float32), any H and W that are
  multiples of the model's stride: pad the right and bottom edges by repeating the last row and
  column, and crop the output back;
- output (1, H, W) uint8 class ids;
- stride, margin, class names and colours: the file's metadata entry ``satseg.spec`` (JSON), or
  the ``X.satseg.json`` sidecar beside it.
A large scene runs in windows that overlap by the margin; each keeps what lies at least that far
from a cut, so the ids equal one whole-frame call. Writes ``ids.png``: a palette PNG whose values
are the class ids and whose palette is the class colours.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from PIL import Image


def read_spec(model_path: Path) -> dict:
    """The satseg.spec metadata entry of the file, else its sidecar."""
    m = schema.Model.GetRootAs(model_path.read_bytes(), 0)
    for i in range(m.MetadataLength()):
        if m.Metadata(i).Name() == b"satseg.spec":
            return json.loads(m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes())
    sidecar = model_path.with_suffix(".satseg.json")
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    raise SystemExit(f"{model_path}: no satseg.spec metadata and no {sidecar.name} beside it")


def run_whole(interpreter: Interpreter, pixels: np.ndarray, stride: int) -> np.ndarray:
    """One call: pad to the stride (edge rows and columns), run, crop back."""
    h, w = pixels.shape[:2]
    padded = np.pad(pixels, [(0, -h % stride), (0, -w % stride), (0, 0)], mode="edge")
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], (1, *padded.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], padded[None].astype(inp["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])[0, :h, :w]


def cuts(n: int, size: int, margin: int, stride: int):
    """(start, end, keep_from, keep_to) along one axis: windows of at most ``size`` starting on
    the stride grid, each kept at least ``margin`` from its inner cuts."""
    if n <= size:
        yield 0, n, 0, n
        return
    a = 0
    while a < n:
        s = max(0, (a - margin) // stride * stride)
        e = min(s + size, n)
        b = n if e == n else e - margin
        yield s, e, a, b
        a = b


def segment(interpreter: Interpreter, pixels: np.ndarray, stride: int, margin: int,
            window_pixels: int = 4_000_000) -> np.ndarray:
    """Class ids (H, W): one call, or windows of about ``window_pixels`` for a large scene."""
    side = max(int(window_pixels ** 0.5) // stride * stride, 2 * margin + 2 * stride)
    side = -(-side // stride) * stride
    h, w = pixels.shape[:2]
    ids = np.empty((h, w), np.uint8)
    for y0, y1, ya, yb in cuts(h, side, margin, stride):
        for x0, x1, xa, xb in cuts(w, side, margin, stride):
            part = run_whole(interpreter, pixels[y0:y1, x0:x1], stride)
            ids[ya:yb, xa:xb] = part[ya - y0:yb - y0, xa - x0:xb - x0]
    return ids


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("image", type=Path)
    ap.add_argument("out", type=Path, help="the palette PNG of class ids to write")
    ap.add_argument("--window-pixels", type=int, default=4_000_000, help="largest window run in one call")
    args = ap.parse_args(argv)
    for f in (args.model, args.image):
        if not f.is_file():
            raise SystemExit(f"{f}: not found")
    spec = read_spec(args.model)
    interpreter = Interpreter(str(args.model), num_threads=2)
    if len(interpreter.get_output_details()[0]["shape_signature"]) != 3:
        raise SystemExit(f"{args.model}: not a whole-image file (its output is not (1, H, W) class ids)")
    bands = spec.get("bands", 3)
    with Image.open(args.image) as im:
        pixels = np.asarray(im.convert("RGB" if bands == 3 else "L"))
    pixels = pixels.reshape(*pixels.shape[:2], -1)
    ids = segment(interpreter, pixels, spec["stride"], spec["margin"], args.window_pixels)
    out = Image.fromarray(ids, mode="P")
    out.putpalette([v for c in spec["classes"] for v in c["color"]])
    out.save(args.out)
    shares = np.bincount(ids.ravel(), minlength=len(spec["classes"])) / ids.size
    print(args.image.name, ", ".join(f"{c['name']} {100 * s:.1f} %" for c, s in zip(spec["classes"], shares)))


if __name__ == "__main__":
    main()
