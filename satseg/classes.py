"""The single definition of the class palette, the ignore label and the model's input contract.

Everything that must travel with a model (class names and colours, normalisation, patch size,
band count) is collected in :class:`ModelSpec`, which is written next to every trained and
exported model and read back by evaluation and the edge runtime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

IGNORE_LABEL = 255
"""Class id of pixels that losses and metrics skip (off-palette mask colours, padding)."""


@dataclass(frozen=True)
class SegClass:
    id: int
    name: str
    color: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.color)


# The colours the Dubai masks really use. The dataset's classes.json lists other colours and a
# different order; it is deliberately not read (see ../shared/README.md).
DUBAI_CLASSES: tuple[SegClass, ...] = (
    SegClass(0, "Building", (60, 16, 152)),
    SegClass(1, "Land (unpaved area)", (132, 41, 246)),
    SegClass(2, "Road", (110, 193, 228)),
    SegClass(3, "Vegetation", (254, 221, 58)),
    SegClass(4, "Water", (226, 169, 41)),
    SegClass(5, "Unlabeled", (155, 155, 155)),
)

DEFAULT_PATCH_SIZE = 256
DEFAULT_NORMALIZATION = {"kind": "minmax"}


def class_names(classes=DUBAI_CLASSES) -> list[str]:
    return [c.name for c in classes]


def palette_array(classes=DUBAI_CLASSES) -> np.ndarray:
    """(num_classes, 3) uint8 colours, indexable by class id."""
    return np.array([c.color for c in classes], dtype=np.uint8)


def color_table(classes=DUBAI_CLASSES) -> np.ndarray:
    """(256, 3) uint8 colour of every 8-bit class id: the class colours, black elsewhere (ignore).
    The palette of class-id PNGs and GeoTIFFs."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(classes)] = palette_array(classes)
    return lut


def colorize(ids: np.ndarray, classes=DUBAI_CLASSES) -> np.ndarray:
    """Class-id image -> RGB image in the dataset's colours; ignore pixels become black."""
    return color_table(classes)[ids.astype(np.uint8)]


@dataclass
class ModelSpec:
    """What a model needs around it to be used correctly: travels as ``satseg.json``."""

    classes: list[dict] = field(default_factory=lambda: [asdict(c) for c in DUBAI_CLASSES])
    normalization: dict = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    patch_size: int = DEFAULT_PATCH_SIZE
    bands: int = 3
    ignore_label: int = IGNORE_LABEL
    architecture: str = ""
    stride: int = 1
    """Input sides must be multiples of this (the model's total downsampling)."""
    margin: int = 0
    """Whole-image models: input pixels around a pixel that change its prediction; windows
    overlap by this much and drop it, so windowed and full-frame results agree."""

    @property
    def seg_classes(self) -> tuple[SegClass, ...]:
        return tuple(SegClass(c["id"], c["name"], tuple(c["color"])) for c in self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def spec_path_for(model_path) -> Path:
    """Where the spec of a model file lives: ``X.satseg.json`` beside ``X.keras``/``X.tflite``,
    or ``satseg.json`` in a run or SavedModel directory."""
    p = Path(model_path)
    if p.is_dir():
        return p / "satseg.json"
    return p.with_name(p.name.rsplit(".", 1)[0] + ".satseg.json")


REQUIRED_SPEC_KEYS = ("classes", "normalization", "patch_size", "bands")


def read_spec(path) -> ModelSpec:
    """Parse and check one spec file: valid JSON, every key present, consistent classes."""
    from satseg.errors import ModelFileError

    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"{path}: model spec is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ModelFileError(f"{path}: model spec must be a JSON object")
    missing = [k for k in REQUIRED_SPEC_KEYS if k not in d]
    if missing:
        raise ModelFileError(f"{path}: model spec lacks {', '.join(missing)}")
    try:
        spec = ModelSpec.from_dict(d)
        ids = [int(c["id"]) for c in spec.classes]
        [tuple(int(v) for v in c["color"]) for c in spec.classes]
        kind = spec.normalization["kind"]
        int(spec.patch_size), int(spec.bands)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: malformed model spec ({type(e).__name__}: {e})") from None
    if ids != list(range(len(ids))) or not ids:
        raise ModelFileError(f"{path}: class ids must be 0..N-1 in order, got {ids}")
    if kind not in ("in_model", "minmax", "standard"):
        raise ModelFileError(f"{path}: unknown normalization kind '{kind}'")
    if spec.patch_size < 1 or spec.bands < 1:
        raise ModelFileError(f"{path}: patch_size and bands must be positive")
    return spec


def load_spec(model_path) -> ModelSpec:
    """The spec that travels with a model; falls back to ``satseg.json`` in the same folder."""
    from satseg.errors import ModelFileError

    p = Path(model_path)
    for cand in (spec_path_for(p), p.parent / "satseg.json"):
        if cand.is_file():
            return read_spec(cand)
    raise ModelFileError(
        f"{p}: no model spec found (looked for {spec_path_for(p).name} and satseg.json beside it); "
        "it records the classes, normalisation and patch size the model was trained with")


def save_spec(spec: ModelSpec, path) -> Path:
    from satseg.atomic import atomic_write_text

    return atomic_write_text(path, spec.to_json())
