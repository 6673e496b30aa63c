"""The fault-and-bad-input matrix: the CLI driven as a user would, in subprocesses.

Every case asserts a non-zero exit, a last stderr line ``satseg: error: ...`` naming the file or
option, no traceback, and that the files that were there before are byte-identical after.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from satseg.bench import BLOCK_IMPORTS
from satseg.classes import save_spec

from .helpers import WITHOUT_TENSORFLOW, pixel_model, pixel_spec

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}

pytestmark = pytest.mark.slow


def satseg(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "satseg", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def snapshot(root: Path) -> dict:
    return {p: (p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p) if p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


def assert_one_line_error(r, *needles):
    assert r.returncode != 0, r.stdout[-1000:]
    err = r.stderr.strip().splitlines()
    assert err, "no error message"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = err[-1]
    assert last.startswith("satseg: error: ") or last.startswith("Error: "), last
    for n in needles:
        assert str(n) in last, (n, last)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_dataset):
    """A tiny pixel model in every file form, an image, a run directory, and bad files."""
    from satseg.export import convert_tflite, with_probs_head

    d = tmp_path_factory.mktemp("world")
    m = pixel_model(64)
    tfl = d / "pixel.tflite"
    tfl.write_bytes(convert_tflite(with_probs_head(m), "tflite_float32"))
    save_spec(pixel_spec(64), d / "pixel.satseg.json")
    m.save(d / "pixel.keras")
    save_spec(pixel_spec(64), d / "pixel.satseg.json")
    img = np.random.default_rng(0).integers(0, 256, (100, 130, 3)).astype(np.uint8)
    Image.fromarray(img).save(d / "a.jpg")
    bad = d / "bad"
    bad.mkdir()
    (bad / "empty.tflite").write_bytes(b"")
    (bad / "corrupt.tflite").write_bytes(b"\x00garbage" * 100)
    (bad / "truncated.tflite").write_bytes(tfl.read_bytes()[:1000])
    for name in ("empty", "corrupt", "truncated"):
        save_spec(pixel_spec(64), bad / f"{name}.satseg.json")
    shutil.copy(tfl, bad / "notjson.tflite")
    (bad / "notjson.satseg.json").write_text("{not json")
    shutil.copy(tfl, bad / "missing.tflite")
    (bad / "missing.satseg.json").write_text(json.dumps({"classes": pixel_spec().classes}))
    shutil.copy(tfl, bad / "classes.tflite")
    spec = pixel_spec(64)
    spec.classes = spec.classes[:4]
    save_spec(spec, bad / "classes.satseg.json")
    (bad / "notmodel.keras").write_bytes(b"PK\x03\x04 this is not a keras zip")
    save_spec(pixel_spec(64), bad / "notmodel.satseg.json")
    nan = np.full((80, 80, 3), 0.5, np.float32)
    nan[3, 4, 1] = np.nan
    tifffile.imwrite(bad / "nan.tif", nan, photometric="rgb")
    return {"dir": d, "tflite": tfl, "keras": d / "pixel.keras", "image": d / "a.jpg", "bad": bad,
            "data": tiny_dataset}


BAD_MODELS = [("empty.tflite", "not a usable LiteRT model"), ("corrupt.tflite", "not a usable LiteRT model"),
              ("truncated.tflite", "not a usable LiteRT model"), ("notjson.tflite", "not valid JSON"),
              ("missing.tflite", "lacks normalization, patch_size, bands"),
              ("classes.tflite", "predicts 6 classes, its spec lists 4"), ("notmodel.keras", "cannot load the model")]


@pytest.mark.parametrize("change,message", [
    ({"patch_size": "256"}, "patch_size must be a whole number"), ({"margin": -40}, "margin must be"),
    ({"stride": 2 ** 40}, "stride must be"), ({"patch_size": 200000}, "patch_size must be"),
    ({"normalization": {"kind": "standard", "std": [1, 1, 1]}}, "normalization mean must be 3 numbers"),
    ({"normalization": {"kind": "in_model", "mean": [1, 2], "std": [1, 1]}}, "normalization mean must be 3 numbers"),
    ({"classes": [{"id": 0, "name": "a", "color": [300, 0, 0]}, {"id": 1, "name": "b", "color": [0, 0, 0]}]},
     "colour must be"),
])
def test_malformed_sidecars_are_one_line_errors(world, tmp_path, change, message):
    model = tmp_path / "m.tflite"
    shutil.copy(world["tflite"], model)
    spec = json.loads(world["tflite"].with_name("pixel.satseg.json").read_text())
    (tmp_path / "m.satseg.json").write_text(json.dumps({**spec, **change}))
    r = satseg("predict", world["image"], "--model", model, "--out", tmp_path / "out")
    assert_one_line_error(r, "m.satseg.json", message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,message", BAD_MODELS)
def test_bad_model_files(world, tmp_path, name, message):
    model = world["bad"] / name
    spec_file = model.with_name(model.name.rsplit(".", 1)[0] + ".satseg.json")
    r = satseg("predict", world["image"], "--model", model, "--out", tmp_path / "out")
    assert_one_line_error(r, spec_file.name if "JSON" in message or "lacks" in message else model.name, message)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("overlap", ["-200", "300", "129"])
def test_overlap_out_of_range(world, tmp_path, overlap):
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", tmp_path / "o", "--overlap", overlap)
    assert_one_line_error(r, "--overlap")


def test_nan_tiff_is_refused(world, tmp_path):
    spec = pixel_spec(64)
    r = satseg("predict", world["bad"] / "nan.tif", "--model", world["tflite"], "--out", tmp_path / "o")
    assert_one_line_error(r, "nan.tif", "NaN or infinite")
    assert spec.bands == 3


def test_planted_symlink_at_a_temporary_name_is_not_followed(world, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in (".a.tmp.png", ".a.png.tmp.png", ".a_color.png.tmp.png", ".a.tmp"):
        (out / name).symlink_to(target)
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert target.read_text() == "precious"
    assert Image.open(out / "a.png").mode == "P"


def test_savedmodel_input_is_refused_unless_trusted(world, tmp_path):
    import keras

    from satseg.export import with_probs_head

    sm = tmp_path / "saved_model"
    with_probs_head(keras.models.clone_model(pixel_model(64))).export(str(sm), format="tf_saved_model", verbose=False)
    save_spec(pixel_spec(64), sm / "satseg.json")
    assert_one_line_error(satseg("predict", world["image"], "--model", sm, "--out", tmp_path / "o"), "--trust-model")
    assert not (tmp_path / "o").exists()
    r = satseg("predict", world["image"], "--model", sm, "--out", tmp_path / "o", "--trust-model")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "o" / "a.png").exists()


def _existing(tmp_path, name, content=b"old"):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content)
    return p


def test_evaluate_out_and_plots_are_not_overwritten(world, tmp_path):
    out = _existing(tmp_path, "eval.json")
    plots = tmp_path / "plots"
    _existing(plots, "confusion.png")
    before = snapshot(tmp_path)
    for extra in (["--out", out], ["--plots", plots]):
        r = satseg("evaluate", "--model", world["tflite"], "--data", world["data"], *extra)
        assert_one_line_error(r, "exists; pass --force")
    assert snapshot(tmp_path) == before


def test_bench_out_is_not_overwritten_and_nothing_runs(tmp_path):
    out = _existing(tmp_path, "bench.json")
    before = snapshot(tmp_path)
    r = satseg("bench", "--quick", "--out", out)
    assert_one_line_error(r, "bench.json", "exists; pass --force")
    assert snapshot(tmp_path) == before


def test_inspect_plot_and_synth_are_not_overwritten(world, tmp_path):
    plot = _existing(tmp_path, "ds.png")
    synth = tmp_path / "synth"
    _existing(synth, "keep.txt")
    before = snapshot(tmp_path)
    assert_one_line_error(satseg("data", "inspect", world["data"], "--plot", plot), "ds.png", "--force")
    assert_one_line_error(satseg("data", "synth", synth), "synth", "--force")
    assert snapshot(tmp_path) == before


def test_synth_force_replaces_only_its_own_folder_and_never_through_a_link(tmp_path):
    user = tmp_path / "user"
    _existing(user, "keep.txt")
    (tmp_path / "link").symlink_to(user, target_is_directory=True)
    before = snapshot(tmp_path)
    assert_one_line_error(satseg("data", "synth", tmp_path / "link", "--force", "--size", "32"), "link", "is a link")
    assert_one_line_error(satseg("data", "synth", user, "--force", "--size", "32"), "user", "is not a synthetic")
    assert snapshot(tmp_path) == before
    mine = tmp_path / "mine"
    for _ in range(2):  # its own folder: --force replaces it
        r = satseg("data", "synth", mine, "--force", "--size", "32", "--tiles", "1", "--images-per-tile", "1")
        assert r.returncode == 0, r.stderr[-2000:]


def test_write_classes_into_a_missing_folder_makes_it(world, tmp_path):
    r = satseg("data", "inspect", world["data"], "--write-classes", tmp_path / "new" / "deeper" / "classes.json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "new" / "deeper" / "classes.json").read_text())["classes"]


def test_a_pairs_file_with_absolute_paths(world, tmp_path):
    data = world["data"]
    imgs = sorted(data.rglob("images/*.jpg"))
    rows = [f"{i.absolute()},{(i.parent.parent / 'masks' / i.with_suffix('.png').name).absolute()}" for i in imgs]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    r = satseg("data", "inspect", data, "--pairs", tmp_path / "pairs.csv", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["images"] == len(imgs)
    (tmp_path / "outside.csv").write_text(f"{world['image'].absolute()},{imgs[0].absolute()}\n")
    r = satseg("data", "inspect", data, "--pairs", tmp_path / "outside.csv")
    assert_one_line_error(r, "outside.csv", "line 1", "outside the data root")


def test_named_groups_that_leave_nothing_to_train_on(world, tmp_path):
    r = satseg("train", "--model", "student", "--data", world["data"], "--val-groups", "Tile 1",
               "--test-groups", "Tile 2", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(r, "no image is left to train on")
    assert not (tmp_path / "run").exists()


def test_existing_predictions_are_not_overwritten(world, tmp_path):
    out = tmp_path / "o"
    _existing(out, "a.png")
    before = snapshot(tmp_path)
    assert_one_line_error(satseg("predict", world["image"], "--model", world["tflite"], "--out", out), "a.png", "--force")
    assert snapshot(tmp_path) == before


TRAIN_CASES = [
    (["--model", "unet"], "unknown model 'unet'"),
    (["--batch-size", "0"], "--batch-size"),
    (["--patch-size", "0"], "--patch-size"),
    (["--epochs", "0"], "--epochs"),
    (["--patch-size", "40", "--model", "teacher"], "not a multiple of 16"),
    (["--teacher", "TEACHER_MISSING"], "teacher model file not found"),
    (["--teacher", "TEACHER_NOTMODEL"], "cannot load the teacher"),
    (["--teacher", "TEACHER_CLASSES"], "teacher predicts 4 classes"),
    (["--teacher", "TEACHER_FIXED", "--patch-size", "32", "--model", "student"], "fully convolutional teacher"),
    (["--out", "/dev/null/run"], "cannot write"),
    (["--teacher", "TEACHER_UNSAFE"], "cannot load the teacher"),
    (["--teacher", "TEACHER_CLASSES", "--teacher", "TEACHER_MISSING"], "teacher model file not found"),
    (["--teacher", "TEACHER_CLASSES", "--teacher", "TEACHER_CLASSES", "--distill-mode", "online"],
     "several teachers need --distill-mode offline"),
    (["--class-weights", "1,2"], "--class-weights needs 6 numbers"),
    (["--class-weights", "even"], "--class-weights"),
    (["--scale", "1.2", "0.8"], "--scale must be two positive numbers"),
    (["--init", "TEACHER_MISSING"], "--init model file not found"),
    (["--init", "TEACHER_FIXED"], "not a 'lite0_unet'"),
    (["--init", "TEACHER_CLASSES"], "--init model predicts 4 classes"),
]


@pytest.mark.parametrize("args,message", TRAIN_CASES)
def test_train_checks_come_first_and_leave_nothing(world, tmp_path, args, message):
    import keras

    fixed_teacher = world["dir"] / "fixed.keras"
    if not fixed_teacher.exists():
        pixel_model(64).save(fixed_teacher)
        save_spec(pixel_spec(64), world["dir"] / "fixed.satseg.json")
        inp = keras.Input((None, None, 3))
        four = keras.Model(inp, keras.layers.Conv2D(4, 1)(inp))
        four.save(world["dir"] / "four.keras")
        spec = pixel_spec(64)
        spec.classes = spec.classes[:4]
        spec.architecture = "lite0_unet"  # passes --init's architecture check, fails its class check
        save_spec(spec, world["dir"] / "four.satseg.json")
    unsafe = world["dir"] / "unsafe.keras"
    if not unsafe.exists():  # a Lambda layer: Keras refuses to deserialise it in safe mode
        inp = keras.Input((None, None, 3))
        keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp)).save(unsafe)
        save_spec(pixel_spec(64), world["dir"] / "unsafe.satseg.json")
    subst = {"TEACHER_UNSAFE": unsafe, "TEACHER_MISSING": tmp_path / "nope.keras", "TEACHER_NOTMODEL": world["bad"] / "notmodel.keras",
             "TEACHER_CLASSES": world["dir"] / "four.keras", "TEACHER_FIXED": fixed_teacher}
    args = [str(subst.get(a, a)) for a in args]
    out = tmp_path / "run"
    if "--out" not in args:
        args += ["--out", str(out)]
    t0 = time.time()
    r = satseg("train", "--data", world["data"], "--epochs" if "--epochs" not in args else "--seed", "1", *args)
    assert_one_line_error(r, message)
    assert not out.exists()  # no config.json debris: the next try needs no --force
    assert time.time() - t0 < 60


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notrun").mkdir()
    assert_one_line_error(satseg("train", "--resume", tmp_path / "notrun"), "not a run directory")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{oops")
    before = snapshot(tmp_path)
    assert_one_line_error(satseg("train", "--resume", broken), "config.json", "not a valid run config")
    assert snapshot(tmp_path) == before


def test_masks_with_no_class_pixel_are_refused(tmp_path):
    root = tmp_path / "data"
    for t in ("Tile 1", "Tile 2"):
        for i in range(3):
            (root / t / "images").mkdir(parents=True, exist_ok=True)
            (root / t / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(root / t / "images" / f"{i}.jpg")
            Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / t / "masks" / f"{i}.png")
    r = satseg("train", "--model", "student", "--data", root, "--out", tmp_path / "run", "--patch-size", "32",
               "--epochs", "1")
    assert_one_line_error(r, "no pixel of any class")
    assert not (tmp_path / "run").exists()


def _binary_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for t in ("1", "2"):
        (root / "images" / t).mkdir(parents=True)
        (root / "masks" / t).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(root / "images" / t / f"{i}.png")
            m = np.zeros((64, 64), np.uint8)
            m[8:40, 8:40] = 255
            Image.fromarray(m).save(root / "masks" / t / f"{i}.png")
    return root


@pytest.mark.parametrize("classes, message", [
    ({"classes": [{"id": 0, "name": "bg", "color": [0, 0, 0], "values": [0]},
                  {"id": 1, "name": "roof", "color": [255, 0, 0], "values": [300]}]},
     "class 'roof' (values [300]) cannot occur in uint8 masks (values seen: 0, 255)"),
    ("dubai", "matches only 'Building' of 6 classes in the training masks (values seen: 0, 255)"),
])
def test_a_class_set_that_cannot_describe_the_masks_is_refused(tmp_path, classes, message):
    root = _binary_dataset(tmp_path / "data")
    if isinstance(classes, dict):
        (tmp_path / "classes.json").write_text(json.dumps(classes))
        classes = tmp_path / "classes.json"
    r = satseg("train", "--model", "student", "--data", root, "--classes", classes, "--out", tmp_path / "run",
               "--patch-size", "32", "--epochs", "1")
    assert_one_line_error(r, message)
    assert not (tmp_path / "run").exists()


def test_export_killed_leaves_no_temporary_folder_for_good(world, tmp_path):
    out = tmp_path / "exp"
    args = ["export", "--model", world["keras"], "--out", out, "--calibration-data", world["data"],
            "--formats", "tflite_float32,tflite_int8"]
    proc = subprocess.Popen([sys.executable, "-m", "satseg", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".exp.*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = satseg(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(tmp_path.glob(".exp.*")), list(tmp_path.iterdir())
    assert (out / "model_int8.tflite").exists()


def test_predict_killed_then_rerun_gives_the_same_files(world, tmp_path):
    big = tmp_path / "in"
    big.mkdir()
    img = np.random.default_rng(2).integers(0, 256, (900, 900, 3)).astype(np.uint8)
    for i in range(6):
        Image.fromarray(img).save(big / f"s{i}.png")
    ref = tmp_path / "ref"
    assert satseg("predict", big, "--model", world["tflite"], "--out", ref).returncode == 0
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "satseg", "predict", str(big), "--model", str(world["tflite"]),
                             "--out", str(out)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "s1.png").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = [p for p in out.iterdir() if not p.name.startswith(".")]
    for p in written:  # what a killed run left is complete, never half-written
        assert p.read_bytes() == (ref / p.name).read_bytes()
    assert satseg("predict", big, "--model", world["tflite"], "--out", out, "--force").returncode == 0
    for p in ref.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes()


@pytest.mark.parametrize("cmd", [["train", "--data", "x"], ["export", "--model", "m.keras", "--out", "o"], ["models", "--architectures"]])
def test_edge_install_names_the_extra_to_install(cmd, tmp_path):
    (tmp_path / "m.keras").write_bytes(b"PK")  # present, so the missing TensorFlow is what stops it
    r = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *cmd], capture_output=True, text=True, env=ENV,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2
    assert_one_line_error(r, "needs TensorFlow", "satseg-zoo[train]")
    assert len(r.stderr.strip().splitlines()) == 1


# --- the second matrix: nothing deleted, nothing clobbered, nothing written outside --out --------------------

def test_export_clean_up_never_touches_a_users_folder_of_a_similar_name(tmp_path):
    from satseg.atomic import OWNER_TOKEN, atomic_dir, owned_temporary
    from satseg.export import remove_stale_temporaries

    mine = tmp_path / ".out.export-99999-mybackup"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep")
    named_like_ours = tmp_path / ".out.export-99999-mybackup.tmp"  # the exact pattern, no token: a user's
    named_like_ours.mkdir()
    (named_like_ours / "precious.txt").write_text("keep")

    seen = []

    def write(folder):  # while an export writes, its temporary proves itself satseg's
        seen.append(owned_temporary(folder, tmp_path / "out"))
        (folder / "report.json").write_text("{}")

    atomic_dir(tmp_path / "out", write, prefix=".out.export-99999-")
    assert seen == [True] and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json"]
    dead = tmp_path / ".out.export-99999-abcd1234.tmp"  # what a kill -9 during that write leaves
    dead.mkdir()
    (dead / OWNER_TOKEN).write_text("satseg temporary folder for out\n")
    remove_stale_temporaries(tmp_path / "out")
    assert (mine / "precious.txt").read_text() == "keep"
    assert (named_like_ours / "precious.txt").read_text() == "keep"
    assert not dead.exists()


def test_an_existing_colour_output_is_not_overwritten(world, tmp_path):
    out = tmp_path / "o"
    _existing(out, "a_color.png")
    before = snapshot(tmp_path)
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", out)
    assert_one_line_error(r, "a_color.png", "--force")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("names", [("a/x.jpg", "b/x.jpg"), ("x.jpg", "x.png"), ("x.png", "x_color.png")])
def test_two_inputs_that_would_write_one_file_are_refused_naming_both(world, tmp_path, names):
    src = tmp_path / "in"
    for n in names:
        (src / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(world["image"], src / n)
    out = tmp_path / "out"
    r = satseg("predict", *[src / n for n in names], "--model", world["tflite"], "--out", out)
    assert_one_line_error(r, str(src / names[0]), str(src / names[1]), "both write")
    assert not out.exists()


def test_a_link_planted_inside_out_is_not_followed(world, tmp_path):
    data = tmp_path / "data" / "Tile 1"
    data.mkdir(parents=True)
    shutil.copy(world["image"], data / "a.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "Tile 1").symlink_to(elsewhere, target_is_directory=True)
    r = satseg("predict", tmp_path / "data", "--model", world["tflite"], "--out", out)
    assert_one_line_error(r, "is a link")
    assert list(elsewhere.iterdir()) == []


def test_export_force_onto_a_linked_folder_is_refused(world, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("keep")
    (tmp_path / "out").symlink_to(real, target_is_directory=True)
    r = satseg("export", "--model", world["keras"], "--out", tmp_path / "out", "--force")
    assert_one_line_error(r, "is a link")
    assert (real / "keep.txt").read_text() == "keep"


def test_a_second_writer_is_refused_and_a_dead_ones_lock_taken_over(world, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / ".out.lock").write_text(f"{holder.pid} satseg predict\n")
        r = satseg("predict", world["image"], "--model", world["tflite"], "--out", out)
        assert_one_line_error(r, "in use by process", str(holder.pid))
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", out)  # the holder is gone
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "a.png").exists() and not (tmp_path / ".out.lock").exists()


@pytest.mark.parametrize("plant", ["link_to_dev_zero", "fifo", "huge", "garbage", "empty", "live_pid_spaced"])
def test_a_planted_lock_file_is_one_line_not_a_hang_or_memory_error(world, tmp_path, plant):
    lock = tmp_path / ".out.lock"
    if plant == "link_to_dev_zero":
        lock.symlink_to("/dev/zero")
    elif plant == "fifo":
        os.mkfifo(lock)
    elif plant == "huge":  # read with a bound
        lock.write_bytes(b"9" * (64 << 20))
    elif plant == "garbage":
        lock.write_bytes(os.urandom(300))
    elif plant == "empty":
        lock.write_bytes(b"")
    else:  # not satseg's format, though it names a live process
        lock.write_text(f" {os.getpid()} something\n")
    before = lock.read_bytes() if plant in ("garbage", "empty", "live_pid_spaced") else None
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", tmp_path / "out", timeout=60)
    assert_one_line_error(r, str(lock), "remove it")
    assert lock.is_symlink() or lock.is_fifo() or lock.is_file()  # not deleted: satseg did not make it
    if before is not None:
        assert lock.read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_a_killed_writers_temporaries_are_removed_by_the_next_run(world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.png.k3j4h5g6.tmp.png").write_bytes(b"half")
    (out / ".a_color.png.x1y2z3w4.tmp.png").write_bytes(b"half")
    assert satseg("predict", world["image"], "--model", world["tflite"], "--out", out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_color.png"]


@pytest.mark.parametrize("seed", range(6))
def test_random_layouts_with_links_and_collisions_never_write_outside_out(world, tmp_path, seed):
    """Property: whatever links and same-stem inputs a layout holds, predict writes only below
    --out, and changes no existing file there without --force (it fails instead)."""
    from satseg.edge import EdgeModel, predict_files
    from satseg.errors import SatsegError

    rng = np.random.default_rng(seed)
    src, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    for d in (src, out, outside):
        d.mkdir()
    (outside / "victim.png").write_bytes(b"victim")
    folders = [src / f"f{i}" for i in range(rng.integers(1, 4))]
    for f in folders:
        f.mkdir()
        for j in range(rng.integers(1, 3)):
            shutil.copy(world["image"], f / f"x{j}{rng.choice(['.jpg', '.png'])}")
    if rng.random() < 0.5:  # a planted folder link where an output folder will go
        (out / folders[0].name).symlink_to(outside, target_is_directory=True)
    if rng.random() < 0.5:  # a planted file link at an output name
        (out / "victim.png").symlink_to(outside / "victim.png")
    if rng.random() < 0.5:
        (out / "existing.png").write_bytes(b"old")
    inputs = [src] if rng.random() < 0.5 else [f / sorted(p.name for p in f.iterdir())[0] for f in folders]
    before_out, before_outside = snapshot(out), snapshot(outside)
    model = EdgeModel(world["tflite"])
    try:
        written = predict_files(model, inputs, out, progress=False)
    except (SatsegError, FileExistsError):
        written = []
        assert snapshot(out) == before_out  # refused before anything was written
    assert snapshot(outside) == before_outside
    for p in written:
        assert Path(os.path.realpath(p)).is_relative_to(out.resolve())
    for p, content in before_out.items():
        assert snapshot(out).get(p) == content  # nothing that was there changed


def _damage(ck: Path, how: str):
    state = json.loads((ck / "state.json").read_text())
    weights = ck / state["weights"]
    if how == "no_epoch":
        state.pop("epoch")
    elif how == "text_epoch":
        state["epoch"] = "three"
    elif how == "traversal":
        state["weights"] = "../../../../../etc/hostname"
    elif how == "missing":
        weights.unlink()
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:2000])
    elif how == "garbage":
        weights.write_bytes(b"\x89HDF\r\n garbage" * 200)
    (ck / "state.json").write_text(json.dumps(state))


@pytest.mark.parametrize("how,message", [
    ("no_epoch", "'epoch' must be a whole number"), ("text_epoch", "'epoch' must be a whole number"),
    ("traversal", "'weights' must name"), ("missing", "weights file"),
    ("truncated", "damaged checkpoint weights"), ("garbage", "damaged checkpoint weights"),
])
def test_a_damaged_checkpoint_stops_the_resume_with_one_line_and_changes_nothing(trained_student, tmp_path, how,
                                                                                  message):
    run = tmp_path / "run"
    shutil.copytree(trained_student, run)
    _damage(run / "checkpoint", how)
    before = snapshot(run)
    assert_one_line_error(satseg("train", "--resume", run, "--epochs", "5"), message)
    assert snapshot(run) == before


@pytest.mark.parametrize("content", ["{not json", json.dumps({"config": {"model": "edge"}, "split": "all"}),
                                     json.dumps({"split": {}})])
def test_a_broken_run_config_beside_a_model_is_one_line(world, tmp_path, content):
    model = tmp_path / "m.keras"
    shutil.copy(world["keras"], model)
    shutil.copy(world["dir"] / "pixel.satseg.json", tmp_path / "m.satseg.json")
    (tmp_path / "config.json").write_text(content)
    before = snapshot(tmp_path)
    r = satseg("evaluate", "--model", model, "--data", world["data"])
    assert_one_line_error(r, "config.json", "not a valid run config")
    r = satseg("export", "--model", model, "--out", tmp_path / "exp", "--formats", "tflite_float32")
    assert_one_line_error(r, "config.json", "not a valid run config")
    assert snapshot(tmp_path) == before


def _png_declaring(path: Path, w: int, h: int):
    """A tiny PNG whose header declares w x h pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\0" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
                     + struct.pack(">I", zlib.crc32(chunk)) + struct.pack(">I", len(idat)) + b"IDAT" + idat
                     + struct.pack(">I", zlib.crc32(b"IDAT" + idat)) + b"\0\0\0\0IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(world, tmp_path):
    bomb = tmp_path / "bomb.png"
    _png_declaring(bomb, 100_000, 100_000)
    t0 = time.time()
    r = satseg("predict", bomb, "--model", world["tflite"], "--out", tmp_path / "out")
    assert_one_line_error(r, "bomb.png", "pixel budget", "SATSEG_MAX_PIXELS")
    assert time.time() - t0 < 60 and not (tmp_path / "out").exists()


