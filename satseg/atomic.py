"""Atomic, safe file writes: write a new temporary file beside the target, then rename it into
place, so a crash never leaves a half-written result. The temporary name is unpredictable and the
file is created exclusively (``O_EXCL``, never through an existing name or link), so a link
planted in the output folder cannot redirect the write. Standard library only (the edge runtime
uses it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def _suffix(path: Path) -> str:
    # Writers that pick a format from the name (matplotlib, Keras: ".weights.h5") need it kept.
    return "".join(path.suffixes[-2:]) if path.name.endswith(".weights.h5") else path.suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{_suffix(path)}")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def check_writable(folder, target=None):
    """Before any work: ``folder`` is a writable folder, or can be created under one. Errors
    name ``target`` (the file or folder the caller will write) when given."""
    from satseg.errors import SatsegError

    parent = Path(folder)
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SatsegError(f"{target or folder}: cannot write there ({parent} is not a writable folder)")


def atomic_dir(path, write: Callable[[Path], object], prefix: str | None = None) -> Path:
    """Like :func:`atomic_write` for a folder: ``write(tmpdir)`` fills a fresh temporary folder
    beside ``path``, which then replaces ``path`` (the old one is removed only after)."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix or f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        write(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path
