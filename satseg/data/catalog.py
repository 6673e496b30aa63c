"""Where the public datasets the shipped models and benchmarks use are found: under
``$SATSEG_DATA`` when set, else ``../shared/data`` beside the checkout (README, "The data")."""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
DATASETS = {
    "dubai": "dubai/Semantic segmentation dataset",
    "hotosm-buildings": "hotosm-buildings",
}
"""Name -> folder under the data root, laid out as each project ships it."""


def data_root() -> Path:
    return Path(os.environ.get("SATSEG_DATA") or CHECKOUT.parent / "shared" / "data")


def dataset_path(name: str) -> Path:
    """The folder of a public dataset (which may be absent: callers skip or say so)."""
    return data_root() / DATASETS[name]