def test_16_bit_pixels_on_a_model_that_takes_8_bit_pixels_are_refused_not_clipped(tmp_path):
    from satseg.cli.common import default_model

    scene = tmp_path / "scene16.tif"
    tifffile.imwrite(scene, (np.random.default_rng(0).integers(0, 255, (96, 96, 3)) * 257).astype(np.uint16),
                     photometric="rgb")
    r = satseg("predict", scene, "--model", default_model(None), "--out", tmp_path / "out")
    assert_one_line_error(r, "scene16.tif", "uint16 pixels", "8-bit")
    assert not (tmp_path / "out").exists()


def test_a_sidecar_with_other_classes_than_the_whole_image_model_is_refused(tmp_path):
    from satseg.cli.common import default_model

    model = tmp_path / "m.tflite"
    shutil.copy(default_model(None), model)
    spec = json.loads(Path(default_model(None)).with_name("model_int8.satseg.json").read_text())
    spec["classes"] = spec["classes"][:5]
    (tmp_path / "m.satseg.json").write_text(json.dumps(spec))
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img)
    assert_one_line_error(satseg("predict", img, "--model", model, "--out", tmp_path / "out"),
                          "m.tflite", "predicts 6 classes, its spec lists 5")


FULL_DISK_ON_PLOTS = """
import errno, sys
import satseg.plots
def full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device", "plots/confusion.png")
satseg.plots.plot_confusion = full
from satseg.cli import main
sys.argv = ["satseg", *sys.argv[1:]]
main()
"""


