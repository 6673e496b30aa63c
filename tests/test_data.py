import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from satseg import data as D
from satseg.classes import DUBAI_CLASSES, IGNORE_LABEL, colorize, palette_array
from satseg.errors import DataError
from satseg.imaging import (
    crop_grid,
    cut_patches,
    normalize,
    read_image,
    read_mask,
    resize,
    rgb_to_ids,
    tile_starts,
)

from .conftest import DUBAI, needs_dubai


def test_palette_conversion_maps_every_class_and_ignores_off_palette_pixels():
    pal = palette_array()
    mask = np.zeros((3, 6, 3), np.uint8)
    mask[0] = pal  # every class once, in id order
    mask[1] = (0, 0, 0)  # black border: in no class
    mask[2] = pal[::-1]
    mask[2, 0] = (61, 16, 152)  # one off by one in red
    ids, ignored = rgb_to_ids(mask)
    assert ids[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert ids[1].tolist() == [IGNORE_LABEL] * 6
    assert ids[2].tolist() == [IGNORE_LABEL, 4, 3, 2, 1, 0]
    assert ignored == 7


def test_colorize_inverts_rgb_to_ids():
    ids = np.random.default_rng(0).integers(0, 6, (8, 9)).astype(np.uint8)
    back, ignored = rgb_to_ids(colorize(ids))
    assert ignored == 0 and np.array_equal(back, ids)


def test_single_band_mask_holds_class_ids(tmp_path):
    m = np.array([[0, 5, 6], [255, 2, 1]], np.uint8)
    Image.fromarray(m, mode="L").save(tmp_path / "m.png")
    ids, ignored = read_mask(tmp_path / "m.png")
    assert ids.tolist() == [[0, 5, 255], [255, 2, 1]] and ignored == 2


def test_crop_mode_patch_count_matches_reference():
    # 509x544 -> 1x2 patches of 256; 2149x1479 -> 8x5
    assert len(crop_grid(544, 509, 256)) == 2
    assert len(crop_grid(1479, 2149, 256)) == 5 * 8
    img = np.zeros((300, 520, 3), np.uint8)
    xs, ms = cut_patches(img, np.zeros((300, 520), np.uint8), 256, "crop")
    assert xs.shape == (2, 256, 256, 3) and ms.shape == (2, 256, 256)


def test_pad_mode_keeps_every_pixel_and_masks_padding():
    img = np.arange(300 * 520 * 3).reshape(300, 520, 3).astype(np.uint16)
    mask = np.ones((300, 520), np.uint8)
    xs, ms = cut_patches(img, mask, 256, "pad")
    assert xs.shape[0] == 2 * 3
    assert (ms == 1).sum() == 300 * 520  # every labelled pixel is in some patch, exactly once
    assert (ms == IGNORE_LABEL).sum() == 6 * 256 * 256 - 300 * 520
    assert np.array_equal(xs[0], img[:256, :256])


def test_tile_starts_cover_the_image_and_end_at_the_border():
    assert tile_starts(1479, 256, 192) == [0, 192, 384, 576, 768, 960, 1152, 1223]
    assert tile_starts(256, 256, 192) == [0]
    assert tile_starts(100, 256, 192) == [0]


def test_normalizations():
    x = np.stack([np.full((4, 4), 10.0), np.arange(16).reshape(4, 4)], -1).astype(np.float32)
    mm = normalize(x, {"kind": "minmax"})
    assert mm[..., 1].min() == 0 and mm[..., 1].max() == 1 and np.all(mm[..., 0] == 0)
    st = normalize(x, {"kind": "standard", "mean": [10, 0], "std": [2, 4]})
    assert st[0, 1, 1] == 0.25 and st[0, 0, 0] == 0
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize(x, {"kind": "zscore"})


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_minmax_is_the_reference_scaler_per_patch_and_channel(dtype):
    from sklearn.preprocessing import MinMaxScaler

    patch = np.random.default_rng(3).integers(20, 230, (32, 24, 3)).astype(dtype)
    ref = MinMaxScaler().fit_transform(patch.reshape(-1, 3).astype(np.float64)).reshape(patch.shape)
    np.testing.assert_allclose(normalize(patch, {"kind": "minmax"}), ref, atol=1e-6)
    batch = np.stack([patch // 2, patch])  # a batch-wide range would differ from the second patch's
    np.testing.assert_allclose(normalize(batch, {"kind": "minmax"})[1], ref, atol=1e-6)  # per patch


@pytest.mark.parametrize("shape,out", [((37, 53, 6), (64, 40)), ((300, 290, 3), (256, 256)), ((256, 256, 6), (256, 256))])
def test_bilinear_resize_is_tensorflows_half_pixel_bilinear(shape, out):
    import tensorflow as tf

    a = np.random.default_rng(4).normal(size=shape).astype(np.float16)  # crops cut cached float16 logits
    ref = tf.image.resize(a.astype(np.float32), out, method="bilinear", antialias=False).numpy()
    np.testing.assert_allclose(resize(a, *out), ref, atol=1e-4)
    ids = np.arange(shape[0] * shape[1]).reshape(shape[:2]) % 6
    np.testing.assert_array_equal(resize(ids, *out, nearest=True),
                                  tf.image.resize(ids[..., None], out, method="nearest").numpy()[..., 0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("bands", [1, 4, 7])
def test_tiff_reading_any_band_count_and_dtype(tmp_path, dtype, bands):
    arr = (np.random.default_rng(0).random((20, 24, bands)) * 200).astype(dtype)
    tifffile.imwrite(tmp_path / "a.tif", arr)
    out = read_image(tmp_path / "a.tif")
    assert out.shape == (20, 24, bands) and out.dtype == dtype
    assert np.array_equal(out, arr)


def test_planar_tiff_is_transposed(tmp_path):
    arr = np.random.default_rng(0).integers(0, 1000, (4, 30, 40)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", arr, photometric="minisblack", planarconfig="separate")
    assert read_image(tmp_path / "p.tif").shape == (30, 40, 4)


def test_tiff_with_wrong_band_count_names_file(tmp_path):
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(DataError, match=r"five\.tif: has 5 bands, the model takes 3"):
        read_image(tmp_path / "five.tif", bands=3)


def test_tiff_dataset_with_class_id_masks(tmp_path):
    (tmp_path / "T" / "images").mkdir(parents=True)
    (tmp_path / "T" / "masks").mkdir()
    tifffile.imwrite(tmp_path / "T/images/a.tif", np.ones((64, 64, 4), np.uint16) * 500)
    tifffile.imwrite(tmp_path / "T/masks/a.tif", np.full((64, 64), 3, np.uint8))
    ps = D.load_patches(tmp_path, patch_size=32)
    assert ps.images.shape == (4, 32, 32, 4) and np.all(ps.masks == 3)


def test_augment_keeps_image_mask_and_logits_aligned():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16, 3)).astype(np.float32)
    mask = (img[..., 0] * 6).astype(np.int32)  # the mask is a function of the image
    logits = img[..., :1].repeat(6, -1)
    for _ in range(12):
        a, m, lg = D.augment([img, mask, logits], rng)
        assert np.array_equal(m, (a[..., 0] * 6).astype(np.int32))
        assert np.array_equal(lg[..., 0], a[..., 0])
    seen = {D.augment([img], np.random.default_rng(s))[0].tobytes() for s in range(64)}
    assert len(seen) == 8  # 4 rotations x 2 flips


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((1, 4, 4, 1), np.float32)
    s = D.EpochSampler(x, np.zeros((10, 4, 4), np.uint8), seed=5)
    s.epoch = 3
    a = [float(v[0].mean()) for v in s()]
    s.epoch = 4
    b = [float(v[0].mean()) for v in s()]
    s.epoch = 3
    assert a == [float(v[0].mean()) for v in s()] and a != b and sorted(a) == list(range(10))


def test_split_by_image_has_no_leakage_and_is_deterministic(tiny_dataset):
    ps = D.load_patches(tiny_dataset, patch_size=32)
    sp = D.split_indices(ps, "image", 0.34, 0.34, seed=7)
    srcs = [set(ps.source[v]) for v in sp.values()]
    assert all(srcs) and not (srcs[0] & srcs[1] or srcs[0] & srcs[2] or srcs[1] & srcs[2])
    assert sum(len(v) for v in sp.values()) == len(ps)
    again = D.split_indices(ps, "image", 0.34, 0.34, seed=7)
    assert all(np.array_equal(sp[k], again[k]) for k in sp)
    other = D.split_indices(ps, "image", 0.34, 0.34, seed=8)
    assert any(not np.array_equal(sp[k], other[k]) for k in sp)
    by_patch = D.split_indices(ps, "patch", 0.2, 0.2, seed=7)
    assert sorted(np.concatenate(list(by_patch.values())).tolist()) == list(range(len(ps)))


def test_split_seed_keeps_the_split_while_the_training_seed_changes(tiny_dataset):
    from satseg.train import TrainConfig, prepare_data

    def split(**kw):
        cfg = TrainConfig(model="edge", data=str(tiny_dataset), patch_size=32, val_fraction=0.34, test_fraction=0.34, **kw)
        return prepare_data(cfg, tiny_dataset, progress=False).split

    assert split(seed=1, split_seed=7) == split(seed=7)
    assert split(seed=1, split_seed=7) != split(seed=1)


def test_synthetic_dataset_has_all_classes(tiny_dataset):
    info = D.inspect(tiny_dataset, patch_size=32)
    assert info["images"] == 6 and info["patches"] == 6 * 3 * 4
    assert info["ignored_share"] == 0
    assert set(info["class_share"]) == {c.name for c in DUBAI_CLASSES}
    assert info["class_share"]["Land (unpaved area)"] > 0.3


# --- error cases: one clear line naming the file ---------------------------------------------

def _tile(tmp_path, w=40, h=30):
    (tmp_path / "Tile 1" / "images").mkdir(parents=True)
    (tmp_path / "Tile 1" / "masks").mkdir(parents=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / "Tile 1/images/a.jpg")
    Image.fromarray(colorize(np.zeros((h, w), np.uint8))).save(tmp_path / "Tile 1/masks/a.png")
    return tmp_path


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="nope: dataset directory not found"):
        D.find_samples(tmp_path / "nope")


def test_empty_dataset(tmp_path):
    with pytest.raises(DataError, match="empty dataset"):
        D.find_samples(tmp_path)


def test_image_without_mask(tmp_path):
    _tile(tmp_path)
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "Tile 1/images/b.jpg")
    with pytest.raises(DataError, match=r"b\.jpg: image has no mask"):
        D.find_samples(tmp_path)


def test_mask_of_another_size(tmp_path):
    _tile(tmp_path)
    Image.fromarray(colorize(np.zeros((10, 10), np.uint8))).save(tmp_path / "Tile 1/masks/a.png")
    with pytest.raises(DataError, match=r"a\.png: mask is 10x10 but its image a\.jpg is 40x30"):
        D.load_sample(D.find_samples(tmp_path)[0])


def test_truncated_image(tmp_path):
    _tile(tmp_path, 200, 200)
    p = tmp_path / "Tile 1/images/a.jpg"
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DataError, match=r"a\.jpg: cannot read image"):
        D.load_sample(D.find_samples(tmp_path)[0])


def test_no_patch_fits(tmp_path):
    _tile(tmp_path)
    with pytest.raises(DataError, match="no 256x256 patch fits"):
        D.load_patches(tmp_path)


@needs_dubai
def test_real_dataset_inspect_matches_readme():
    from click.testing import CliRunner

    from satseg.cli import cli

    res = CliRunner().invoke(cli, ["data", "inspect", str(DUBAI), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["images"] == 64 and info["patches"] == 1160
    share = info["class_share"]
    assert abs(share["Building"] - 0.139) < 0.005 and abs(share["Land (unpaved area)"] - 0.510) < 0.005
    assert abs(share["Unlabeled"] - 0.005) < 0.002
    assert 0.005 < info["ignored_share"] < 0.007


@needs_dubai
def test_real_mask_black_pixels_become_ignore():
    ids, ignored = read_mask(DUBAI / "Tile 1" / "masks" / "image_part_001.png")
    assert ignored == int((ids == IGNORE_LABEL).sum())
    assert set(np.unique(ids)) <= set(range(6)) | {IGNORE_LABEL}


def test_16_bit_class_id_png_masks_are_read_as_ids(tmp_path):
    from PIL import Image

    from satseg.imaging import read_mask

    ids = (np.arange(48).reshape(6, 8) % 7).astype(np.uint16)  # 6 is not a class: ignored
    Image.fromarray(ids).save(tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode.startswith("I;16")
    mask, ignored = read_mask(tmp_path / "m.png")
    assert ignored == int((ids == 6).sum())
    np.testing.assert_array_equal(mask, np.where(ids == 6, 255, ids).astype(np.uint8))


def test_large_scenes_are_read_in_windows_through_rasterio(tmp_path, monkeypatch):
    """Over RowReader.WINDOWED_PIXELS (made tiny here) a PNG is read window by window through
    rasterio, giving the same rows as Pillow's whole decode."""
    pytest.importorskip("rasterio")
    from satseg.imaging import RowReader

    img = np.random.default_rng(0).integers(0, 256, (90, 70, 3)).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "scene.png")
    monkeypatch.setattr(RowReader, "WINDOWED_PIXELS", 100)
    reader = RowReader(tmp_path / "scene.png", bands=3)
    try:
        assert reader._ds is not None and reader.shape == (90, 70, 3)
        assert np.array_equal(reader.rows(10, 55), img[10:55])
        assert np.array_equal(reader.rows(0, 90), img)
    finally:
        reader.close()


def _pixels(path, window):
    from satseg.imaging import RowReader

    reader = RowReader(path, bands=3)
    try:
        return reader.window(*window), reader.held
    finally:
        reader.close()


def _picture(path, kind):
    small = np.random.default_rng(3).integers(0, 256, (12, 10, 3)).astype(np.uint8)
    im = Image.fromarray(small).resize((100, 120), Image.BILINEAR)
    if kind == "palette":
        im = im.quantize(16)
    elif kind == "palette_trns":
        im = im.quantize(16)
        im.info["transparency"] = 0
    elif kind == "la":
        im = im.convert("LA")
    im.save(path, **({"transparency": 0} if kind == "palette_trns" else {}))


@pytest.mark.parametrize("kind", ["jpg", "png", "palette", "palette_trns", "la"])
def test_large_scenes_give_the_same_pixels_with_and_without_rasterio(tmp_path, monkeypatch, kind):
    """One decoder per format, whatever is installed: a JPEG over WINDOWED_PIXELS is decoded by
    Pillow (GDAL's libjpeg rounds otherwise), a plain PNG through rasterio windows when it is
    installed, palette and grey + alpha PNGs by Pillow (GDAL reads them as indices, or with a
    nodata value); either way the pixels (so the predictions) are those of the install without
    rasterio, and of the same file under the threshold."""
    pytest.importorskip("rasterio")
    import sys

    from satseg.imaging import RowReader

    path = tmp_path / f"scene.{'jpg' if kind == 'jpg' else 'png'}"
    _picture(path, kind)
    window = (17, 9, 60, 51)
    small, _ = _pixels(path, window)
    monkeypatch.setattr(RowReader, "WINDOWED_PIXELS", 100)
    with_rasterio, held = _pixels(path, window)
    assert held == (kind != "png")
    monkeypatch.setitem(sys.modules, "rasterio", None)  # import rasterio now fails
    without, held = _pixels(path, window)
    assert held
    assert with_rasterio.shape == (60, 51, 3) and np.array_equal(with_rasterio, without)
    assert np.array_equal(small, without)


def test_training_reads_a_large_jpeg_in_windows_and_closes_in_any_order(tmp_path, monkeypatch):
    """Training keeps many scenes open, so ``hold=False`` reads even a JPEG in rasterio windows
    (nothing held decoded); readers close in any order; windows are clipped to the image by
    every decoder alike."""
    pytest.importorskip("rasterio")
    from satseg.imaging import RowReader

    _picture(tmp_path / "a.jpg", "jpg")
    _picture(tmp_path / "b.png", "png")
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((120, 100, 3), np.uint8))
    monkeypatch.setattr(RowReader, "WINDOWED_PIXELS", 100)
    a, b = RowReader(tmp_path / "a.jpg", hold=False), RowReader(tmp_path / "b.png", hold=False)
    assert not a.held and not b.held
    held = RowReader(tmp_path / "a.jpg")
    for reader in (a, b, held, RowReader(tmp_path / "c.tif")):
        assert reader.window(110, 90, 20, 20).shape == (10, 10, 3)
        assert reader.window(-5, -5, 10, 10).shape == (5, 5, 3)
    a.close()
    b.close()  # closed in the order opened


def test_a_truncated_large_png_is_refused_not_read_as_zeros(tmp_path, monkeypatch):
    """GDAL reads a PNG cut short as zeros without an error; satseg checks its end first."""
    pytest.importorskip("rasterio")
    from satseg.errors import DataError
    from satseg.imaging import RowReader

    _picture(tmp_path / "a.png", "png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[:len(data) // 2])
    monkeypatch.setattr(RowReader, "WINDOWED_PIXELS", 100)
    with pytest.raises(DataError, match="a.png: truncated"):
        RowReader(tmp_path / "a.png")


def test_a_corrupt_picture_is_found_when_its_pixels_are_read(tmp_path):
    """Opening reads the header only (sizes are cheap); a truncated JPEG is one DataError on read."""
    from satseg.errors import DataError
    from satseg.imaging import RowReader

    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3)).astype(np.uint8)
    Image.fromarray(noise).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[:len(data) // 2])
    reader = RowReader(tmp_path / "a.jpg")
    assert reader.shape == (256, 256, 3)
    with pytest.raises(DataError, match="a.jpg: cannot read image"):
        reader.rows(0, 256)
    reader.close()


def test_balanced_class_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    from satseg.train import balanced_class_weights

    masks = [np.array([[0, 0, 1], [2, IGNORE_LABEL, 0]]), np.array([[1, 0, 0, 0]])]
    labels = np.concatenate([m[m != IGNORE_LABEL] for m in masks])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert balanced_class_weights(masks, 4) == pytest.approx([*expected, 0.0], abs=1e-4)


def test_a_class_absent_from_the_training_masks_is_named_in_a_warning(tmp_path):
    from PIL import Image

    from satseg.classes import ClassSet
    from satseg.data.coverage import check_coverage
    from satseg.data.layouts import Sample

    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).save(tmp_path / "m.png")
    cs = ClassSet.from_dict({"classes": [{"id": 0, "name": "bg", "color": [0, 0, 0], "values": [0]},
                                         {"id": 1, "name": "road", "color": [9, 9, 9], "values": [128]},
                                         {"id": 2, "name": "roof", "color": [255, 0, 0], "values": [255]}]})
    sample = Sample(tmp_path / "m.png", tmp_path / "m.png", "g")
    warnings = check_coverage(cs, np.array([2, 0, 2]), [sample], tmp_path)
    assert warnings == ["class 'road' (values [128]) has no pixel in the training masks (values seen: 0, 255); "
                        "the model cannot learn it"]
    assert check_coverage(cs, np.array([2, 1, 2]), [sample], tmp_path) == []
