"""Recipe ablations on the validation split: the small pretrained student (`lite0_edge`), 12
epochs of 512 crops, the recipe with one choice changed per run. Trains what is missing (each run
resumable: rerun the script after an interruption), then writes ``exported_models/ablations.json``
(best validation mIoU and per-class IoU of every run, with its command) for the model cards.

    python benchmarks/ablations.py --data DATA [--runs runs/ablations] [--only NAME ...]
                                   [--teacher exported_models/lite0_unet_512/model.keras] [--collect-only]

Choices are made on the validation split only; the test split is never read here.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from satseg.data.catalog import dataset_path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from model_cards import model_arg  # noqa: E402
from results import run  # noqa: E402

BASE = ["--model", "lite0_edge", "--epochs", "12", "--crops-per-epoch", "512"]
VARIANTS = {
    "recipe": ("the recipe: loss ce_dice, scale 0.7-1.4, 50 % rare-class crops, jitter 0.1", []),
    "ce": ("loss cross-entropy only", ["--loss", "ce"]),
    "weighted_ce": ("loss cross-entropy, balanced class weights", ["--loss", "ce", "--class-weights", "balanced"]),
    "dice_focal": ("loss Dice + focal (the reference's)", ["--loss", "dice_focal"]),
    "ce_lovasz": ("loss cross-entropy + Lovász-softmax", ["--loss", "ce_lovasz"]),
    "no_scale": ("no random crop scale (1-1)", ["--scale", "1", "1"]),
    "no_rare": ("no rare-class crops (uniform crop centres)", ["--rare-fraction", "0"]),
    "distilled": ("distilled from the teacher, alpha 0.5, T 2 (the recipe)", ["--teacher", "TEACHER"]),
    "distilled_a02_t4": ("distilled from the teacher, alpha 0.2, T 4",
                         ["--teacher", "TEACHER", "--alpha", "0.2", "--temperature", "4"]),
    "recipe_seed1": ("the recipe, training seed 1 on the same split (seed-to-seed spread)",
                     ["--seed", "1", "--split-seed", "42"]),
    "recipe_seed2": ("the recipe, training seed 2 on the same split (seed-to-seed spread)",
                     ["--seed", "2", "--split-seed", "42"]),
}
SEEDS = ("recipe", "recipe_seed1", "recipe_seed2")
"""The recipe under three training seeds on one split: how far apart runs land by chance."""


def train(name: str, runs: Path, data: str, teacher: str) -> None:
    out = runs / name
    if (out / "summary.json").exists():
        return
    args = [a.replace("TEACHER", teacher) for a in VARIANTS[name][1]]
    cmd = (["satseg", "train", "--resume", str(out)] if (out / "config.json").exists()
           else ["satseg", "train", *BASE, *args, "--data", data, "--out", str(out)])
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def collect(name: str, runs: Path) -> dict | None:
    out = runs / name
    if not (out / "summary.json").exists():
        return None
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    hist = list(csv.DictReader(open(out / "history.csv")))
    best = max(hist, key=lambda h: float(h["val_miou"]))
    per_class = {k[len("val_iou_"):]: round(float(v), 4) for k, v in best.items() if k.startswith("val_iou_")}
    return {"name": name, "change": VARIANTS[name][0], "args": VARIANTS[name][1],
            "val_miou": round(float(best["val_miou"]), 4), "best_epoch": int(best["epoch"]) + 1, "epochs": len(hist),
            "val_iou": per_class, "class_weights": config.get("class_weights"),
            "teacher": Path(config["config"]["teacher"]).parent.name if config["config"].get("teacher") else None,
            "train_minutes": round(summary["train_seconds_total"] / 60, 1)}


def teacher_used(run: Path) -> str | None:
    """The teacher a finished distilled run recorded (the runs, not today's default, made the table)."""
    config = run / "config.json"
    return json.loads(config.read_text())["config"].get("teacher") if config.exists() else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(dataset_path("dubai")))
    ap.add_argument("--runs", default="runs/ablations", type=Path)
    ap.add_argument("--teacher", default=str(ROOT / "exported_models/lite0_unet_512/model.keras"))
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS), help="train only these variants")
    ap.add_argument("--collect-only", action="store_true", help="train nothing; write what the finished runs measured")
    ap.add_argument("--out", default=ROOT / "exported_models/ablations.json", type=Path)
    args = ap.parse_args()
    if not args.collect_only:
        for name in args.only or VARIANTS:
            train(name, args.runs, args.data, args.teacher)
    rows = [r for r in (collect(n, args.runs) for n in VARIANTS) if r]
    used = next((t for n in VARIANTS if (t := teacher_used(args.runs / n))), args.teacher)
    doc = {"what": "lite0_edge (ImageNet encoder), 12 epochs x 512 crops, one change to the recipe per run; "
                   "best validation mIoU (145 grid patches of the 8 validation images)",
           "command": f"python benchmarks/ablations.py --data DATA --teacher {model_arg(used)}", "base_args": BASE, "runs": rows,
           "seed_runs": [n for n in SEEDS if any(r["name"] == n for r in rows)]}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for r in rows:
        print(f"{r['name']:18s} {r['val_miou']:.4f}  {r['change']}")
    return 0


if __name__ == "__main__":
    run(main)
