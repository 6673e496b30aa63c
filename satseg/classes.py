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


def colorize(ids: np.ndarray, classes=DUBAI_CLASSES) -> np.ndarray:
    """Class-id image -> RGB image in the dataset's colours; ignore pixels become black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(classes)] = palette_array(classes)
    return lut[ids.astype(np.uint8)]


@dataclass
class ModelSpec:
    """What a model needs around it to be used correctly: travels as ``satseg.json``."""

    classes: list[dict] = field(default_factory=lambda: [asdict(c) for c in DUBAI_CLASSES])
    normalization: dict = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    patch_size: int = DEFAULT_PATCH_SIZE
    bands: int = 3
    ignore_label: int = IGNORE_LABEL
    architecture: str = ""

    @property
    def seg_classes(self) -> tuple[SegClass, ...]:
        return tuple(SegClass(c["id"], c["name"], tuple(c["color"])) for c in self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

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


def load_spec(model_path) -> ModelSpec:
    """The spec that travels with a model; falls back to ``satseg.json`` in the same folder."""
    p = Path(model_path)
    for cand in (spec_path_for(p), p.parent / "satseg.json"):
        if cand.is_file():
            return ModelSpec.from_dict(json.loads(cand.read_text()))
    raise FileNotFoundError(
        f"{p}: no model spec found (looked for {spec_path_for(p).name} and satseg.json beside it); "
        "it records the classes, normalisation and patch size the model was trained with")


def save_spec(spec: ModelSpec, path) -> Path:
    from satseg.atomic import atomic_write_text

    return atomic_write_text(path, spec.to_json())
