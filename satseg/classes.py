"""Class sets, the ignore label and the model's input contract.

A class set is data, not code: a JSON file lists each class (id, name, display colour) and how
masks encode it (an RGB colour, single-band values such as 255, or a value range for soft masks),
plus values and colours that mean "no label". It travels inside the model's :class:`ModelSpec`
(written next to every trained and exported model), so losses, metrics, plots, evaluation,
export and the edge runtime all read one definition. The Dubai classes are one such file shipped
with the package (``satseg/classsets/dubai.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

IGNORE_LABEL = 255
"""Class id of pixels that losses and metrics skip (unmatched mask values, nodata, padding)."""

TEACHER_ONLY = 254
"""Class id of pixels that hold imagery but no label (unlabelled images, mixed views): the label
losses and metrics skip them, distillation learns them from the teacher."""

MAX_CLASSES = IGNORE_LABEL  # class ids stay below TEACHER_ONLY
CLASSSET_DIR = Path(__file__).with_name("classsets")


def _error(msg: str):
    from satseg.errors import DataError

    return DataError(msg)


@dataclass(frozen=True)
class SegClass:
    """One class: its id (0..N-1), name and display colour, and how masks encode it. RGB masks
    match ``color``; single-band masks match ``values``, or ``range`` ``[lo, hi)`` (soft masks),
    or, when neither is given, the id itself."""

    id: int
    name: str
    color: tuple[int, int, int]
    values: tuple = ()
    range: tuple | None = None
    """``(lo, hi)``: values ``lo <= v < hi``; None for an open end."""
    objects: bool = False
    """Countable things (buildings, trees): ``satseg evaluate`` also scores them object by object."""

    @property
    def hex(self) -> str:
        return "#{:02X}{:02X}{:02X}".format(*self.color)

    def to_dict(self) -> dict:
        d = {"id": self.id, "name": self.name, "color": list(self.color)}
        if self.values:
            d["values"] = list(self.values)
        if self.range is not None:
            d["range"] = list(self.range)
        if self.objects:
            d["objects"] = True
        return d


def parse_color(c, where: str) -> tuple[int, int, int]:
    """``[r, g, b]`` or ``"#RRGGBB"`` -> (r, g, b), each 0..255."""
    if isinstance(c, str) and len(c) == 7 and c.startswith("#"):
        try:
            return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
    elif isinstance(c, list | tuple) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c):
        return tuple(c)
    raise _error(f"{where}: colour must be [r, g, b] with values 0..255 or '#RRGGBB' (got {c!r})")


def _numbers(v, where: str, n: int | None = None) -> tuple:
    if not isinstance(v, list | tuple) or (n is not None and len(v) != n) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        raise _error(f"{where}: must be a list of {n or 'some'} numbers (got {v!r})")
    return tuple(v)


@dataclass(frozen=True)
class ClassSet:
    """The classes of a dataset and how its masks encode them; see :class:`SegClass`.
    ``ignore_values`` / ``ignore_colors``: mask values / colours that mean "no label". Any mask
    value matching neither a class nor an ignore rule is ignored too, and counted."""

    classes: tuple[SegClass, ...]
    ignore_values: tuple = ()
    ignore_colors: tuple = ()
    name: str = ""

    def __len__(self):
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    def __getitem__(self, i):
        return self.classes[i]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def value_encoded(self) -> bool:
        """Masks hold values or ranges (single band), rather than colours or plain ids."""
        return any(c.values or c.range is not None for c in self.classes)

    @property
    def foreground(self) -> int | None:
        """A binary problem's foreground class (the one that is not 'background', else id 1)."""
        if len(self.classes) != 2:
            return None
        bg = [c.id for c in self.classes if c.name.lower() in ("background", "bg", "other", "none")]
        return 1 - bg[0] if len(bg) == 1 else 1

    # --- files --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d, where: str = "class set") -> ClassSet:
        """Parse and check: ids 0..N-1 in order, unique names, valid colours, values and ranges."""
        if isinstance(d, list):  # a spec's bare class list
            d = {"classes": d}
        if not isinstance(d, dict) or not isinstance(d.get("classes"), list):
            raise _error(f"{where}: a class set is a JSON object with a 'classes' list")
        out = []
        for i, c in enumerate(d["classes"]):
            w = f"{where}: class {i}"
            if not isinstance(c, dict) or "name" not in c or "color" not in c:
                raise _error(f"{w}: needs at least 'name' and 'color'")
            if c.get("id", i) != i:
                raise _error(f"{w}: ids must be 0..N-1 in order (got {c.get('id')!r})")
            name = c["name"]
            if not isinstance(name, str) or not name.strip():
                raise _error(f"{w}: name must be a non-empty string")
            rng = c.get("range")
            if rng is not None:
                if not isinstance(rng, list | tuple) or len(rng) != 2:
                    raise _error(f"{w}: range must be [lo, hi) with null for an open end (got {rng!r})")
                rng = _numbers([v for v in rng if v is not None], f"{w} range") and tuple(rng)
                if None not in rng and not rng[0] < rng[1]:
                    raise _error(f"{w}: range [lo, hi) needs lo < hi (got {list(rng)})")
            objects = c.get("objects", False)
            if not isinstance(objects, bool):
                raise _error(f"{w}: 'objects' must be true or false (got {objects!r})")
            out.append(SegClass(i, name, parse_color(c["color"], f"{w} ({name})"),
                                _numbers(c.get("values", []), f"{w} values"), rng, objects))
        if not 2 <= len(out) <= MAX_CLASSES - 1:
            raise _error(f"{where}: needs 2 to {MAX_CLASSES - 1} classes (got {len(out)})")
        names = [c.name for c in out]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise _error(f"{where}: class names must be unique ({', '.join(dup)} repeated)")
        ign = d.get("ignore", {}) or {}
        if not isinstance(ign, dict):
            raise _error(f"{where}: 'ignore' must be an object with 'values' and/or 'colors'")
        values = _numbers(ign.get("values", []), f"{where}: ignore values")
        colors = tuple(parse_color(c, f"{where}: ignore colour") for c in ign.get("colors", []))
        taken: dict = {}
        for c in out:
            for v in c.values or (() if c.range is not None else (c.id,)):
                if v in taken:
                    raise _error(f"{where}: mask value {v} means both {taken[v]!r} and {c.name!r} (a class without "
                                 "'values' or 'range' matches its id)")
                taken[v] = c.name
        both = sorted(set(taken) & set(values))
        if both:
            raise _error(f"{where}: value(s) {both} are both a class and ignored")
        return cls(tuple(out), values, colors, str(d.get("name", "")))

    def to_dict(self) -> dict:
        d = {"name": self.name, "classes": [c.to_dict() for c in self.classes]}
        ign = {}
        if self.ignore_values:
            ign["values"] = list(self.ignore_values)
        if self.ignore_colors:
            ign["colors"] = [list(c) for c in self.ignore_colors]
        if ign:
            d["ignore"] = ign
        return d

    @classmethod
    def load(cls, path) -> ClassSet:
        """A class file, or the name of one shipped with satseg (``dubai``)."""
        p = Path(path)
        if not p.exists() and (CLASSSET_DIR / f"{path}.json").is_file():
            p = CLASSSET_DIR / f"{path}.json"
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            shipped = ", ".join(sorted(q.stem for q in CLASSSET_DIR.glob("*.json")))
            raise _error(f"{p}: class file not found (or give a shipped class set: {shipped})") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise _error(f"{p}: class file is not valid JSON ({type(e).__name__}: {e})") from None
        return cls.from_dict(d, str(p))

    def save(self, path) -> Path:
        from satseg.atomic import atomic_write_text

        d = self.to_dict()
        body = ",\n".join("    " + json.dumps(c) for c in d.pop("classes"))
        head = json.dumps(d)[1:-1]
        return atomic_write_text(path, "{" + head + (", " if head else "") + '"classes": [\n' + body + "\n]}\n")

    # --- masks --------------------------------------------------------------------------
    def decode(self, mask: np.ndarray) -> tuple[np.ndarray, int]:
        """Mask pixels (H, W) or (H, W, C) -> (class ids uint8, pixels set to IGNORE_LABEL)."""
        if mask.ndim == 2:
            mask = mask[..., None]
        single = mask.shape[-1] < 3 or (self.value_encoded and _equal_bands(mask))
        ids = self._decode_values(mask[..., 0]) if single else self._decode_colors(mask[..., :3])
        return ids, int((ids == IGNORE_LABEL).sum())

    def _decode_colors(self, rgb: np.ndarray) -> np.ndarray:
        code = rgb_code(rgb)
        cols = [c.color for c in self.classes] + list(self.ignore_colors)
        lut_ids = np.array([c.id for c in self.classes] + [IGNORE_LABEL] * len(self.ignore_colors), np.uint8)
        pal_code = rgb_code(np.array(cols, np.int64).reshape(-1, 1, 3)).ravel()
        order = np.argsort(pal_code, kind="stable")
        sorted_codes = pal_code[order]
        pos = np.clip(np.searchsorted(sorted_codes, code), 0, len(sorted_codes) - 1)
        hit = sorted_codes[pos] == code
        return np.where(hit, lut_ids[order[pos]], IGNORE_LABEL).astype(np.uint8)

    def _decode_values(self, v: np.ndarray) -> np.ndarray:
        if np.issubdtype(v.dtype, np.integer) and v.size and v.min() >= 0 and v.max() < 65536:
            return self.value_table(int(v.max()) + 1)[v]
        out = np.full(v.shape, IGNORE_LABEL, np.uint8)
        for c in self.classes:
            out[self._matches(c, v)] = c.id
        out[np.isin(v, self.ignore_values) | ~np.isfinite(v)] = IGNORE_LABEL
        return out

    @staticmethod
    def _matches(c: SegClass, v: np.ndarray) -> np.ndarray:
        if c.range is not None:
            lo, hi = (-np.inf if c.range[0] is None else c.range[0]), (np.inf if c.range[1] is None else c.range[1])
            hit = (v >= lo) & (v < hi)
            return hit | np.isin(v, c.values) if c.values else hit
        return np.isin(v, c.values or (c.id,))

    def value_table(self, n: int) -> np.ndarray:
        """(n,) uint8 class id of every integer mask value below n (IGNORE_LABEL if none)."""
        v = np.arange(n)
        return self._decode_values(v.astype(np.float64)) if n else np.zeros(0, np.uint8)

    # --- colours ------------------------------------------------------------------------
    def palette(self) -> np.ndarray:
        return np.array([c.color for c in self.classes], dtype=np.uint8)


