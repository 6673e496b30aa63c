"""One command from a labelled folder to a tested, carded edge model: ``satseg fit``.

The stages are the zoo's own, run in order into one folder:

1. **plan**: pair images and masks, take or infer the classes, choose an honest split (and say
   why), find folders without masks (learnt from the teacher alone), size the epochs to
   ``--budget`` from a measured warm-up;
2. **teacher**: train the teacher (``satseg train``);
3. **student**: distil the student from it, with the unlabelled folders;
4. **export**: the student to int8 LiteRT (and the accelerator file for ``--target``);
5. **evaluate**: the teacher and the int8 student on the test split, with intervals;
6. **card**: ``card.md`` with figures, the commands that remake every stage and the machine.

Each finished stage is recorded in ``DIR/fit.json`` with the hashes of the files it wrote. The
same command after a kill goes on where it stopped: a finished stage is checked (its files must
be unchanged), not redone; a training stage resumes from its last finished epoch (exactly, as
``satseg train --resume`` does); a stage killed elsewhere is run again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from satseg.errors import SatsegError

STAGES = ("plan", "teacher", "student", "export", "evaluate", "card")
TARGET_FORMATS = {"cpu": ("tflite_int8",), "edgetpu": ("tflite_int8", "tflite_edgetpu"),
                  "gpu": ("tflite_int8", "tflite_gpu")}
STATE = "fit.json"
EPOCH_RANGE = (1, 200)


@dataclass
class FitConfig:
    """What ``satseg fit`` is asked; every other setting is the recipe's (:class:`TrainConfig`)."""

    data: str
    classes: str | None = None
    masks: str | None = None
    pairs: str | None = None
    target: str = "cpu"
    budget: float | None = None  # seconds for both trainings; None: the recipe's epochs
    teacher: str = "lite0_unet"
    student: str = "lite0_edge"
    epochs: int | None = None  # both trainings, instead of sizing them to the budget
    val_groups: list[str] = field(default_factory=list)
    test_groups: list[str] = field(default_factory=list)
    seed: int = 42
    patch_size: int | None = None  # None: the recipe's
    crops_per_epoch: int | None = None  # None: the recipe's

    def check(self):
        if self.target not in TARGET_FORMATS:
            raise SatsegError(f"--target {self.target}: one of {', '.join(TARGET_FORMATS)}")
        if self.budget is not None and self.epochs is not None:
            raise SatsegError("--budget and --epochs contradict each other; pass one")
        if not Path(self.data).is_dir():
            raise SatsegError(f"{self.data}: not a folder of images and masks")
        from satseg.models import check_model_name

        check_model_name(self.teacher)
        check_model_name(self.student)


