"""One training run: a teacher, a student from scratch, or a distilled student.

A run is a few named steps: check everything (names, numbers, the teacher, the run directory),
read and split the data once, build the trainer, fit with exact checkpoints, finish (best model,
plots, summary). Everything a run keeps lives in its :class:`satseg.run.RunDir`.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from satseg.classes import (
    DUBAI,
    IGNORE_LABEL,
    ModelSpec,
    check_model_classes,
    class_names,
    save_spec,
)
from satseg.errors import SatsegError
from satseg.run import RunDir

CHOICES = {
    "sampling": ("crops", "grid"),
    "normalization": ("auto", "imagenet", "dataset", "minmax"),
    "loss": ("ce", "dice", "focal", "dice_focal", "ce_dice", "lovasz", "ce_lovasz"),  # satseg.losses.LOSSES
    "distill_mode": ("offline", "online"),
    "mix": ("none", "cutmix", "mixup"),  # satseg.data.MIXES
    "split": ("image", "group", "patch"),
    "strategy": ("default", "mirrored", "multiworker"),
    "lr_schedule": ("cosine", "constant"),
    "precision": ("float32", "mixed_float16", "mixed_bfloat16"),
    "patch_mode": ("crop", "pad"),
}


def path_or_paths(paths) -> str | list[str] | None:
    """How a config records teacher files: none as None, one as its path, several as a list."""
    return (paths[0] if len(paths) == 1 else list(paths)) or None


@dataclass
class TrainConfig:
    """Every setting of a run. The defaults are the recipe of the shipped pretrained models;
    the CLI takes its defaults from here."""

    model: str = "lite0_unet"
    data: str | None = None  # None: the built-in synthetic dataset
    classes: str | None = None  # class file or shipped name; None: inferred from the masks (synthetic: dubai)
    masks: str | None = None  # a mask tree mirroring the images, when the layout cannot be told
    pairs: str | None = None  # CSV of image,mask[,group] lines
    teacher: str | list[str] | None = None  # teacher .keras file(s): distil into ``model``; several: their mean
    init: str | None = None  # a trained .keras file of ``model``: start from its weights (fine-tuning)
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # linear warm-up, then cosine decay to 1 % of lr
    warmup_epochs: int = 1
    weight_decay: float = 1e-4  # AdamW; 0: Adam
    patch_size: int = 256
    sampling: str = "crops"  # crops: random crops of whole images per epoch; grid: fixed patches (reference)
    crops_per_epoch: int = 512
    scale: tuple = (0.7, 1.4)  # random crop scale (log-uniform)
    rare_fraction: float = 0.5  # share of crops centred on a uniformly drawn class
    photometric: float = 0.1  # brightness/contrast jitter (fraction of channel std / of contrast)
    patch_mode: str = "crop"
    normalization: str = "auto"  # auto: ImageNet statistics for pretrained encoders, else the training images'
    loss: str = "ce_dice"
    class_weights: list[float] | str | None = None  # per class, or "balanced": from the training masks
    alpha: float = 0.5
    temperature: float = 2.0
    distill_mode: str = "offline"  # offline: teacher logits cached once; online: teacher per step
    unlabeled: list[str] = field(default_factory=list)  # imagery without masks, learnt from the teacher alone
    unlabeled_fraction: float = 0.5  # share of the crops cut from the unlabelled imagery
    confidence: float = 0.0  # distil unlabelled pixels only where the teacher's top probability reaches it
    mix: str = "none"  # cutmix | mixup: mixed views of two crops (mixup: labelled by an online teacher alone)
    mix_fraction: float = 0.5  # share of the crops mixed with a second crop
    split: str = "image"  # image: by image within each group; group: whole groups; patch: the reference's
    val_groups: list[str] = field(default_factory=list)  # groups (tiles, folders) that form the validation split
    test_groups: list[str] = field(default_factory=list)
    split_file: str | None = None  # CSV of image,split lines: the whole split, as the user decided it
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_patches: int | None = None
    seed: int = 42
    split_seed: int | None = None  # None: the seed; set it to vary the training seed over one split
    augment: bool = True
    strategy: str = "default"  # default | mirrored | multiworker
    precision: str = "float32"  # mixed_float16 | mixed_bfloat16: Keras' mixed precision (loss scaling for float16)
    patience: int | None = None  # early stopping on val mIoU
    synthetic_images: int = 8
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.teacher, list | tuple):
            self.teacher = path_or_paths(self.teacher)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        problem = config_field_problem(d)
        if problem:
            raise SatsegError(f"not a valid run config ({problem})")
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in d.items() if k in known})
        cfg.scale = tuple(cfg.scale)
        return cfg

    @property
    def teachers(self) -> list[str]:
        """The teacher files: none, one, or several (an ensemble whose mean probabilities are distilled)."""
        if not self.teacher:
            return []
        return [self.teacher] if isinstance(self.teacher, str) else list(self.teacher)

    @property
    def effective_split_seed(self) -> int:
        """The seed of the train/val/test split: ``split_seed`` when set, else ``seed``."""
        return self.seed if self.split_seed is None else self.split_seed

    def check(self):
        """Every name and number, before anything is read or written."""
        from satseg.models import check_model_name

        check_model_name(self.model)
        for key, valid in CHOICES.items():
            if getattr(self, key) not in valid:
                raise SatsegError(f"unknown {key.replace('_', '-')} '{getattr(self, key)}'; valid: {', '.join(valid)}")
        for key in ("epochs", "batch_size", "patch_size", "crops_per_epoch"):
            if int(getattr(self, key)) < 1:
                raise SatsegError(f"--{key.replace('_', '-')} must be at least 1 (got {getattr(self, key)})")
        for key in ("lr", "temperature"):
            if not float(getattr(self, key)) > 0:
                raise SatsegError(f"--{key} must be positive (got {getattr(self, key)})")
        if not 0 <= self.alpha <= 1:
            raise SatsegError(f"--alpha must be in [0, 1] (got {self.alpha})")
        if self.max_patches is not None and self.max_patches < 1:
            raise SatsegError(f"--max-patches must be at least 1 (got {self.max_patches})")
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise SatsegError(f"--scale must be two positive numbers, low <= high (got {lo}, {hi})")
        from satseg.models import stride_of

        if self.patch_size % stride_of(self.model):
            raise SatsegError(f"--patch-size {self.patch_size} is not a multiple of {stride_of(self.model)}, "
                              f"the stride of '{self.model}'")
        if self.sampling == "crops" and self.split == "patch":
            raise SatsegError("--split patch needs --sampling grid (random crops are cut from whole images)")
        if isinstance(self.class_weights, str) and self.class_weights != "balanced":
            raise SatsegError(f"--class-weights must be 'balanced' or one number per class "
                              f"(got '{self.class_weights}')")
        if isinstance(self.class_weights, list | tuple) and min(self.class_weights) < 0:
            raise SatsegError(f"--class-weights must be >= 0 (got {', '.join(map(str, self.class_weights))})")
        for flag, path in (("--classes", self.classes), ("--masks", self.masks), ("--pairs", self.pairs),
                           ("--split-file", self.split_file)):
            if path and flag != "--classes" and not Path(path).exists():
                raise SatsegError(f"{path}: {flag} not found")
        if self.split == "patch" and (self.val_groups or self.test_groups or self.split_file):
            raise SatsegError("--split patch cannot be combined with --val-groups, --test-groups or --split-file")
        for t in self.teachers:
            if not Path(t).is_file():
                raise SatsegError(f"{t}: teacher model file not found")
        if len(self.teachers) > 1 and self.distill_mode != "offline":
            raise SatsegError("several teachers need --distill-mode offline (their mean is cached once)")
        self.check_unlabelled()
        if self.init and not Path(self.init).is_file():
            raise SatsegError(f"{self.init}: --init model file not found")


    def check_unlabelled(self):
        for key in ("unlabeled_fraction", "mix_fraction"):
            if not 0 <= getattr(self, key) <= 1:
                raise SatsegError(f"--{key.replace('_', '-')} must be in [0, 1] (got {getattr(self, key)})")
        if not 0 <= self.confidence < 1:
            raise SatsegError(f"--confidence must be in [0, 1) (got {self.confidence})")
        if (self.unlabeled or self.confidence) and not self.teachers:
            raise SatsegError("--unlabeled and --confidence need a --teacher (it labels the imagery)")
        if self.mix == "mixup" and (not self.teachers or self.distill_mode != "online"):
            raise SatsegError("--mix mixup needs a --teacher with --distill-mode online (no label or cached "
                              "logit holds for a blend; the teacher labels it)")
        if (self.unlabeled or self.mix != "none") and self.sampling != "crops":
            raise SatsegError("--unlabeled and --mix need --sampling crops")
        for p in self.unlabeled:
            if not Path(p).exists():
                raise SatsegError(f"{p}: no such file or folder (--unlabeled)")

    def distillation_rule(self) -> dict | None:
        """How a distilled run weighs its targets, in words and numbers (recorded in config.json)."""
        if not self.teachers:
            return None
        kl = "every pixel of every crop" + (f", unlabelled pixels only where the teacher's top probability "
                                           f">= {self.confidence}" if self.confidence else "")
        return {"loss": f"{self.alpha} * {self.loss} on labelled pixels + {1 - self.alpha:g} * T^2 "
                        f"KL(teacher/T || student/T) on {kl}; T = {self.temperature}",
                "unlabelled_crops": self.unlabeled_fraction if self.unlabeled else 0.0,
                "mixed_crops": self.mix_fraction if self.mix != "none" else 0.0, "mix": self.mix}


def _matches(v, kind: str) -> bool:
    number = type(v) in (int, float)
    return {"int": type(v) is int, "float": number, "str": isinstance(v, str), "bool": isinstance(v, bool),
            "None": v is None, "dict": isinstance(v, dict),
            "list[str]": isinstance(v, list) and all(isinstance(x, str) for x in v),
            "list[float]": isinstance(v, list) and all(type(x) in (int, float) for x in v),
            "tuple": isinstance(v, list | tuple) and len(v) == 2 and all(type(x) in (int, float) for x in v),
            }.get(kind, True)


def config_field_problem(d: dict) -> str | None:
    """The first recorded setting whose type is not the one :class:`TrainConfig` declares."""
    for f in fields(TrainConfig):
        if f.name in d and not any(_matches(d[f.name], kind) for kind in str(f.type).split(" | ")):
            return f"{f.name} must be {str(f.type).replace(' | ', ' or ')}, not {d[f.name]!r}"
    return None


def versions() -> dict:
    import keras
    import tensorflow as tf

    import satseg

    out = {"satseg": satseg.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
           "backend": keras.backend.backend(), "numpy": np.__version__, "python": platform.python_version()}
    if out["backend"] == "jax":
        import jax

        out["jax"] = jax.__version__
    return out


def make_strategy(name: str):
    """TensorFlow's distribution strategy of that name; other backends train on their default
    device (Keras' distribution API is theirs), so only ``default`` is theirs here."""
    import keras

    if keras.backend.backend() != "tensorflow":
        if name != "default":
            raise SatsegError(f"--strategy {name} is TensorFlow's; with KERAS_BACKEND={keras.backend.backend()} "
                              "use --strategy default")
        import contextlib

        return _NoStrategy(contextlib.nullcontext)
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


class _NoStrategy:
    """What a run asks of a strategy (``scope()``), on a backend without TensorFlow's."""

    def __init__(self, scope):
        self.scope = scope


# --- data ----------------------------------------------------------------------------------

@dataclass
class TrainData:
    root: Path
    samples: list
    split: dict  # split name -> sample indices
    train: list  # LoadedImage of the training images
    val_x: np.ndarray
    val_y: np.ndarray
    normalization: dict
    bands: int
    grid: tuple | None = None  # (x, y) fixed training patches (sampling "grid")
    classes: object = DUBAI  # the ClassSet the masks were decoded with
    class_notes: list = field(default_factory=list)
    unlabelled: list = field(default_factory=list)  # LoadedImage of --unlabeled imagery (pixels TEACHER_ONLY)


def recorded_indices(samples, root: Path, recorded: dict) -> dict[str, list[int]]:
    """The split a run recorded, as indices into ``samples``; every recorded image must still be there."""
    index = {str(s.image.relative_to(root)): i for i, s in enumerate(samples)}
    out = {}
    for k, names in recorded.items():
        missing = [n for n in names if n not in index]
        if missing:
            raise SatsegError(f"{root}: {len(missing)} images of the run's recorded {k} split are gone "
                              f"(first: {missing[0]}); the run cannot resume on other data")
        out[k] = [index[n] for n in names]
    return out


def fingerprint(data: TrainData) -> dict:
    """Size and BLAKE2 digest of every image and mask the run reads, by image path relative to
    the data root: a resume on files that changed since (replaced, re-exported, edited) is refused."""
    from satseg.atomic import file_digest

    def record(p):
        return (None, None) if p is None else (p.stat().st_size, file_digest(p))

    out = {}
    for i in sorted({i for v in data.split.values() for i in v}):
        s = data.samples[i]
        (isize, idig), (msize, mdig) = record(s.image), record(s.mask)
        out[str(s.image.relative_to(data.root))] = [isize, msize, idig, mdig]
    return out


def check_fingerprint(run: RunDir, data: TrainData):
    recorded = run.config().get("fingerprint")
    if recorded is None:  # runs made before fingerprints were recorded
        return
    now = fingerprint(data)
    # runs that recorded sizes only are compared on sizes
    changed = [k for k in recorded if now.get(k, [])[:len(recorded[k])] != recorded[k]]
    if changed:
        raise SatsegError(f"{data.root / changed[0]}: changed since the run began ({len(changed)} files in all); "
                          "the run cannot resume on other data")


def check_recorded_spec(run: RunDir, spec: ModelSpec):
    """The spec config.json recorded must be the one the run's settings and data give (it becomes
    the model's contract when the run finishes)."""
    recorded = run.spec()
    for key in ("classes", "bands", "patch_size", "architecture", "dtype"):
        mine, theirs = getattr(spec, key), getattr(recorded, key)
        if theirs != mine and not (key == "dtype" and theirs == ""):
            raise SatsegError(f"{run.config_path}: its spec records {key} {theirs!r}, the run's settings and data "
                              f"give {mine!r}; the run cannot resume")
    if recorded.normalization.get("kind") != spec.normalization.get("kind"):
        raise SatsegError(f"{run.config_path}: its spec records normalisation {recorded.normalization.get('kind')!r}, "
                          f"the run's settings give {spec.normalization.get('kind')!r}; the run cannot resume")


def resolve_normalization(cfg: TrainConfig, train_images) -> dict:
    from satseg.models import ARCHITECTURES

    kind = cfg.normalization
    bands = train_images[0].bands
    if kind == "auto":
        kind = ARCHITECTURES[cfg.model].normalization if bands == 3 else "dataset"
    if kind == "imagenet" and bands != 3:
        raise SatsegError(f"--normalization imagenet needs RGB images; the data has {bands} bands (use dataset)")
    if kind == "minmax":
        return {"kind": "minmax"}
    if kind == "imagenet":
        from satseg.pretrained import IMAGENET_NORMALIZATION

        return dict(IMAGENET_NORMALIZATION)
    from satseg.imaging import channel_stats

    st = channel_stats(li.valid_pixels() for li in train_images)  # nodata pixels are not data
    return {"kind": "in_model", "source": "training images", "mean": st["mean"], "std": st["std"]}


def synthetic_root(cfg: TrainConfig, staging: Path, run: RunDir) -> Path:
    """The built-in synthetic scenes, written to ``staging`` (moved into the run folder once every
    check has passed, so a refused run leaves nothing behind)."""
    from satseg.synthetic import write_dataset

    print(f"no --data given: training on built-in synthetic scenes (kept in {run / 'synthetic-data'})")
    return write_dataset(staging / "synthetic-data", tiles=2, images_per_tile=max(cfg.synthetic_images // 2, 1),
                         seed=cfg.seed)


def rebase(data: TrainData, root: Path):
    """Point every sample of ``data`` at ``root`` (the same files, moved there)."""
    from dataclasses import replace

    def moved(s):
        return replace(s, image=root / s.image.relative_to(data.root),
                       mask=None if s.mask is None else root / s.mask.relative_to(data.root))

    data.samples = [moved(s) for s in data.samples]
    for li in data.train:
        li.sample = moved(li.sample)
    data.root = root


def open_source(cfg: TrainConfig, root, classes=None, progress: bool = False):
    """The run's dataset, paired and with its class set (``classes`` of a run being resumed, else
    ``--classes``, else inferred; the synthetic data has the Dubai classes), before any image is read."""
    from satseg import data as D

    src = D.open_dataset(Path(root).absolute(), cfg.masks, cfg.pairs,
                         classes or cfg.classes or (None if cfg.data else DUBAI), progress)
    if src.unlabelled_groups:
        print(f"{sum(src.unlabelled_groups.values())} images without masks are not trained on (folders "
              f"{', '.join(f'{g}: {n}' for g, n in src.unlabelled_groups.items())})")
    return src


def prepare_data(cfg: TrainConfig, src, progress: bool = True, recorded: dict | None = None,
                 recorded_unlabelled: list | None = None) -> TrainData:
    """Split once (or take the ``recorded`` split of a run being resumed), read the training and
    validation images once; normalisation statistics from the training images only."""
    from satseg import data as D

    if not hasattr(src, "samples"):  # a dataset root
        src = open_source(cfg, src)
    root, samples, classes, notes = src.root, src.samples, src.classes, src.class_notes
    split = recorded_indices(samples, root, recorded) if recorded else D.split_samples(
        samples, "image" if cfg.split == "patch" else cfg.split, cfg.val_fraction, cfg.test_fraction,
        cfg.effective_split_seed, cfg.val_groups, cfg.test_groups, cfg.split_file, root)
    if cfg.split == "patch":
        split = {"train": list(range(len(samples))), "val": [], "test": []}
    train = D.load_images([samples[i] for i in split["train"]], classes, progress=progress)
    val = D.load_images([samples[i] for i in split["val"]], classes, bands=train[0].bands, progress=progress)
    check_training_classes(train, classes, root)
    norm = resolve_normalization(cfg, train)
    data = TrainData(root, samples, split, train, None, None, norm, train[0].bands, classes=classes,
                     class_notes=notes)
    data.unlabelled = load_unlabelled(cfg, samples, root, classes, data.bands, progress, recorded_unlabelled)
    if cfg.split == "patch":  # the reference's leaky random patch split
        x, y, _ = D.grid_patches(train, cfg.patch_size, cfg.patch_mode, norm)
        ps = D.PatchSet(x, y, np.zeros(len(x), int), samples)
        idx = D.split_indices(ps, "patch", cfg.val_fraction, cfg.test_fraction, cfg.effective_split_seed)
        data.grid = (x[idx["train"]], y[idx["train"]])
        data.val_x, data.val_y = x[idx["val"]], y[idx["val"]]
    else:
        if not val:
            raise SatsegError(f"{root}: too few images for a validation split ({len(samples)} images)")
        data.val_x, data.val_y, _ = D.grid_patches(val, cfg.patch_size, cfg.patch_mode, norm)
        if cfg.sampling == "grid":
            x, y, _ = D.grid_patches(train, cfg.patch_size, cfg.patch_mode, norm)
            data.grid = (x, y)
    if data.grid is not None and cfg.max_patches and cfg.max_patches < len(data.grid[0]):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(data.grid[0]), cfg.max_patches, replace=False))
        data.grid = (data.grid[0][keep], data.grid[1][keep])
    if (data.grid is not None and len(data.grid[0]) == 0) or len(data.val_x) == 0:
        raise SatsegError(f"{root}: too few patches for a train and a validation split")
    labelled = {"training": (data.grid[1] != IGNORE_LABEL).any() if data.grid is not None else
                any(li.any_labelled() for li in train), "validation": (data.val_y != IGNORE_LABEL).any()}
    for name, some in labelled.items():
        if not some:
            raise SatsegError(f"{root}: the {name} masks have no pixel of any class (all off-palette?)")
    return data


