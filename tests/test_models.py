import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from satseg.errors import SatsegError
from satseg.models import ARCHITECTURES, build_model, model_stats

SCRATCH = [n for n, a in ARCHITECTURES.items() if not a.pretrained]


def build(name, shape, classes=6, **kw):
    """Pretrained models without reading the checkpoint (tests of the architecture)."""
    if ARCHITECTURES[name].pretrained:
        kw.setdefault("pretrained", False)
    return build_model(name, shape, classes, **kw)


@pytest.mark.parametrize("name,params,convs", [("teacher", 1_941_190, 23), ("student", 25_766, 8)])
def test_reference_counts(name, params, convs):
    s = model_stats(build_model(name, (256, 256, 3), 6))
    assert (s["params"], s["conv_layers"]) == (params, convs)


def test_macs_match_the_reference_figures():
    t = model_stats(build_model("teacher"))["macs"]
    s = model_stats(build_model("student"))["macs"]
    e = model_stats(build_model("edge"))["macs"]
    assert round(t / 1e9, 2) == 3.04 and round(s / 1e9, 2) == 0.90
    assert e * 4 <= s  # the edge model's target: at least 4x fewer MACs than the reference student


def test_macs_of_a_fully_convolutional_model_are_counted_at_the_given_patch():
    """`satseg bench` times each model at its own patch size and scales its MAC limit from the
    count at that size (a 512 px model was once counted at 256 px: a limit 4x too low)."""
    m = build("fast_edge", (None, None, 3), 6)
    small, large = model_stats(m, 256), model_stats(m, 512)
    assert large["macs"] == 4 * small["macs"] and large["input_shape"] == [512, 512, 3]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("shape", [(256, 256, 3), (512, 512, 3), (256, 256, 4)])
def test_output_shapes(name, shape):
    m = build(name, shape, 6)
    assert m.output_shape == (None, shape[0], shape[1], 6)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_fully_convolutional_any_multiple_of_the_stride(name):
    """Built for (None, None, bands): one model runs every size divisible by its stride."""
    m = build(name, (None, None, 4), 5, seed=0)
    s = ARCHITECTURES[name].stride
    for h, w in ((2 * s, 3 * s), (max(64, s), max(96, 2 * s))):
        y = np.asarray(m(np.random.default_rng(0).random((1, h, w, 4)).astype("float32") * 255))
        assert y.shape == (1, h, w, 5)
        assert not np.allclose(y.sum(-1), 1.0)  # logits, not probabilities


def test_normalization_inside_the_graph_takes_raw_pixels():
    norm = {"mean": [100.0, 110.0, 120.0], "std": [50.0, 40.0, 60.0]}
    inside = build_model("student", (32, 32, 3), seed=0, normalization=norm)
    outside = build_model("student", (32, 32, 3), seed=0)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    xn = (x - np.array(norm["mean"], "float32")) / np.array(norm["std"], "float32")
    np.testing.assert_allclose(np.asarray(inside(x)), np.asarray(outside(xn)), rtol=1e-4, atol=1e-4)
    assert inside.count_params() == outside.count_params()  # the reference counts stay exact


def test_input_size_the_architecture_cannot_take():
    with pytest.raises(SatsegError, match=r"teacher: input size 250x250 is not divisible by 16"):
        build_model("teacher", (250, 250, 3))
    with pytest.raises(SatsegError, match="not divisible by 2"):
        build_model("student", (255, 256, 3))


def test_unknown_model_lists_valid_names_and_suggests():
    with pytest.raises(SatsegError, match=r"unknown model 'studnet'; valid names: teacher, student, edge, lite0_unet, "
                                          r"lite2_unet, lite0_edge, fast_edge\. Did you mean 'student'\?"):
        build_model("studnet")


def test_builders_are_deterministic_under_a_seed():
    a = build_model("student", (32, 32, 3), seed=1).get_weights()
    b = build_model("student", (32, 32, 3), seed=1).get_weights()
    c = build_model("student", (32, 32, 3), seed=2).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_keras_round_trip_gives_identical_outputs(tmp_path, name):
    m = build(name, (32, 32, 3), seed=0)
    x = np.random.default_rng(1).random((2, 32, 32, 3)).astype("float32")
    m.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")  # plain Keras: no custom objects needed
    assert np.array_equal(np.asarray(m(x)), np.asarray(back(x)))


