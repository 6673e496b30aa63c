"""Ship a finished training run into exported_models/NAME: evaluate it on the test split (whole
images; the validation split's too, which is what shipped models are compared on), export it with
`satseg export`, and copy what a user needs. Every command it runs is
recorded in exported_models/NAME/commands.txt.

    python benchmarks/ship.py NAME RUN_DIR [--teacher TEACHER.keras] [--data DATA]
                              [--masks MASKS] [--objects CLASS]
    python benchmarks/ship.py NAME exported_models/NAME --reexport   # new export of a shipped model

``--reexport`` exports and evaluates the LiteRT files again and keeps the run's files and the
Keras evaluation as they are (the model is the same).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from results import run

ROOT = Path(__file__).resolve().parents[1]
DATA = "../shared/data/dubai/Semantic segmentation dataset"
KEEP_EXPORT = ["model.keras", "model.satseg.json", "model_float32.tflite", "model_float32.satseg.json",
               "model_float16.tflite", "model_float16.satseg.json", "model_dynamic.tflite", "model_dynamic.satseg.json",
               "model_int8.tflite", "model_int8.satseg.json",
               "model_int8_fixed.tflite", "model_int8_fixed.satseg.json",
               "report.json", "report.md"]
FORMATS = "tflite_float32,tflite_float16,tflite_dynamic,tflite_int8,tflite_int8_fixed"
KEEP_RUN = ["config.json", "history.csv", "loss.png", "miou.png", "summary.json"]


def portable(text: str, tmp: str | None = None, run: Path | None = None) -> str:
    """``text`` without this machine's folders: the repository's own paths relative to it, the
    shared data as ``../shared``, a temporary folder as TMP and a run outside the repository as
    ``runs/<name>``, so that shipped records read the same on any clone."""
    if tmp:
        text = text.replace(tmp, "TMP")
    if run is not None and not run.resolve().is_relative_to(ROOT):
        text = text.replace(str(run.resolve()), f"runs/{run.name}")
    text = text.replace(str(ROOT) + "/", "")
    return text.replace(str(ROOT.parent / "shared"), "../shared")


def copy_portable(src: Path, dst: Path, tmp: str | None = None, run: Path | None = None):
    """Copy a file; a text record (JSON, Markdown) with :func:`portable` paths."""
    if src.suffix in (".json", ".md"):
        dst.write_text(portable(src.read_text(), tmp, run))
    else:
        shutil.copy2(src, dst)


def portable_config(src: Path, dest: Path, masks: str | None):
    """The run's config.json with portable paths: masks as given to this script (they were made by
    ``satseg data rasterize`` and are remade the same way), the class file shipped beside it."""
    config = json.loads(src.read_text())
    cfg = config["config"]
    if masks and cfg.get("masks"):
        cfg["masks"] = config["masks"] = masks
    if cfg.get("classes") and Path(cfg["classes"]).is_file():
        shutil.copy2(cfg["classes"], dest / "classes.json")
        cfg["classes"] = str(Path("exported_models") / dest.name / "classes.json")
    text = portable(json.dumps(config, indent=2), run=src.parent)
    (dest / "config.json").write_text(text + "\n")


def sh(cmd: list[str], log: list[str], tmp: str | None = None, run: Path | None = None):
    log.append(portable(shlex.join(cmd), tmp, run))
    print("$", log[-1], flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def deflate(path: Path):
    """Store a .keras file's zip members deflated (Keras writes them stored and reads either):
    float32 weights shrink by about 10 %, which keeps `lite2_unet` (22.2 MB stored, 19.8 MB
    deflated) under this repository's 20 MB limit per file. The weights are unchanged."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".deflate-", suffix=".keras")
    os.close(fd)
    tmp = Path(name)
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
        tmp.chmod(path.stat().st_mode & 0o777)  # mkstemp's file is private; keep the model's mode
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def keep_init_config(run: Path, dest: Path):
    """A fine-tune's card gives the command of the run it started from (``--init``), which need
    not stay shipped: keep that run's config as init_config.json."""
    init = json.loads((run / "config.json").read_text())["config"].get("init")
    if init and (Path(init).parent / "config.json").exists():
        shutil.copy2(Path(init).parent / "config.json", dest / "init_config.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("run", type=Path)
    ap.add_argument("--teacher")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--masks", help="masks mirroring --data (satseg data rasterize's output, where only polygons "
                                    "were shipped); calibration then reads the run's recorded split")
    ap.add_argument("--objects", help="classes also scored object by object (evaluate --objects)")
    ap.add_argument("--tta", action="store_true", help="also evaluate with flip TTA (evaluate_tta.json)")
    ap.add_argument("--formats", default=FORMATS,
                    help="export formats (a teacher needs no float16 or dynamic-range file: --formats "
                         "tflite_float32,tflite_int8,tflite_int8_fixed keeps the repository smaller)")
    ap.add_argument("--reexport", action="store_true", help="export and evaluate the LiteRT files only")
    args = ap.parse_args()
    dest = ROOT / "exported_models" / args.name
    dest.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    if args.reexport:
        log = [line for line in (dest / "commands.txt").read_text().splitlines()
               if " evaluate " in line and "tflite" not in line]
    dest = dest.relative_to(ROOT)  # commands and records name it as a clone does
    with tempfile.TemporaryDirectory() as tmp:
        exp = Path(tmp) / "export"
        cmd = ["satseg", "export", "--model", str(args.run / "model.keras"), "--out", str(exp),
               "--formats", args.formats]
        if not args.masks:  # with masks, the run's record (data, masks, split) gives the patches
            cmd += ["--calibration-data", args.data]
        if args.teacher:
            cmd += ["--teacher", args.teacher]
        sh(cmd, log, tmp, args.run)
        for f in KEEP_EXPORT:
            if (exp / f).exists():  # no _fixed file for models normalised per patch
                copy_portable(exp / f, ROOT / dest / f, tmp, args.run)
        deflate(ROOT / dest / "model.keras")
    data = ["--data", args.data] + (["--masks", args.masks] if args.masks else [])
    objects = ["--objects", args.objects] if args.objects else []
    if not args.reexport:
        for f in KEEP_RUN:
            if (args.run / f).exists() and f != "config.json":  # the config: portable_config below
                copy_portable(args.run / f, ROOT / dest / f, run=args.run)
        portable_config(args.run / "config.json", ROOT / dest, args.masks)
        keep_init_config(args.run, ROOT / dest)
        sh(["satseg", "evaluate", "--model", str(dest / "model.keras"), *data, "--split", "test", *objects,
            "--plots", str(dest), "--out", str(dest / "evaluate.json"), "--json", "--force"], log)
        # whole validation images: the figure choices between shipped models are made on
        sh(["satseg", "evaluate", "--model", str(dest / "model.keras"), *data, "--split", "val",
            "--out", str(dest / "evaluate_val.json"), "--json", "--force"], log)
    for name in ("model_int8", "model_int8_fixed"):
        if (ROOT / dest / f"{name}.tflite").exists():
            sh(["satseg", "evaluate", "--model", str(dest / f"{name}.tflite"), *data, "--split", "test", *objects,
                "--out", str(dest / f"evaluate_{name.replace('model_', '')}.json"), "--json", "--force"], log)
    if args.tta and not args.reexport:
        sh(["satseg", "evaluate", "--model", str(dest / "model.keras"), *data, "--split", "test",
            "--tta", "--out", str(dest / "evaluate_tta.json"), "--json", "--force"], log)
    (ROOT / dest / "commands.txt").write_text("\n".join(log) + "\n")
    if not args.reexport:
        (ROOT / dest / "run_name.txt").write_text(args.run.name + "\n")
    print(json.dumps({"shipped": str(dest)}))


if __name__ == "__main__":
    run(main)