def check_training_classes(train, classes, root):
    """Refuse a class set that cannot describe the training masks; warn of classes they lack."""
    from satseg.data.coverage import check_coverage

    labelled = [li for li in train if li.sample.mask is not None]
    counts = sum((li.class_counts(len(classes))[0] for li in labelled), np.zeros(len(classes), np.int64))
    for w in check_coverage(classes, counts, [li.sample for li in labelled], root):
        print(f"warning: {w}")


def load_unlabelled(cfg: TrainConfig, samples, root: Path, classes, bands: int, progress: bool,
                    recorded: list | None = None) -> list:
    """The ``--unlabeled`` imagery, opened once; none of it may be a labelled image of the dataset
    (a validation or test image would leak), and a resumed run must find what it recorded."""
    if not cfg.unlabeled:
        return []
    from satseg import data as D

    extra = D.unlabelled_samples(cfg.unlabeled)
    labelled = {s.image.resolve() for s in samples}
    for s in extra:
        if s.image.resolve() in labelled:
            raise SatsegError(f"{s.image}: is a labelled image of {root}; --unlabeled takes imagery without masks")
    if recorded is not None and [str(s.image.absolute()) for s in extra] != recorded:
        raise SatsegError(f"{cfg.unlabeled[0]}: the --unlabeled imagery differs from what the run recorded "
                          f"({len(recorded)} images); the run cannot resume on other data")
    return D.load_images(extra, classes, bands, progress=progress)