def test_layers_have_role_names():
    names = {layer.name for layer in build_model("teacher").layers}
    assert {"enc1_conv1", "enc1_pool", "bottleneck_conv2", "dec1_up", "dec4_concat", "logits"} <= names


def test_models_cli_json():
    from satseg.cli import cli

    res = CliRunner().invoke(cli, ["models", "--architectures", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert (rows["teacher"]["params"], rows["teacher"]["conv_layers"]) == (1_941_190, 23)
    assert (rows["student"]["params"], rows["student"]["conv_layers"]) == (25_766, 8)
    assert rows["student"]["macs"] == 898_629_632


def test_every_shipped_litert_file_carries_its_spec():
    from satseg.classes import check_spec_doc, read_spec
    from satseg.edge import SHIPPED_MODEL
    from satseg.tflite_metadata import embedded_spec
    from satseg.zoo import INDEX

    files = [SHIPPED_MODEL] + (sorted(INDEX.parent.glob("*/*.tflite")) if INDEX.exists() else [])
    for f in files:
        doc = embedded_spec(f)
        assert doc is not None, f
        assert check_spec_doc(doc, f) == read_spec(f.with_name(f.stem + ".satseg.json")), f


def test_models_lists_the_shipped_zoo_with_accuracy_size_and_the_default():
    from satseg.cli import cli
    from satseg.zoo import INDEX, default_name

    if not INDEX.exists():
        pytest.skip("exported_models/ is not beside the package (not a checkout)")
    res = CliRunner().invoke(cli, ["models"])
    assert res.exit_code == 0, res.output
    default = next(line for line in res.output.splitlines() if line.startswith("* "))
    assert default.split()[1] == default_name()
    rows = json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)
    assert sum(r["default"] for r in rows) == 1
    for r in rows:
        assert Path(r["int8"]).is_file() and r["int8_bytes"] == Path(r["int8"]).stat().st_size, r["name"]
        lo, hi = r["test_miou_int8_interval"]
        assert lo <= r["test_miou_int8"] <= hi, r["name"]
        lo, hi = r["test_score_int8_interval"]
        assert lo <= r["test_score_int8"] <= hi, r["name"]
    tasks = {r["task"] for r in rows}
    assert len(tasks) >= 2  # land cover and buildings
    for task in tasks:  # one default per task, each listed under its task's heading
        assert sum(r["default_for_task"] for r in rows if r["task"] == task) == 1, task
        assert any(line.startswith(task) for line in res.output.splitlines()), task


def test_the_building_model_finds_buildings_on_a_chip_it_never_saw(tmp_path):
    """`--model buildings_lite0_unet` on a hotosm folder-4 chip (a country the training folders do
    not show): buildings where the labels say, most of them."""
    from satseg.data.catalog import data_root
    from satseg.edge import EdgeModel, default_model
    from satseg.imaging import read_image
    from satseg.zoo import INDEX

    chip = data_root() / "hotosm-buildings" / "data" / "4" / "OAM-1772464-966381-21.png"
    mask = data_root() / "hotosm-buildings" / "labels" / "4" / "OAM-1772464-966381-21.tif"
    if not INDEX.exists() or not chip.exists():
        pytest.skip("exported_models/ or hotosm-buildings (../shared) not here")
    import tifffile

    model = EdgeModel(default_model("buildings_lite0_unet"))
    assert model.spec.seg_classes.names == ["background", "building"]
    ids = model.predict(read_image(chip))
    truth = tifffile.imread(mask) > 0
    found = ids == 1
    assert truth.sum() > 1000 and (found & truth).sum() / (found | truth).sum() > 0.5


def test_model_option_takes_a_shipped_name_and_names_the_choices():
    from satseg.edge import default_model
    from satseg.zoo import INDEX, shipped_models

    if not INDEX.exists():
        pytest.skip("exported_models/ is not beside the package (not a checkout)")
    name = shipped_models()[0]["name"]
    assert Path(default_model(name)).samefile(INDEX.parent / name / "model_int8.tflite")
    assert default_model("some/file.tflite") == "some/file.tflite"
    with pytest.raises(SatsegError, match="no such model file or shipped model.*" + name):
        default_model("no_such_model")
