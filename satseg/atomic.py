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


OWNER_TOKEN = ".satseg-temporary"  # inside every temporary folder satseg makes: the proof it is satseg's


def _owner_text(path: Path) -> str:
    return f"satseg temporary folder for {path.name}\n"


def owned_temporary(folder, target) -> bool:
    """Whether ``folder`` is a temporary folder that satseg made for ``target``: a real folder (not
    a link) holding the token :func:`atomic_dir` writes first. A name alone proves nothing: a
    user's folder may match any pattern."""
    folder, token = Path(folder), Path(folder) / OWNER_TOKEN
    if folder.is_symlink() or not folder.is_dir() or token.is_symlink() or not token.is_file():
        return False
    try:
        with open(token, "rb") as f:
            return f.read(4096).decode("utf-8", "replace") == _owner_text(Path(target))
    except OSError:
        return False


def atomic_dir(path, write: Callable[[Path], object], prefix: str | None = None) -> Path:
    """Like :func:`atomic_write` for a folder: ``write(tmpdir)`` fills a fresh temporary folder
    beside ``path``, which then replaces ``path`` (the old one is removed only after). The
    temporary folder holds :data:`OWNER_TOKEN` until the rename, so a later clean-up after a kill
    can tell it from a user's folder of a similar name (:func:`owned_temporary`)."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix or f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        (tmp / OWNER_TOKEN).write_text(_owner_text(path))
        write(tmp)
        (tmp / OWNER_TOKEN).unlink()
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


def check_inside(root, path) -> Path:
    """``path`` below ``root`` with no link on the way (the folders between, and the file itself):
    a link planted in an output folder must not carry a write elsewhere."""
    from satseg.errors import SatsegError

    root, path = Path(root), Path(path)
    p = root
    for part in path.relative_to(root).parts:
        p = p / part
        if p.is_symlink():
            raise SatsegError(f"{p}: is a link; satseg does not write through links (remove it or choose another --out)")
        if p != path and p.exists() and not p.is_dir():
            raise SatsegError(f"{p}: is a file where an output folder should be")
    return path


def temporary_name(name: str, target_name: str | None = None) -> bool:
    """Whether ``name`` has exactly the shape of a temporary :func:`atomic_write` makes
    (``.NAME.XXXXXXXX.tmpSUFFIX``, eight characters of ``mkstemp``), for ``target_name`` if given:
    a user's ``.a.png.backup.tmp`` is not one."""
    import re

    m = re.fullmatch(r"\.(.+)\.[a-z0-9_]{8}\.tmp((?:\.[A-Za-z0-9]+){0,2})", name)
    if m is None:
        return False
    return target_name is None or (m.group(1) == target_name and m.group(2) == _suffix(Path(target_name)))


def remove_temporaries(path):
    """The temporaries :func:`atomic_write` left beside ``path`` when a writer was killed (call it
    only while holding the folder's :class:`OutputLock`, when no other writer can be running).
    Only regular files of exactly the temporary's name shape for ``path`` are removed."""
    path = Path(path)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp*"):
            if temporary_name(tmp.name, path.name) and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


class OutputLock:
    """One writer per output: ``.NAME.lock`` beside the output folder or file, created exclusively
    and holding the writer's process id. A second command fails with one line naming the holder; a
    lock whose process is gone (killed) is taken over."""

    def __init__(self, target, command: str = "satseg"):
        self.target = Path(os.path.realpath(target))  # one lock per folder, whatever link leads to it
        self.path = self.target.parent / f".{self.target.name}.lock"
        self.command = command
        self.held = False
        self.made: list[Path] = []  # folders created to hold the lock, removed with it when empty

    def __enter__(self):
        from satseg.errors import SatsegError

        missing = self.path.parent
        while not missing.exists():
            self.made.append(missing)
            missing = missing.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir() and not self.path.is_symlink():
            raise SatsegError(f"{self.path}: is a folder where satseg keeps its lock file; remove it")
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and pid_alive(holder[0]):
                    raise SatsegError(f"{self.target}: in use by process {holder[0]} ({holder[1]}); wait for it "
                                      f"to finish (or remove {self.path} if it is gone)") from None
                self.path.unlink(missing_ok=True)  # a dead writer's lock
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {self.command}\n")
            self.held = True
            return self
        raise SatsegError(f"{self.path}: cannot take the lock (another writer keeps creating it)")

    def _holder(self) -> tuple[int, str] | None:
        """The pid and command in an existing lock file, read without following a link or
        blocking (a FIFO), regular files only, at most 4 KB; None when it is gone. Anything but
        satseg's own ``PID command`` line is refused, never taken over: satseg deletes only what
        it provably wrote."""
        import stat

        from satseg.errors import SatsegError

        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return None
        except OSError as e:  # ELOOP: a link planted where the lock goes
            kind = "a link" if self.path.is_symlink() else f"unreadable ({e.strerror})"
            raise SatsegError(f"{self.path}: is {kind}, not satseg's lock file; remove it") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SatsegError(f"{self.path}: is not a regular file (a FIFO or device?), not satseg's lock "
                                  "file; remove it")
            text = f.read(4096).decode("utf-8", "replace")
        import re

        m = re.fullmatch(r"(\d{1,19}) (\S[^\n]*)\n?", text)  # what __enter__ writes, and nothing else
        if m is None:
            raise SatsegError(f"{self.path}: is not satseg's lock file (no 'PID command' line); remove it if no "
                              "satseg command is writing there")
        return int(m.group(1)), m.group(2).strip()

    def __exit__(self, *exc):
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
        for folder in self.made:  # deepest first: only what this lock created, and only if empty
            try:
                folder.rmdir()
            except OSError:
                break


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if pid <= 0:  # not a process id (kill(0) and kill(-1) address process groups)
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def file_digest(path) -> str:
    """A file's BLAKE2 digest (32 hex digits): what a resume compares to know a file unchanged."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()[:32]


def check_replaceable(folder, marker: str, what: str, keep=(), keys=()):
    """``--force`` may replace ``folder`` only when it is satseg's own or empty, is not a link, and
    holds neither the working directory nor any path in ``keep`` (the data a run reads): a mistyped
    ``--out`` must not delete a user's folder. Satseg's own: it holds ``marker`` as a regular file
    (not a link) and, with ``keys``, that file is a JSON object holding all of them (a
    ``config.json`` or ``report.json`` of satseg's shape; a name alone proves nothing)."""
    from satseg.errors import SatsegError

    folder = Path(folder)
    if folder.is_symlink():
        raise SatsegError(f"{folder}: is a link; satseg does not write through links (choose another --out)")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    real = Path(os.path.realpath(folder))
    for inside in (Path.cwd(), *map(Path, keep)):
        if Path(os.path.realpath(inside)).is_relative_to(real):
            raise SatsegError(f"{folder}: holds {inside}; --force would delete it (choose another --out)")
    if not _satsegs(folder / marker, keys):
        raise SatsegError(f"{folder}: exists and is not {what} (no {marker} that satseg wrote); --force replaces only "
                          "satseg's own results: choose a new or empty --out")


def _satsegs(marker: Path, keys) -> bool:
    """Whether ``marker`` is a regular file satseg wrote: not a link, and with ``keys`` a JSON
    object (at most 64 MB) holding all of them."""
    import json

    if marker.is_symlink() or not marker.is_file():
        return False
    if not keys:
        return True
    try:
        if marker.stat().st_size > 64 << 20:
            return False
        doc = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and all(k in doc for k in keys)
