"""One training run: teacher, student from scratch, or distilled student.

A run directory holds ``config.json`` (every setting, the split, versions, seed), ``satseg.json``
(the model spec), ``history.csv``, ``best.keras`` / ``last.keras`` checkpoints, the final
``model.keras`` (best on validation mIoU, no optimizer state), the plots, and ``backup/`` while a
run is unfinished, from which ``resume`` continues.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from satseg.classes import DUBAI_CLASSES, ModelSpec, class_names, save_spec
from satseg.errors import SatsegError


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults are the ones used for the shipped models."""

    model: str = "student"
    data: str | None = None  # None: the built-in synthetic dataset
    teacher: str | None = None  # a teacher .keras file: distil into ``model``
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    patch_size: int = 256
    patch_mode: str = "crop"
    normalization: str = "minmax"
    loss: str = "ce"
    class_weights: list[float] | None = None
    alpha: float = 0.1
    temperature: float = 3.0
    distill_mode: str = "offline"  # offline: teacher logits cached once; online: teacher per step
    split: str = "image"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_patches: int | None = None
    seed: int = 42
    augment: bool = True
    strategy: str = "default"  # default | mirrored | multiworker
    patience: int | None = None  # early stopping on val mIoU
    synthetic_images: int = 8
    extra: dict = field(default_factory=dict)


