"""Options and helpers shared by several commands."""

from pathlib import Path

import click

from satseg.errors import SatsegError

seed_option = click.option("--seed", default=42, show_default=True, help="Random seed (recorded in config.json).")

SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "exported_models" / "student_distilled" / "model_int8.tflite"
"""The default model of `predict` and `evaluate`: the distilled student shipped in the repository."""


def default_model(path):
    if path:
        return path
    if not SHIPPED_MODEL.exists():
        raise SatsegError(f"no --model given and the shipped default {SHIPPED_MODEL} is missing")
    return str(SHIPPED_MODEL)
