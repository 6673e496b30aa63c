"""Keras callbacks of a training run: resumable history, live plots, seeded data epochs."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import keras

from satseg.atomic import atomic_write, atomic_write_text


class EpochSetter(keras.callbacks.Callback):
    """Tells each :class:`satseg.data.EpochSampler` which epoch starts, so data order and
    augmentation depend on (seed, epoch) only and a resumed run repeats them exactly."""

    def __init__(self, *samplers):
        super().__init__()
        self.samplers = samplers

    def on_epoch_begin(self, epoch, logs=None):
        for s in self.samplers:
            s.epoch = epoch


def seed_variables(model) -> list:
    """Every random-generator state variable of a model (dropout masks and the like), in the
    model's own order (names differ between processes). ``save_weights`` does not store them,
    so without these a resumed run draws other masks."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class RunCheckpoint(keras.callbacks.Callback):
    """Exact resume and the best model, in one place (replaces ``BackupAndRestore`` and
    ``ModelCheckpoint(save_best_only)``, which forget random states and the best score).

    After each epoch: ``best.keras`` when ``monitor`` improved, then the weights with the
    optimizer state, then ``checkpoint/state.json`` (epoch, best score, random-generator states),
    the commit point: a run killed at any moment resumes from the last committed epoch. Before
    ``fit``, :meth:`restore` loads a committed checkpoint and returns the epoch to pass as
    ``fit(initial_epoch=...)``.
    """

    def __init__(self, run, monitor: str = "val_miou"):
        super().__init__()
        self.run, self.monitor = run, monitor
        self.best, self.best_epoch = None, None
        self.restored = False

    def restore(self, model) -> int:
        """Load the last committed checkpoint into ``model`` (weights, optimizer, random states,
        best score) and return its epoch, where ``fit`` goes on (0 without one); a damaged one is
        a one-line error. The run folder is not touched."""
        import numpy as np

        from satseg.errors import SatsegError

        ck = self.run.checkpoint()
        self.restored = True
        if not ck:
            return 0
        path = self.run.checkpoint_dir / ck["weights"]
        try:
            model.load_weights(path)
        except Exception as e:  # h5py, Keras: truncated, garbage or mismatched weights
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise SatsegError(f"{path}: damaged checkpoint weights ({msg}); remove {self.run.checkpoint_dir} "
                              "to restart the run") from None
        states = ck.get("seeds", [])
        seeds = seed_variables(model)
        if len(states) != len(seeds):
            raise SatsegError(f"{self.run.checkpoint_dir}: checkpoint holds {len(states)} random states, "
                              f"the model has {len(seeds)}")
        for v, state in zip(seeds, states):
            v.assign(np.asarray(state, dtype=v.dtype))
        self.best, self.best_epoch = ck.get("best"), ck.get("best_epoch")
        return int(ck["epoch"])

    def on_train_begin(self, logs=None):
        if not self.restored:
            raise RuntimeError("RunCheckpoint: call restore(model) before fit and pass the epoch it returns as "
                               "fit(initial_epoch=...)")

    def on_epoch_end(self, epoch, logs=None):
        import numpy as np

        check_space(self.run.path, 3 * sum(int(np.prod(v.shape)) * 4 for v in self.model.weights) + 2**20)
        current = (logs or {}).get(self.monitor)
        if current is not None and not math.isnan(float(current)) and (self.best is None or float(current) > self.best):
            self.best, self.best_epoch = float(current), epoch + 1
            self.run.save_model(self.model, "best.keras")
        ck_dir = self.run.checkpoint_dir
        ck_dir.mkdir(exist_ok=True)
        name = f"epoch{epoch + 1:04d}.weights.h5"
        atomic_write(ck_dir / name, lambda p: self.model.save_weights(p))
        from satseg.run import write_json

        write_json(ck_dir / "state.json", {"epoch": epoch + 1, "weights": name, "best": self.best,
                                           "best_epoch": self.best_epoch, "monitor": self.monitor,
                                           "seeds": [np.asarray(v).tolist() for v in seed_variables(self.model)]})
        for old in ck_dir.glob("epoch*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


def check_space(folder, need: int):
    """Refuse a write that the disk cannot hold, before a library half-writes it (h5py on a full
    disk raises deep inside, and has crashed the process): the run stays resumable."""
    import shutil

    from satseg.errors import SatsegError

    free = shutil.disk_usage(folder).free
    if free < need:
        raise SatsegError(f"{folder}: {free / 2**20:.0f} MB free, the checkpoint needs about {need / 2**20:.0f} MB; "
                          f"free space, then --resume {folder}")


class EpochLine(keras.callbacks.Callback):
    """A quiet console: one short line per epoch (loss and mIoU, train and validation, seconds);
    on a terminal also a progress bar within the epoch. Per-class figures go to ``history.csv``
    and the plots, not to the console."""

    def __init__(self, epochs: int, steps: int, bar: bool | None = None, echo=print):
        super().__init__()
        import sys

        self.epochs, self.steps, self.echo = epochs, steps, echo
        self.bar_enabled = sys.stderr.isatty() if bar is None else bar
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._t0 = time.perf_counter()
        if self.bar_enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step", leave=False)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)
            logs = logs or {}
            self._bar.set_postfix_str(f"loss {float(logs.get('loss', float('nan'))):.4f} "
                                      f"mIoU {float(logs.get('miou', float('nan'))):.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        import time

        if self._bar is not None:
            self._bar.close()
            self._bar = None
        logs = logs or {}

        def f(k):
            return f"{float(logs[k]):.4f}" if k in logs else "n/a"
        self.echo(f"epoch {epoch + 1}/{self.epochs}: loss {f('loss')} mIoU {f('miou')} | "
                  f"val loss {f('val_loss')} val mIoU {f('val_miou')} | {time.perf_counter() - self._t0:.0f} s")

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()


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

    def __init__(self, run_dir, plots: bool = True, title: str = ""):
        super().__init__()
        self.title = title
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
            plot_history(rows, self.run_dir / "loss.png", self.run_dir / "miou.png", self.title)


def _nan(v):
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False
