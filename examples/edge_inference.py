"""Segment an image with a satseg LiteRT file using numpy, Pillow and ai-edge-litert only (no
satseg, no TensorFlow): what a client on a phone or a board does.

    pip install numpy pillow ai-edge-litert
    python edge_inference.py model_int8.tflite image.jpg ids.png [--window-pixels 4000000] [--force]

The contract of a whole-image file (every file `satseg export` writes for a model that normalises
inside its graph, such as satseg/default_model/model_int8.tflite):
- input (1, H, W, bands) raw pixels (uint8 for int8 files, else float32), any H and W that are
  multiples of the model's stride: pad the right and bottom edges by repeating the last row and
  column, and crop the output back;
- output (1, H, W) uint8 class ids;
- stride, margin, bands, class names and colours: the ``X.satseg.json`` sidecar beside the file,
  else the file's own metadata entry ``satseg.spec`` (JSON): the order satseg reads them in.
A large scene runs in windows that overlap by the margin; each keeps what lies at least that far
from a cut, so the ids equal one whole-frame call. Writes ``ids.png``: a palette PNG whose values
are the class ids and whose palette is the class colours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from PIL import Image


class ClientError(Exception):
    """Bad input: one line, exit 2."""


def read_spec(model_path: Path) -> dict:
    """The sidecar beside the file, else the file's satseg.spec metadata entry."""
    sidecar = model_path.with_suffix(".satseg.json")
    try:
        if sidecar.exists():
            return json.loads(sidecar.read_text())
        m = schema.Model.GetRootAs(model_path.read_bytes(), 0)
        for i in range(m.MetadataLength()):
            if m.Metadata(i).Name() == b"satseg.spec":
                return json.loads(m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes())
    except Exception as e:  # not a flatbuffer, or damaged JSON
        raise ClientError(f"{model_path}: not a readable LiteRT model with a satseg spec ({type(e).__name__})") from None
    raise ClientError(f"{model_path}: no {sidecar.name} beside it and no satseg.spec inside it")


def read_pixels(path: Path, bands: int) -> np.ndarray:
    """8-bit pixels with the model's band count; anything else is refused, never converted."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("RGBA", "LA", "PA", "P"):
                im = im.convert("RGBA" if mode != "LA" else "LA")
                im = im.convert("RGB" if im.mode == "RGBA" else "L")  # alpha is not a band
                mode = im.mode
            if mode not in ("RGB", "L"):
                raise ClientError(f"{path}: pixels of mode {mode} (not 8-bit); the model takes 8-bit {bands}-band images")
            pixels = np.asarray(im)
    except ClientError:
        raise
    except Exception as e:  # truncated, not an image
        raise ClientError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    pixels = pixels.reshape(*pixels.shape[:2], -1)
    if pixels.shape[-1] != bands:
        raise ClientError(f"{path}: has {pixels.shape[-1]} bands, the model takes {bands}")
    return pixels


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


def positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {v}")
    return v


def check_out(out: Path, image: Path, force: bool) -> None:
    """Before any work: a PNG in an existing folder, never the input, never over a file without --force."""
    if out.suffix.lower() != ".png":
        raise ClientError(f"{out}: the ids are written as a palette PNG; name it .png")
    if not out.parent.is_dir():
        raise ClientError(f"{out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise ClientError(f"{out}: is a folder")
    if out.exists() and out.resolve() == image.resolve():
        raise ClientError(f"{out}: is the input image")
    if (out.exists() or out.is_symlink()) and not force:
        raise ClientError(f"{out}: exists; pass --force to overwrite it")


def run(args) -> None:
    for f in (args.model, args.image):
        if not f.is_file():
            raise ClientError(f"{f}: not found")
    check_out(args.out, args.image, args.force)
    spec = read_spec(args.model)
    try:
        interpreter = Interpreter(str(args.model), num_threads=2)
    except Exception as e:
        raise ClientError(f"{args.model}: not a usable LiteRT model ({type(e).__name__})") from None
    if len(interpreter.get_output_details()[0]["shape_signature"]) != 3:
        raise ClientError(f"{args.model}: not a whole-image file (its output is not (1, H, W) class ids)")
    pixels = read_pixels(args.image, spec.get("bands", 3))
    ids = segment(interpreter, pixels, spec["stride"], spec["margin"], args.window_pixels)
    out = Image.fromarray(ids, mode="P")
    out.putpalette([v for c in spec["classes"] for v in c["color"]])
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp.png")  # written whole, then renamed
    out.save(tmp)
    os.replace(tmp, args.out)
    shares = np.bincount(ids.ravel(), minlength=len(spec["classes"])) / ids.size
    print(args.image.name, ", ".join(f"{c['name']} {100 * s:.1f} %" for c, s in zip(spec["classes"], shares)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("image", type=Path)
    ap.add_argument("out", type=Path, help="the palette PNG of class ids to write")
    ap.add_argument("--window-pixels", type=positive, default=4_000_000, help="largest window run in one call")
    ap.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = ap.parse_args(argv)
    try:
        run(args)
    except ClientError as e:
        print(f"edge_inference.py: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
