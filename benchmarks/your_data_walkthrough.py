"""docs/your-data.md's walk-through on hotosm-buildings, run and collected.

    python benchmarks/your_data_walkthrough.py [--runs runs] [--collect-only] [--out FILE --force]

Runs the walk-through's commands where their results are missing (every step resumable: rerun the
script after an interruption): `satseg data inspect`; a `lite0_unet` teacher trained on folders 1
and 5 with folder 4 as the test split (20 epochs); an int8 export; a `lite0_edge` student distilled
from it (30 epochs) and its int8 export; `satseg evaluate` of each Keras model and int8 file on the
recorded test split, once. Then writes one JSON of what they printed (default:
exported_models/hotosm_walkthrough.json, from which `python tools/model_cards.py` writes the figures
in docs/your-data.md).
"""

import argparse
import json
import subprocess
from pathlib import Path

from results import check_out, fail, output_options, run

from satseg.atomic import atomic_write_text
from satseg.data.catalog import data_root

ROOT = Path(__file__).resolve().parents[1]
DATA = data_root() / "hotosm-buildings"
TEACHER = ["--model", "lite0_unet", "--epochs", "20"]
STUDENT = ["--model", "lite0_edge"]


def satseg(*args, capture: bool = False) -> str:
    print("satseg " + " ".join(map(str, args)), flush=True)
    r = subprocess.run(["satseg", *map(str, args)], check=True, text=True,
                       stdout=subprocess.PIPE if capture else None)
    return r.stdout


def inspect(runs: Path) -> dict:
    classes = runs / "buildings.json"
    write = [] if classes.exists() else ["--write-classes", classes]
    report = json.loads(satseg("data", "inspect", DATA, "--names", "background,building", "--json", *write,
                               capture=True))
    keep = ("layout", "images", "groups", "unlabelled_images", "unlabelled_groups", "class_notes", "class_share")
    return {**{k: report[k] for k in keep}, "files_not_images": [Path(f).name for f in report["skipped_files"]]}


def trained(runs: Path, name: str, args: list[str]) -> Path:
    out = runs / name
    if not (out / "summary.json").exists():
        if (out / "config.json").exists():
            satseg("train", "--resume", out)
        else:
            satseg("train", *args, "--data", DATA, "--classes", runs / "buildings.json", "--test-groups", "4",
                   "--out", out)
    return out


def exported(run_dir: Path) -> Path:
    out = run_dir.with_name(run_dir.name + "_export")
    if not (out / "report.json").exists():
        satseg("export", "--model", run_dir / "model.keras", "--out", out, "--formats", "tflite_int8")
    return out


def scored(model: Path, result: Path) -> dict:
    """`satseg evaluate` on the recorded test split (folder 4), once; its scores without paths."""
    if not result.exists():
        satseg("evaluate", "--model", model, "--data", DATA, "--json", "--out", result, capture=True)
    d = json.loads(result.read_text())
    return {"images": d["images"], "pixels": d["pixels"], "miou": d["miou"], "pixel_accuracy": d["pixel_accuracy"],
            "per_class": {c: v["iou"] for c, v in d["per_class"].items()} if isinstance(d["per_class"], dict)
            else d["per_class"], "foreground_iou": d["foreground"]["iou"]}


def model_results(runs: Path, name: str) -> dict:
    run_dir, export = runs / name, runs / f"{name}_export"
    summary = json.loads((run_dir / "summary.json").read_text())
    int8 = next(a for a in json.loads((export / "report.json").read_text())["artifacts"]
                if a["format"] == "tflite_int8")
    return {"run": f"runs/{name}", "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],
            "best_val_miou": summary["best_val_miou"],
            "train_minutes": round(summary["train_seconds_total"] / 60),
            "keras": scored(run_dir / "model.keras", run_dir / "test.json"),
            "int8": {"kb": round(int8["bytes"] / 1024, 1), "parity_agreement": int8["agreement"],
                     "whole_image": int8["whole_image"],
                     **scored(export / "model_int8.tflite", export / "test_int8.json")}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("runs"), help="run folders [default: runs]")
    ap.add_argument("--collect-only", action="store_true", help="train and export nothing; collect finished runs")
    output_options(ap)
    args = ap.parse_args()
    args.out = args.out or ROOT / "exported_models" / "hotosm_walkthrough.json"
    check_out(args)
    if not DATA.is_dir():
        fail(f"{DATA}: dataset not found (README.md, 'The data'; SATSEG_DATA sets the data root)")
    args.runs.mkdir(parents=True, exist_ok=True)
    report = inspect(args.runs)
    if not args.collect_only:
        teacher = exported(trained(args.runs, "hot_lite0_unet", TEACHER)).with_name("hot_lite0_unet")
        exported(trained(args.runs, "hot_lite0_edge_distilled",
                         STUDENT + ["--teacher", teacher / "model.keras"]))
    doc = {"data": "hotosm-buildings (train and validate on folders 1 and 5, test on folder 4)",
           "command": "python benchmarks/your_data_walkthrough.py --out exported_models/hotosm_walkthrough.json",
           "inspect": report, "teacher": model_results(args.runs, "hot_lite0_unet"),
           "student": model_results(args.runs, "hot_lite0_edge_distilled")}
    text = json.dumps(doc, indent=2) + "\n"
    atomic_write_text(args.out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    run(main)
