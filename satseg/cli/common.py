"""Options and helpers shared by several commands."""

from pathlib import Path

from satseg.cli.options import seed_option  # noqa: F401  (re-exported for older imports)
from satseg.errors import SatsegError

SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "exported_models" / "student_distilled" / "model_int8.tflite"
"""The default model of `predict` and `evaluate`: the distilled student shipped in the repository."""


def default_model(path):
    if path:
        return path
    if not SHIPPED_MODEL.exists():
        raise SatsegError(f"no --model given and the shipped default {SHIPPED_MODEL} is missing")
    return str(SHIPPED_MODEL)


def check_outputs(paths, force: bool):
    """Before any work: refuse to overwrite existing results without --force, and make sure
    the folders they go to can be written."""
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        if path.exists() and not force:
            raise SatsegError(f"{path}: exists; pass --force to overwrite it")
        check_writable(path.parent, path)


def check_writable(folder, target=None):
    """``folder`` exists as a writable folder or can be created under one."""
    import os

    parent = Path(folder)
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SatsegError(f"{target or folder}: cannot write there ({parent} is not a writable folder)")
