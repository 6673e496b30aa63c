"""The run directory: one object reads and writes everything a training run keeps.

``config.json`` (every setting, absolute paths, the split by image, versions, seed),
``satseg.json`` (the model's contract), ``history.csv``, ``checkpoint/`` (the state that an exact
resume needs: weights, optimizer, random-generator states, best score), ``best.keras``,
``model.keras``, ``summary.json`` and the plots.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

from satseg.atomic import (
    atomic_write,
    atomic_write_text,
    check_replaceable,
    check_writable,
    temporary_name,
)
from satseg.errors import SatsegError

RUN_KEYS = ("config", "versions", "spec", "split")
"""What every run's ``config.json`` holds: how ``--force`` tells a run folder from a user's."""


def _finite(obj):
    """JSON-safe: NaN and infinities become null (``json`` would write bare ``NaN``)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(_finite(obj), indent=2) + "\n")


class RunDir:
    """A training run's folder. ``RunDir(path)`` never writes; ``create`` and ``check_*`` say
    up front whether a run can start or resume there."""

    def __init__(self, path, keep=()):
        self.path = Path(path).absolute()
        self.keep = tuple(keep)  # paths --force must not delete (the data the run reads)

    def __str__(self):
        return str(self.path)

    def __fspath__(self):
        return str(self.path)

    def __truediv__(self, name):
        return self.path / name

    # --- state --------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def check_new(self, force: bool):
        """A new run may start here: the folder is absent or empty, or ``force``; and it is writable."""
        if self.path.is_symlink():
            raise SatsegError(f"{self.path}: is a link; satseg does not write through links (choose another --out)")
        if self.path.exists() and not self.path.is_dir():
            raise SatsegError(f"{self.path}: exists and is not a directory")
        if self.path.is_dir() and any(self.path.iterdir()) and not force:
            raise SatsegError(f"{self.path}: run directory exists; pass --force to overwrite it "
                              f"or --resume {self.path} to continue it")
        if force:
            check_replaceable(self.path, "config.json", "a run folder", self.keep, keys=RUN_KEYS)
        check_writable(self.path)

    def check_resumable(self):
        """A run may go on here: its folder and checkpoint folder are real folders (not links) and writable."""
        for folder in (self.path, self.checkpoint_dir):
            if folder.is_symlink():
                raise SatsegError(f"{folder}: is a link; satseg does not write through links")
            if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
                raise SatsegError(f"{folder}: cannot write there (read-only?); the run cannot resume in place")

    def remove_temporaries(self):
        """Temporaries that a killed run left (``.best.keras.*.tmp.keras``, ...): call only while
        holding the folder's lock, when no other writer can be running."""
        for folder in (self.path, self.checkpoint_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp*"):
                    if temporary_name(tmp.name) and tmp.is_file() and not tmp.is_symlink():
                        tmp.unlink(missing_ok=True)

    def create(self, force: bool):
        self.check_new(force)
        if self.path.is_dir() and force:
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def config(self) -> dict:
        """The whole ``config.json`` document; a one-line error when absent or broken."""
        if not self.path.is_dir():
            raise SatsegError(f"{self.path}: run directory not found")
        if not self.config_path.is_file():
            raise SatsegError(f"{self.path}: not a run directory (no config.json)")
        try:
            doc = json.loads(self.config_path.read_text())
            doc["config"]["model"]
        except (ValueError, KeyError, TypeError) as e:
            raise SatsegError(f"{self.config_path}: not a valid run config ({type(e).__name__}: {e})") from None
        problem = config_problem(doc)
        if problem:
            raise SatsegError(f"{self.config_path}: not a valid run config ({problem})")
        return doc

    def spec(self):
        """The model's contract as the run recorded it, checked like a sidecar."""
        from satseg.classes import check_spec_doc

        return check_spec_doc(self.config().get("spec"), f"{self.config_path} (spec)")

    def write_config(self, doc: dict):
        write_json(self.config_path, doc)

    def record_change(self, key: str, old, new):
        doc = self.config()
        doc.setdefault("changes", []).append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), key: {"from": old, "to": new}})
        doc["config"][key] = new
        self.write_config(doc)

    # --- checkpoint -------------------------------------------------------------------------
    def checkpoint(self) -> dict | None:
        """The last committed checkpoint's metadata ({"epoch", "best", ...}) or None."""
        meta = self.checkpoint_dir / "state.json"
        if not meta.is_file():
            return None

        def damaged(why: str):
            return SatsegError(f"{meta}: damaged checkpoint ({why}); remove {self.checkpoint_dir} to restart the run")

        try:
            ck = json.loads(meta.read_text())
        except (ValueError, UnicodeDecodeError):
            raise damaged("not JSON") from None
        if not isinstance(ck, dict):
            raise damaged("not a JSON object")
        if type(ck.get("epoch")) is not int or ck["epoch"] < 1:
            raise damaged(f"'epoch' must be a whole number >= 1, not {ck.get('epoch')!r}")
        w = ck.get("weights")
        if not isinstance(w, str) or Path(w).name != w or not w.endswith(".weights.h5"):
            raise damaged(f"'weights' must name a .weights.h5 file in the checkpoint folder, not {w!r}")
        if not (self.checkpoint_dir / w).is_file() or (self.checkpoint_dir / w).is_symlink():
            raise damaged(f"its weights file {w} is missing (or a link)")
        if ck.get("best") is not None and type(ck["best"]) not in (int, float):
            raise damaged(f"'best' must be a number, not {ck['best']!r}")
        if ck.get("best_epoch") is not None and type(ck["best_epoch"]) is not int:
            raise damaged(f"'best_epoch' must be a whole number, not {ck['best_epoch']!r}")
        if not isinstance(ck.get("seeds", []), list):
            raise damaged("'seeds' must be a list")
        return ck

    def finished_epochs(self) -> int:
        ck = self.checkpoint()
        return int(ck["epoch"]) if ck else 0

    def summary(self) -> dict | None:
        p = self.path / "summary.json"
        if not p.is_file():
            return None
        try:
            doc = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict):
            raise SatsegError(f"{p}: damaged summary; remove it and --resume the run to write it again")
        return doc

    def write_summary(self, summary: dict):
        write_json(self.path / "summary.json", summary)

    def save_model(self, model, name: str = "model.keras") -> Path:
        return atomic_write(self.path / name, model.save)