def balanced_class_weights(masks, num_classes: int) -> list[float]:
    """``n / (k * n_c)`` over the valid pixels of the training masks, k the classes present
    (scikit-learn's "balanced" weights); a class without pixels gets weight 0."""
    from satseg.data import class_counts

    return weights_from_counts(sum((class_counts(m, num_classes) for m in masks), np.zeros(num_classes, np.int64)))


def weights_from_counts(counts: np.ndarray) -> list[float]:
    w = np.where(counts > 0, counts.sum() / ((counts > 0).sum() * np.maximum(counts, 1)), 0.0)
    return [round(float(v), 4) for v in w]


def resolve_class_weights(cfg: TrainConfig, data: TrainData, num_classes: int) -> list[float] | None:
    if cfg.class_weights is None:
        return None
    if cfg.class_weights == "balanced":
        if data.grid is not None:
            return balanced_class_weights(data.grid[1], num_classes)
        return weights_from_counts(sum(li.class_counts(num_classes)[0] for li in data.train))
    return [float(w) for w in cfg.class_weights]


def make_datasets(cfg: TrainConfig, data: TrainData, logits):
    from satseg import data as D

    if data.grid is not None:
        train_sampler = D.EpochSampler(*data.grid, logits, shuffle=True, augment=cfg.augment, seed=cfg.seed)
    else:
        train_sampler = D.CropSampler(data.train, cfg.patch_size, cfg.crops_per_epoch, logits, cfg.scale,
                                      cfg.rare_fraction, cfg.photometric if cfg.augment else 0.0,
                                      data.normalization, len(data.classes), cfg.seed, data.unlabelled,
                                      cfg.unlabeled_fraction, cfg.mix, cfg.mix_fraction)
        if not cfg.augment:
            train_sampler.scale = (1.0, 1.0)
    val_sampler = D.EpochSampler(data.val_x, data.val_y, None, shuffle=False, augment=False, seed=cfg.seed)
    # Across replicas every step needs a full global batch, so distributed runs drop the remainder.
    drop = cfg.strategy != "default"
    return (train_sampler, val_sampler, D.make_tf_dataset(train_sampler, cfg.batch_size, drop),
            D.make_tf_dataset(val_sampler, cfg.batch_size, drop))


