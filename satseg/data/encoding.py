"""How a dataset's masks encode its classes, learned from the masks themselves.

:func:`survey_masks` counts every mask value (or colour) with its pixels; :func:`infer_class_set`
turns that into a :class:`satseg.classes.ClassSet` by a few plain rules, each reported as a note:

- colour masks: the Dubai palette when every frequent colour is one of its colours, else one class
  per frequent colour (rare colours, such as anti-aliased edges, are ignored);
- two values (0/1, 0/255, ...): background and foreground;
- many values (soft masks, 0..255 or 0..1): background below the middle of the range, foreground from it;
- a few small integers: class ids, 255 (or 65535) meaning "no label".

The result is a starting point the user can edit (``satseg data inspect --write-classes FILE``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from satseg.classes import DUBAI, ClassSet, SegClass, rgb_code
from satseg.errors import DataError

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
           (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229))
"""Display colours of inferred classes (matplotlib's tab20), repeated when there are more."""
MAX_COLOURS = 32
RARE_COLOUR = 5e-4
"""Colours under this share of mask pixels are edge artefacts, not classes."""
SOFT_VALUES = 64
"""More distinct single-band values than this: a soft (probability-like) mask."""


@dataclass
class MaskSurvey:
    """Pixels per mask value: ``kind`` is ``colour`` (keys are (r, g, b)) or ``values``."""

    kind: str = ""
    counts: Counter = field(default_factory=Counter)
    dtype: str = ""
    masks: int = 0
    first: dict = field(default_factory=dict)  # kind -> first mask file of that kind

    @property
    def pixels(self) -> int:
        return sum(self.counts.values())

    def shares(self) -> list[tuple]:
        """(value, share of mask pixels), most frequent first."""
        n = max(self.pixels, 1)
        return [(v, c / n) for v, c in self.counts.most_common()]


def survey_masks(paths, progress: bool = False) -> MaskSurvey:
    """Count the values (single-band masks, or RGB masks whose bands are equal) or colours of
    every mask, strip by strip (a scene's mask is never read whole); refuse a dataset that mixes
    the two."""
    from satseg.progress import progress as bar

    sv = MaskSurvey()
    with bar(list(paths), progress, desc="reading masks", unit="mask", leave=False) as it:
        for path in it:
            counts, dtype, colour = _mask_counts(path)
            kind = "colour" if colour else "values"
            sv.first.setdefault(kind, path)
            if sv.kind and kind != sv.kind:
                raise DataError(f"{path}: a {kind} mask, but {sv.first[sv.kind]} is a {sv.kind} mask; the masks "
                                "must share one encoding (or pass --classes FILE)")
            sv.kind, sv.dtype, sv.masks = kind, dtype, sv.masks + 1
            sv.counts.update(counts)
            if len(sv.counts) > 100_000:  # a photo, not a mask: stop counting early
                raise DataError(f"{path}: over 100000 distinct values or colours in the masks; these are not "
                                "masks (JPEG-compressed?); pass --classes FILE")
    if not sv.masks:
        raise DataError("no masks to learn the classes from")
    return sv


def _mask_counts(path, strip_pixels: int = 4_000_000) -> tuple[Counter, str, bool]:
    """(pixels per value or colour, dtype, whether it is a colour mask) of one mask file."""
    from satseg.imaging import RowReader

    reader = RowReader(path)
    try:
        h, w = reader.shape[:2]
        rows = max(strip_pixels // max(w, 1), 1)
        counts, dtype, rgb = Counter(), "", reader.shape[-1] >= 3
        for y0 in range(0, h, rows):
            arr = reader.rows(y0, min(y0 + rows, h))
            dtype = str(arr.dtype)
            v = rgb_code(arr[..., :3]) if rgb else arr[..., 0]
            if np.issubdtype(v.dtype, np.integer) and v.dtype.itemsize <= 2:
                n = np.bincount(v.ravel())
                vals = np.flatnonzero(n)
                counts.update(dict(zip(vals.tolist(), n[vals].tolist())))
            else:
                vals, n = np.unique(v, return_counts=True)
                counts.update(dict(zip(vals.tolist(), n.tolist())))
    finally:
        reader.close()
    if not rgb:
        return counts, dtype, False
    colours = {_rgb(int(c)): k for c, k in counts.items()}
    if all(r == g == b for r, g, b in colours):  # a grey mask stored as RGB: its values
        return Counter({r: k for (r, _, _), k in colours.items()}), dtype, False
    return Counter(colours), dtype, True


def _rgb(code: int) -> tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def infer_class_set(sv: MaskSurvey, names=None) -> tuple[ClassSet, list[str]]:
    """A class set for the surveyed masks and one note per rule applied. ``names`` renames the
    inferred classes in id order."""
    cs, notes = _colour_classes(sv) if sv.kind == "colour" else _value_classes(sv)
    if names:
        if len(names) != len(cs):
            raise DataError(f"--names gives {len(names)} names, the masks hold {len(cs)} classes "
                            f"({', '.join(cs.names)})")
        cs = ClassSet.from_dict({**cs.to_dict(), "classes": [{**c.to_dict(), "name": n}
                                                             for c, n in zip(cs.classes, names)]}, "--names")
    return cs, notes


def _colour_classes(sv: MaskSurvey):
    shares = sv.shares()
    frequent = [c for c, s in shares if s >= RARE_COLOUR]
    rare = sum(s for _, s in shares if s < RARE_COLOUR)
    dubai = {c.color for c in DUBAI}
    if set(frequent) - {(0, 0, 0)} <= dubai and len(set(frequent) & dubai) >= 2:
        return DUBAI, ["colour masks in the Dubai palette: the six Dubai classes (other colours ignored)"]
    if len(frequent) > MAX_COLOURS:
        raise DataError(f"{sv.first['colour']}: the masks hold {len(frequent)} frequent colours; colour masks "
                        f"have a few (JPEG-compressed masks?); write a class file and pass --classes FILE")
    if len(frequent) < 2:
        raise DataError(f"{sv.first['colour']}: the masks have no pixel of any class, they hold one colour only "
                        "(pass --classes FILE if that colour is a class)")
    frequent.sort()
    classes = [SegClass(i, "background" if c == (0, 0, 0) else "class_{:02x}{:02x}{:02x}".format(*c), c)
               for i, c in enumerate(frequent)]
    notes = [f"colour masks: one class per colour ({len(classes)})"]
    if rare:
        notes.append(f"{100 * rare:.3f} % of pixels have {len(shares) - len(frequent)} rare colours "
                     f"(under {100 * RARE_COLOUR:.2f} % each): ignored")
    return ClassSet(tuple(classes), name="inferred"), notes


def _value_classes(sv: MaskSurvey):
    vals = sorted(sv.counts)
    is_float = sv.dtype.startswith("float")
    if len(vals) < 2:
        raise DataError(f"{sv.first['values']}: the masks have no pixel of any class, every mask holds the value "
                        f"{_fmt(vals[0])} only (pass --classes FILE if that value is a class)")
    if len(vals) == 2:
        lo, hi = vals
        return _binary([lo], [hi]), [f"two mask values, {_fmt(lo)} and {_fmt(hi)}: background and foreground"]
    if is_float or len(vals) > SOFT_VALUES:
        top = 1.0 if vals[-1] <= 1.0 else 255.0 if vals[-1] <= 255 else 65535.0
        mid = top / 2 if is_float else (top + 1) / 2
        cs = ClassSet((SegClass(0, "background", (0, 0, 0), range=(None, mid)),
                       SegClass(1, "foreground", (255, 255, 255), range=(mid, None))), name="inferred")
        return cs, [f"{len(vals)} distinct mask values from {_fmt(vals[0])} to {_fmt(vals[-1])}: soft masks, "
                    f"background below {_fmt(mid)}, foreground from it"]
    ignore = [v for v in vals if v in (255, 65535) or v < 0]
    ids = [v for v in vals if v not in ignore]
    if len(ids) < 2:
        lo, hi = ids[0], ignore[0]
        return _binary([lo], [hi]), [f"mask values {', '.join(map(_fmt, vals))}: background and foreground"]
    if len(ids) > 254:
        raise DataError(f"{sv.first['values']}: {len(ids)} distinct mask values; pass --classes FILE")
    classes = [SegClass(i, f"class_{_fmt(v)}", PALETTE[i % len(PALETTE)], values=() if v == i else (v,))
               for i, v in enumerate(ids)]
    notes = [f"{len(ids)} mask values ({', '.join(map(_fmt, ids))}): class ids"]
    if ignore:
        notes.append(f"value {', '.join(map(_fmt, ignore))} ({100 * sum(sv.counts[v] for v in ignore) / sv.pixels:.2f} % "
                     "of pixels): no label (ignored)")
    return ClassSet(tuple(classes), ignore_values=tuple(ignore), name="inferred"), notes


def _binary(bg_values, fg_values) -> ClassSet:
    return ClassSet((SegClass(0, "background", (0, 0, 0), values=tuple(bg_values)),
                     SegClass(1, "foreground", (255, 255, 255), values=tuple(fg_values))), name="inferred")


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
