"""The shipped models, by name: what `satseg models` lists and what `--model NAME` resolves.

One source: ``exported_models/index.json`` in a checkout, written by ``tools/model_cards.py``
from the files beside it (scores, sizes, speeds). An installed wheel carries only the default
model (``satseg/default_model``); the others live in the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

from satseg.errors import SatsegError

PACKAGE = Path(__file__).resolve().parent
DEFAULT_DIR = PACKAGE / "default_model"
INDEX = PACKAGE.parent / "exported_models" / "index.json"
"""Present in a checkout (or an editable install); absent from a wheel."""


def default_name() -> str | None:
    """The shipped model the packaged default was copied from."""
    src = DEFAULT_DIR / "SOURCE"
    return src.read_text().strip() if src.exists() else None


def shipped_models() -> list[dict]:
    """Every shipped model's index entry (paths made absolute), the default marked; only the
    packaged default when the repository's exported_models/ is not here."""
    default = default_name()
    if not INDEX.exists():
        return [{"name": default or "default", "default": True, "int8": str(DEFAULT_DIR / "model_int8.tflite")}]
    try:
        rows = json.loads(INDEX.read_text())
    except (OSError, ValueError) as e:
        raise SatsegError(f"{INDEX}: unreadable ({e})") from None
    for r in rows:
        r["default"] = r["name"] == default
        for key in ("keras", "int8"):
            if r.get(key):
                r[key] = str(INDEX.parent / r[key])
    return rows


def _names() -> set[str]:
    try:
        return {r["name"] for r in shipped_models()}
    except SatsegError:
        return set()


def resolve(model: str) -> str:
    """A path as given, or a shipped model's int8 file when ``model`` is one's name (a file or
    folder of that name in the working directory comes first, as a path does everywhere)."""
    if Path(model).exists() or any(c in model for c in "/\\."):
        if Path(model).is_dir() and not (Path(model) / "saved_model.pb").exists() and model in _names():
            raise SatsegError(f"{model}: a folder of that name is here and shadows the shipped model; "
                              f"pass ./{model} for the folder or run from elsewhere for the shipped one")
        return model
    rows = {r["name"]: r for r in shipped_models()}
    if model in rows:
        return rows[model]["int8"]
    where = "" if INDEX.exists() else " (this install has only the default model; the zoo is in the repository)"
    raise SatsegError(f"{model}: no such model file or shipped model{where}; shipped: {', '.join(rows)}")
