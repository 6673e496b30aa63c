"""Does distillation earn its place? The same student trained from scratch, distilled as before,
and distilled with each addition (unlabelled imagery, mixed views), under several training seeds
on one split, scored on the held-out test split. Trains and scores what is missing (every run
resumable: rerun the script after an interruption), then writes a JSON of every run and a
Markdown table of each variant's mean and seed spread, generated from that JSON.

    python benchmarks/distillation_study.py hotosm --teacher runs/hot_lite0_unet/model.keras \
        [--runs runs/study_hotosm] [--only scratch distilled] [--seeds 42 1 2] [--collect-only]

The test split is scored once per finished run and never used to choose anything here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from results import check_out, fail, output_options, run

from satseg.atomic import atomic_write_text
from satseg.data.catalog import data_root

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from model_cards import fill  # noqa: E402

SHARED = data_root()

STUDIES = {
    "hotosm": {
        "data": SHARED / "hotosm-buildings",
        "what": "hotosm-buildings: train and validate on folders 1 and 5 (validation: 15 % of their images), "
                "folders 2 and 3 (no masks) as unlabelled imagery, test on folder 4 (84 chips); "
                "score: building IoU on the test folder",
        "base": ["--model", "lite0_edge", "--test-groups", "4", "--classes", "CLASSES"],
        "unlabeled": ["data/2", "data/3"],
        "score": "foreground",
    },
    "dubai": {
        "data": SHARED / "dubai" / "Semantic segmentation dataset",
        "what": "Dubai (8 tiles, 64 images): the recorded image split; score: test mIoU over the 6 classes",
        "base": ["--model", "lite0_edge"],
        "unlabeled": [],
        "score": "miou",
    },
    "hotosm_patient": {
        "data": SHARED / "hotosm-buildings" / "data",
        "what": "hotosm-buildings: train and validate on folders 1, 2, 3 and 5 (masks burnt from each folder's "
                "labels.geojson by `satseg data rasterize`; validation: 15 % of their images), test on folder 4 "
                "(84 chips); patient schedule: 200 epochs of 512 random 128 px crops, the same for every variant; "
                "score: building IoU on the test folder",
        "base": ["--model", "lite0_edge", "--test-groups", "4", "--classes", "CLASSES", "--masks", "MASKS",
                 "--patch-size", "128", "--epochs", "200"],
        "masks": ["1", "2", "3", "4", "5"],  # folders whose labels.geojson the study rasterises
        "unlabeled": [],
        "variants": ["scratch", "patient"],
        "score": "foreground",
    },
}
SCORE_NAMES = {"foreground": "foreground IoU", "miou": "mIoU"}
VARIANTS = {
    "scratch": ("from scratch (ImageNet encoder), labels only", []),
    "distilled": ("distilled on the labelled crops (alpha 0.5, T 2, offline cache)", ["--teacher", "TEACHER"]),
    "cutmix": ("distilled, half the crops CutMix of two (labels and cached logits follow the box)",
               ["--teacher", "TEACHER", "--mix", "cutmix"]),
    "unlabelled": ("distilled, half the crops from the unlabelled imagery (teacher's targets only)",
                   ["--teacher", "TEACHER", "--unlabeled", "UNLABELLED"]),
    "unlabelled_cutmix": ("distilled, unlabelled imagery and CutMix",
                          ["--teacher", "TEACHER", "--unlabeled", "UNLABELLED", "--mix", "cutmix"]),
    "patient": ("distilled patiently and consistently: mostly the teacher's targets (alpha 0.2, T 1) on every "
                "view, half the crops CutMix of two (cached logits follow the crop, turn and box)",
                ["--teacher", "TEACHER", "--mix", "cutmix", "--alpha", "0.2", "--temperature", "1"]),
    "mixup_online": ("distilled online, half the crops MixUp of two, labelled by the teacher on the blend",
                     ["--teacher", "TEACHER", "--distill-mode", "online", "--mix", "mixup"]),
}


def variants_for(study: dict) -> list[str]:
    if "variants" in study:
        return study["variants"]
    return [v for v in VARIANTS if v != "patient" and (study["unlabeled"] or "UNLABELLED" not in VARIANTS[v][1])]


def run_name(variant: str, seed: int) -> str:
    return f"{variant}_s{seed}"


def args_for(study: dict, variant: str, teacher: str, classes: Path, masks: Path | None = None) -> list[str]:
    out = []
    for a in study["base"] + VARIANTS[variant][1]:
        if a == "UNLABELLED":
            for i, u in enumerate(study["unlabeled"]):
                out += ([] if i == 0 else ["--unlabeled"]) + [str(study["data"] / u)]
        else:
            out.append({"TEACHER": teacher, "CLASSES": str(classes), "MASKS": str(masks)}.get(a, a))
    return out


def classes_file(study: dict, runs: Path) -> Path:
    """The class file the study trains with: background and building for hotosm's 0/255 masks."""
    path = runs / "classes.json"
    if not path.exists() and "CLASSES" in study["base"]:
        runs.mkdir(parents=True, exist_ok=True)
        masks = masks_folder(study, runs)
        subprocess.run(["satseg", "data", "inspect", str(study["data"]), *(["--masks", str(masks)] if masks else []),
                        "--names", "background,building",
                        "--write-classes", str(path)], check=True, stdout=subprocess.DEVNULL)
    return path