# --- model and trainer ---------------------------------------------------------------------

def make_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr = cfg.lr
    if cfg.lr_schedule == "cosine":
        total = max(cfg.epochs * steps_per_epoch, 1)
        warm = min(cfg.warmup_epochs * steps_per_epoch, total - 1)
        lr = keras.optimizers.schedules.CosineDecay(cfg.lr * 0.01 if warm else cfg.lr, max(total - warm, 1), alpha=0.01,
                                                    warmup_target=cfg.lr if warm else None, warmup_steps=warm)
    if cfg.weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(lr)


def build_trainer(cfg: TrainConfig, spec: ModelSpec, teacher, cached: bool, steps_per_epoch: int, strategy,
                  class_weights=None, init=None):
    import keras

    from satseg.distill import Distiller
    from satseg.keras_metrics import SegMetrics
    from satseg.losses import get_loss
    from satseg.models import build_model
    from satseg.trainer import SegmentationTrainer

    norm = spec.normalization if spec.normalization.get("kind") == "in_model" else None
    with precision_policy(cfg.precision):
        with strategy.scope():  # every variable: the network's, the optimizer's, the metrics'
            model = build_model(cfg.model, (None, None, spec.bands), spec.num_classes, seed=cfg.seed,
                                normalization=norm)
            if init is not None:
                set_init_weights(model, init, cfg.init)
            loss = get_loss(cfg.loss, class_weights)
            metrics = [SegMetrics(class_names(spec.seg_classes))]
            opt = make_optimizer(cfg, steps_per_epoch)
        # The wrapper, which holds no variable of its own, is made outside the scope and trained inside
        # it (fit in ``strategy.scope()``: Keras takes the strategy in force). Made inside, Keras 3.15
        # builds it symbolically from a batch reduced across workers, which MultiWorkerMirroredStrategy
        # cannot do; this way it builds when the step is traced, on every strategy.
        trainer = Distiller(model, None if cached else teacher) if teacher is not None else SegmentationTrainer(model)
        with strategy.scope():
            kw = dict(alpha=cfg.alpha, temperature=cfg.temperature, confidence=cfg.confidence) if teacher is not None else {}
            # TensorFlow runs the step as a graph without XLA (XLA adds minutes of compiling and
            # nothing on CPU); JAX without jit would run it op by op, ten times slower
            jit = keras.backend.backend() != "tensorflow"
            trainer.compile(opt, student_loss=loss, metrics=metrics, jit_compile=jit, **kw)
    return trainer


