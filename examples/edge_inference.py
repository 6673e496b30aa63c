"""Segment an image with a satseg LiteRT file using numpy, Pillow and ai-edge-litert only (no
satseg, no TensorFlow): what a client on a phone or a board does.

    pip install numpy pillow ai-edge-litert
    python edge_inference.py model_int8.tflite image.jpg ids.png [--window-pixels N] [--force]

The contract of a whole-image file (every file `satseg export` writes for a model that normalises
inside its graph, such as satseg/default_model/model_int8.tflite):
- input (1, H, W, bands) raw pixels (uint8 for int8 files, else float32), any H and W that are
  multiples of the model's stride: pad the right and bottom edges by repeating the last row and
  column, and crop the output back;
- output (1, H, W) uint8 class ids;
- stride, margin, bands, class names and colours: the file's own metadata entry ``satseg.spec``
  (JSON), else the ``X.satseg.json`` sidecar beside it; when both exist they must agree. The spec is
  checked before use, as satseg checks it (one line naming the field, exit 2, never a traceback).
- 8-bit pixels only for an 8-bit model (16-bit imagery is refused, never cut down); images are
  read by satseg's rules (palette, 1-bit and CMYK as RGB, grey + alpha as RGBA), and pixels whose
  alpha is 0 get the id 255, as `satseg predict` writes them.
A large scene runs in windows that overlap by the margin; each keeps what lies at least that far
from a cut, so the ids equal one whole-frame call. The decoded image is the only full-size copy of
the pixels (windows are cut from it), so a 12000 x 12000 scene stays under 1 GB. Writes ``ids.png``:
a palette PNG whose values are the class ids and whose palette is the class colours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # scenes are large on purpose; memory is bounded by windows, not by refusing


class ClientError(Exception):
    """Bad input: one line, exit 2."""


NO_CLASS = 255  # the id of pixels that hold no imagery (transparent), as satseg writes them


def embedded_spec(model_path: Path) -> dict | None:
    """The file's satseg.spec metadata entry (JSON), or None when it has none."""
    m = schema.Model.GetRootAs(model_path.read_bytes(), 0)
    for i in range(m.MetadataLength()):
        if m.Metadata(i).Name() == b"satseg.spec":
            return json.loads(m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes())
    return None


