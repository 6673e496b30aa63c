import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from satseg import __version__
from satseg.cli import cli, main


def test_help_lists_the_workflow():
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    for cmd in ("train", "evaluate", "export", "predict", "models", "data", "bench", "demo"):
        assert cmd in res.output


def test_version_and_module_entry_point():
    assert __version__ in CliRunner().invoke(cli, ["--version"]).output
    r = subprocess.run([sys.executable, "-m", "satseg", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Usage:" in r.stdout


@pytest.mark.parametrize("cmd", ["train", "evaluate", "export", "predict", "bench", "demo", "models"])
def test_every_command_has_help(cmd):
    res = CliRunner().invoke(cli, [cmd, "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output


def _main(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr()


def test_bad_dataset_is_one_clear_line_and_nonzero_exit(tmp_path, capsys):
    code, out = _main(["data", "inspect", str(tmp_path / "missing")], capsys)
    assert code != 0
    assert out.err.strip().splitlines()[-1].startswith("satseg: error: ") or "does not exist" in out.err


def test_empty_dataset_error(tmp_path, capsys):
    code, out = _main(["data", "inspect", str(tmp_path)], capsys)
    assert code == 2 and out.err.strip() == (
        f"satseg: error: {tmp_path}: empty dataset, no image files found (layouts: 'Tile 1/images/x.jpg' + "
        "'Tile 1/masks/x.png', 'images/' + 'masks/', 'data/N/' + 'labels/N/', 'x.tif' + 'x_mask.tif'; "
        "or pass --masks DIR / --pairs FILE)")


def test_unknown_model_error(capsys, tmp_path):
    code, out = _main(["train", "--model", "unet", "--out", str(tmp_path / "r"), "--epochs", "1"], capsys)
    assert code == 2 and "unknown model 'unet'; valid names: teacher, student, edge" in out.err


def test_inspect_json_and_plot(tiny_dataset, tmp_path):
    res = CliRunner().invoke(cli, ["data", "inspect", str(tiny_dataset), "--patch-size", "32", "--json",
                                   "--plot", str(tmp_path / "ds.png")])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["images"] == 6 and info["patches"] == 72 and info["ignored_share"] == 0.0
    from PIL import Image

    im = Image.open(tmp_path / "ds.png")
    assert im.size[0] > 300 and len(set(im.convert("L").getdata())) > 10


@pytest.mark.slow
def test_evaluate_cli_json_and_plots(trained_student, tiny_dataset, tmp_path):
    import numpy as np
    from PIL import Image

    res = CliRunner().invoke(cli, ["evaluate", "--model", str(trained_student / "model.keras"), "--data",
                                   str(tiny_dataset), "--split", "all", "--json", "--plots", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert set(r) >= {"miou", "pixel_accuracy", "per_class", "images", "pixels"}
    assert r["images"] == 6 and r["pixels"] == 6 * 96 * 128
    assert set(r["per_class"]["Road"]) >= {"iou", "precision", "recall", "f1"}
    for name in ("pr_curve.png", "predictions.png", "confusion.png"):
        arr = np.asarray(Image.open(tmp_path / "p" / name).convert("L"))
        assert arr.shape[0] > 200 and arr.shape[1] > 200 and arr.std() > 5, name


@pytest.mark.slow
def test_training_run_writes_its_files(trained_student):
    cfg = json.loads((trained_student / "config.json").read_text())
    assert cfg["config"]["seed"] == 3 and cfg["versions"]["keras"].startswith("3.")
    assert set(cfg["split"]) == {"train", "val", "test"}
    for name in ("history.csv", "best.keras", "checkpoint/state.json", "model.keras", "loss.png", "miou.png",
                 "pr_curve.png", "predictions.png", "confusion.png", "satseg.json", "summary.json"):
        assert (trained_student / name).exists(), name
    header = (trained_student / "history.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "loss", "val_loss", "val_miou", "seconds"} <= set(header)


def test_evaluate_test_split_is_the_training_runs_recorded_split(trained_student, tiny_dataset):
    from satseg.evaluate import evaluate, load_predictor

    recorded = json.loads((trained_student / "config.json").read_text())["split"]["test"]
    r = evaluate(load_predictor(trained_student / "model.keras"), tiny_dataset, split="test", progress=False)
    assert r["images"] == len(recorded) > 0
