"""The plain client (examples/edge_inference.py) needs nothing of satseg and gives its ids."""

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
