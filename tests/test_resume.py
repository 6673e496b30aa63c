"""Exact resume: a run killed at any point and resumed ends exactly like an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from satseg.callbacks import read_history
from satseg.train import TrainConfig, resume, train

ROOT = Path(__file__).resolve().parents[1]


class _Crash(keras.callbacks.Callback):
    """Dies in the middle of epoch ``epoch`` (0-based), after a few optimizer steps."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise RuntimeError("simulated crash")


def _cfg(data, **kw):
    # The reference teacher has dropout: its random state must survive the resume too.
    base = dict(model="teacher", data=str(data), epochs=3, batch_size=4, patch_size=32, crops_per_epoch=16, seed=5)
    return TrainConfig(**{**base, **kw})


def _rows(run):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_history(Path(run) / "history.csv")]


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_dataset):
    run = tmp_path_factory.mktemp("full") / "run"
    train(_cfg(tiny_dataset), run, verbose=0)
    return run


@pytest.mark.slow
def test_killed_in_epoch_2_of_3_and_resumed_equals_an_uninterrupted_run(tmp_path, tiny_dataset, full_run):
    cut = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_cfg(tiny_dataset), cut, verbose=0, callbacks=[_Crash(1)])
    assert len(read_history(cut / "history.csv")) == 1
    resume(cut, verbose=0)
    assert _rows(cut) == _rows(full_run)  # byte-equal values, dropout included
    for a, b in zip(_weights(cut / "model.keras"), _weights(full_run / "model.keras")):
        np.testing.assert_array_equal(a, b)
    summary = json.loads((cut / "summary.json").read_text())
    best = max(_rows(cut), key=lambda r: float(r["val_miou"]))
    assert summary["best_val_miou"] == pytest.approx(float(best["val_miou"]))
    assert summary["best_epoch"] == int(best["epoch"]) + 1


@pytest.mark.slow
def test_killed_in_the_last_epoch_keeps_the_best_model(tmp_path, tiny_dataset, full_run):
    """ModelCheckpoint(save_best_only) forgot its best score on resume and saved the last epoch."""
    cut = tmp_path / "cut"
    with pytest.raises(RuntimeError):
        train(_cfg(tiny_dataset), cut, verbose=0, callbacks=[_Crash(2)])
    s = resume(cut, verbose=0)
    full = json.loads((full_run / "summary.json").read_text())
    assert (s["best_epoch"], s["best_val_miou"]) == (full["best_epoch"], full["best_val_miou"])
    for a, b in zip(_weights(cut / "model.keras"), _weights(full_run / "best.keras")):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_finished_run_resumed_changes_nothing_and_more_epochs_continue(tmp_path, tiny_dataset, full_run, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    resume(run, verbose=0)
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    resume(run, verbose=0, epochs=4)
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[:3] == _rows(full_run)  # continued from the last epoch, not from scratch
    assert json.loads((run / "config.json").read_text())["changes"][0]["epochs"] == {"from": 3, "to": 4}


@pytest.mark.slow
def test_kill_9_during_training_then_resume(tmp_path, tiny_dataset, full_run):
    """A real SIGKILL in the middle of a run: resume still ends exactly like the full run."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "satseg", "train", "--model", "teacher", "--data", str(tiny_dataset),
           "--out", str(run), "--epochs", "3", "--batch-size", "4", "--patch-size", "32",
           "--crops-per-epoch", "16", "--seed", "5"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoint" / "state.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = subprocess.run(cmd[:4] + ["--resume", str(run)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _rows(run) == _rows(full_run)
    for a, b in zip(_weights(run / "model.keras"), _weights(full_run / "model.keras")):
        np.testing.assert_array_equal(a, b)


def test_init_starts_from_the_given_weights_and_is_recorded(tmp_path, tiny_dataset, full_run):
    start = []

    class _First(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            start.extend(w.copy() for w in self.model.student.get_weights())

    init = Path(full_run) / "model.keras"
    run = tmp_path / "tuned"
    train(_cfg(tiny_dataset, epochs=1, init=str(init)), run, verbose=0, callbacks=[_First()])
    expected = _weights(init)
    assert len(start) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(start, expected))
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(run / "model.keras"), expected))  # it trained
    assert json.loads((run / "config.json").read_text())["config"]["init"] == str(init.absolute())


@pytest.mark.slow
def test_killed_between_the_history_row_and_the_checkpoint_commit_resumes_exactly(tmp_path, tiny_dataset, full_run,
                                                                               monkeypatch):
    """The history row of an epoch is written before its checkpoint commits: a kill in between
    leaves a row the resume drops and writes again, never a committed epoch without its row."""
    from satseg.callbacks import RunCheckpoint

    commit = RunCheckpoint.on_epoch_end

    def die_before_the_second_commit(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("killed before the commit")
        commit(self, epoch, logs)

    cut = tmp_path / "cut"
    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", die_before_the_second_commit)
    with pytest.raises(RuntimeError, match="before the commit"):
        train(_cfg(tiny_dataset), cut, verbose=0)
    assert len(read_history(cut / "history.csv")) == 2  # the uncommitted epoch's row is there ...
    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", commit)
    resume(cut, verbose=0)
    assert _rows(cut) == _rows(full_run)  # ... and is replaced by the epoch run again


@pytest.mark.slow
def test_resume_that_cannot_go_on_changes_nothing(tmp_path, tiny_dataset, full_run):
    import shutil

    from satseg.errors import SatsegError

    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(SatsegError, match="has finished 3 epochs; --epochs must be at least 3"):
        resume(run, verbose=0, epochs=1)
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    doc = json.loads((run / "config.json").read_text())
    doc["config"]["data"] = doc["data_root"] = str(data)
    (run / "config.json").write_text(json.dumps(doc))
    before["config.json"] = (run / "config.json").read_bytes()
    image = data / doc["split"]["train"][0]
    raw = bytearray(image.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # the same name and size, other content
    image.write_bytes(bytes(raw))
    with pytest.raises(SatsegError, match="changed since the run began"):
        resume(run, verbose=0, epochs=4)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