def test_evaluate_onto_a_full_disk_leaves_no_empty_plots_folder(world, tmp_path):
    plots = tmp_path / "new" / "plots"
    r = subprocess.run([sys.executable, "-c", FULL_DISK_ON_PLOTS, "evaluate", "--model", str(world["tflite"]),
                        "--data", str(world["data"]), "--split", "all", "--plots", str(plots)],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert_one_line_error(r, "no space left")
    assert not (tmp_path / "new").exists()


def test_a_refused_run_on_synthetic_data_leaves_nothing_and_keeps_the_old_run(tmp_path):
    out = tmp_path / "run"
    r = satseg("train", "--model", "student", "--patch-size", "4096", "--epochs", "1", "--out", out)
    assert_one_line_error(r, "patch fits")
    assert not out.exists()
    old = _existing(out, "config.json", b'{"config": {}, "versions": {}, "spec": {}, "split": {}}')  # a run's shape
    r = satseg("train", "--model", "student", "--patch-size", "4096", "--epochs", "1", "--out", out, "--force")
    assert_one_line_error(r, "patch fits")
    assert old.read_bytes() == b'{"config": {}, "versions": {}, "spec": {}, "split": {}}'


def test_a_teacher_that_fails_a_check_on_the_data_leaves_no_run_folder(world, tmp_path):
    import keras

    inp = keras.Input((None, None, 4))
    keras.Model(inp, keras.layers.Conv2D(6, 1)(inp)).save(tmp_path / "t4.keras")
    spec = pixel_spec(64)
    spec.bands, spec.normalization = 4, {"kind": "in_model", "mean": [0.0] * 4, "std": [1.0] * 4}
    save_spec(spec, tmp_path / "t4.satseg.json")
    r = satseg("train", "--model", "student", "--data", world["data"], "--teacher", tmp_path / "t4.keras",
               "--patch-size", "32", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(r, "takes 4 bands")
    assert not (tmp_path / "run").exists()


def test_a_full_or_read_only_disk_is_one_line_however_deep_a_library_wrapped_it():
    import errno

    from satseg.cli import storage_error

    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoint/epoch0003.weights.h5")
    try:
        try:
            raise full
        except OSError as e:
            raise RuntimeError("Unable to synchronously create dataset") from e
    except RuntimeError as wrapped:
        line = storage_error(wrapped)
    assert line.startswith("/runs/x/checkpoint/epoch0003.weights.h5: cannot write (no space left")
    assert "read-only" in storage_error(OSError(errno.EROFS, "Read-only file system", "/ro/a.png"))
    assert "no space left" in storage_error(ValueError("h5py: [Errno 28] No space left on device"))
    assert storage_error(ValueError("something else")) is None


def test_training_stops_before_a_checkpoint_the_disk_cannot_hold(tmp_path, tiny_dataset, monkeypatch):
    import shutil as sh

    from satseg.errors import SatsegError
    from satseg.train import TrainConfig, train

    real = sh.disk_usage
    monkeypatch.setattr(sh, "disk_usage", lambda p: real(p)._replace(free=1000))
    cfg = TrainConfig(model="student", data=str(tiny_dataset), epochs=1, batch_size=4, patch_size=32,
                      crops_per_epoch=8)
    with pytest.raises(SatsegError, match="MB free, the checkpoint needs"):
        train(cfg, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "checkpoint" / "state.json").exists()


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_predict_workers_die_with_a_killed_parent(world, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = np.random.default_rng(3).integers(0, 256, (1500, 1500, 3)).astype(np.uint8)
    for i in range(8):
        Image.fromarray(img).save(src / f"s{i}.png")
    proc = subprocess.Popen([sys.executable, "-m", "satseg", "predict", str(src), "--model", str(world["tflite"]),
                             "--out", str(tmp_path / "out"), "--jobs", "2"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, kids = time.time() + 60, set()
    while time.time() < deadline and len(kids) < 3:  # two workers and the resource tracker
        time.sleep(0.1)
        kids = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{k}").exists() and
                                         "Z" not in Path(f"/proc/{k}/stat").read_text().split()[2] for k in kids):
        time.sleep(0.2)
    alive = [k for k in kids if Path(f"/proc/{k}").exists() and "Z" not in Path(f"/proc/{k}/stat").read_text().split()[2]]
    assert kids and not alive


def test_a_second_training_in_one_run_folder_is_refused(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / ".run.lock").write_text(f"{holder.pid} satseg train\n")
        r = satseg("train", "--model", "student", "--data", tiny_dataset, "--epochs", "1", "--out", run)
        assert_one_line_error(r, "in use by process", "satseg train")
        assert not run.exists()
    finally:
        holder.kill()
        holder.wait()


def test_force_onto_a_linked_run_folder_is_refused(tmp_path, tiny_dataset):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("keep")
    (tmp_path / "run").symlink_to(real, target_is_directory=True)
    r = satseg("train", "--model", "student", "--data", tiny_dataset, "--out", tmp_path / "run", "--force")
    assert_one_line_error(r, "is a link")
    assert (real / "keep.txt").read_text() == "keep"


def test_a_resume_removes_what_a_killed_writer_left(trained_student, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_student, run)
    (run / ".best.keras.a1b2c3d4.tmp.keras").write_bytes(b"half")
    (run / "checkpoint" / ".epoch0005.weights.h5.x9y8z7w6.tmp.weights.h5").write_bytes(b"half")
    r = satseg("train", "--resume", run, "--epochs", "5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(run.rglob(".*.tmp*")) and not (tmp_path / ".run.lock").exists()


def test_sigterm_during_export_leaves_no_temporary(world, tmp_path):
    out = tmp_path / "exp"
    proc = subprocess.Popen([sys.executable, "-m", "satseg", "export", "--model", str(world["keras"]), "--out", str(out),
                             "--calibration-data", str(world["data"]), "--formats", "tflite_float32,tflite_int8"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".exp.*.tmp")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err[-2000:]
    assert not list(tmp_path.glob(".exp*")) and not out.exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_corrupt_scene_among_eight_is_reported_and_the_rest_done_then_skip_existing_resumes(world, tmp_path, jobs):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        shutil.copy(world["image"], src / f"s{i}.jpg")
    (src / "s3.jpg").write_bytes(world["image"].read_bytes()[:300])  # truncated
    out = tmp_path / "out"
    r = satseg("predict", src, "--model", world["tflite"], "--out", out, "--jobs", jobs)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("satseg: error:")]
    assert len(errors) == 2 and "s3.jpg" in errors[0] and "1 of 8 images failed" in errors[1]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"s{i}{s}" for i in range(8) if i != 3
                                                           for s in (".png", "_color.png"))
    before = snapshot(out)
    shutil.copy(world["image"], src / "s3.jpg")  # fixed
    r = satseg("predict", src, "--model", world["tflite"], "--out", out, "--skip-existing")
    assert r.returncode == 0 and "wrote 2 files" in r.stdout, r.stderr[-2000:]
    assert all(snapshot(out)[p] == c for p, c in before.items())
    r = satseg("predict", src, "--model", world["tflite"], "--out", out, "--skip-existing")
    assert r.returncode == 0 and "wrote 0 files" in r.stdout


# --- cases from an attack on the second matrix ------------------------------------------------------------------

def test_force_replaces_only_satsegs_own_folders(world, tmp_path):
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "thesis.txt").write_text("years of work")
    for args in (["train", "--model", "student", "--data", world["data"], "--epochs", "1", "--out", user, "--force"],
                 ["export", "--model", world["keras"], "--out", user, "--force"]):
        assert_one_line_error(satseg(*args), "is not a")
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    r = satseg("train", "--model", "student", "--data", data, "--epochs", "1", "--out", data, "--force")
    assert_one_line_error(r, "holds", "--force would delete it")
    assert (user / "thesis.txt").read_text() == "years of work" and any(data.rglob("*.png"))


@pytest.mark.parametrize("marker", ["config.json", "report.json"])
def test_force_does_not_take_a_common_file_name_as_proof_of_ownership(world, tmp_path, marker):
    user = tmp_path / "proj"
    _existing(user, marker, b"{}")
    _existing(user, "src/important.py", b"years of work")
    before = snapshot(tmp_path)
    args = (["train", "--model", "student", "--data", world["data"], "--epochs", "1", "--patch-size", "32",
             "--crops-per-epoch", "16"] if marker == "config.json"
            else ["export", "--model", world["keras"], "--formats", "tflite_float32"])
    assert_one_line_error(satseg(*args, "--out", user, "--force"), "proj", "is not a")
    assert snapshot(tmp_path) == before


def test_export_into_the_working_folder_is_refused_before_any_work(world, tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    r = subprocess.run([sys.executable, "-m", "satseg", "export", "--model", str(world["keras"]), "--out", ".",
                        "--formats", "tflite_float32"], capture_output=True, text=True, env=ENV, timeout=300, cwd=here)
    assert_one_line_error(r, "is the working folder")
    assert not any(tmp_path.glob(".*"))


def test_resume_through_a_linked_checkpoint_folder_is_refused(trained_student, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_student, run)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "checkpoint", elsewhere)
    (run / "checkpoint").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    assert_one_line_error(satseg("train", "--resume", run, "--epochs", "5"), "is a link")
    assert snapshot(elsewhere) == before


def test_the_lock_holds_whatever_link_leads_to_the_folder(world, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / ".real.lock").write_text(f"{holder.pid} satseg predict\n")
        r = satseg("predict", world["image"], "--model", world["tflite"], "--out", tmp_path / "link")
        assert_one_line_error(r, "in use by process")
    finally:
        holder.kill()
        holder.wait()


def test_a_tampered_spec_in_config_json_stops_the_resume(trained_student, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_student, run)
    doc = json.loads((run / "config.json").read_text())
    doc["spec"]["patch_size"] = 999
    (run / "config.json").write_text(json.dumps(doc))
    before = snapshot(run)
    assert_one_line_error(satseg("train", "--resume", run, "--epochs", "5"), "patch_size", "cannot resume")
    doc["config"]["lr"] = "x"
    (run / "config.json").write_text(json.dumps(doc))
    assert_one_line_error(satseg("train", "--resume", run, "--epochs", "5"), "lr must be float")
    (run / "summary.json").write_text("{garbage")
    assert_one_line_error(satseg("train", "--resume", run), "config.json")
    assert snapshot(run).keys() == before.keys()


def test_16_bit_colour_png_is_read_with_all_its_bits(tmp_path):
    import rasterio

    from satseg.imaging import read_image

    arr = np.random.default_rng(0).integers(0, 65535, (3, 40, 50)).astype(np.uint16)
    p = tmp_path / "rgb16.png"
    with rasterio.open(p, "w", driver="PNG", width=50, height=40, count=3, dtype="uint16") as ds:
        ds.write(arr)
    assert np.array_equal(read_image(p), np.moveaxis(arr, 0, -1))
    r = satseg("predict", p, "--model", world_default(), "--out", tmp_path / "out")
    assert_one_line_error(r, "rgb16.png", "uint16 pixels")


def world_default():
    from satseg.cli.common import default_model

    return default_model(None)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_in_an_input_folder_is_not_opened(world, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(world["image"], src / "a.jpg")
    os.mkfifo(src / "pipe.jpg")
    r = satseg("predict", src, "--model", world["tflite"], "--out", tmp_path / "out", timeout=60)
    assert r.returncode == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "a_color.png"]


def test_odd_names_map_to_distinct_outputs_and_never_onto_an_input(world, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for n in ("..jpg", "x.jpg", "x.jpg.png"):
        shutil.copy(world["image"], src / n)
    r = satseg("predict", src, src / "..jpg", "--model", world["tflite"], "--out", tmp_path / "out")  # hidden
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "..jpg.png", "..jpg_color.png", "x.jpg.png", "x.jpg_color.png", "x.png", "x_color.png"]
    r = satseg("predict", src, "--model", world["tflite"], "--out", src, "--force")
    assert_one_line_error(r, "is an input image")
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", tmp_path / "o2")
    (tmp_path / "o3" / "a.png").mkdir(parents=True)
    assert_one_line_error(satseg("predict", world["image"], "--model", world["tflite"], "--out", tmp_path / "o3",
                                 "--force"), "is a folder where an output file goes")


def test_skip_existing_writes_again_what_a_killed_run_left_half_done(world, tmp_path):
    out = tmp_path / "out"
    assert satseg("predict", world["image"], "--model", world["tflite"], "--out", out).returncode == 0
    full = (out / "a_color.png").read_bytes()
    (out / "a_color.png").unlink()
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", out, "--skip-existing")
    assert r.returncode == 0 and (out / "a_color.png").read_bytes() == full


def test_a_zero_byte_image_in_a_folder_is_reported_not_skipped(world, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(world["image"], src / "good.jpg")
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image, not named as one: not an input")
    r = satseg("predict", src, "--model", world["tflite"], "--out", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("satseg: error:")]
    assert len(errors) == 2 and "empty.jpg" in errors[0] and "1 of 2 images failed" in errors[1], errors
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png", "good_color.png"]


@pytest.mark.parametrize("damage", ["zero_bytes", "cut"])
def test_skip_existing_does_not_take_a_broken_output_as_done(world, tmp_path, damage):
    out = tmp_path / "out"
    assert satseg("predict", world["image"], "--model", world["tflite"], "--out", out).returncode == 0
    full = (out / "a.png").read_bytes()
    (out / "a.png").write_bytes(b"" if damage == "zero_bytes" else full[: len(full) // 2])
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", out, "--skip-existing")
    assert r.returncode == 0 and (out / "a.png").read_bytes() == full, r.stderr[-2000:]


def test_evaluate_with_nothing_to_score_is_one_line(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    for m in data.rglob("masks/*"):
        Image.fromarray(np.full((96, 128, 3), 7, np.uint8)).save(m)  # off-palette everywhere
    r = satseg("evaluate", "--model", world["tflite"], "--data", data, "--split", "all")
    assert_one_line_error(r, "no mask pixel")


def test_a_garbage_pixel_budget_names_the_variable(world, tmp_path):
    r = subprocess.run([sys.executable, "-m", "satseg", "predict", str(world["image"]), "--model", str(world["tflite"]),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       env={**ENV, "SATSEG_MAX_PIXELS": "lots"})
    assert_one_line_error(r, "SATSEG_MAX_PIXELS must be a whole number")


def test_an_out_folder_inside_the_input_folder_is_not_read_as_input(world, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 60, 3)).astype(np.uint8)).save(src / "a.png")
    out = src / "out"
    assert satseg("predict", src, "--model", world["tflite"], "--out", out).returncode == 0
    r = satseg("predict", src, "--model", world["tflite"], "--out", out, "--skip-existing")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.png", "a_color.png"]


MAP_PREDICT_CASES = [
    (["--min-area", "20"], "--min-area needs --vector"),
    (["--merge-vectors"], "--merge-vectors needs --vector"),
    (["--vector", "gpkg", "--min-area", "20km"], "not a number with an optional unit (px or m2)"),
    (["--vector", "gpkg", "--simplify", "-1"], "not a number with an optional unit (px or m)"),
    (["--vector", "gpkg", "--vector-classes", "roof"], "no class 'roof'"),
    (["--vector", "gpkg", "--min-area", "20m2"], "cannot be measured on it; give it in pixels"),
    (["--vector", "geojson"], "GeoJSON is in WGS84 degrees"),
]


@pytest.mark.parametrize("args,message", MAP_PREDICT_CASES)
def test_bad_vector_requests_are_one_line(world, tmp_path, args, message):
    pytest.importorskip("pyogrio")
    r = satseg("predict", world["image"], "--model", world["tflite"], "--out", tmp_path / "out", *args)
    assert_one_line_error(r, message)
    assert not (tmp_path / "out").exists() or not any(p for p in (tmp_path / "out").iterdir()
                                                      if not p.name.startswith("."))  # checked before any work


def test_vectors_without_the_geo_extra_say_what_to_install(world, tmp_path):
    prog = BLOCK_IMPORTS.format(blocked=("shapely", "pyogrio")) + "from satseg.cli import main\nmain(sys.argv[1:])\n"
    r = subprocess.run([sys.executable, "-c", prog, "predict", str(world["image"]), "--model", str(world["tflite"]),
                        "--out", str(tmp_path / "out"), "--vector", "gpkg"], capture_output=True, text=True, env=ENV)
    assert_one_line_error(r, "--vector needs shapely, pyogrio", "pip install 'satseg-zoo[geo]'")
    assert not (tmp_path / "out").exists()


def _labels(tmp_path, text):
    (tmp_path / "labels.geojson").write_text(text)
    return tmp_path / "labels.geojson"


MAP_EVALUATE_CASES = [
    (lambda t, w: ["--labels", t / "missing.geojson"], "labels file or folder not found"),
    (lambda t, w: ["--labels", _labels(t, "{}"), "--masks", t], "replaces --masks"),
    (lambda t, w: ["--labels", _labels(t, "{}"), "--split", "val"], "--split needs masks"),
    (lambda t, w: ["--labels-class", "Building"], "--labels-class needs --labels"),
    (lambda t, w: ["--labels", _labels(t, "{not json"), "--labels-class", "Building"], "not a readable GeoJSON file"),
    (lambda t, w: ["--labels", _labels(t, '{"type": "FeatureCollection", "features": []}'), "--labels-class",
                   "Building"], "cannot be placed"),
    (lambda t, w: ["--labels", _labels(t, "{}")], "which class do these polygons outline"),
    (lambda t, w: ["--labels", _labels(t, '{"type": "FeatureCollection", "features": []}'), "--labels-class", "roof"],
     "no class 'roof'"),
    (lambda t, w: ["--objects", "roof"], "--objects: no class 'roof'"),
    (lambda t, w: ["--labels", _labels(t, '{"type": "FeatureCollection", "crs": {"type": "name", "properties": '
                                        '{"name": "urn:ogc:def:crs:EPSG::3857"}}, "features": []}'),
                   "--labels-class", "Building"], "must be longitude/latitude"),
]


@pytest.mark.parametrize("case,message", MAP_EVALUATE_CASES)
def test_bad_label_and_object_requests_are_one_line(world, tmp_path, case, message):
    pytest.importorskip("rasterio")
    data = tmp_path / "imgs"
    data.mkdir()
    shutil.copy(world["image"], data / "a.jpg")  # no georeference, no tile name
    args = case(tmp_path, world)
    if "--objects" in args:
        data = world["data"]
    r = satseg("evaluate", "--model", world["tflite"], "--data", data, *args)
    assert_one_line_error(r, message)