def _is_list_of(v, kind) -> bool:
    return isinstance(v, list) and all(isinstance(x, kind) for x in v)


def config_problem(doc) -> str | None:
    """The first part of a run's config.json that its readers could not use, in words."""
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        return "not a JSON object with a 'config' object"
    split = doc.get("split") or {}
    if not isinstance(split, dict) or not all(_is_list_of(v, str) for v in split.values()):
        return "split must map train/val/test to lists of images"
    fp = doc.get("fingerprint")
    if fp is not None and (not isinstance(fp, dict) or not all(isinstance(v, list) for v in fp.values())):
        return "fingerprint must map images to their records"
    if doc.get("data_root") is not None and not isinstance(doc["data_root"], str):
        return "data_root must be a path"
    if not _is_list_of(doc.get("unlabelled", []), str):
        return "unlabelled must be a list of images"
    from satseg.train import config_field_problem

    return config_field_problem(doc["config"])


def recorded_data(model_path) -> dict | None:
    """What the training run of a model recorded about its data (``config.json`` beside the model,
    in its run folder or export folder): ``data_root``, ``split`` (image lists), ``masks`` and
    ``pairs``; None when there is no record. A broken record is a one-line error."""
    path = Path(model_path).parent / "config.json"
    if not path.is_file():
        return None
    doc = RunDir(path.parent).config()
    split, c = doc.get("split") or {}, doc["config"]
    if not isinstance(split, dict) or not all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                                              for v in split.values()):
        raise SatsegError(f"{path}: not a valid run config (split must map train/val/test to lists of images)")
    out = {"data_root": doc.get("data_root"), "split": split, "masks": c.get("masks"), "pairs": c.get("pairs")}
    for key, value in out.items():
        if key != "split" and value is not None and not isinstance(value, str):
            raise SatsegError(f"{path}: not a valid run config ({key} must be a path, not {value!r})")
    return out