def read_spec(model_path: Path) -> dict:
    """The spec inside the file, else the sidecar beside it; both present must say the same."""
    sidecar = model_path.with_suffix(".satseg.json")
    try:
        inside = embedded_spec(model_path)
    except Exception as e:  # not a flatbuffer, or damaged JSON
        raise ClientError(f"{model_path}: not a readable LiteRT model with a satseg spec ({type(e).__name__})") from None
    beside = None
    if sidecar.is_file():
        try:
            beside = json.loads(sidecar.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ClientError(f"{sidecar}: not valid JSON ({type(e).__name__})") from None
    if inside is not None and beside is not None and not same_spec(inside, beside):
        raise ClientError(f"{sidecar}: disagrees with the spec inside {model_path.name}; remove or fix the sidecar")
    spec = inside if inside is not None else beside
    if spec is None:
        raise ClientError(f"{model_path}: no satseg.spec inside it and no {sidecar.name} beside it")
    return check_spec(spec, sidecar if inside is None else model_path)


def same_spec(a, b) -> bool:
    """Two spec documents say the same: equal fields of equal JSON types (8.0 is not 8, true is
    not 1), a field one lacks being empty in the other (older writers left out empty fields)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return _same(a, b)
    return all(_same(a.get(k), b.get(k)) or (_empty(a.get(k)) and _empty(b.get(k))) for k in set(a) | set(b))


def _empty(v) -> bool:
    return v is None or (type(v) in (str, dict, list) and not v)


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _whole(v, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def check_spec(spec, where) -> dict:
    """The fields this client relies on, each checked (satseg's own rules, satseg.classes.spec_problem)."""
    def bad(what):
        raise ClientError(f"{where}: malformed model spec ({what})")

    if not isinstance(spec, dict):
        bad(f"a JSON object, not {type(spec).__name__}")
    for key, lo, hi in (("stride", 1, 1024), ("margin", 0, 8192), ("bands", 1, 1024)):
        if key not in spec:
            bad(f"no {key}")
        if not _whole(spec[key], lo, hi):
            bad(f"{key} must be a whole number from {lo} to {hi}, not {spec[key]!r}")
    classes = spec.get("classes")
    if not isinstance(classes, list) or not classes or len(classes) > NO_CLASS:
        bad(f"classes must be a list of 1 to {NO_CLASS} classes, not {classes!r:.60}")
    for i, c in enumerate(classes):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            bad(f"class {i} must have a name")
        color = c.get("color")
        if not isinstance(color, list) or len(color) != 3 or not all(_whole(v, 0, 255) for v in color):
            bad(f"class {c['name']!r}: color must be 3 whole numbers from 0 to 255, not {color!r}")
    if spec.get("dtype", "") not in ("", "uint8", "uint16", "float32"):
        bad(f"dtype must be uint8, uint16 or float32, not {spec['dtype']!r}")
    return spec


def argmax_classes(model_path: Path) -> int | None:
    """How many classes a whole-image file chooses among: the last axis of its ARG_MAX's input."""
    m = schema.Model.GetRootAs(model_path.read_bytes(), 0)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    g = m.Subgraphs(0)
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        if codes[op.OpcodeIndex()] == schema.BuiltinOperator.ARG_MAX:
            shape = g.Tensors(op.Inputs(0)).ShapeAsNumpy()
            return int(shape[-1])
    return None


def eight_bit(path: Path, im) -> bool:
    """Whether the file holds 8-bit samples (Pillow reads 16-bit RGB PNGs and TIFFs as 8-bit
    without a word, so the header is asked)."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            return f.read(25)[24:25] in (b"\x08", b"\x01", b"\x02", b"\x04")
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        return all(b <= 8 for b in (bits if isinstance(bits, tuple) else (bits,)))
    return im.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class Scene:
    """An opened image: windows of 8-bit pixels with the model's band count, and where it is
    transparent. The decoded image is kept once; each window is cut from it."""

    def __init__(self, path: Path, bands: int):

        try:
            im = Image.open(path)
            im.load()
        except Exception as e:  # truncated, not an image
            raise ClientError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
        if not eight_bit(path, im) or im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            raise ClientError(f"{path}: pixels are not 8-bit (mode {im.mode}); the model takes 8-bit "
                              f"{bands}-band images (satseg refuses them too, never cuts them down)")
        # satseg's rules (satseg.imaging.RowReader): RGB, grey and RGBA as they are, grey + alpha as
        # RGBA, anything else (palette, 1-bit, CMYK, ...) as RGB; alpha is no band, its zeros hold no imagery
        if im.mode not in ("RGB", "L", "RGBA"):
            im = im.convert("RGBA" if im.mode == "LA" else "RGB")
        self.alpha = im.getchannel("A") if im.mode == "RGBA" else None
        self.image = im.convert("RGB") if self.alpha is not None else im
        have = len(self.image.getbands())
        if have != bands:
            raise ClientError(f"{path}: has {have} bands, the model takes {bands}")
        self.path, self.w, self.h = path, im.width, im.height

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        a = np.asarray(self.image.crop((x0, y0, x1, y1)))
        return a.reshape(*a.shape[:2], -1)

    def empty(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray | None:
        """(h, w) bool of transparent pixels in a window, or None when the image has no alpha."""
        return None if self.alpha is None else np.asarray(self.alpha.crop((x0, y0, x1, y1))) == 0


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


def window_pixels(scene: Scene) -> int:
    """4 Mpx windows (fewer cuts), but 1 Mpx once the decoded scene itself is large (over 16 Mpx):
    the interpreter's buffers grow with the window, and the scene already holds the memory."""
    return 4_000_000 if scene.w * scene.h <= 16_000_000 else 1_000_000


def segment(interpreter: Interpreter, scene: Scene, stride: int, margin: int,
            window_pixels: int = 4_000_000) -> np.ndarray:
    """Class ids (H, W): one call, or windows of about ``window_pixels`` for a large scene;
    transparent pixels get :data:`NO_CLASS`."""
    side = max(int(window_pixels ** 0.5) // stride * stride, 2 * margin + 2 * stride)
    side = -(-side // stride) * stride
    ids = np.empty((scene.h, scene.w), np.uint8)
    for y0, y1, ya, yb in cuts(scene.h, side, margin, stride):
        for x0, x1, xa, xb in cuts(scene.w, side, margin, stride):
            part = run_whole(interpreter, scene.window(y0, y1, x0, x1), stride)
            ids[ya:yb, xa:xb] = part[ya - y0:yb - y0, xa - x0:xb - x0]
            empty = scene.empty(ya, yb, xa, xb)
            if empty is not None:
                ids[ya:yb, xa:xb][empty] = NO_CLASS
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
    inp = interpreter.get_input_details()[0]
    if len(interpreter.get_output_details()[0]["shape_signature"]) != 3:
        raise ClientError(f"{args.model}: not a whole-image file (its output is not (1, H, W) class ids)")
    if int(inp["shape_signature"][-1]) != spec["bands"]:
        raise ClientError(f"{args.model}: the model takes {inp['shape_signature'][-1]} bands, its spec says "
                          f"{spec['bands']}")
    k = argmax_classes(args.model)
    if k is not None and k != len(spec["classes"]):
        raise ClientError(f"{args.model}: the model predicts {k} classes, its spec lists {len(spec['classes'])}")
    if spec.get("dtype") not in ("", None, "uint8"):  # satseg refuses other imagery than the model's too
        raise ClientError(f"{args.model}: the model takes {spec['dtype']} imagery; this client reads 8-bit images only")
    scene = Scene(args.image, spec["bands"])
    try:
        ids = segment(interpreter, scene, spec["stride"], spec["margin"], args.window_pixels or window_pixels(scene))
    except (RuntimeError, ValueError) as e:  # a stride the graph cannot take, and the like
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise ClientError(f"{args.model}: the model fails on this image with its spec's stride {spec['stride']} "
                          f"and margin {spec['margin']} ({first})") from None
    out = Image.fromarray(ids, mode="L")
    colours = [v for c in spec["classes"] for v in c["color"]]
    out.putpalette(colours + [0] * (768 - len(colours)))  # all 256 ids: 255 (no imagery) stays 255, black
    # written whole into a file created exclusively (never through a planted link), then renamed
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.", suffix=".tmp.png")
    try:
        with os.fdopen(fd, "wb") as f:
            out.save(f, format="PNG")
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    counts = sum(np.bincount(ids[r:r + 256].ravel(), minlength=NO_CLASS + 1)  # in strips: bincount widens to int64
                 for r in range(0, ids.shape[0], 256))
    shares = counts[:len(spec["classes"])] / ids.size
    print(args.image.name, ", ".join(f"{c['name']} {100 * s:.1f} %" for c, s in zip(spec["classes"], shares)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("image", type=Path)
    ap.add_argument("out", type=Path, help="the palette PNG of class ids to write")
    ap.add_argument("--window-pixels", type=positive,
                    help="largest window run in one call [default: 4000000; 1000000 for scenes over 16 Mpx]")
    ap.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    args = ap.parse_args(argv)
    try:
        run(args)
    except ClientError as e:
        print(f"edge_inference.py: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