def masks_folder(study: dict, runs: Path) -> Path | None:
    """Masks burnt from each listed folder's ``labels.geojson`` (``satseg data rasterize``), once."""
    if "masks" not in study:
        return None
    out = runs / "masks"
    for folder in study["masks"]:
        if not (out / folder).is_dir():
            subprocess.run(["satseg", "data", "rasterize", str(study["data"] / folder), "--labels",
                            str(study["data"] / folder / "labels.geojson"), "--out", str(out / folder), "-q"],
                           check=True)
    return out


def train(study: dict, variant: str, seed: int, runs: Path, teacher: str) -> Path:
    out = runs / run_name(variant, seed)
    if not (out / "summary.json").exists():
        cmd = (["satseg", "train", "--resume", str(out)] if (out / "config.json").exists() else
               ["satseg", "train", *args_for(study, variant, teacher, classes_file(study, runs), masks_folder(study, runs)),
                "--seed", str(seed), "--split-seed", "42", "--data", str(study["data"]), "--out", str(out)])
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return out


def score(study: dict, model: Path, path: Path, runs: Path) -> dict:
    """``model`` on the test split its training recorded (``satseg evaluate``), kept in ``path`` and
    scored again only when ``path`` holds another model's score (a study rerun with another teacher)."""
    result = json.loads(path.read_text()) if path.exists() else None
    if result is None or Path(result["model"]).resolve() != model.resolve():
        masks = masks_folder(study, runs)
        subprocess.run(["satseg", "evaluate", "--model", str(model), "--data", str(study["data"]),
                        *(["--masks", str(masks)] if masks else []), "--split", "test", "--json", "--out", str(path), "--force"],
                       check=True, stdout=subprocess.DEVNULL)
        result = json.loads(path.read_text())
    if study["score"] == "foreground":
        return {"test": result["foreground"]["iou"], "test_miou": result["miou"]}
    return {"test": result["miou"], "test_miou": result["miou"]}


def score_run(study: dict, run: Path) -> dict:
    """A run's best model on the test split."""
    return score(study, run / "model.keras", run / "test.json", run.parent)


def collect(study: dict, variant: str, seed: int, runs: Path) -> dict | None:
    run = runs / run_name(variant, seed)
    if not (run / "test.json").exists():
        return None
    summary = json.loads((run / "summary.json").read_text())
    return {"variant": variant, "seed": seed, "run": run.name, **score_run(study, run),
            "best_val_miou": summary["best_val_miou"], "best_epoch": summary["best_epoch"],
            "train_minutes": round(summary["train_seconds_total"] / 60, 1)}


