"""Atomic file writes: write a temporary file beside the target, then rename it into place, so a
crash never leaves a half-written result. Standard library only (the edge runtime uses it)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` to ``path``. The temporary name keeps the suffix,
    so writers that pick a format from it (matplotlib, Keras) still work."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))
