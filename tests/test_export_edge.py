"""Export round trips, the edge runtime (without TensorFlow), tiling and GeoTIFF output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from satseg.classes import save_spec
from satseg.edge import EdgeModel, blend_weights, collect_inputs, predict_files, predict_tiled
from satseg.imaging import softmax

from .helpers import (
    WITHOUT_TENSORFLOW,
    assert_matches_expected,
    pixel_expected,
    pixel_model,
    pixel_spec,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_student, tiny_dataset):
    from satseg.export import export_model

    out = tmp_path_factory.mktemp("export") / "student"
    report = export_model(trained_student / "model.keras", out, teacher=str(trained_student / "model.keras"),
                          n_calibration=24, n_parity=12, log=lambda *a: None)
    return out, report


needs_shipped_classic = pytest.mark.skipif(
    not (ROOT / "exported_models" / "student_distilled" / "model_float32.tflite").exists(),
    reason="the shipped classic student is not in this checkout")


@pytest.mark.slow
def test_export_round_trip_every_artifact_loads_and_agrees(exported):
    out, report = exported
    arts = {a["format"]: a for a in report["artifacts"]}
    # the tiny student normalises inside the model, so its LiteRT files take whole images, and
    # the fixed-size probability file comes beside them
    assert set(arts) == {"saved_model", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8",
                         "tflite_int8_fixed"}
    assert all(arts[f]["whole_image"] for f in ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8"))
    assert not arts["tflite_int8_fixed"]["whole_image"] and not arts["saved_model"]["whole_image"]
    assert arts["tflite_float32"]["agreement"] >= 0.999
    assert arts["saved_model"]["agreement"] >= 0.999
    # A 4-epoch model on tiny synthetic data has small logit margins; the shipped models are held
    # to "int8 within 1 mIoU point" on real data (exported_models/*/report.json).
    assert arts["tflite_int8"]["agreement"] >= 0.95
    assert arts["tflite_int8"]["bytes"] < arts["tflite_float32"]["bytes"] / 2
    for fmt in ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "tflite_int8_fixed"):
        m = EdgeModel(out / arts[fmt]["path"])
        assert m.spec.patch_size == 32 and m.spec.num_classes == 6
        assert m.whole_image == (fmt != "tflite_int8_fixed")
        if m.whole_image:
            assert m.spec.margin > 0 and m.spec.margin % m.spec.stride == 0
    on_disk = json.loads((out / "report.json").read_text())
    assert all(set(a) >= {"format", "path", "bytes", "agreement", "miou_delta"} for a in on_disk["artifacts"])
    assert "| tflite_int8 |" in (out / "report.md").read_text()
    assert "reduction_vs_teacher_keras_adam" in arts["tflite_int8"]


@pytest.mark.slow
def test_an_exported_file_is_scored_on_its_runs_recorded_test_split(exported, trained_student, tiny_dataset):
    from satseg.evaluate import select_images

    out, _ = exported
    recorded = json.loads((trained_student / "config.json").read_text())["split"]["test"]
    assert json.loads((out / "config.json").read_text())["split"]["test"] == recorded
    from satseg.run import recorded_data

    chosen = select_images(tiny_dataset, "test", recorded=recorded_data(out / "model_int8.tflite"))
    assert sorted(str(s.image.relative_to(tiny_dataset)) for s in chosen) == sorted(recorded)


@pytest.mark.slow
def test_exported_files_use_builtin_ops_only(exported):
    from ai_edge_litert.interpreter import Interpreter

    out, report = exported
    for a in report["artifacts"]:
        if a["path"].endswith(".tflite"):
            ops = {d["op_name"] for d in Interpreter(model_path=str(out / a["path"]))._get_ops_details()}
            assert not any(o.startswith("Flex") for o in ops), (a["path"], ops)


def test_export_refuses_to_overwrite(trained_student, tmp_path):
    from satseg.errors import SatsegError
    from satseg.export import export_model

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep")
    with pytest.raises(SatsegError, match="output exists; pass --force"):
        export_model(trained_student / "model.keras", tmp_path / "out")
    assert (tmp_path / "out" / "x").read_text() == "keep"


def test_tiled_prediction_of_a_large_image_has_no_seams(pixel_tflite):
    img = np.random.default_rng(0).integers(0, 256, (1479, 2149, 3)).astype(np.uint8)
    m = EdgeModel(pixel_tflite, num_threads=2)
    pred = m.predict(img, overlap=16)
    assert pred.shape == (1479, 2149)
    assert_matches_expected(pred, img)


def test_tiling_small_and_odd_images():
    spec = pixel_spec(32)
    fn = _numpy_pixel_fn
    for shape in [(20, 20, 3), (33, 95, 3), (32, 32, 3)]:
        img = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
        assert np.array_equal(predict_tiled(img, fn, spec, overlap=8).argmax(-1), pixel_expected(img))


def _numpy_pixel_fn(x):
    from .helpers import PIXEL_BIAS, PIXEL_WEIGHTS

    z = x @ PIXEL_WEIGHTS + PIXEL_BIAS
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_blend_weights_peak_in_the_centre_and_never_vanish():
    w = blend_weights(8)
    assert w.min() > 0 and w[3:5, 3:5].min() == w.max() and np.allclose(w, w.T)


def test_geotiff_in_gives_geotiff_out_with_the_same_tags(pixel_tflite, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)  # the tifffile writer copies the tags themselves
    img = np.random.default_rng(2).integers(0, 256, (70, 90, 3)).astype(np.uint8)
    geo = [(33550, "d", 3, (0.5, 0.5, 0.0), True),  # ModelPixelScale
           (33922, "d", 6, (0, 0, 0, 355000.0, 2790000.0, 0), True),  # ModelTiepoint
           (34735, "H", 8, (1, 1, 0, 1, 1024, 0, 1, 1), True)]  # GeoKeyDirectory
    tifffile.imwrite(tmp_path / "scene.tif", img, extratags=geo)
    written = predict_files(EdgeModel(pixel_tflite), [tmp_path / "scene.tif"], tmp_path / "out", progress=False)
    out = tmp_path / "out" / "scene.tif"
    assert out in written and (tmp_path / "out" / "scene_color.png").exists()
    with tifffile.TiffFile(out) as t:
        tags = {tag.code: tag.value for tag in t.pages[0].tags.values()}
        ids = t.asarray()
    assert tags[33550] == (0.5, 0.5, 0.0) and tags[33922][3] == 355000.0 and tags[34735][:4] == (1, 1, 0, 1)
    assert tags[42113] == "255" and 320 in tags  # nodata is the ignore label; a colour table
    assert_matches_expected(ids, img)


def test_folder_layout_is_mirrored_and_masks_are_not_predicted(tmp_path):
    for t in ("Tile 1", "Tile 2"):
        for sub in ("images", "masks"):
            (tmp_path / "ds" / t / sub).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ds" / t / sub / "image_part_001.png")
    pairs = collect_inputs([tmp_path / "ds"])
    assert [str(rel) for _, rel in pairs] == ["Tile 1/images/image_part_001", "Tile 2/images/image_part_001"]


@pytest.mark.slow
def test_predict_cli_runs_without_tensorflow(pixel_tflite, tmp_path):
    (tmp_path / "in" / "a").mkdir(parents=True)
    img = np.random.default_rng(3).integers(0, 256, (100, 150, 3)).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in" / "a" / "x.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "predict", str(tmp_path / "in"),
                        "--model", str(pixel_tflite), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    ids = np.asarray(Image.open(tmp_path / "out" / "a" / "x.png"))
    assert ids.dtype == np.uint8 and ids.ndim == 2
    assert_matches_expected(ids, img)
    assert (tmp_path / "out" / "a" / "x_color.png").exists()


def test_evaluate_scores_a_known_pattern_exactly(pixel_tflite, tmp_path):
    from satseg.classes import colorize
    from satseg.evaluate import evaluate, load_predictor
    from satseg.metrics import ConfusionMatrix

    from .helpers import pixel_logits

    rng = np.random.default_rng(4)
    colours = rng.integers(0, 256, (200, 3)).astype(np.uint8)
    z = np.sort(pixel_logits(colours), -1)
    colours = colours[(z[:, -1] - z[:, -2]) > 0.05]  # no near-ties: the answer is exact
    cm = ConfusionMatrix(6)
    for t in (1, 2):
        (tmp_path / f"Tile {t}" / "images").mkdir(parents=True)
        (tmp_path / f"Tile {t}" / "masks").mkdir(parents=True)
        img = colours[rng.integers(0, len(colours), (90 + t, 130))]
        truth = pixel_expected(img)
        truth[:5] = (truth[:5] + 1) % 6  # a known band of errors along the top border
        Image.fromarray(img).save(tmp_path / f"Tile {t}" / "images" / "a.png")
        rgb = colorize(truth)
        rgb[-1, -3:] = 0  # three off-palette pixels: ignored
        Image.fromarray(rgb).save(tmp_path / f"Tile {t}" / "masks" / "a.png")
        truth[-1, -3:] = 255
        cm.update(truth, pixel_expected(img))
    res = evaluate(load_predictor(pixel_tflite), tmp_path, split="all", overlap=16, progress=False)
    assert res["images"] == 2 and res["ignored_pixels"] == 6
    assert res["confusion_matrix"] == cm.matrix.tolist()
    assert res["miou"] == pytest.approx(cm.scores()["miou"])


def test_int8_io_model_runs_in_the_edge_runtime(tmp_path):
    """Full-integer file with int8 input and output tensors (microcontroller targets)."""
    from satseg.export import convert_tflite, with_probs_head

    from .helpers import STANDARD

    rng = np.random.default_rng(5)
    calib = (rng.integers(0, 256, (16, 32, 32, 3)) - np.array(STANDARD["mean"])) / np.array(STANDARD["std"])
    path = tmp_path / "m.tflite"
    path.write_bytes(convert_tflite(with_probs_head(pixel_model(32)), "tflite_int8", calib.astype(np.float32), int8_io=True))
    save_spec(pixel_spec(32), tmp_path / "m.satseg.json")
    m = EdgeModel(path)
    assert m.input_dtype == np.int8
    img = rng.integers(0, 256, (80, 100, 3)).astype(np.uint8)
    assert (m.predict(img) == pixel_expected(img)).mean() > 0.95


@pytest.mark.parametrize("writer", ["rasterio", "tifffile"])
def test_predicted_geotiff_opens_in_rasterio_with_crs_transform_and_colours(pixel_tflite, tmp_path, writer, monkeypatch):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    img = np.random.default_rng(5).integers(0, 256, (300, 280, 3)).astype(np.uint8)
    src = tmp_path / "scene.tif"
    with rasterio.open(src, "w", driver="GTiff", height=300, width=280, count=3, dtype="uint8", crs="EPSG:32640",
                       transform=from_origin(355000, 2790000, 0.5, 0.5), nodata=0, compress="deflate") as dst:
        dst.write(np.moveaxis(img, -1, 0))
    if writer == "tifffile":
        monkeypatch.setitem(sys.modules, "rasterio", None)  # the fallback writer
    predict_files(EdgeModel(pixel_tflite), [src], tmp_path / "out", progress=False)
    monkeypatch.undo()
    with rasterio.open(tmp_path / "out" / "scene.tif") as ds:
        assert ds.crs.to_epsg() == 32640
        assert ds.transform == from_origin(355000, 2790000, 0.5, 0.5)
        assert ds.nodata == 255  # the ignore label, never predicted: no class reads as nodata
        ids = ds.read(1)
        assert ds.read_masks(1).all()
        cmap = ds.colormap(1)
        assert cmap[0][:3] == (60, 16, 152) and cmap[3][:3] == (254, 221, 58)
        assert ds.compression is not None
    assert_matches_expected(ids, img)


def test_flip_tta_is_exact_for_a_pointwise_model(pixel_tflite):
    """Flips commute with a 1x1 model, so TTA must change nothing; and it calls the model 4 times."""
    from satseg.edge import with_flip_tta

    m = EdgeModel(pixel_tflite)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    calls = []

    def fn(b):
        calls.append(1)
        return m.predict_patches(b)
    np.testing.assert_allclose(with_flip_tta(fn)(x), m.predict_patches(x), atol=1e-5)
    assert len(calls) == 4


def test_predict_with_several_jobs_writes_identical_files(pixel_tflite, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        img = np.random.default_rng(i).integers(0, 256, (90 + 10 * i, 140, 3)).astype(np.uint8)
        Image.fromarray(img).save(src / f"s{i}.png")
    one = predict_files(EdgeModel(pixel_tflite), [src], tmp_path / "one", progress=False, jobs=1)
    two = predict_files(EdgeModel(pixel_tflite), [src], tmp_path / "two", progress=False, jobs=2)
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 6
    for a, b in zip(one, two):
        assert a.read_bytes() == b.read_bytes()


def test_every_exported_litert_file_carries_its_spec_inside(exported):
    from satseg.tflite_metadata import embedded_spec

    out, _ = exported
    files = sorted(out.glob("*.tflite"))
    assert files
    for f in files:
        sidecar = json.loads(f.with_name(f.stem + ".satseg.json").read_text())
        assert embedded_spec(f) == sidecar, f.name


def test_a_litert_file_without_a_sidecar_predicts_from_its_embedded_spec_without_tensorflow(tmp_path):
    from satseg.cli.common import default_model
    from satseg.tflite_metadata import read_metadata, with_spec

    src = Path(default_model(None))
    spec = json.loads(src.with_name("model_int8.satseg.json").read_text())
    model = tmp_path / "alone.tflite"
    model.write_bytes(with_spec(src.read_bytes(), spec))
    assert set(read_metadata(src)) <= set(read_metadata(model)) and "satseg.spec" in read_metadata(model)
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (77, 131, 3)).astype(np.uint8)).save(img)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for m, out in ((model, "alone"), (src, "ref")):
        r = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "predict", str(img), "--model", str(m),
                            "--out", str(tmp_path / out)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "alone" / "a.png").read_bytes() == (tmp_path / "ref" / "a.png").read_bytes()


@pytest.mark.parametrize("arch", ["lite0_edge", "edge", "fast_edge"])
def test_accelerator_graphs_compute_the_models_logits_exactly(arch):
    from satseg.models import build_model
    from satseg.serving import accelerator_model

    model = build_model(arch, (64, 64, 3), seed=0, normalization={"mean": [120.0] * 3, "std": [60.0] * 3})
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    edgetpu, gpu = accelerator_model(model, 64, "edgetpu"), accelerator_model(model, 64, "gpu")
    np.testing.assert_allclose(edgetpu(x), model(x), atol=1e-5)
    np.testing.assert_allclose(gpu(x), softmax(np.asarray(model(x))), atol=1e-5)


@pytest.mark.slow
def test_accelerator_files_use_only_their_targets_ops_and_predict(tmp_path, tiny_dataset):
    from satseg.classes import ModelSpec
    from satseg.export import export_model
    from satseg.models import build_model
    from satseg.serving import EDGETPU_OPS, GPU_OPS
    from satseg.tflite_metadata import op_names

    norm = {"mean": [120.0] * 3, "std": [60.0] * 3}
    model = build_model("lite0_edge", (None, None, 3), seed=0, normalization=norm)
    model.save(tmp_path / "m.keras")
    save_spec(ModelSpec(patch_size=64, architecture="lite0_edge", normalization={"kind": "in_model", **norm}),
              tmp_path / "m.satseg.json")
    report = export_model(tmp_path / "m.keras", tmp_path / "out", formats=["tflite_edgetpu", "tflite_gpu"],
                          calibration_data=tiny_dataset, n_calibration=4, n_parity=4, log=lambda *a: None)
    for fmt, allowed, name in (("tflite_edgetpu", EDGETPU_OPS, "model_edgetpu.tflite"),
                               ("tflite_gpu", GPU_OPS, "model_gpu.tflite")):
        path = tmp_path / "out" / name
        ops = set(op_names(path))
        assert ops <= allowed, (fmt, ops - allowed)
        assert not ops & {"ARG_MAX", "CAST", "DEPTH_TO_SPACE", "TILE"}, ops
        em = EdgeModel(path)
        assert not em.whole_image and list(em._in["shape"]) == [1, 64, 64, 3]
        a = next(a for a in report["artifacts"] if a["format"] == fmt)
        assert a["agreement"] > 0.9, a
        probs = em.predict_patches(np.zeros((1, 64, 64, 3), np.float32) + 100)
        np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-2)  # logits of the Edge TPU file softmaxed on the host
    tpu = EdgeModel(tmp_path / "out" / "model_edgetpu.tflite")
    assert tpu._in["dtype"] == np.uint8 and tpu._out["dtype"] == np.int8


@pytest.mark.slow
def test_an_uncompressed_12000_pixel_tiff_is_predicted_under_1_gb(tmp_path):
    """The map of an uncompressed TIFF is read window by window and its pages dropped after each
    read, so the scene counts once, as its window (it counted whole, 1.09 GB, before)."""
    from satseg.bench import scene_memory

    r = scene_memory(12000, fmt="tiff", work=tmp_path)
    assert r["peak_bytes"] < 1e9, r
    assert r["crop_agreement"] == 1.0


def test_a_mapped_tiff_reads_the_same_pixels_as_tifffile_and_a_cut_one_is_refused(tmp_path):
    from satseg.errors import DataError
    from satseg.imaging import RowReader, read_image

    px = np.random.default_rng(3).integers(0, 65535, (37, 53, 4)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", px)
    r = RowReader(tmp_path / "a.tif")
    assert np.array_equal(r.window(5, 7, 11, 13), px[5:16, 7:20]) and np.array_equal(read_image(tmp_path / "a.tif"), px)
    r.close()
    data = (tmp_path / "a.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.tif"):
        read_image(tmp_path / "cut.tif")


@needs_shipped_classic
def test_a_classic_fixed_size_file_runs_from_its_spec_alone():
    """A client that knows only the file and its embedded spec (patch, overlap, tent blend, edge
    padding, the min-max rule) gets satseg's ids: the spec says everything the tiling needs."""
    from ai_edge_litert.interpreter import Interpreter

    from satseg.edge import EdgeModel
    from satseg.tflite_metadata import embedded_spec

    path = ROOT / "exported_models" / "student_distilled" / "model_float32.tflite"
    spec = embedded_spec(path)
    t = spec["tiling"]
    assert spec["normalization"]["kind"] == "minmax" and spec["normalization"]["range"] == [0.0, 1.0]
    img = np.random.default_rng(4).integers(0, 256, (300, 410, 3)).astype(np.uint8)
    p, step = t["patch"], t["patch"] - t["overlap"]

    def starts(n):
        return [0] if n <= p else list(range(0, n - p, step)) + [n - p]

    ramp = np.minimum(np.arange(p) + 0.5, p - np.arange(p) - 0.5) / (p / 2)
    weight = (np.outer(ramp, ramp) + 1e-3)[..., None]
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    acc = np.zeros((*img.shape[:2], len(spec["classes"])))
    for y in starts(img.shape[0]):
        for x in starts(img.shape[1]):
            tile = img[y:y + p, x:x + p].astype(np.float32)
            lo, hi = tile.min((0, 1)), tile.max((0, 1))
            it.set_tensor(it.get_input_details()[0]["index"], ((tile - lo) / np.maximum(hi - lo, 1e-12))[None])
            it.invoke()
            acc[y:y + p, x:x + p] += weight * it.get_tensor(it.get_output_details()[0]["index"])[0]
    assert (acc.argmax(-1) == EdgeModel(path).predict(img)).mean() > 0.999