def versions() -> dict:
    import keras
    import tensorflow as tf

    import satseg

    return {"satseg": satseg.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise SatsegError("--strategy multiworker needs TF_CONFIG set on every worker (see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise SatsegError(f"unknown strategy '{name}'; valid: default, mirrored, multiworker")


def _normalization(cfg: TrainConfig, samples, train_images) -> dict:
    if cfg.normalization == "minmax":
        return {"kind": "minmax"}
    if cfg.normalization == "standard":
        from satseg.imaging import channel_stats, read_image

        return channel_stats(read_image(samples[i].image) for i in train_images)
    raise SatsegError(f"unknown normalization '{cfg.normalization}'; valid: minmax, standard")


def prepare_data(cfg: TrainConfig, run_dir: Path, progress: bool = True):
    """Load patches, split them, and return (patch set, split indices, normalisation)."""
    from satseg import data as D

    root = cfg.data
    if root is None:
        from satseg.synthetic import write_dataset

        root = run_dir / "synthetic-data"
        if not root.exists():
            write_dataset(root, tiles=2, images_per_tile=max(cfg.synthetic_images // 2, 1), seed=cfg.seed)
    samples = D.find_samples(root)
    split_imgs = D.image_split(samples, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    norm = _normalization(cfg, samples, split_imgs["train"])
    patches = D.load_patches(root, cfg.patch_size, cfg.patch_mode, norm, progress=progress)
    if cfg.max_patches and cfg.max_patches < len(patches):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(patches), cfg.max_patches, replace=False))
        patches = patches.subset(keep)
    splits = D.split_indices(patches, cfg.split, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise SatsegError(f"{root}: too few images/patches for a train and a validation split "
                          f"({len(splits['train'])} train, {len(splits['val'])} val patches)")
    return root, patches, splits, norm


def predict_logits(model, x: np.ndarray, batch_size: int = 16, dtype=np.float32) -> np.ndarray:
    out = [np.asarray(model(x[i:i + batch_size], training=False)).astype(dtype)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), dtype)


def final_plots(model, images, masks, run_dir: Path, classes=DUBAI_CLASSES, batch_size: int = 16):
    """``pr_curve.png``, ``predictions.png`` and ``confusion.png`` on validation patches."""
    from satseg.imaging import softmax
    from satseg.metrics import ConfusionMatrix
    from satseg.plots import plot_confusion, plot_pr_curves, plot_predictions

    probs = softmax(predict_logits(model, images, batch_size))
    preds = probs.argmax(-1)
    cm = ConfusionMatrix(len(classes)).update(masks, preds)
    plot_pr_curves(masks, probs, run_dir / "pr_curve.png", classes)
    plot_predictions(images, masks, preds, run_dir / "predictions.png", classes)
    plot_confusion(cm.matrix, run_dir / "confusion.png", classes)
    return cm


def _prepare_run_dir(run_dir: Path, force: bool, resume: bool):
    if resume:
        if not (run_dir / "config.json").exists():
            raise SatsegError(f"{run_dir}: not a run directory (no config.json) to resume")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not force:
            raise SatsegError(f"{run_dir}: run directory exists; pass --force to overwrite it "
                              f"or --resume {run_dir} to continue it")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def load_config(run_dir) -> TrainConfig:
    d = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    return TrainConfig(**{k: v for k, v in d.items() if k in TrainConfig.__dataclass_fields__})


def train(cfg: TrainConfig, run_dir, force: bool = False, resume: bool = False,
          verbose: int | str = "auto", callbacks=()) -> dict:
    """Run (or resume) a training run; returns a summary dict."""
    import keras

    from satseg import data as D
    from satseg.atomic import atomic_write, atomic_write_text
    from satseg.callbacks import EpochSetter, RunHistory
    from satseg.distill import Distiller, SegmentationTrainer
    from satseg.losses import get_loss
    from satseg.metrics import SegMetrics
    from satseg.models import build_model

    run_dir = Path(run_dir)
    _prepare_run_dir(run_dir, force, resume)
    strategy = make_strategy(cfg.strategy)  # first: MultiWorkerMirroredStrategy must precede other ops
    keras.utils.set_random_seed(cfg.seed)
    root, patches, splits, norm = prepare_data(cfg, run_dir)
    bands = patches.images.shape[-1]
    spec = ModelSpec(normalization=norm, patch_size=cfg.patch_size, bands=bands, architecture=cfg.model)
    names = class_names(DUBAI_CLASSES)

    teacher = None
    if cfg.teacher:
        if not Path(cfg.teacher).is_file():
            raise SatsegError(f"{cfg.teacher}: teacher model file not found")
        with strategy.scope():  # an online teacher runs on every replica
            teacher = keras.saving.load_model(cfg.teacher, compile=False)
        if teacher.input_shape[-1] != bands:
            raise SatsegError(f"{cfg.teacher}: teacher takes {teacher.input_shape[-1]} bands, data has {bands}")

    tr, va = splits["train"], splits["val"]
    x_tr, y_tr = patches.images[tr], patches.masks[tr]
    x_va, y_va = patches.images[va], patches.masks[va]
    cached = None
    if teacher is not None and cfg.distill_mode == "offline":
        t0 = time.perf_counter()
        cached = predict_logits(teacher, x_tr, cfg.batch_size, np.float16)
        print(f"cached teacher logits for {len(x_tr)} patches in {time.perf_counter() - t0:.1f} s")
    elif cfg.distill_mode not in ("offline", "online"):
        raise SatsegError(f"unknown distill mode '{cfg.distill_mode}'; valid: offline, online")

    if not resume:
        config = {
            "config": asdict(cfg), "data_root": str(root), "versions": versions(),
            "spec": json.loads(spec.to_json()),
            "split": {k: sorted({str(patches.samples[i].image.relative_to(root)) for i in patches.source[v]})
                      for k, v in splits.items()},
            "patches": {k: len(v) for k, v in splits.items()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2))
        save_spec(spec, run_dir / "satseg.json")

    train_sampler = D.EpochSampler(x_tr, y_tr, cached, shuffle=True, augment=cfg.augment, seed=cfg.seed)
    val_sampler = D.EpochSampler(x_va, y_va, None, shuffle=False, augment=False, seed=cfg.seed)
    # Across replicas every step needs a full global batch (a partial last batch would leave
    # some replicas without data), so distributed runs drop the remainder.
    drop = cfg.strategy != "default"
    train_ds = D.make_tf_dataset(train_sampler, cfg.batch_size, drop_remainder=drop)
    val_ds = D.make_tf_dataset(val_sampler, cfg.batch_size, drop_remainder=drop)

    with strategy.scope():
        model = build_model(cfg.model, (cfg.patch_size, cfg.patch_size, bands), len(names), seed=cfg.seed)
        loss = get_loss(cfg.loss, cfg.class_weights)
        metrics = [SegMetrics(names)]
        opt = keras.optimizers.Adam(cfg.lr)
        if teacher is not None:
            trainer = Distiller(model, teacher if cached is None else None)
            trainer.compile(opt, student_loss=loss, alpha=cfg.alpha, temperature=cfg.temperature, metrics=metrics)
        else:
            trainer = SegmentationTrainer(model)
            trainer.compile(opt, student_loss=loss, metrics=metrics)

    cbs = [
        EpochSetter(train_sampler, val_sampler),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor="val_miou", mode="max",
                                        save_best_only=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "last.keras")),
        RunHistory(run_dir),
    ]
    if cfg.patience:
        cbs.append(keras.callbacks.EarlyStopping("val_miou", mode="max", patience=cfg.patience))
    t0 = time.perf_counter()
    trainer.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=cbs + list(callbacks), shuffle=False,
                verbose=verbose)
    wall = time.perf_counter() - t0

    best_path = run_dir / "best.keras"
    best = keras.saving.load_model(best_path, compile=False) if best_path.exists() else model
    atomic_write(run_dir / "model.keras", best.save)
    save_spec(spec, run_dir / "model.satseg.json")
    cm = final_plots(best, x_va, y_va, run_dir)
    from satseg.callbacks import read_history

    hist = read_history(run_dir / "history.csv")
    best_row = max(hist, key=lambda r: float(r.get("val_miou") or "nan"), default={})
    summary = {
        "run_dir": str(run_dir), "model": str(run_dir / "model.keras"), "epochs": len(hist),
        "best_epoch": int(best_row.get("epoch", -1)) + 1,
        "best_val_miou": float(best_row.get("val_miou", "nan")),
        "wall_seconds_this_session": round(wall, 1),
        "train_seconds_total": round(sum(float(r["seconds"]) for r in hist), 1),
        "best_model_val_miou": cm.scores()["miou"],
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def resume(run_dir, verbose="auto", epochs: int | None = None) -> dict:
    """Continue a run from its last finished epoch; ``epochs`` changes the epoch budget (to
    extend a finished run or shorten a long one), and the change is recorded in config.json."""
    from satseg.atomic import atomic_write_text

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    if epochs is not None and epochs != cfg.epochs:
        doc = json.loads((run_dir / "config.json").read_text())
        doc.setdefault("changes", []).append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                              "epochs": {"from": cfg.epochs, "to": epochs}})
        doc["config"]["epochs"] = cfg.epochs = epochs
        atomic_write_text(run_dir / "config.json", json.dumps(doc, indent=2))
    return train(cfg, run_dir, resume=True, verbose=verbose)


def default_run_dir(model: str, distilled: bool) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model}{'-distilled' if distilled else ''}-{stamp}"


__all__ = ["TrainConfig", "train", "resume", "load_config"]