def parse_budget(text: str) -> float:
    """Seconds in a time such as ``2h``, ``90m``, ``1h30m`` or ``45s`` (a bare number: minutes)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t) * 60
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?", t)
    if not t or parts is None or not any(parts.groups()):
        raise SatsegError(f"--budget '{text}': a time such as 2h, 90m, 1h30m or 45s")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise SatsegError(f"--budget '{text}': must be more than nothing")
    return seconds


# --- the state of a fit folder ----------------------------------------------------------------

class FitDir:
    """``DIR``: the finished product and, in ``fit.json``, what each stage wrote (its files' hashes)."""

    def __init__(self, path, cfg: FitConfig):
        self.path, self.cfg = Path(path), cfg
        self.state_path = self.path / STATE

    def settings(self) -> dict:
        return asdict(self.cfg)

    def open(self, force: bool) -> dict:
        """The recorded state of a fit of the same settings here, or a new one. A folder that
        holds anything else is refused unless ``force``; then only a fit folder is cleared."""
        from satseg.atomic import check_replaceable, check_writable

        if self.path.is_symlink():
            raise SatsegError(f"{self.path}: is a link; satseg does not write through links")
        if self.path.exists() and not self.path.is_dir():
            raise SatsegError(f"{self.path}: exists and is not a folder")
        state = self._read() if self.state_path.is_file() else None
        if state is not None and state["settings"] == self.settings() and not force:
            return state  # the same command again: go on where it stopped
        if self.path.is_dir() and any(self.path.iterdir()):
            if not force:
                what = ("a fit with other settings" if state is not None else "files satseg fit did not write")
                raise SatsegError(f"{self.path}: holds {what}; pass --force to start over there, or another --out")
            check_replaceable(self.path, STATE, "a satseg fit folder", keep=[self.cfg.data],
                              keys=("satseg_fit", "settings", "stages"))
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        check_writable(self.path)
        state = {"satseg_fit": 1, "settings": self.settings(), "stages": {}}
        self._write(state)
        return state

    def _read(self) -> dict:
        try:
            doc = json.loads(self.state_path.read_text())
            assert isinstance(doc, dict) and isinstance(doc["stages"], dict) and "settings" in doc
        except (ValueError, KeyError, AssertionError, UnicodeDecodeError):
            raise SatsegError(f"{self.state_path}: damaged; pass --force to start over") from None
        return doc

    def _write(self, state: dict):
        from satseg.atomic import atomic_write_text

        atomic_write_text(self.state_path, json.dumps(state, indent=2) + "\n")

    def done(self, state: dict, stage: str) -> dict | None:
        from satseg.atomic import file_digest

        """A finished stage's record, its files checked unchanged; None when it must run (again)."""
        rec = state["stages"].get(stage)
        if rec is None:
            return None
        for rel, digest in rec["files"].items():
            p = self.path / rel
            if not p.is_file() or p.is_symlink() or file_digest(p) != digest:
                return None
        return rec

    def record(self, state: dict, stage: str, files: list[Path], result: dict):
        from satseg.atomic import file_digest

        state["stages"][stage] = {"files": {os.path.relpath(f, self.path): file_digest(f) for f in files},
                                  "result": result, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for later in STAGES[STAGES.index(stage) + 1:]:  # what came after was made from the old files
            state["stages"].pop(later, None)
        self._write(state)


# --- plan -------------------------------------------------------------------------------------

def choose_split(info: dict, cfg: FitConfig) -> dict:
    """The honest split for this data, and why: whole groups when chips overlap on the ground or
    there are folders (groups) enough, else whole images within each group."""
    groups = info["groups"]
    if cfg.val_groups or cfg.test_groups:
        return {"split": "group" if len(groups) >= 3 else "image", "val_groups": cfg.val_groups,
                "test_groups": cfg.test_groups, "why": "the groups you named are held out whole"}
    overlap = chips_overlap([f["image"] for f in info["files"]])
    if len(groups) >= 3:
        why = ("chips overlap on the ground (tiles at several zooms)" if overlap
               else f"the images come in {len(groups)} groups (folders or tiles)")
        return {"split": "group", "val_groups": [], "test_groups": [],
                "why": f"{why}: whole groups go to validation and test, so no place is seen in training"}
    if overlap:
        raise SatsegError(f"{info['root']}: chips overlap on the ground but come in {len(groups)} group(s): "
                          "no honest split exists; put the chips of separate areas in separate folders")
    return {"split": "image", "val_groups": [], "test_groups": [],
            "why": f"{len(groups)} group(s): whole images go to validation and test, drawn within each group"}


def chips_overlap(images: list[str]) -> bool:
    """Whether any two images named as slippy-map tiles cover the same ground (one tile inside
    another at a lower zoom, or the same tile twice)."""
    from satseg.geo.tiles import tile_from_name

    tiles = {t for t in (tile_from_name(Path(p).stem) for p in images) if t is not None}
    seen = set()
    for t in sorted(tiles, key=lambda t: t.z):
        for dz in range(t.z + 1):  # t itself and each of its ancestors
            key = (t.x >> dz, t.y >> dz, t.z - dz)
            if key in seen:
                return True
        seen.add((t.x, t.y, t.z))
    return False


def unlabeled_folders(data, masks=None, pairs=None) -> list[str]:
    """Folders whose images all lack masks: the student learns them from the teacher alone."""
    from satseg.data.layouts import pair_files

    pairing = pair_files(data, masks, pairs)
    whole = pairing.unlabelled_groups()
    by_group: dict[str, list[str]] = {}
    for s in pairing.unlabelled:
        if s.group in whole:
            by_group.setdefault(s.group, []).append(str(Path(s.image).parent))
    return sorted(os.path.commonpath(v) for v in by_group.values())


def measure_epoch_seconds(model: str, classes: int, bands: int, patch: int, batch: int, crops: int,
                          val_pixels: int) -> dict:
    """One epoch's seconds for ``model``, from a warm-up on this machine: the median of a few
    training steps on random crops (times the crops an epoch draws) plus one forward pass over
    a 512 x 512 image (times the validation pixels)."""
    import keras
    import numpy as np

    from satseg.bench import median_seconds
    from satseg.losses import CrossEntropy
    from satseg.models import build_model
    from satseg.trainer import SegmentationTrainer

    rng = np.random.default_rng(0)
    x = rng.random((batch, patch, patch, bands)).astype(np.float32)
    y = rng.integers(0, classes, (batch, patch, patch)).astype(np.int32)
    tr = SegmentationTrainer(build_model(model, (patch, patch, bands), num_classes=classes, seed=0))
    tr.compile(keras.optimizers.Adam(), student_loss=CrossEntropy())
    step = median_seconds(lambda: tr.train_on_batch(x, y), repeats=3, warmup=1)
    net = build_model(model, (None, None, bands), num_classes=classes, seed=0)
    img = rng.random((1, 512, 512, bands)).astype(np.float32)
    infer = median_seconds(lambda: net.predict_on_batch(img), repeats=2, warmup=1)
    train_s = step / batch * crops
    val_s = infer / (512 * 512) * val_pixels
    return {"model": model, "step_seconds": step, "batch": batch, "patch": patch,
            "epoch_seconds": train_s + val_s, "train_seconds": train_s, "val_seconds": val_s}


def size_epochs(budget: float, teacher: dict, student: dict, cache_seconds: float) -> tuple[int, str]:
    """Epochs for both trainings so that they fit ``budget`` seconds, and the sentence saying so."""
    per = teacher["epoch_seconds"] + student["epoch_seconds"]
    raw = (budget - cache_seconds) / per
    epochs = int(min(max(raw, EPOCH_RANGE[0]), EPOCH_RANGE[1]))
    note = (f"--budget {budget / 60:.0f} min: a warm-up measured {teacher['epoch_seconds']:.0f} s per teacher epoch and "
            f"{student['epoch_seconds']:.0f} s per student epoch (+{cache_seconds:.0f} s to cache the teacher's "
            f"answers), so {epochs} epochs each")
    if raw < EPOCH_RANGE[0]:
        note += f" (the budget holds {raw:.2f}; 1 is the least that trains at all)"
    elif raw > EPOCH_RANGE[1]:
        note += f" (the budget holds {raw:.0f}; more than {EPOCH_RANGE[1]} adds little)"
    return epochs, note


def plan(cfg: FitConfig, fd: FitDir, log) -> tuple[list[Path], dict]:
    from satseg.classes import ClassSet
    from satseg.data import inspect
    from satseg.train import TrainConfig

    recipe = TrainConfig()
    patch = cfg.patch_size or recipe.patch_size
    info = inspect(cfg.data, patch, cfg.classes, progress=False, masks=cfg.masks, pairs=cfg.pairs)
    classes = fd.path / "classes.json"
    ClassSet.from_dict(info["classes"]).save(classes)
    names = [c["name"] for c in info["classes"]["classes"]]
    log(f"  {info['images']} labelled images in {len(info['groups'])} groups; classes: {', '.join(names)}"
        + (" (inferred from the masks)" if not cfg.classes else ""))
    split = choose_split(info, cfg)
    log(f"  split: by {split['split']}, because {split['why']}")
    unlabeled = unlabeled_folders(cfg.data, cfg.masks, cfg.pairs)
    if unlabeled:
        log(f"  folders without masks, for the student to learn from the teacher: {', '.join(unlabeled)}")
    epochs, note = cfg.epochs or recipe.epochs, (f"--epochs {cfg.epochs}" if cfg.epochs else
                                                 f"the recipe's {recipe.epochs} epochs (no --budget)")
    timing = None
    if cfg.budget is not None:
        crops = cfg.crops_per_epoch or recipe.crops_per_epoch
        val_pixels = int(info["pixels"] * recipe.val_fraction)
        bands = max(info["bands"])
        t = measure_epoch_seconds(cfg.teacher, len(names), bands, patch, recipe.batch_size, crops, val_pixels)
        s = measure_epoch_seconds(cfg.student, len(names), bands, patch, recipe.batch_size, crops, val_pixels)
        cache = t["val_seconds"] / recipe.val_fraction  # the teacher's answers on every image, once
        epochs, note = size_epochs(cfg.budget, t, s, cache)
        timing = {"teacher": t, "student": s, "cache_seconds": cache}
    log(f"  epochs: {note}")
    result = {"images": info["images"], "groups": info["groups"], "classes": names, "bands": info["bands"],
              "class_share": info["class_share"], **split, "unlabeled": unlabeled, "epochs": epochs,
              "epochs_why": note, "timing": timing, "layout": info["layout"]}
    path = fd.path / "plan.json"
    from satseg.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return [classes, path], result


# --- training, export, evaluation ------------------------------------------------------------

def train_config(cfg: FitConfig, fd: FitDir, plan_: dict, role: str):
    """The TrainConfig of the teacher or the student: the recipe, with what the plan decided."""
    from satseg.train import TrainConfig

    kw = {"data": cfg.data, "classes": str(fd.path / "classes.json"), "masks": cfg.masks, "pairs": cfg.pairs,
          "split": plan_["split"], "val_groups": list(plan_["val_groups"]), "test_groups": list(plan_["test_groups"]),
          "epochs": plan_["epochs"], "seed": cfg.seed}
    if cfg.patch_size:
        kw["patch_size"] = cfg.patch_size
    if cfg.crops_per_epoch:
        kw["crops_per_epoch"] = cfg.crops_per_epoch
    if role == "teacher":
        return TrainConfig(model=cfg.teacher, **kw)
    return TrainConfig(model=cfg.student, teacher=str(fd.path / "runs" / "teacher" / "model.keras"),
                       unlabeled=list(plan_["unlabeled"]), **kw)


def run_training(cfg: FitConfig, fd: FitDir, plan_: dict, role: str, verbose: int) -> tuple[list[Path], dict]:
    from satseg.run import RunDir
    from satseg.train import resume, train

    run = RunDir(fd.path / "runs" / role)
    tc = train_config(cfg, fd, plan_, role)
    if run.path.is_dir() and run.summary() is not None and run.finished_epochs() >= plan_["epochs"]:
        summary = run.summary()  # finished, killed before the stage was recorded: nothing to train
    elif run.path.is_dir() and run.checkpoint() is not None:
        summary = resume(run.path, verbose=verbose)  # killed after an epoch: go on from it
    else:
        summary = train(tc, run.path, force=True, verbose=verbose)  # fit made this folder; nothing else is there
    files = [run.path / "model.keras"] + [p for p in (run.path / "loss.png", run.path / "miou.png") if p.is_file()]
    keep = {k: summary.get(k) for k in ("best_val_miou", "best_epoch", "epochs", "train_seconds_total")}
    return files, {**keep, "model": os.path.relpath(summary["model"], fd.path),
                   "command": train_command(tc) + f" --out {fd.path / 'runs' / role}"}


def export_stage(cfg: FitConfig, fd: FitDir, log) -> tuple[list[Path], dict]:
    from satseg.export import export_model

    student = fd.path / "runs" / "student" / "model.keras"
    report = export_model(student, fd.path / "runs" / "export", formats=TARGET_FORMATS[cfg.target],
                          teacher=fd.path / "runs" / "teacher" / "model.keras", force=True, log=lambda *a: None)
    files = []
    for src in sorted((fd.path / "runs" / "export").glob("*.tflite")):
        dst = fd.path / src.name
        _copy(src, dst)
        files.append(dst)
        sidecar = src.with_suffix(".satseg.json")
        if sidecar.is_file():
            _copy(sidecar, dst.with_suffix(".satseg.json"))
            files.append(dst.with_suffix(".satseg.json"))
    _copy(student, fd.path / "model.keras")
    files.append(fd.path / "model.keras")
    sizes = {p.name: round(p.stat().st_size / 1024, 1) for p in files if p.suffix == ".tflite"}
    log("  " + ", ".join(f"{k} {v} KB" for k, v in sizes.items()))
    return files, {"sizes_kb": sizes, "formats": list(TARGET_FORMATS[cfg.target]),
                   "parity": {k: v for k, v in report.items() if "parity" in k or "agree" in k}}


def _copy(src: Path, dst: Path):
    from satseg.atomic import atomic_write

    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def evaluate_stage(cfg: FitConfig, fd: FitDir, log) -> tuple[list[Path], dict]:
    from satseg.evaluate import evaluate, load_predictor
    from satseg.plots import class_iou_bars

    out, files = {}, []
    for role, model in (("teacher", fd.path / "runs" / "teacher" / "model.keras"),
                        ("student", fd.path / "model_int8.tflite")):
        figures = fd.path / "figures" / role
        r = evaluate(load_predictor(model), cfg.data, split="test", seed=cfg.seed, plots_dir=figures,
                     progress=False, masks=cfg.masks, pairs=cfg.pairs)
        class_iou_bars({k: v["iou"] for k, v in r["per_class"].items()}, figures / "class_iou.png", role)
        files += sorted(figures.glob("*.png"))
        out[role] = r
        log(f"  {role}: mIoU {r['miou']:.4f}" + _interval(r, "miou") + f" on {r['images']} test images")
    path = fd.path / "report.json"
    from satseg.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(out, indent=2) + "\n")
    return files + [path], {"teacher_miou": out["teacher"]["miou"], "student_miou": out["student"]["miou"]}


def _interval(r: dict, key: str) -> str:
    ci = (r.get("interval") or {}).get(key)
    return f" ({100 * r['interval']['level']:.0f} % interval {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""


def majority_remark(plan_: dict, miou: float) -> str:
    """Whether a model beats calling every pixel the commonest class, said plainly."""
    from satseg.metrics import majority_miou

    names = list(plan_["class_share"])
    top, base = majority_miou(list(plan_["class_share"].values()))
    name = names[top]
    if miou <= base:
        return (f"The student is NO BETTER than calling every pixel {name} (mIoU about {base:.4f}): train longer "
                "(--budget) or give more labelled images.")
    return f"Calling every pixel {name} would score a mIoU of about {base:.4f}."


def train_command(tc) -> str:
    """The ``satseg train`` line that makes the same run (settings that differ from the recipe)."""
    from dataclasses import fields

    from satseg.train import TrainConfig

    recipe = TrainConfig()
    parts = ["satseg train", f"--model {tc.model}"]
    for f in fields(TrainConfig):
        if f.name in ("model", "extra", "synthetic_images"):
            continue
        v, d = getattr(tc, f.name), getattr(recipe, f.name)
        if v == d or v in (None, [], ()):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, list | tuple) and f.name in ("unlabeled", "teacher"):
            parts += [f"{flag} {x}" for x in v]
        elif isinstance(v, list | tuple):
            parts.append(f"{flag} {','.join(map(str, v))}")
        else:
            parts.append(f"{flag} {v}")
    return " ".join(parts)