def table(doc: dict) -> str:
    """Markdown: one line per variant, mean over seeds with min-max, and its difference to scratch
    on the same seeds (a variant run under fewer seeds is compared with scratch's runs of those)."""
    by = {}
    for r in doc["runs"]:
        by.setdefault(r["variant"], []).append(r)
    scratch = {r["seed"]: r["test"] for r in by.get("scratch", [])}
    lines = [f"**{doc['study']}**: {doc['what']}.", "",
             f"| variant | seeds | test {SCORE_NAMES[doc['score']]}, mean | min - max | vs scratch, same seeds (points) | "
             "every seed above scratch's on those seeds | seeds above scratch's same seed | val mIoU mean |",
             "|---|---|---|---|---|---|---|---|"]
    for v, rows in by.items():
        t = [r["test"] for r in rows]
        base = [scratch[r["seed"]] for r in rows if r["seed"] in scratch]
        mean = statistics.mean(t)
        if v == "scratch" or len(base) < len(rows):
            delta = beyond = wins = ""
        else:
            delta = f"{100 * (mean - statistics.mean(base)):+.2f}"
            beyond = "yes" if min(t) > max(base) else "no"
            wins = f"{sum(r['test'] > scratch[r['seed']] for r in rows)} of {len(rows)}"
        lines.append(f"| {v}: {VARIANTS[v][0]} | {len(t)} | {mean:.4f} | {min(t):.4f} - {max(t):.4f} | {delta} "
                     f"| {beyond} | {wins} | {statistics.mean(r['best_val_miou'] for r in rows):.4f} |")
    if "teacher" in doc:  # how far above the students the teacher stands on the same test split
        lines.append(f"| teacher: TEACHER itself, for reference | | {doc['teacher']['test']:.4f} | | | | | |")
    lines += ["", "Scratch's row is over all its seeds; every other row is compared with scratch's runs on "
              "that row's own seeds. val mIoU: the best validation mIoU over all classes during training "
              "(the score that chooses what ships).",
              "", f"Generated by `{doc['command']}` from `{doc['json']}`."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=list(STUDIES))
    ap.add_argument("--teacher", required=True, help="the teacher .keras file (trained on the same split)")
    ap.add_argument("--runs", type=Path, help="run folders [default: runs/study_<study>]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS), help="train only these variants")
    ap.add_argument("--collect-only", action="store_true", help="train nothing; collect what finished runs scored")
    output_options(ap)  # --out: the JSON [default: exported_models/distillation_<study>.json]; its table beside it
    args = ap.parse_args()
    study = STUDIES[args.study]
    if not study["data"].is_dir():
        fail(f"{study['data']}: dataset not found (README.md, 'The data'; SATSEG_DATA sets the data root)")
    if not Path(args.teacher).is_file():
        fail(f"{args.teacher}: teacher model not found")
    runs = args.runs or Path("runs") / f"study_{args.study}"
    shipped = ROOT / "exported_models" / f"distillation_{args.study}.json"
    out = args.out = args.out or shipped
    check_out(args)
    names = [v for v in variants_for(study) if not args.only or v in args.only]
    if not args.collect_only:
        for seed in args.seeds:  # every variant once before any gets a second seed
            for v in names:
                score_run(study, train(study, v, seed, runs, args.teacher))
    rows = [r for v in variants_for(study) for s in args.seeds if (r := collect(study, v, s, runs))]
    doc = {"study": args.study, "what": study["what"], "score": study["score"], "seeds": args.seeds,
           "command": f"python benchmarks/distillation_study.py {args.study} --teacher TEACHER --seeds "
                      + " ".join(map(str, args.seeds)),
           "json": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out),
           "variants": {v: {"about": VARIANTS[v][0], "args": VARIANTS[v][1]} for v in variants_for(study)},
           "teacher": score(study, Path(args.teacher), runs / "teacher_test.json", runs),
           "runs": rows}
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    md = table(doc) if rows else "no finished runs"
    atomic_write_text(out.with_suffix(".md"), md + "\n")
    if out.resolve() == shipped.resolve():  # the shipped study's table goes into the docs
        docs = ROOT / "docs" / "distillation.md"
        atomic_write_text(docs, fill(docs.read_text(), f"study:{args.study}", md))
    print(md)
    return 0


if __name__ == "__main__":
    run(main)