@contextmanager
def precision_policy(name: str):
    """Keras' global dtype policy set to ``name`` while a model and its trainer are built (layers
    keep the policy they were made with; ``compile`` wraps the optimizer for loss scaling under
    mixed_float16), then set back, so nothing later in the process inherits it."""
    import keras

    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


def float32_model(model, cfg: TrainConfig, spec: ModelSpec):
    """The same network in float32 with ``model``'s weights: what a run ships, so that export,
    evaluation and LiteRT conversion never see a mixed-precision graph."""
    from satseg.models import build_model

    if cfg.precision == "float32":
        return model
    norm = spec.normalization if spec.normalization.get("kind") == "in_model" else None
    with precision_policy("float32"):
        out = build_model(cfg.model, (None, None, spec.bands), spec.num_classes, seed=cfg.seed, normalization=norm)
    out.set_weights(model.get_weights())
    return out


def load_init(cfg: TrainConfig, classes=None):
    """The model to start from (``--init``), checked against ``model`` and its classes before any
    work; its bands are checked against the data with the teacher's."""
    if not cfg.init:
        return None, None
    from satseg.classes import load_spec
    from satseg.models import load_model_file

    ispec = load_spec(cfg.init)
    arch = ispec.architecture
    if arch != cfg.model:
        raise SatsegError(f"{cfg.init}: --init model is {f'a {arch!r}' if arch else 'of an unrecorded architecture'}, "
                          f"not a '{cfg.model}'")
    init = load_model_file(cfg.init, "--init model")
    check_model_classes(init, ispec, cfg.init, "--init model", classes)
    return init, ispec


