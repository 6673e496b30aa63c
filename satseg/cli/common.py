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