def _equal_bands(a: np.ndarray) -> bool:
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all())


def rgb_code(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def as_class_set(classes) -> ClassSet:
    """A ClassSet from a ClassSet, a sequence of SegClass, or a spec's list of class dicts."""
    if isinstance(classes, ClassSet):
        return classes
    classes = list(classes)
    if classes and isinstance(classes[0], SegClass):
        return ClassSet(tuple(classes))
    return ClassSet.from_dict({"classes": classes})


DUBAI = ClassSet.load(CLASSSET_DIR / "dubai.json")
"""The Dubai release's six classes in the colours its masks really use (its own classes.json lists
other colours and another order and is deliberately not read; see ../shared/README.md)."""
DUBAI_CLASSES: tuple[SegClass, ...] = DUBAI.classes

DEFAULT_PATCH_SIZE = 256
DEFAULT_NORMALIZATION = {"kind": "minmax"}


def class_names(classes=DUBAI) -> list[str]:
    return [c.name for c in classes]


def palette_array(classes=DUBAI) -> np.ndarray:
    """(num_classes, 3) uint8 colours, indexable by class id."""
    return np.array([c.color for c in classes], dtype=np.uint8)


def color_table(classes=DUBAI) -> np.ndarray:
    """(256, 3) uint8 colour of every 8-bit class id: the class colours, black elsewhere (ignore).
    The palette of class-id PNGs and GeoTIFFs."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(classes)] = palette_array(classes)
    return lut


def colorize(ids: np.ndarray, classes=DUBAI) -> np.ndarray:
    """Class-id image -> RGB image in the dataset's colours; ignore pixels become black."""
    return color_table(classes)[ids.astype(np.uint8)]


@dataclass
class ModelSpec:
    """What a model needs around it to be used correctly: travels as ``satseg.json``."""

    classes: list[dict] = field(default_factory=lambda: [c.to_dict() for c in DUBAI.classes])
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

    ignore: dict = field(default_factory=dict)
    """The class set's ignore rules: ``{"values": [...], "colors": [...]}``."""
    dtype: str = ""
    """Pixel type of the training imagery (uint8, uint16, float32): other imagery is refused, never
    clipped or rescaled silently. Empty in specs written before it was recorded."""
    outputs: str = ""
    """What a fixed-size file returns per pixel: "" probabilities (or, for a whole-image file, class
    ids), "logits" (the Edge TPU file: its softmax runs on the host)."""
    tiling: dict = field(default_factory=dict)
    """Fixed-size files: how a scene is cut and blended (:func:`fixed_file_spec`); empty for
    whole-image files, whose stride and margin say how they run."""

    @classmethod
    def for_classes(cls, class_set: ClassSet, **kw) -> ModelSpec:
        d = class_set.to_dict()
        return cls(classes=d["classes"], ignore=d.get("ignore", {}), **kw)

    @property
    def class_set(self) -> ClassSet:
        return ClassSet.from_dict({"classes": self.classes, "ignore": self.ignore})

    @property
    def seg_classes(self) -> ClassSet:
        return self.class_set

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


TENT = "tent: w(i) = min(i + 0.5, P - i - 0.5) / (P / 2) along each axis, weight w(y) * w(x) + 0.001"


def fixed_file_spec(spec: ModelSpec) -> ModelSpec:
    """The spec a fixed-size (1, P, P, C) file carries, with all a plain client needs to run it:
    patches of P pixels overlapping by P // 4, probabilities blended with tent weights
    (:func:`satseg.edge.blend_weights`), scenes smaller than a patch padded by repeating their
    edges; and for per-patch min-max normalisation, the rule itself."""
    d = spec.to_dict()
    p = spec.patch_size
    d["tiling"] = {"patch": p, "overlap": p // 4, "blend": TENT, "pad": "edge",
                   "starts": "0, P - overlap, 2 (P - overlap), ... along each axis; the last moved back to end at "
                             "the border",
                   "ids": "argmax over classes of the sum of weight * probabilities over the tiles, / the sum of weights"}
    if spec.normalization.get("kind") == "minmax":
        d["normalization"] = {"kind": "minmax", "scope": "each patch, each band", "range": [0.0, 1.0],
                              "formula": "(x - min) / max(max - min, 1e-12)"}
    return ModelSpec.from_dict(d)


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
    return check_spec_doc(d, path)


def check_spec_doc(d, path) -> ModelSpec:
    """A spec document (a sidecar's, or one embedded in a model file) checked field by field."""
    from satseg.errors import DataError, ModelFileError

    if not isinstance(d, dict):
        raise ModelFileError(f"{path}: model spec must be a JSON object")
    missing = [k for k in REQUIRED_SPEC_KEYS if k not in d]
    if missing:
        raise ModelFileError(f"{path}: model spec lacks {', '.join(missing)}")
    try:
        spec = ModelSpec.from_dict(d)
        _ = spec.class_set  # parses and checks the classes
        kind = spec.normalization["kind"]
        int(spec.patch_size), int(spec.bands)
    except DataError as e:
        raise ModelFileError(f"{path}: malformed classes in the model spec ({str(e).split(': ', 1)[-1]})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{path}: malformed model spec ({type(e).__name__}: {e})") from None
    if kind not in ("in_model", "minmax", "standard"):
        raise ModelFileError(f"{path}: unknown normalization kind '{kind}'")
    problem = spec_problem(spec)
    if problem:
        raise ModelFileError(f"{path}: malformed model spec ({problem})")
    return spec


def spec_problem(spec: ModelSpec) -> str | None:
    """The first field of a spec that is not what its users rely on, in words; None when all are."""
    def whole(v, lo):
        return type(v) is int and v >= lo

    limits = {"patch_size": (1, 8192), "bands": (1, 1024), "stride": (1, 1024), "margin": (0, 8192),
              "ignore_label": (0, 255)}
    for key, (lo, hi) in limits.items():
        v = getattr(spec, key)
        if not whole(v, lo) or v > hi:
            return f"{key} must be a whole number from {lo} to {hi}, not {v!r}"
    if spec.outputs not in ("", "logits"):
        return f"outputs must be empty or 'logits', not {spec.outputs!r}"
    if spec.dtype not in ("", "uint8", "uint16", "float32"):
        return f"dtype must be uint8, uint16 or float32, not {spec.dtype!r}"
    if not isinstance(spec.architecture, str):
        return f"architecture must be a name, not {spec.architecture!r}"
    if spec.tiling:
        t = spec.tiling
        if not isinstance(t, dict) or t.get("patch") != spec.patch_size or not whole(t.get("overlap"), 0) \
                or t["overlap"] > spec.patch_size // 2:
            return f"tiling must give patch {spec.patch_size} and an overlap from 0 to half of it, not {t!r}"
    norm = spec.normalization
    # "standard": the runtime normalises with these; "in_model": the graph does, they are a record
    if norm["kind"] == "standard" or (norm["kind"] == "in_model" and ("mean" in norm or "std" in norm)):
        for key in ("mean", "std"):
            v = norm.get(key)
            if not isinstance(v, list) or len(v) != spec.bands or not all(
                    type(x) in (int, float) and np.isfinite(x) for x in v):
                return f"normalization {key} must be {spec.bands} numbers (one per band), not {v!r}"
        if min(norm["std"]) <= 0:
            return "normalization std must be positive"
    return None


def load_spec(model_path) -> ModelSpec:
    """The spec that travels with a model; falls back to ``satseg.json`` in the same folder."""
    from satseg.errors import ModelFileError

    p = Path(model_path)
    if spec_path_for(p).is_file():
        return read_spec(spec_path_for(p))
    if p.suffix == ".tflite" and p.is_file():
        spec = embedded(p)
        if spec is not None:
            return spec
    if (p.parent / "satseg.json").is_file():
        return read_spec(p.parent / "satseg.json")
    raise ModelFileError(
        f"{p}: no model spec found (not inside the file, no {spec_path_for(p).name} or satseg.json beside it); "
        "it records the classes, normalisation and patch size the model was trained with")


def embedded(path: Path) -> ModelSpec | None:
    """The spec a ``.tflite`` file carries inside (:mod:`satseg.tflite_metadata`), checked like a
    sidecar; None when it carries none."""
    from satseg.errors import ModelFileError

    try:
        from satseg.tflite_metadata import embedded_spec

        doc = embedded_spec(path)
    except ImportError:  # no ai-edge-litert: the sidecar is the only source
        return None
    except Exception as e:  # not a flatbuffer, or a damaged entry
        raise ModelFileError(f"{path}: cannot read the spec inside the file ({type(e).__name__})") from None
    return None if doc is None else check_spec_doc(doc, f"{path} (embedded spec)")


def save_spec(spec: ModelSpec, path) -> Path:
    from satseg.atomic import atomic_write_text

    return atomic_write_text(path, spec.to_json())


def check_model_classes(model, spec: ModelSpec, path, what: str, classes: ClassSet | None = None):
    """A teacher or --init model must predict the student's classes (the same names), as its spec says."""
    from satseg.errors import SatsegError

    k = model.output_shape[-1]
    if spec.num_classes != k:
        raise SatsegError(f"{path}: {what} predicts {k} classes, its spec lists {spec.num_classes}")
    if classes is not None and len(classes) != k:
        raise SatsegError(f"{path}: {what} predicts {k} classes, the student {len(classes)}")
    if classes is not None and spec.class_set.names != classes.names:
        raise SatsegError(f"{path}: {what} predicts {k} classes ({', '.join(spec.class_set.names)}), the student "
                          f"{len(classes)} ({', '.join(classes.names)})")