# --- the card ---------------------------------------------------------------------------------

def card_stage(cfg: FitConfig, fd: FitDir, state: dict, command: str) -> tuple[list[Path], dict]:
    from satseg.roofline import machine_info, machine_line

    st = {k: v["result"] for k, v in state["stages"].items()}
    p, t, s, e, ev = st["plan"], st["teacher"], st["student"], st["export"], st["evaluate"]
    report = json.loads((fd.path / "report.json").read_text())
    lines = [f"# {Path(cfg.data).name}: {cfg.student} distilled from {cfg.teacher}", "",
             f"Made by `{command}` on {machine_line(machine_info())}.", "",
             "## Data", "",
             f"- {p['images']} labelled images ({p['layout']}), in groups "
             + ", ".join(f"{g} ({n})" for g, n in p["groups"].items()) + ".",
             "- Classes: " + ", ".join(f"{n} ({100 * p['class_share'][n]:.1f} %)" for n in p["classes"]) + ".",
             f"- Split: by {p['split']}, because {p['why']}.",
             f"- Epochs: {p['epochs_why']}.",
             ("- Unlabelled folders the student learnt from the teacher: " + ", ".join(p["unlabeled"]) + ".")
             if p["unlabeled"] else "- No unlabelled folders.", "",
             "## Results on the test split", "",
             "| model | file | mIoU | " + " | ".join(f"IoU {n}" for n in p["classes"]) + " |",
             "|---|---|---:|" + "---:|" * len(p["classes"])]
    for role, file in (("teacher", t["model"]), ("student, int8", "model_int8.tflite")):
        r = report["teacher" if role == "teacher" else "student"]
        ious = [r["per_class"][n]["iou"] for n in p["classes"]]
        lines.append(f"| {role} | `{file}` | {r['miou']:.4f}{_interval(r, 'miou')} | "
                     + " | ".join("n/a" if v is None else f"{v:.4f}" for v in ious) + " |")
    lines += ["", f"Test images: {report['student']['images']}. {majority_remark(p, report['student']['miou'])}", "",
              "Files: " + ", ".join(f"`{k}` {v} KB" for k, v in e["sizes_kb"].items()) + ".", "",
              "## Figures", ""]
    for role in ("teacher", "student"):
        for name, what in (("class_iou", "IoU per class"), ("confusion", "confusion matrix"),
                           ("pr_curve", "precision-recall curves"), ("predictions", "predictions")):
            if (fd.path / "figures" / role / f"{name}.png").is_file():
                lines.append(f"![{role}: {what}](figures/{role}/{name}.png)")
        for name in ("loss", "miou"):
            if (fd.path / "runs" / role / f"{name}.png").is_file():
                lines.append(f"![{role}: {name} per epoch](runs/{role}/{name}.png)")
        lines.append("")
    lines += ["## The commands behind each stage", "", "```bash",
              f"satseg data inspect {cfg.data} --write-classes {fd.path}/classes.json",
              t["command"], s["command"],
              f"satseg export --model {fd.path}/runs/student/model.keras --out {fd.path}/runs/export --formats "
              + ",".join(e["formats"]),
              f"satseg evaluate --model {fd.path}/model_int8.tflite --data {cfg.data}", "```", ""]
    path = fd.path / "card.md"
    from satseg.atomic import atomic_write_text

    atomic_write_text(path, "\n".join(lines))
    return [path], {"teacher_miou": ev["teacher_miou"], "student_miou": ev["student_miou"]}


