"""Keras callbacks of a training run: resumable history, live plots, seeded data epochs."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import keras

from satseg.atomic import atomic_write_text


class EpochSetter(keras.callbacks.Callback):
    """Tells each :class:`satseg.data.EpochSampler` which epoch starts, so data order and
    augmentation depend on (seed, epoch) only and a resumed run repeats them exactly."""

    def __init__(self, *samplers):
        super().__init__()
        self.samplers = samplers

    def on_epoch_begin(self, epoch, logs=None):
        for s in self.samplers:
            s.epoch = epoch


def read_history(path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class RunHistory(keras.callbacks.Callback):
    """Writes ``history.csv`` (one row per finished epoch, every logged value, wall seconds)
    and redraws ``loss.png`` / ``miou.png`` after each epoch.

    On resume, rows of epochs that are run again are dropped, so the file always matches the
    weights of the last finished epoch. Writes are atomic.
    """

    def __init__(self, run_dir, plots: bool = True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "history.csv"
        self.plots = plots
        self.rows: list[dict] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        import time

        if self.rows is None:
            self.rows = [r for r in read_history(self.path) if int(r["epoch"]) < epoch]
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import time

        row = {"epoch": epoch}
        for k, v in (logs or {}).items():
            try:
                row[k] = float(v)
            except (TypeError, ValueError):
                continue
        row["seconds"] = round(time.perf_counter() - self._t0, 3)
        self.rows.append(row)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())
        if self.plots:
            from satseg.plots import plot_history

            rows = [{k: v for k, v in r.items() if v not in ("", None) and not _nan(v)} for r in self.rows]
            plot_history(rows, self.run_dir / "loss.png", self.run_dir / "miou.png")


def _nan(v):
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False