def check_class_weights(cfg: TrainConfig, classes):
    if isinstance(cfg.class_weights, list | tuple) and len(cfg.class_weights) != len(classes):
        raise SatsegError(f"--class-weights needs {len(classes)} numbers, one per class "
                          f"({', '.join(classes.names)}); got {len(cfg.class_weights)}")


def set_init_weights(model, init, path: str):
    """Copy the ``--init`` model's weights into a freshly built model; shapes must match one for one."""
    weights = init.get_weights()
    if [tuple(w.shape) for w in weights] != [tuple(w.shape) for w in model.get_weights()]:
        raise SatsegError(f"{path}: --init weights do not fit '{model.name}' (another width, depth or class count)")
    model.set_weights(weights)


# --- the run -------------------------------------------------------------------------------

def _config_doc(cfg: TrainConfig, data: TrainData, spec: ModelSpec, class_weights) -> dict:
    d = asdict(cfg)
    d["data"] = str(data.root) if cfg.data else None
    d["teacher"] = path_or_paths([str(Path(t).absolute()) for t in cfg.teachers])
    d["init"] = str(Path(cfg.init).absolute()) if cfg.init else None
    for key in ("masks", "pairs", "split_file"):
        d[key] = str(Path(d[key]).absolute()) if d[key] else None
    d["unlabeled"] = [str(Path(p).absolute()) for p in cfg.unlabeled]
    if cfg.classes and Path(cfg.classes).is_file():
        d["classes"] = str(Path(cfg.classes).absolute())
    return {
        "config": d, "data_root": str(data.root), "versions": versions(), "spec": spec.to_dict(),
        "class_weights": class_weights, "distillation": cfg.distillation_rule(),
        "unlabelled": [str(li.sample.image.absolute()) for li in data.unlabelled],
        "split": {k: [str(data.samples[i].image.relative_to(data.root)) for i in v] for k, v in data.split.items()},
        "fingerprint": fingerprint(data),
        "patches": {"train": len(data.grid[0]) if data.grid is not None else None, "val": len(data.val_x),
                    "crops_per_epoch": None if data.grid is not None else cfg.crops_per_epoch},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def train(cfg: TrainConfig, run_dir, force: bool = False, resume: bool = False,
          verbose: int = 1, callbacks=(), change: tuple | None = None) -> dict:
    """Run (or resume) a training run; returns its summary. ``verbose`` 0 prints nothing, 1 one
    line per epoch (and a progress bar on a terminal). ``change`` (key, old, new): a setting a
    resume changes, recorded in config.json only once everything is checked. One process trains
    in a run folder at a time (:class:`satseg.atomic.OutputLock`)."""
    from satseg.atomic import OutputLock

    cfg.check()
    run = RunDir(run_dir, keep=[p for p in (cfg.data, cfg.masks, cfg.pairs, cfg.split_file, cfg.init, cfg.classes,
                                            *cfg.teachers, *cfg.unlabeled) if p and Path(p).exists()])
    if resume:
        run.config()
        run.check_resumable()
    else:
        run.check_new(force)
    with OutputLock(run.path, "satseg train"):
        if resume:
            run.remove_temporaries()  # a killed writer's; no other writer holds the folder
        return _train(cfg, run, force, resume, verbose, callbacks, change)


def _train(cfg: TrainConfig, run: RunDir, force: bool, resume: bool, verbose: int, callbacks, change) -> dict:
    import keras

    from satseg.callbacks import EpochLine, EpochSetter, RunCheckpoint, RunHistory
    from satseg.distill import load_teachers

    strategy = make_strategy(cfg.strategy)  # first: MultiWorkerMirroredStrategy must precede other ops
    synthetic = cfg.data is None and not resume  # its classes are Dubai's; written once the checks pass
    src = None if synthetic else open_source(cfg, cfg.data or run / "synthetic-data",
                                              run.spec().class_set if resume else None)
    classes = DUBAI if synthetic else src.classes
    check_class_weights(cfg, classes)
    teachers = load_teachers(cfg, strategy, classes)
    init, _ = load_init(cfg, classes)
    staging = Path(tempfile.mkdtemp(prefix="satseg-synthetic-")) if synthetic else None
    try:
        if synthetic:
            src = open_source(cfg, synthetic_root(cfg, staging, run))
        data, spec, weights, cached = _checked_data(cfg, run, src, teachers, init, resume, verbose)
        if not resume:
            run.create(force)
            if synthetic:
                shutil.move(staging / "synthetic-data", run / "synthetic-data")
                rebase(data, run / "synthetic-data")
            run.write_config(_config_doc(cfg, data, spec, weights))
            save_spec(spec, run / "satseg.json")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    train_s, val_s, train_ds, val_ds = make_datasets(cfg, data, cached)
    steps = math.ceil(len(train_s) / cfg.batch_size)
    teacher = teachers[0][0] if teachers else None  # online distillation has exactly one
    trainer = build_trainer(cfg, spec, teacher, cached is not None, steps, strategy, weights, init)
    checkpoint = RunCheckpoint(run)
    start = checkpoint.restore(trainer)  # a damaged checkpoint stops the resume here, before anything is written
    if change is not None:
        run.record_change(*change)
    # history first: a kill before the checkpoint commits leaves a row that the resume drops
    cbs = [EpochSetter(train_s, val_s), RunHistory(run.path, title=cfg.model), checkpoint]
    if verbose:
        cbs.append(EpochLine(cfg.epochs, steps))
    if cfg.patience:
        cbs.append(keras.callbacks.EarlyStopping("val_miou", mode="max", patience=cfg.patience))
    t0 = time.perf_counter()
    with strategy.scope():
        trainer.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=start,
                    callbacks=cbs + list(callbacks), shuffle=False, verbose=0)
    return finish(run, trainer, data, time.perf_counter() - t0)


