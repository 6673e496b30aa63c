"""satseg fit: a labelled folder to a tested, carded int8 model in one command; the same command
after a kill -9 ends with the same report; the split chosen and said; folders it did not make refused."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from satseg.errors import SatsegError
from satseg.fit import FitConfig, FitDir, chips_overlap, choose_split, parse_budget, size_epochs

from .test_faults import assert_one_line_error, satseg

TINY = ["--teacher", "student", "--student", "student", "--epochs", "2", "--patch-size", "32",
        "--crops-per-epoch", "16", "-q"]


def fit_args(data, out):
    return ["fit", str(data), "--out", str(out), *TINY]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiny_dataset):
    out = tmp_path_factory.mktemp("fit") / "product"
    r = satseg(*fit_args(tiny_dataset, out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r


def test_fit_makes_a_tested_carded_int8_model(fitted, tiny_dataset):
    out, r = fitted
    for name in ("model_int8.tflite", "model_int8.satseg.json", "model.keras", "card.md", "report.json",
                 "classes.json", "plan.json", "figures/student/class_iou.png", "figures/teacher/confusion.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"teacher", "student"} and report["student"]["split"] == "test"
    card = (out / "card.md").read_text()
    assert "Split: by image, because 2 group(s)" in card  # two tiles: too few groups to hold out whole
    assert f"{report['student']['miou']:.4f}" in card and "satseg train --model student" in card
    assert "mIoU" in r.stdout and "card.md" in r.stdout
    plan = json.loads((out / "plan.json").read_text())
    assert plan["split"] == "image" and plan["epochs"] == 2


def test_the_same_command_after_a_kill_ends_with_the_same_report(fitted, tiny_dataset, tmp_path):
    """kill -9 in the teacher's training (after its first epoch), then the same command: the
    run resumes from the epoch and the report equals the one of a run never killed."""
    out = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.Popen([sys.executable, "-m", "satseg", *fit_args(tiny_dataset, out)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "runs" / "teacher" / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while not state.is_file() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "report.json").exists()
    again = satseg(*fit_args(tiny_dataset, out))
    assert again.returncode == 0, again.stderr[-2000:]
    a, b = (json.loads((d / "report.json").read_text()) for d in (fitted[0], out))
    assert a["teacher"]["miou"] == b["teacher"]["miou"] and a["student"]["miou"] == b["student"]["miou"]
    assert a["student"]["per_class"] == b["student"]["per_class"]
    rerun = satseg(*fit_args(tiny_dataset, out))  # finished: every stage checked, none redone
    assert rerun.returncode == 0 and (out / "report.json").read_text() == json.dumps(b, indent=2) + "\n"


def test_a_folder_fit_did_not_make_is_refused(tmp_path, tiny_dataset):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert_one_line_error(satseg(*fit_args(tiny_dataset, mine)), "files satseg fit did not write", "--force")
    assert_one_line_error(satseg(*fit_args(tiny_dataset, mine), "--force"), "not a satseg fit folder")
    assert (mine / "notes.txt").read_text() == "keep me"
    cfg = FitConfig(data=str(tiny_dataset), epochs=2)
    FitDir(tmp_path / "f", cfg).open(force=False)
    other = FitConfig(data=str(tiny_dataset), epochs=3)
    with pytest.raises(SatsegError, match="a fit with other settings"):
        FitDir(tmp_path / "f", other).open(force=False)


@pytest.mark.parametrize("args,message", [
    (["--budget", "soon"], "a time such as 2h"),
    (["--budget", "1h", "--epochs", "3"], "contradict"),
    (["--target", "tpu"], "Invalid value for '--target'"),
    (["--teacher", "nonet"], "nonet"),
])
def test_bad_fit_options_are_one_line(tmp_path, tiny_dataset, args, message):
    r = satseg("fit", str(tiny_dataset), "--out", str(tmp_path / "o"), *args)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_budgets_and_epochs():
    assert [parse_budget(t) for t in ("2h", "90m", "1h30m", "45s", "10")] == [7200, 5400, 5400, 45, 600]
    t, s = {"epoch_seconds": 60.0}, {"epoch_seconds": 20.0}
    assert size_epochs(3600, t, s, 400)[0] == 40  # (3600 - 400) / 80
    epochs, note = size_epochs(30, t, s, 0)
    assert epochs == 1 and "the least that trains" in note


def test_the_split_follows_the_groups_and_overlapping_chips():
    files = [{"image": f"d/{g}/OAM-{x}-{y}-19.png"} for g, x, y in (("1", 10, 10), ("2", 40, 40), ("3", 90, 90))]
    info = {"root": "d", "groups": {"1": 1, "2": 1, "3": 1}, "files": files}
    cfg = FitConfig(data="d")
    assert choose_split(info, cfg)["split"] == "group"
    assert chips_overlap(["OAM-10-10-19.png", "OAM-20-20-18.png", "OAM-5-5-18.png"])  # 10,10 lies in 5,5 at 18
    assert not chips_overlap(["OAM-10-10-19.png", "OAM-11-10-19.png", "a.png"])
    two = {"root": "d", "groups": {"a": 4, "b": 4}, "files": [{"image": "OAM-10-10-19.png"},
                                                               {"image": "OAM-5-5-18.png"}]}
    with pytest.raises(SatsegError, match="overlap on the ground"):
        choose_split(two, cfg)
