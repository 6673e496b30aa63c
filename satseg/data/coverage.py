"""Does the class set fit the masks? Checked on the training split before any training.

A class file whose values the masks cannot hold (300 in 8-bit masks), or a class set made for
other masks (Dubai's colours on 0/255 masks), decodes without an error into a model that learns
one class, or nothing. These checks turn that into one line naming the class and the values seen.
"""

from __future__ import annotations

import numpy as np

from satseg.errors import DataError

MASKS_SAMPLED = 8  # masks read again, raw, to say which values they hold (only when a check fails)


def values_seen(samples, limit: int = 12) -> tuple[str, list]:
    """(mask dtype, the distinct raw values of the first few masks, at most ``limit``): single-band
    values, or (r, g, b) colours."""
    from satseg.imaging import read_image

    seen, dtype = set(), "?"
    for s in [s for s in samples if s.mask is not None][:MASKS_SAMPLED]:
        m = read_image(s.mask)
        dtype = str(m.dtype)
        flat = m.reshape(-1, m.shape[-1]) if m.ndim == 3 else m.reshape(-1, 1)
        if flat.shape[1] >= 3 and not (flat[:, :1] == flat[:, 1:3]).all():
            seen |= {tuple(int(x) for x in v) for v in np.unique(flat[:, :3], axis=0)[:256]}
        else:
            seen |= {int(v) if float(v).is_integer() else float(v) for v in np.unique(flat[:, 0])[:256]}
    return dtype, sorted(seen, key=str)[:limit] if len(seen) > limit else sorted(seen, key=str)


def _encoding(c) -> str:
    import json

    if c.values:
        return f"values {json.dumps(list(c.values))}"
    if c.range is not None:
        return f"range {json.dumps(list(c.range))}"
    return f"colour {tuple(c.color)} / id {c.id}"


def _unreachable(c, dtype: str) -> bool:
    """Whether no value of ``dtype`` can encode class ``c``: integer masks hold whole numbers in
    their type's range, so values outside it or between whole numbers, and ranges holding none, never occur."""
    if not np.issubdtype(np.dtype(dtype), np.integer):
        return False
    info = np.iinfo(np.dtype(dtype))
    vals = [v for v in c.values if info.min <= v <= info.max and float(v).is_integer()]
    if c.range is not None:
        lo = max(info.min, -np.inf if c.range[0] is None else np.ceil(c.range[0]))
        hi = min(info.max + 1, np.inf if c.range[1] is None else c.range[1])
        return not vals and not lo < hi
    return bool(c.values) and not vals


def check_coverage(classes, counts: np.ndarray, samples, where) -> list[str]:
    """Raise :class:`DataError` when the class set cannot describe the training masks (a class
    encoded by values the masks cannot hold; fewer than two classes found); return a warning
    for each class with no training pixel."""
    absent = [c for c, n in zip(classes, counts) if n == 0]
    if not absent or not counts.any():  # no class at all: the caller's own check names that
        return []
    dtype, seen = values_seen(samples)
    shown = ", ".join(map(str, seen)) or "none"
    for c in absent:
        if _unreachable(c, dtype):
            raise DataError(f"{where}: class '{c.name}' ({_encoding(c)}) cannot occur in {dtype} masks (values "
                            f"seen: {shown}); fix the class file")
    present = [c.name for c, n in zip(classes, counts) if n > 0]
    if len(present) < 2 <= len(classes):
        raise DataError(f"{where}: the class set matches {'only ' + repr(present[0]) if present else 'no class'} of "
                        f"{len(classes)} classes in the training masks (values seen: {shown}); is it the class "
                        "file for these masks? (`satseg data inspect` infers one)")
    return [f"class '{c.name}' ({_encoding(c)}) has no pixel in the training masks (values seen: {shown}); "
            "the model cannot learn it" for c in absent]