def _checked_data(cfg: TrainConfig, run: RunDir, src, teachers, init, resume: bool, verbose: int):
    """Read and split the data, check it against the teachers and the --init model, and cache the
    teachers' logits: everything that can refuse a run, before the run folder is written."""
    import keras

    from satseg.distill import cache_teacher_logits

    keras.utils.set_random_seed(cfg.seed)
    doc = run.config() if resume else {}
    data = prepare_data(cfg, src, progress=bool(verbose) and sys.stderr.isatty(), recorded=doc.get("split"),
                        recorded_unlabelled=doc.get("unlabelled") if resume else None)
    if verbose:
        names = ", ".join(data.classes.names)
        print(f"{len(data.samples)} labelled images (train {len(data.split['train'])}, val {len(data.split['val'])}, "
              f"test {len(data.split['test'])}); {len(data.classes)} classes: {names[:80]}{'...' if len(names) > 80 else ''}")
        if data.unlabelled:
            print(f"{len(data.unlabelled)} unlabelled images (--unlabeled) give {cfg.unlabeled_fraction:.0%} of the "
                  "crops, learnt from the teacher alone")
    spec = ModelSpec.for_classes(data.classes, normalization=data.normalization, patch_size=cfg.patch_size,
                                 bands=data.bands, architecture=cfg.model, dtype=data.train[0].dtype)
    checks = [("teacher", t, path) for (t, _), path in zip(teachers, cfg.teachers)]
    checks += [("--init model", init, cfg.init)] if init is not None else []
    for what, m, path in checks:
        if m.input_shape[-1] != data.bands:
            raise SatsegError(f"{path}: {what} takes {m.input_shape[-1]} bands, the data has {data.bands}")
    weights = resolve_class_weights(cfg, data, spec.num_classes)
    if resume:
        check_fingerprint(run, data)
        check_recorded_spec(run, spec)
    cached = None
    if teachers and cfg.distill_mode == "offline":
        cached = cache_teacher_logits(cfg, teachers, data, verbose)
    return data, spec, weights, cached