# --- the whole run ----------------------------------------------------------------------------

def fit(cfg: FitConfig, out, force: bool = False, command: str = "satseg fit", log=print, verbose: int = 1) -> dict:
    """Run (or go on with) every stage into ``out``; returns the report of each stage."""
    from satseg.atomic import OutputLock

    cfg.check()
    fd = FitDir(out, cfg)
    with OutputLock(fd.path, "satseg fit"):
        state = fd.open(force)
        started = time.time()
        for i, stage in enumerate(STAGES, 1):
            head = f"[{i}/{len(STAGES)}] {stage}"
            if fd.done(state, stage) is not None:
                log(f"{head}: done before, files checked")
                continue
            log(f"{head}" + _time_left(state, stage, started))
            t0 = time.time()
            files, result = _run(stage, cfg, fd, state, log, verbose, command)
            result["seconds"] = round(time.time() - t0, 1)
            fd.record(state, stage, files, result)
        result = {k: v["result"] for k, v in state["stages"].items()}
        result["remark"] = majority_remark(result["plan"], result["evaluate"]["student_miou"])
        return result


def _run(stage, cfg, fd, state, log, verbose, command):
    plan_ = (state["stages"].get("plan") or {}).get("result")
    if stage == "plan":
        return plan(cfg, fd, log)
    if stage in ("teacher", "student"):
        return run_training(cfg, fd, plan_, stage, verbose)
    if stage == "export":
        return export_stage(cfg, fd, log)
    if stage == "evaluate":
        return evaluate_stage(cfg, fd, log)
    return card_stage(cfg, fd, state, command)


def _time_left(state: dict, stage: str, started: float) -> str:
    """An estimate of the time the trainings still take, from the plan's warm-up."""
    plan_ = (state["stages"].get("plan") or {}).get("result") or {}
    timing = plan_.get("timing")
    if not timing or stage not in ("teacher", "student"):
        return ""
    left = plan_["epochs"] * timing["student"]["epoch_seconds"]
    if stage == "teacher":
        left += plan_["epochs"] * timing["teacher"]["epoch_seconds"] + timing["cache_seconds"]
    return f" (about {left / 60:.0f} min of training left)"


__all__ = ["FitConfig", "fit", "parse_budget", "choose_split", "chips_overlap", "size_epochs"]
