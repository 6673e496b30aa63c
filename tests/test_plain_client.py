"""The plain client (examples/edge_inference.py) needs nothing of satseg and gives its ids."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from satseg.bench import BLOCK_IMPORTS
from satseg.edge import SHIPPED_MODEL, EdgeModel
from satseg.imaging import read_image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "edge_inference.py"

WITHOUT_SATSEG = BLOCK_IMPORTS.format(blocked=("satseg", "tensorflow", "keras")) + """
import runpy
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def photo(h, w, seed):
    """A smooth, image-like scene (random noise would make every model's ids flicker)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


@pytest.mark.parametrize("size, window", [((301, 437), 4_000_000), ((517, 389), 40_000)])
def test_plain_client_equals_satseg_predict_at_odd_sizes_whole_and_in_windows(tmp_path, size, window):
    img = tmp_path / "scene.png"
    Image.fromarray(photo(*size, seed=size[0])).save(img)
    out = tmp_path / "ids.png"
    r = subprocess.run([sys.executable, "-c", WITHOUT_SATSEG, str(EXAMPLE), str(SHIPPED_MODEL), str(img), str(out),
                        "--window-pixels", str(window)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    with Image.open(out) as im:
        assert im.mode == "P" and im.size == (size[1], size[0])
        ids = np.asarray(im)
    expected = EdgeModel(SHIPPED_MODEL).predict(read_image(img))
    assert np.array_equal(ids, expected)
    assert len(np.unique(ids)) > 1


def test_plain_client_windows_cover_every_pixel_once_at_least_margin_from_a_cut():
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        from edge_inference import cuts
    finally:
        sys.path.pop(0)
    for n, size, margin, stride in [(1000, 256, 48, 8), (257, 256, 48, 8), (4096, 512, 112, 16), (100, 512, 48, 8)]:
        kept = []
        for s, e, a, b in cuts(n, size, margin, stride):
            assert s % stride == 0 and e - s <= size and s <= a < b <= e
            assert s == 0 or a - s >= margin
            assert e == n or e - b >= margin
            kept += range(a, b)
        assert kept == list(range(n))


def test_plain_client_refuses_to_overwrite_and_says_why_in_one_line(tmp_path):
    img = tmp_path / "scene.png"
    Image.fromarray(photo(40, 56, seed=3)).save(img)
    before = img.read_bytes()
    grey = tmp_path / "grey.png"
    Image.fromarray(photo(40, 56, seed=3)[..., 0]).save(grey)
    (tmp_path / "old.png").write_bytes(b"keep")
    cases = [([str(img), str(img)], "is the input image"), ([str(img), str(tmp_path / "old.png")], "exists; pass --force"),
             ([str(grey), str(tmp_path / "g.png")], "has 1 bands, the model takes 3"),
             ([str(img), str(tmp_path / "no" / "x.png")], "does not exist"),
             ([str(img), str(tmp_path / "x.jpg")], "name it .png")]
    for args, why in cases:
        r = subprocess.run([sys.executable, str(EXAMPLE), str(SHIPPED_MODEL), *args], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and why in r.stderr.strip().splitlines()[-1], (args, r.stderr)
    assert img.read_bytes() == before and (tmp_path / "old.png").read_bytes() == b"keep"


def _lying(tmp_path, name, change):
    """The shipped default model with ``change(spec)`` embedded instead of its own spec."""
    import copy
    import json

    from satseg.tflite_metadata import embedded_spec, with_spec

    spec = copy.deepcopy(embedded_spec(SHIPPED_MODEL))
    doc = change(spec)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(with_spec(SHIPPED_MODEL.read_bytes(), spec if doc is None else doc))
    assert json.dumps(embedded_spec(path))  # embedded as given
    return path


def _drop(key):
    return lambda s: s.pop(key) and None


LYING_SPECS = {
    "five_classes": (lambda s: s.update(classes=s["classes"][:5]), "predicts 6 classes, its spec lists 5"),
    "seven_classes": (lambda s: s.update(classes=s["classes"] + [dict(s["classes"][0], name="extra")]),
                      "predicts 6 classes, its spec lists 7"),
    "two_value_colour": (lambda s: s["classes"][1].update(color=[1, 2]), "color must be 3 whole numbers"),
    "no_stride": (_drop("stride"), "no stride"),
    "stride_0": (lambda s: s.update(stride=0), "stride must be a whole number from 1"),
    "stride_3": (lambda s: s.update(stride=3), "fails on this image with its spec's stride 3"),
    "classes_a_string": (lambda s: s.update(classes="Building,Land"), "classes must be a list"),
    "margin_negative": (lambda s: s.update(margin=-40), "margin must be a whole number from 0"),
    "colour_300": (lambda s: s["classes"][2].update(color=[300, 0, 0]), "color must be 3 whole numbers"),
    "bands_1": (lambda s: s.update(bands=1), "the model takes 3 bands, its spec says 1"),
    "a_list": (lambda s: [s], "a JSON object, not list"),
    "dtype_uint16": (lambda s: s.update(dtype="uint16"), "takes uint16 imagery"),
}


@pytest.mark.parametrize("case", sorted(LYING_SPECS))
def test_plain_client_refuses_a_lying_or_malformed_spec_in_one_line(tmp_path, case):
    change, why = LYING_SPECS[case]
    model = _lying(tmp_path, case, change)
    img = tmp_path / "scene.png"
    Image.fromarray(photo(45, 61, seed=4)).save(img)
    r = subprocess.run([sys.executable, "-c", WITHOUT_SATSEG, str(EXAMPLE), str(model), str(img), str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert why in r.stderr.strip().splitlines()[-1], r.stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(LYING_SPECS))
def test_satseg_predict_refuses_what_the_plain_client_refuses(tmp_path, case):
    """One contract, two readers: whatever spec the plain client refuses, satseg refuses too."""
    change, _ = LYING_SPECS[case]
    model = _lying(tmp_path, case, change)
    img = tmp_path / "scene.png"
    Image.fromarray(photo(45, 61, seed=4)).save(img)
    r = subprocess.run([sys.executable, "-m", "satseg", "predict", str(img), "--model", str(model), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("satseg: error: "), r.stderr


@pytest.mark.parametrize("lie", ["name", "float_stride", "bool_bands"])
def test_plain_client_refuses_a_sidecar_that_disagrees_with_the_file(tmp_path, lie):
    import json
    import shutil

    from satseg.tflite_metadata import embedded_spec

    model = tmp_path / "m.tflite"
    shutil.copy(SHIPPED_MODEL, model)
    spec = embedded_spec(model)
    if lie == "name":
        spec["classes"][0]["name"] = "Roof"
    elif lie == "float_stride":  # 8.0 == 8 in Python, not in the contract
        spec["stride"] = float(spec["stride"])
    else:
        spec["bands"] = True if spec["bands"] == 1 else spec["bands"] == 3
    (tmp_path / "m.satseg.json").write_text(json.dumps(spec))
    img = tmp_path / "scene.png"
    Image.fromarray(photo(40, 56, seed=5)).save(img)
    r = subprocess.run([sys.executable, str(EXAMPLE), str(model), str(img), str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "m.satseg.json: disagrees with the spec inside m.tflite" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", ["tiff16", "png16"])
def test_plain_client_refuses_16_bit_imagery(tmp_path, kind):
    import tifffile

    px = (photo(40, 56, seed=6).astype(np.uint16) * 257)
    img = tmp_path / ("s.tif" if kind == "tiff16" else "s.png")
    if kind == "tiff16":
        tifffile.imwrite(img, px, photometric="rgb")
    else:
        _png16(img, px)
    r = subprocess.run([sys.executable, str(EXAMPLE), str(SHIPPED_MODEL), str(img), str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not 8-bit" in r.stderr.strip().splitlines()[-1], r.stderr


def _png16(path, px):
    """A 16-bit RGB PNG, written by hand (Pillow writes no 16-bit RGB)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = px.shape[:2]
    raw = b"".join(b"\x00" + px[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_plain_client_gives_transparent_pixels_the_id_satseg_predict_gives(tmp_path):
    rgba = np.dstack([photo(48, 64, seed=7), np.full((48, 64), 255, np.uint8)])
    rgba[10:30, 5:40, 3] = 0
    img = tmp_path / "s.png"
    Image.fromarray(rgba, mode="RGBA").save(img)
    r = subprocess.run([sys.executable, str(EXAMPLE), str(SHIPPED_MODEL), str(img), str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    ids = np.asarray(Image.open(tmp_path / "o.png"))
    r = subprocess.run([sys.executable, "-m", "satseg", "predict", str(img), "--out", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    expected = np.asarray(Image.open(tmp_path / "p" / "s.png"))
    assert (ids[10:30, 5:40] == 255).all() and np.array_equal(ids, expected)


@pytest.mark.slow
def test_plain_client_keeps_a_12000_pixel_scene_under_1_gb(tmp_path):
    small = np.random.default_rng(8).integers(0, 256, (12000 // 40, 12000 // 40, 3)).astype(np.uint8)
    img = tmp_path / "big.jpg"
    Image.fromarray(small).resize((12000, 12000), Image.BILINEAR).save(img, quality=85)
    del small
    # VmHWM is this process's own peak; ru_maxrss would keep pytest's across fork and exec
    probe = ("import runpy, sys; sys.argv = sys.argv[1:]\n"
             "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "finally:\n    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
             "    print('PEAK', hwm[0], file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", probe, str(EXAMPLE), str(SHIPPED_MODEL), str(img), str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    peak_kb = int(r.stderr.split("PEAK")[-1].split()[0])
    assert peak_kb < 1024 * 1024, f"peak {peak_kb / 1024:.0f} MB"


def _modes(tmp_path):
    rng = np.random.default_rng(9)
    rgb = photo(40, 56, seed=9)
    out = {}
    pal = Image.fromarray(rgb).quantize(16)
    pal.info["transparency"] = 3
    pal.save(tmp_path / "palette.png", transparency=3)
    out["palette"] = tmp_path / "palette.png"
    la = np.dstack([rgb[..., 0], np.where(rng.random((40, 56)) < 0.2, 0, 255).astype(np.uint8)])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out["grey_alpha"] = tmp_path / "la.png"
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    out["cmyk"] = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb[..., 0] > 128).save(tmp_path / "bits.png")
    out["one_bit"] = tmp_path / "bits.png"
    return out


@pytest.mark.parametrize("kind", ["palette", "grey_alpha", "cmyk", "one_bit"])
def test_plain_client_reads_images_by_satsegs_rules(tmp_path, kind):
    img = _modes(tmp_path)[kind]
    r = subprocess.run([sys.executable, str(EXAMPLE), str(SHIPPED_MODEL), str(img), str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "satseg", "predict", str(img), "--out", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    expected = np.asarray(Image.open(tmp_path / "p" / (img.stem + ".png")))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), expected)


def test_plain_client_never_writes_through_a_planted_temporary_link(tmp_path):
    img = tmp_path / "scene.png"
    Image.fromarray(photo(40, 56, seed=10)).save(img)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out_dir = tmp_path / "T"
    out_dir.mkdir()
    for pid in range(os.getpid(), os.getpid() + 2000):  # the old name was predictable: .ids.png.<pid>.tmp.png
        (out_dir / f".ids.png.{pid}.tmp.png").symlink_to(victim)
    r = subprocess.run([sys.executable, str(EXAMPLE), str(SHIPPED_MODEL), str(img), str(out_dir / "ids.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert victim.read_text() == "keep" and not (out_dir / "ids.png").is_symlink()