def finish(run: RunDir, trainer, data: TrainData, wall: float) -> dict:
    """``model.keras`` (the best epoch's model), ``model.satseg.json``, the plots, ``summary.json``."""
    from satseg.callbacks import read_history
    from satseg.metrics import majority_miou
    from satseg.models import load_model_file

    best_path = run / "best.keras"
    best = load_model_file(best_path) if best_path.exists() else trainer.student
    best = float32_model(best, load_config(run.path), run.spec())
    run.save_model(best)
    save_spec(run.spec(), run / "model.satseg.json")
    spec = run.spec()
    cm = final_plots(best, data.val_x, data.val_y, run.path, spec.class_set,
                     title=f"{spec.architecture}, validation patches")
    hist = read_history(run / "history.csv")
    ck = run.checkpoint() or {}
    summary = {
        "run_dir": str(run), "model": str(run / "model.keras"), "epochs": len(hist),
        "best_epoch": ck.get("best_epoch"), "best_val_miou": ck.get("best"),
        "wall_seconds_this_session": round(wall, 1),
        "train_seconds_total": round(sum(float(r["seconds"]) for r in hist), 1),
        "best_model_val_miou": cm.scores()["miou"],
    }
    top, base = majority_miou(cm.matrix.sum(1))
    summary["majority_val_miou"] = {"class": spec.class_set[top].name, "miou": base}
    fg = spec.class_set.foreground
    if fg is not None:
        summary["best_model_val_foreground_iou"] = {spec.class_set[fg].name: float(cm.scores()["iou"][fg])}
    run.write_summary(summary)
    return summary


def final_plots(model, images, masks, run_dir: Path, classes=DUBAI, batch_size: int = 16, title: str = ""):
    """``pr_curve.png``, ``predictions.png`` and ``confusion.png`` on validation patches."""
    from satseg.imaging import softmax
    from satseg.inference import predict_logits
    from satseg.metrics import ConfusionMatrix
    from satseg.plots import plot_confusion, plot_pr_curves, plot_predictions

    probs = softmax(predict_logits(model, images, batch_size))
    preds = probs.argmax(-1)
    cm = ConfusionMatrix(len(classes)).update(masks, preds)
    plot_pr_curves(masks, probs, run_dir / "pr_curve.png", classes, title=title)
    plot_predictions(images, masks, preds, run_dir / "predictions.png", classes, title=title)
    plot_confusion(cm.matrix, run_dir / "confusion.png", classes, title=title)
    return cm


def load_config(run_dir) -> TrainConfig:
    return TrainConfig.from_dict(RunDir(run_dir).config()["config"])


def resume(run_dir, verbose: int = 1, epochs: int | None = None) -> dict:
    """Continue a run from its last committed epoch. A finished run resumed with no new epoch
    budget changes nothing; with a larger ``epochs`` it continues from its last epoch (the
    change is recorded in config.json)."""
    run = RunDir(run_dir)
    cfg = load_config(run)
    done = run.finished_epochs()
    change = None
    if epochs is not None and epochs != cfg.epochs:
        if epochs < max(done, 1):
            raise SatsegError(f"{run}: has finished {done} epochs; --epochs must be at least {max(done, 1)} "
                              f"(got {epochs})")
        change = ("epochs", cfg.epochs, epochs)  # recorded once the resume is known to be possible
        cfg.epochs = epochs
    if done >= cfg.epochs and run.summary() is not None:
        print(f"{run}: finished ({done} of {cfg.epochs} epochs); nothing to do (pass --epochs N to train longer)")
        return run.summary()
    return train(cfg, run.path, resume=True, verbose=verbose, change=change)


def default_run_dir(model: str, distilled: bool) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model}{'-distilled' if distilled else ''}-{stamp}"


__all__ = ["TrainConfig", "train", "resume", "load_config"]
