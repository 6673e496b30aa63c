"""Release tool: generate the model cards (exported_models/README.md), the zoo index
(exported_models/index.json, read by `satseg models` and `--model NAME`), the packaged default model
and the shipped-models table in README.md, all from the files in exported_models/: nothing in them
is typed by hand.

    python tools/model_cards.py --dry-run     # say what would change, write nothing
    python tools/model_cards.py               # write it
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "exported_models"
ABLATIONS = MODELS / "ablations.json"
ORDER = ["lite0_unet_512", "lite0_edge_scratch", "lite0_edge_distilled", "fast_edge_distilled", "fast_edge_scratch",
         "edge_distilled_lite0",
         "teacher", "student_scratch", "student_distilled", "edge_scratch", "edge_distilled",
         "buildings_lite0_unet"]
PRETRAINED_TEACHERS = ["lite0_unet_512"]
TEACHERS = {*PRETRAINED_TEACHERS, "teacher", "buildings_lite0_unet"}
TASKS = {
    "dubai": {"title": "land cover, Dubai (6 classes)", "score": "mIoU",
              "data": "the Dubai release, 64 images",
              "test": "the real Dubai data's test split"},
    "buildings": {"title": "buildings, hotosm (2 classes)", "score": "building IoU",
                  "data": "hotosm-buildings, folders 1, 2, 3 and 5 (masks burnt from each folder's labels.geojson by "
                          "`satseg data rasterize`); folder 4, another country, held out as the test split",
                  "test": "hotosm folder 4 (another country)",
                  "prepare": ["for n in 1 2 3 4 5; do satseg data rasterize ../shared/data/hotosm-buildings/data/$n "
                              "--labels ../shared/data/hotosm-buildings/data/$n/labels.geojson "
                              "--out runs/hotosm-masks/$n; done"]},
}
"""Each task a shipped model serves: its title, headline score and data. One row per task; a
model's task is told by its classes (:func:`task_of`)."""
PICK = {
    "lite0_unet_512": "the most accurate; a server or a desktop GPU",
    "lite0_edge_scratch": "the default: best small model on validation; phones and boards",
    "lite0_edge_distilled": "as the default, distilled; ties it",
    "fast_edge_distilled": "the fastest; less accurate than the default",
    "edge_distilled_lite0": "a smaller file than the default (random-init edge network, distilled); tight memory",
    "teacher": "the reference teacher U-Net; for comparison",
    "buildings_lite0_unet": "building footprints: the most accurate; a server or a desktop GPU",
    "student_distilled": "the reference student; for comparison",
}
TITLES = {
    "lite0_unet_512": "Pretrained teacher: ImageNet EfficientNet-Lite0 encoder, U-Net decoder; trained on 256 px "
                      "crops, then fine-tuned on 512 px crops (for whole frames)",
    "lite0_edge_scratch": "Pretrained edge student (first four Lite0 blocks, light decoder), trained without a teacher",
    "lite0_edge_distilled": "Pretrained edge student, distilled from the pretrained teacher",
    "fast_edge_distilled": "Fast edge student (patch stem to 1/4, sub-pixel head; random init), distilled from the "
                           "pretrained teacher",
    "fast_edge_scratch": "Fast edge student, trained without a teacher",
    "edge_distilled_lite0": "Edge student (random init), distilled from the pretrained teacher",
    "teacher": "Teacher U-Net (16-32-64-128-256)",
    "buildings_lite0_unet": "Building teacher: ImageNet EfficientNet-Lite0 encoder, U-Net decoder; trained on "
                            "hotosm-buildings (OpenAerialMap chips with fAIr's footprints)",
    "student_scratch": "Reference student, trained from scratch (the baseline distillation must beat)",
    "student_distilled": "Reference student, distilled from the teacher (the default model until the pretrained students)",
    "edge_scratch": "Edge student, trained from scratch",
    "edge_distilled": "Edge student (stride-2 stem, depthwise-separable), distilled from the teacher",
}


def task_of(evaluation: dict) -> str:
    """The task of a shipped model, from the classes of its evaluation: a background/building pair
    is the buildings task, anything else Dubai land cover."""
    names = [n.lower() for n in evaluation["per_class"]]
    return "buildings" if names == ["background", "building"] else "dubai"


def score(e: dict, task: str) -> float:
    """A task's headline score of one evaluation: building IoU, or mIoU over all classes."""
    return e["foreground"]["iou"] if task == "buildings" else e["miou"]


def score_interval(e: dict, task: str):
    ci = e.get("interval") or {}
    return ci.get("foreground_iou" if task == "buildings" else "miou")


def teacher_of(config) -> str | None:
    """The shipped model a run was distilled from: the teacher's folder in exported_models/, or
    the run folder a shipped model came from; several teachers (their mean) joined by " + "."""
    paths = teacher_paths(config["config"])
    return " + ".join(shipped_name(p) for p in paths) if paths else None


def teacher_paths(cfg: dict) -> list[str]:
    """A recorded config's teacher files (it holds none, one path, or a list)."""
    t = cfg.get("teacher")
    return [] if not t else [t] if isinstance(t, str) else list(t)


def shipped_folder(path: str) -> str | None:
    """The exported_models/ folder a model file lies in, if any."""
    p = Path(path)
    p = p if p.is_absolute() else ROOT / p  # recorded paths are relative to the repository root
    return p.parent.name if p.parent.parent.resolve() == MODELS.resolve() and p.parent.is_dir() else None


def shipped_name(path: str) -> str:
    """The shipped model a .keras path is, or came from; else its run folder's name."""
    run = Path(path).parent.name
    if shipped_folder(path) in ORDER:
        return run
    for name in ORDER:
        rn = MODELS / name / "run_name.txt"
        if rn.exists() and rn.read_text().strip() == run:
            return name
    return run  # not shipped: the run folder it came from


def load(name):
    d = MODELS / name
    def j(f):
        return json_in(d / f)

    hist = list(csv.DictReader(open(d / "history.csv"))) if (d / "history.csv").exists() else []
    config = j("config.json")
    evaluation = j("evaluate.json")
    return {"name": name, "dir": d, "config": config, "report": j("report.json"), "teacher": teacher_of(config),
            "task": task_of(evaluation), "eval": evaluation, "eval_val": j("evaluate_val.json"), "eval_int8": j("evaluate_int8.json"),
            "eval_int8_fixed": j("evaluate_int8_fixed.json"), "eval_tta": j("evaluate_tta.json"), "history": hist,
            "init_config": j("init_config.json"),
            "run_name": (d / "run_name.txt").read_text().strip() if (d / "run_name.txt").exists() else name,
            "commands": (d / "commands.txt").read_text().strip().splitlines() if (d / "commands.txt").exists() else []}


def train_command(c: dict, run_name: str) -> str:
    """The `satseg train` command equivalent to a run's recorded config."""
    cfg = c["config"]
    parts = ["satseg", "train", "--model", cfg["model"], "--data", f'"{cfg["data"]}"', "--out", f"runs/{run_name}"]
    for key in ("masks", "classes"):  # masks burnt from polygons (satseg data rasterize), a class file
        if cfg.get(key):
            parts += [f"--{key}", cfg[key]]
    for key in ("val_groups", "test_groups"):
        if cfg.get(key):
            parts += [f"--{key.replace('_', '-')}", ",".join(cfg[key])]
    if cfg.get("teacher"):
        for t in teacher_paths(cfg):
            parts += ["--teacher", model_arg(t)]
        parts += ["--alpha", str(cfg["alpha"]), "--temperature", str(cfg["temperature"]),
                  "--distill-mode", cfg["distill_mode"]]
    if cfg.get("init"):
        parts += ["--init", model_arg(cfg["init"])]
    first = next((ch["epochs"]["from"] for ch in c.get("changes", []) if "epochs" in ch), cfg["epochs"])
    parts += ["--epochs", str(first), "--batch-size", str(cfg["batch_size"]), "--lr", str(cfg["lr"]),
              "--loss", cfg["loss"], "--split", cfg["split"], "--seed", str(cfg["seed"])]
    if cfg.get("split_seed") is not None:
        parts += ["--split-seed", str(cfg["split_seed"])]
    if cfg.get("sampling") == "crops":
        parts += ["--crops-per-epoch", str(cfg["crops_per_epoch"])]
        parts += recipe_changes(cfg)
    else:  # the reference recipe: fixed patches, per-patch min-max, constant-rate Adam
        parts += ["--sampling", "grid", "--normalization", cfg["normalization"], "--patch-mode", cfg["patch_mode"],
                  "--lr-schedule", "constant", "--weight-decay", "0"]
    return " ".join(parts)


def model_arg(path: str) -> str:
    """A recorded model path as a reader gives it: a shipped folder's file from the repository root,
    a run's file under runs/."""
    p, folder = Path(path), shipped_folder(path)
    return f"exported_models/{folder}/{p.name}" if folder else f"runs/{p.parent.name}/{p.name}"


def recipe_changes(cfg: dict) -> list[str]:
    """The crop options of a run that differ from today's defaults (TrainConfig)."""
    from satseg.train import TrainConfig

    default, out = TrainConfig(), []
    for key in ("patch_size", "scale", "rare_fraction", "photometric", "class_weights"):
        base = getattr(default, key)
        value = cfg.get(key, base)
        if (list(value) == list(base)) if key == "scale" else value == base:
            continue
        if key == "scale":
            words = [str(v) for v in value]
        else:
            words = [",".join(map(str, value)) if isinstance(value, list) else str(value)]
        out += [f"--{key.replace('_', '-')}", *words]
    return out


def miou5(e: dict) -> float:
    """Mean IoU without Unlabeled (evaluations older than the field get it from per_class)."""
    if e.get("miou_without_unlabeled") is not None:
        return e["miou_without_unlabeled"]
    v = [c["iou"] for n, c in e["per_class"].items() if n != "Unlabeled" and c["iou"] is not None]
    return sum(v) / len(v)


def kb(n):
    return f"{n / 1024:,.1f}"


def art(m, fmt):
    return next((a for a in m["report"]["artifacts"] if a["format"] == fmt), None)


def card(m, teacher_eval):
    c, r, e = m["config"], m["report"], m["eval"]
    cfg = c["config"]
    wall = sum(float(h["seconds"]) for h in m["history"])
    best = max(m["history"], key=lambda h: float(h["val_miou"]))
    lines = [f"## `{m['name']}`: {TITLES.get(m['name'], m['name'])}", ""]
    if cfg.get("sampling", "grid") == "crops":
        seen = (f"{cfg['crops_per_epoch']} random {cfg['patch_size']} px crops of whole training images per epoch "
                f"(scale {cfg['scale'][0]}-{cfg['scale'][1]}, {100 * cfg['rare_fraction']:.0f} % centred on a uniformly "
                f"drawn class, flips/rotations, brightness/contrast jitter {cfg['photometric']}); validation on "
                f"{c['patches']['val']} grid patches")
        norm = c["spec"]["normalization"]
        seen += f"; normalisation inside the model ({norm.get('source', norm['kind'])} statistics)"
    else:
        seen = (f"{c['patches']['train']} / {c['patches']['val']} / {c['patches'].get('test')} fixed patches of "
                f"{cfg['patch_size']} px ({cfg['patch_mode']} mode), per-patch min-max normalisation")
    opt = (f"AdamW lr {cfg['lr']} (warm-up {cfg.get('warmup_epochs')} epoch, cosine decay), weight decay "
           f"{cfg.get('weight_decay')}" if cfg.get("lr_schedule") == "cosine" else f"Adam lr {cfg['lr']}")
    from satseg.train import TrainConfig

    split_seed = TrainConfig.from_dict(cfg).effective_split_seed
    task = m["task"]
    lines += [f"- **Data**: `{c['data_root']}` ({TASKS[task]['data']}); split by image, seed "
              f"{split_seed}: {len(c['split']['train'])} train / {len(c['split']['val'])} val / "
              f"{len(c['split']['test'])} test images; {seen}.",
              f"- **Training**: `{cfg['model']}`, loss `{cfg['loss']}`, {opt}, batch {cfg['batch_size']}, "
              f"{len(m['history'])} epochs (best val mIoU {float(best['val_miou']):.4f} at epoch {int(best['epoch']) + 1}); "
              f"wall time {wall / 60:.1f} min of training epochs on 2 CPU cores (shared with the other runs of the "
              "session, so a quiet machine is faster; per-epoch seconds are in `history.csv`)"
              + (f"; distilled from `{m['teacher']}` with alpha {cfg['alpha']}, T {cfg['temperature']}, "
                 f"{cfg['distill_mode']} teacher logits" if cfg.get("teacher") else "")
              + (f"; started from the weights of `{Path(cfg['init']).parent.name}` (`--init`: a fine-tune"
                 + ("; that run's command comes first below" if m["init_config"] else "") + ")"
                 if cfg.get("init") else "") + ".",
              "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in c["versions"].items()) + "."]
    if c.get("changes"):
        lines.append(f"- **Changes during the run**: {json.dumps(c['changes'])}.")
    m5 = miou5(e) if task == "dubai" else None
    objects = (e.get("objects") or {}).get("building")
    lines += ["", f"**Test split, whole images** ({e['images']} images, {e['pixels']:,} pixels, tiled with overlap): "
              + (f"building IoU **{score(e, task):.4f}**, " if task == "buildings" else "")
              + f"mIoU **{e['miou']:.4f}**" + (f" (5 classes, without Unlabeled: {m5:.4f})" if m5 is not None else "")
              + f", pixel accuracy {e['pixel_accuracy']:.4f}"
              + (f"; buildings counted one by one (SpaceNet matching at IoU >= 0.5, per chip): precision "
                 f"{objects['precision']:.3f}, recall {objects['recall']:.3f}, F1 {objects['f1']:.3f}" if objects else "")
              + (f"; int8 LiteRT file: {TASKS[task]['score']} {score(m['eval_int8'], task):.4f}"
                 + (" (95 % interval over the test images, bootstrap: {:.4f}-{:.4f})".format(
                     *score_interval(m["eval_int8"], task)) if score_interval(m["eval_int8"], task) else "")
                 + (" (whole image in windows; the fixed-size int8 file in tiles: "
                    f"{score(m['eval_int8_fixed'], task):.4f})" if m["eval_int8_fixed"] else "") if m["eval_int8"] else "")
              + (f"; with flip TTA (4x the time, reported apart): mIoU {m['eval_tta']['miou']:.4f}" if m["eval_tta"] else "")
              + (f"; {m['eval']['miou'] / teacher_eval[m['teacher']]['miou']:.2f} x its teacher `{m['teacher']}`"
                 if m["teacher"] in teacher_eval else "")
              + (". These images come from the tiles the model trained on; imagery unlike them (another city, "
                 "sensor or season) scores lower." if task == "dubai" else
                 ". The test folder is a country no training folder shows."),
              "", "| class | IoU | precision | recall | F1 |",
              "|---|---:|---:|---:|---:|"]
    for n, v in e["per_class"].items():
        f = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
        lines.append(f"| {n} | {f(v['iou'])} | {f(v['precision'])} | {f(v['recall'])} | {f(v['f1'])} |")
    lines += ["", f"**Sizes**: {r['params']:,} parameters, {r['conv_layers']} conv layers, {r['macs'] / 1e9:.3f} G MACs per "
              f"{r['spec']['patch_size']} px patch; `.keras` {kb(r['keras_bytes'])} KB (with Adam state {kb(r['keras_bytes_with_optimizer'])} KB)."]
    lines += ["", "| file | KB | pixel agreement with Keras | mIoU change (pt) |", "|---|---:|---:|---:|"]
    for a in r["artifacts"]:
        lines.append(f"| `{a['path']}` | {kb(a['bytes'])} | {100 * a['agreement']:.2f} % | {100 * a['miou_delta']:+.2f} |")
    for fmt, what in ACCELERATORS.items():
        a, scored = art(m, fmt), json_in(m["dir"] / f"evaluate_{fmt.split('_')[1]}.json")
        if a and scored:
            lines += ["", f"`{a['path']}` ({what.format(patch=r['spec']['patch_size'])}): ops {', '.join(a['ops'])}; "
                      f"test mIoU {scored['miou']:.4f}."]
    lines += ["", "Plots: [loss](%s/loss.png), [mIoU](%s/miou.png), [precision-recall](%s/pr_curve.png), "
              "[predictions](%s/predictions.png), [confusion](%s/confusion.png)." % ((m["name"],) * 5), "",
              "Commands that made these files (from the repository root; `python benchmarks/ship.py` ran the "
              "export and evaluation commands and copied their outputs here):", "", "```bash"]
    if "sampling" not in cfg:
        lines.append("# trained with satseg at commit 3e5a182 (fixed 256 px inputs); the `edge` builder has changed "
                         "since (dynamic-size upsampling), so it no longer rebuilds this exact file")
    if m["init_config"]:
        lines += ["# the run it was fine-tuned from (--init)",
                  train_command(m["init_config"], Path(cfg["init"]).parent.name)]
    lines += TASKS[task].get("prepare", []) + [train_command(c, m["run_name"])]
    lines += [f"satseg train --resume runs/{m['run_name']} --epochs {ch['epochs']['to']}"
              for ch in c.get("changes", []) if "epochs" in ch]
    lines += m["commands"] + ["```", ""]
    return "\n".join(lines)


ACCELERATORS = {
    "tflite_edgetpu": "for the Coral Edge TPU: full integer, fixed {patch} px tiles, int8 logits out, every op on the "
                      "Edge TPU compiler's list; compile it with `edgetpu_compiler`",
    "tflite_gpu": "for the LiteRT GPU delegate: float16 weights, fixed {patch} px tiles, probabilities out, every op on "
                  "the delegate's list",
}


TRAIN_STEPS = {"teacher": "teacher", "student_scratch": "student from scratch",
               "student_distill_online": "distilled student, online teacher",
               "student_distill_offline": "distilled student, offline (cached float16 teacher logits)"}


def bench_tables(bench) -> dict[str, str]:
    """docs/speed.md's tables, from bench.json: training steps, and whole images through int8 files."""
    t = bench["training"]
    head = f"train step, batch {t[0]['batch']}, {t[0]['patch']} px (classic models)"
    train = [f"| {head} | s/step | x scratch student |", "|---|---:|---:|"] + [
        f"| {TRAIN_STEPS.get(r['step'], r['step'])} | {r['seconds_per_step']:.3f} | {r['x_student_scratch']:.2f} |"
        for r in t]
    rows = int8_rows(bench)
    fixed = {r["model"]: r for r in bench["inference"] if r["runtime"] == "litert_int8_fixed"}
    h, w = bench["image_size"]
    inf = [f"| whole {w}x{h} (width x height) image, int8 | whole-image file, one call | fixed-size file, blended tiles "
           "| G MACs of the served graph | x its limit (int8 GEMM rate of the same run) |", "|---|---:|---:|---:|---:|"]
    for name in ORDER:
        r = rows.get(name)
        if r is None:
            continue
        tiles = fixed.get(name, r).get("tiled_s")
        whole = r.get("whole_image_s")
        lim = r.get("whole_image_x_limit", r.get("tiled_x_limit"))
        macs = r.get("image_macs")
        inf.append(f"| `{name}` | {f'{whole:.3f} s' if whole else 'n/a'} | {f'{tiles:.3f} s' if tiles else 'n/a'} | "
                   f"{f'{macs / 1e9:.2f}' if macs else 'n/a'}{'' if whole else ' (tiles)'} | "
                   f"{lim:.1f}x{'' if whole else ' in tiles'} |")
    note = (f"\n\nGenerated by `python tools/model_cards.py` from `exported_models/bench.json`, written by `satseg bench "
            f"--out exported_models/bench.json --force` on {bench_machine(bench)}: {bench['threads']} threads, medians of "
            f"{bench['repeats']}, float32 matmul {bench['matmul_gmacs']:.1f} GMAC/s"
            + (f", int8 GEMM {bench['int8_gemm_gmacs']:.1f} GMAC/s" if "int8_gemm_gmacs" in bench else "")
            + (f", memory {bench['memory_gbps']:.1f} GB/s (copy)" if "memory_gbps" in bench else "") + ".")
    return {"training": "\n".join(train) + note, "inference": "\n".join(inf) + note,
            "roofline": roofline_table(bench) + note}


def bench_machine(bench) -> str:
    from satseg.roofline import machine_line

    return machine_line(bench["machine"]) if "machine" in bench else "a machine it did not record"


def roofline_table(bench) -> str:
    """Per-layer rooflines of the default and the fastest whole-image int8 file."""
    out = []
    for rl in bench.get("roofline", []):
        h, w = rl["image_size"]
        what = "the packaged default" if rl["default"] else "the fastest whole-image file"
        out += [f"**`{rl['model']}`** ({what}), int8 at {w}x{h}: {rl['macs'] / 1e9:.2f} G MACs and "
                f"{rl['bytes'] / 1e9:.2f} GB moved over {rl['layers_counted']} layers; the layers' bounds sum to "
                f"**{rl['bound_ms']:.1f} ms** (compute {rl['compute_bound_ms']:.1f} ms at the int8 GEMM rate, memory "
                f"{rl['memory_bound_ms']:.1f} ms at the copy bandwidth); measured {rl['measured_ms']:.1f} ms, "
                f"**{rl['x_roofline']:.1f}x** the roofline.", "",
                "| layer (largest bounds) | output | G MACs | MB moved | MACs / byte | bound ms | bound by |",
                "|---|---|---:|---:|---:|---:|---|"]
        for x in rl["top_layers"]:
            ai = f"{x['macs_per_byte']:.1f}" if x["macs_per_byte"] is not None else ""
            out.append(f"| {x['op']} | {'x'.join(map(str, x['out_shape'][1:]))} | {x['macs'] / 1e9:.3f} | "
                       f"{x['bytes'] / 1e6:.1f} | {ai} | {x['bound_ms']:.2f} | {x['bound']} |")
        out.append("")
    return "\n".join(out).rstrip() or "No whole-image int8 file was benched."


STAGE_TIMES = {
    "stage_times.json": "python benchmarks/stage_times.py --repeats 9 --out exported_models/stage_times.json",
    "stage_times_fast_edge.json": "python benchmarks/stage_times.py --model exported_models/fast_edge_distilled/"
                                  "model.keras --size 1488 2160 --repeats 9 --out exported_models/stage_times_fast_edge.json",
}
SERVING_VARIANTS = {
    "serving_variants_edge.json": "python benchmarks/serving_variants.py --model exported_models/edge_distilled_lite0/"
                                  "model.keras --size 1480 2152 --rounds 3 --out exported_models/serving_variants_edge.json",
    "serving_variants_lite0_edge.json": "python benchmarks/serving_variants.py --model exported_models/"
                                        "lite0_edge_scratch/model.keras --size 1480 2152 --rounds 3 --out "
                                        "exported_models/serving_variants_lite0_edge.json",
    "serving_variants.json": "python benchmarks/serving_variants.py --out exported_models/serving_variants.json",
}


def stage_table(name: str) -> str:
    """Where one whole-image int8 file's time goes, stage by stage, from a stage_times JSON."""
    d = json_in(MODELS / name)
    rows = ["| stage | ms | G MACs | ms at the float32 matmul rate |", "|---|---:|---:|---:|"] + [
        f"| {r['stage']} | {r['stage_ms']:.1f} | {r['stage_gmacs']:.2f} | {r['stage_mac_limit_ms']:.1f} |"
        for r in d["stages"]]
    total, macs = d["stages"][-1]["cumulative_ms"], sum(r["stage_gmacs"] for r in d["stages"])
    limit = sum(r["stage_mac_limit_ms"] for r in d["stages"])
    rows.append(f"| **all** | **{total:.1f}** | **{macs:.2f}** | **{limit:.1f}** ({total / limit:.1f}x) |")
    extra = d.get("not_shipped_decision_at_logit_resolution")
    if extra:
        rows.append(f"\nNot shipped: the same graph deciding at the logits' resolution (argmax, then ids upsampled "
                    f"nearest): {extra['ms']:.1f} ms, ids equal to the shipped graph's on "
                    f"{100 * extra['pixel_agreement_with_shipped_graph']:.2f} % of the pixels.")
    h, w = d["image"]
    return "\n".join(rows) + (f"\n\nGenerated by `python tools/model_cards.py` from `exported_models/{name}`, written by "
                              f"`{STAGE_TIMES[name]}` (`{d['model']}`, its serving graph cut after each stage, each cut "
                              f"converted to int8 and timed on a {w} x {h} (width x height) image, {d['threads']} threads, "
                              f"{d['matmul_gmacs_per_s']} GMAC/s float32 matmul in that run; stages of a few ms are "
                              "within the noise, one may come out negative).")


def variants_table() -> str:
    """Serving-graph rewrites timed against the shipped graph, alternating rounds, from serving_variants JSONs."""
    rows = ["| model | graph | ms per round (medians) | ids equal to the shipped graph's |", "|---|---|---|---:|"]
    notes = []
    for name, command in SERVING_VARIANTS.items():
        d = json_in(MODELS / name)
        for graph, ms in d["ms_per_round"].items():
            agree = d["pixel_agreement_with_shipped"].get(graph)
            rows.append(f"| `{d['model'].split('/')[-2]}` | {graph} | {' / '.join(f'{m:.1f}' for m in ms)} | "
                        f"{'shipped' if agree is None else f'{100 * agree:.2f} %'} |")
        notes.append(f"`{command}`")
    return "\n".join(rows) + ("\n\nGenerated by `python tools/model_cards.py` from the JSON these commands wrote: "
                              + "; ".join(notes) + ".")


def training_table(ms) -> str:
    """docs/recipe.md: how each shipped model was trained and what it scored, from its folder."""
    rows = ["| model | architecture | teacher | epochs | best val (patches) | val (whole images) | test (whole images) |",
            "|---|---|---|---:|---:|---:|---:|"]
    for m in ms:
        cfg = m["config"]["config"]
        teacher = ", ".join(f"`{Path(t).parent.name}`" for t in teacher_paths(cfg)) if cfg.get("teacher") else "-"
        best = json_in(m["dir"] / "summary.json") or {}
        val, test = (m["eval_val"] or {}).get("miou"), (m["eval"] or {}).get("miou")
        rows.append(f"| `{m['name']}` | `{cfg['model']}` | {teacher} | {cfg['epochs']} | "
                    f"{best['best_val_miou']:.4f} (epoch {best['best_epoch']}) | " if best else "n/a | ")
        rows[-1] += f"{val:.4f} | " if val is not None else "n/a | "
        rows[-1] += f"{test:.4f} |" if test is not None else "n/a |"
    return "\n".join(rows) + ("\n\nGenerated by `python tools/model_cards.py` from each model's folder in "
                              "`exported_models/` (`config.json`, `summary.json`, `evaluate_val.json`, `evaluate.json`; "
                              "Keras models on the real Dubai data; each card gives the exact `satseg train` command).")


def walkthrough_blocks(d) -> dict[str, str]:
    """docs/your-data.md's figures, from hotosm_walkthrough.json."""
    i, t, st = d["inspect"], d["teacher"], d["student"]
    shares = ", ".join(f"{c} {100 * v:.2f} %" for c, v in i["class_share"].items())
    groups = ", ".join(f"{g}: {n}" for g, n in i["groups"].items())
    src = (f"Generated by `python tools/model_cards.py` from `exported_models/hotosm_walkthrough.json`, written by "
           f"`{d['command']}`, which runs these commands (this machine, 2 CPU cores).")

    def scores(r):
        return (f"building IoU {r['foreground_iou']:.4f}, mIoU {r['miou']:.4f}, pixel accuracy "
                f"{r['pixel_accuracy']:.4f} ({r['images']} images, {r['pixels']:,} pixels)")

    def run(m):
        return f"best validation mIoU {m['best_val_miou']:.4f} at epoch {m['best_epoch']} of {m['epochs']} ({m['train_minutes']} min)"

    def int8(m):
        return (f"`model_int8.tflite` of {m['int8']['kb']:.1f} KB ({'whole-image' if m['int8']['whole_image'] else 'fixed-size'} "
                f"file), {100 * m['int8']['parity_agreement']:.2f} % pixel agreement with the Keras model on the parity "
                f"patches; on folder 4: {scores(m['int8'])} "
                f"({100 * (m['int8']['foreground_iou'] - m['keras']['foreground_iou']):+.2f} points of building IoU)")

    teacher = "\n".join([
        f"- `inspect`: {i['images']} images with masks in {len(i['groups'])} groups ({groups}); layout "
        f"{i['layout']}. {i['unlabelled_images']} images without masks (folders "
        f"{', '.join(i['unlabelled_groups'])}), {len(i['files_not_images'])} files that are not images. "
        f"Classes: {'; '.join(i['class_notes'])}; {shares} of pixels.",
        f"- `train`: {run(t)}. Folders 1 and 5 hold chips at three zoom levels that overlap on the ground, so the "
        "validation figure is optimistic; the test folder is another country.",
        f"- `evaluate` on folder 4: **{scores(t['keras'])}**. The drop from validation is the move to unseen imagery "
        "(another country, other roofs), not leakage.",
        f"- `export` and `evaluate` of the int8 file: {int8(t)}.", "", src])
    student = "\n".join([
        f"- `train`: {run(st)}. On folder 4 the Keras model scores {scores(st['keras'])}: "
        f"{st['keras']['foreground_iou'] / t['keras']['foreground_iou']:.2f}x the teacher's building IoU.",
        f"- {int8(st)}.", "", src])
    return {"walkthrough:teacher": teacher, "walkthrough:student": student}


def large_scene_block(d) -> str:
    """docs/your-data.md's large-scene training figure, from train_large_scene.json."""
    return (f"  `python benchmarks/train_large_scene.py --out exported_models/train_large_scene.json` generates a "
            f"{d['scene']} scene with nodata borders ({d['decoded_scene_gb']} GB decoded, a {d['scene_file_gb']} GB "
            f"deflate GeoTIFF) and a small validation scene, then runs `satseg train --model edge` on it (one epoch of "
            f"128 crops) in a child process: peak resident memory **{d['train_peak_rss_gb']} GB**, "
            f"{d['peak_vs_decoded_scene']}x the decoded scene, {d['wall_seconds']:.0f} s (this machine, 2 CPU cores; "
            "generated by `python tools/model_cards.py`).")


def memory_block(mem) -> str:
    """docs/command-line.md's scene-memory sentence, from predict_memory.json."""
    full, edge = mem["full_install"], mem["edge_install"]
    n = full["size"]
    return (f"A {n} x {n} JPEG with the default model peaks at **{full['peak_gb']:.2f} GB** with the full install "
            f"and **{edge['peak_gb']:.2f} GB** with the edge install (no rasterio, TensorFlow or Keras); the "
            f"decoded image alone is {full['decoded_image_gb']:.2f} GB. The two installs' ids agree on "
            f"{100 * mem['ids_agreement']:.2f} % of pixels, and the scene's ids equal one full-frame call on a "
            f"{full['crop'][2]} px crop on {100 * full['crop_agreement']:.2f} % ({full['seconds']:.0f} s and "
            f"{edge['seconds']:.0f} s on {full.get('machine', 'a busy 2-core machine')}). Generated by `python tools/model_cards.py` from "
            "`exported_models/predict_memory.json`, written by `python benchmarks/predict_memory.py "
            "--compare-installs --out exported_models/predict_memory.json`.")


def vector_memory_block(runs: list[dict], without: dict | None) -> str:
    """docs/to-a-map.md's memory sentence, from predict_memory_vector*.json (and predict_memory.json:
    the same scene without polygons)."""
    parts = []
    for r in runs:
        classes = r["options"][r["options"].index("--vector-classes") + 1] if "--vector-classes" in r["options"] else None
        parts.append(f"**{r['peak_gb']:.2f} GB** with polygons of "
                     + (f"the class {classes}" if classes else "every class") + f" ({r['seconds']:.0f} s)")
    n = runs[0]["size"]
    machines = sorted({r.get("machine", "a machine this JSON does not name") for r in runs})
    return (f"A {n} x {n} JPEG of upscaled noise with the default model and `--vector gpkg` peaks at "
            + " and ".join(parts) + f"; the decoded image alone is {runs[0]['decoded_image_gb']:.2f} GB"
            + (f", and predicting the scene without polygons peaks at {without['peak_gb']:.2f} GB" if without else "")
            + " (on " + "; ".join(machines) + "). Generated by `python tools/model_cards.py` from "
            "`exported_models/predict_memory_vector*.json` and `predict_memory.json`, written by `python "
            "benchmarks/predict_memory.py --vector gpkg [--vector-classes Building] --out FILE`.")


def fill(text: str, name: str, body: str) -> str:
    """Replace what lies between two ``<!-- name -->`` markers."""
    mark = f"<!-- {name} -->"
    return re.sub(f"{re.escape(mark)}.*?{re.escape(mark)}", lambda _: f"{mark}\n{body}\n{mark}", text, flags=re.S)


def json_in(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def int8_rows(bench) -> dict:
    """Model name -> its int8 file's bench row (ms per patch, seconds per image, multiple of the MAC limit)."""
    return {r["model"]: r for r in (bench or {}).get("inference", []) if r["runtime"] == "litert_int8"}


def macs_256(report) -> float:
    """MACs per 256 px patch (a report counts its model's patch; convolutions scale with the area)."""
    return report["macs"] * (256 / report["spec"]["patch_size"]) ** 2


def results_table(ms, bench):
    t = next((m for m in ms if m["name"] == "teacher"), None)
    lat = {(row["model"], row["runtime"]): row["ms_per_patch"] for row in (bench or {}).get("inference", [])}
    patch = {row["model"]: row.get("patch", 256) for row in (bench or {}).get("inference", [])}
    img = {name: int8_seconds(bench, name) for name in int8_rows(bench)}
    head = ("| model | params | conv layers | G MACs / 256 px | `.keras` KB | LiteRT fp32 KB | LiteRT int8 KB | test mIoU (Keras) "
            "| test mIoU (int8) | int8 ms/patch | x teacher int8 | int8 s/image |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in ms:
        r = m["report"]
        t_ms = lat.get(("teacher", "litert_int8"))
        ms_ = lat.get((m["name"], "litert_int8"))
        lines.append(
            f"| `{m['name']}` | {r['params']:,} | {r['conv_layers']} | {macs_256(r) / 1e9:.3f} | {kb(r['keras_bytes'])} | "
            f"{kb(art(m, 'tflite_float32')['bytes']) if art(m, 'tflite_float32') else 'n/a'} | "
            f"{kb(art(m, 'tflite_int8')['bytes'])} | {m['eval']['miou']:.4f} | "
            f"{m['eval_int8']['miou']:.4f} | "
            + (f"{ms_:.1f} | {t_ms / ms_:.1f}x |" if ms_ and t_ms and patch[m["name"]] == 256
               else f"{ms_:.1f} ({patch[m['name']]} px) | n/a |" if ms_ else "n/a | n/a |")
            + (f" {img[m['name']]:.3f} |" if img.get(m["name"]) else " n/a |"))
    out = ["\n".join(lines)]
    if t:
        ref = t["report"]["keras_bytes_with_optimizer"]
        out.append("")
        out.append(f"Size reduction, the way the reference reported it (teacher `.keras` saved with Adam state: "
                   f"{ref / 1024:,.0f} KB):")
        out.append("")
        for m in ms:
            if m["name"] in TEACHERS:
                continue
            k = m["report"]["keras_bytes"]
            i8 = art(m, "tflite_int8")["bytes"]
            out.append(f"- `{m['name']}`: `.keras` {k / 1024:,.0f} KB = {100 * (1 - k / ref):.1f} % smaller; "
                       f"int8 LiteRT {i8 / 1024:,.1f} KB = {100 * (1 - i8 / ref):.2f} % smaller "
                       f"({100 * (1 - i8 / art(t, 'tflite_float32')['bytes']):.1f} % smaller than the teacher's float32 LiteRT file).")
    if bench:
        out += ["", f"Latency: `satseg bench` on this machine ({bench['threads']} CPU threads, medians of {bench['repeats']} "
                f"after warm-up, batch 1, 256 px patch); s/image: one {bench['image_size'][1]}x{bench['image_size'][0]} (width x height) "
                "image, in one call for whole-image files (models normalised inside), in blended tiles otherwise; "
                "see `exported_models/bench.json`."]
    return "\n".join(out)


def headline(ms) -> str:
    """The reference claim, checked: distilled vs teacher and vs the same student from scratch."""
    e = {m["name"]: m["eval"]["miou"] for m in ms}
    if not {"teacher", "student_scratch", "student_distilled"} <= set(e):
        return ""
    t, sc, d = e["teacher"], e["student_scratch"], e["student_distilled"]
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    lines = [f"**Headline (test split, whole images).** Teacher mIoU {t:.4f}. Reference student distilled "
             f"{d:.4f}, from scratch {sc:.4f}. Distilled > scratch: {yes(d > sc)} ({100 * (d - sc):+.2f} points). "
             f"Distilled >= 0.95 x teacher: {yes(d >= 0.95 * t)} ({d / t:.2f} x)."]
    if "edge_distilled" in e:
        ed = e["edge_distilled"]
        lines.append(f"The edge student, distilled the same way, scores {ed:.4f} ({ed / t:.2f} x the teacher; "
                     f"{100 * (ed - d):+.2f} points against the distilled reference student"
                     + (f", {100 * (ed - e['edge_scratch']):+.2f} against itself from scratch" if "edge_scratch" in e else "")
                     + ").")
    return " ".join(lines)


def pretrained_headline(ms) -> str:
    """The targets of the pretrained recipe, checked on the test split."""
    e = {m["name"]: m for m in ms}
    teachers = [e[n] for n in PRETRAINED_TEACHERS if n in e]
    if not teachers:
        return ""
    tm = max(teachers, key=val_score)
    tn, t = tm["name"], tm["eval"]
    old = e["teacher"]["eval"] if "teacher" in e else None
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    veg = t["per_class"]["Vegetation"]["iou"]
    parts = ["**Pretrained recipe (test split, whole images).**"]
    if len(teachers) > 1:
        parts.append("Pretrained teachers on the validation split's whole images, where the choice is made: "
                     + ", ".join(f"`{m['name']}` {val_score(m):.4f}" for m in teachers) + f"; the best is `{tn}`.")
    parts.append(f"`{tn}` teacher: mIoU {t['miou']:.4f} (5 classes {miou5(t):.4f}); target >= 0.65: "
                 f"{yes(t['miou'] >= 0.65)}.")
    if old:
        oveg = old["per_class"]["Vegetation"]["iou"]
        parts.append(f"Vegetation IoU {veg:.4f} against {oveg:.4f} for the classic teacher "
                     f"(target: at least double, {yes(veg >= 2 * oveg)}; {veg / oveg:.2f} x"
                     + ("; doubling cannot happen on this split, where the classic teacher already has more than 0.5"
                        if 2 * oveg > 1 else "") + ").")
    hist = tm["history"]
    if tm["config"]["config"].get("init"):
        first = tm["init_config"]["config"] if tm["init_config"] else None
        parts.append(f"`{tn}` is `{Path(tm['config']['config']['init']).parent.name}`"
                     + (f" ({first['epochs']} epochs on {first['patch_size']} px crops)" if first else "")
                     + f" fine-tuned for {len(hist)} epochs on {tm['config']['config']['patch_size']} px crops.")
    elif hist:
        best = max(range(len(hist)), key=lambda i: float(hist[i]["val_miou"]))
        parts.append(f"The teacher's best validation epoch is {best + 1} of {len(hist)}"
                     + (" (the last: it had not converged in this budget)" if best == len(hist) - 1 else "")
                     + f"; its training mIoU at the end was {float(hist[-1]['miou']):.3f}.")
    small = [m for m in ms if m["name"] not in TEACHERS and art(m, "tflite_int8")["bytes"] < 100 * 1024]
    if small:
        b = max(small, key=val_score)  # chosen on validation, like the packaged default
        arch = b["config"]["config"]["model"]
        same = [m for m in ms if m is not b and m["config"]["config"]["model"] == arch
                and m["teacher"] in (None, *PRETRAINED_TEACHERS) and (m["teacher"] is None) != (b["teacher"] is None)]
        def epochs(m):  # the budget, and crop options that differ from the defaults
            changes = " ".join(recipe_changes(m["config"]["config"]))
            return f"{m['config']['config']['epochs']} epochs" + (f", `{changes}`" if changes else "")

        pair = [b, *same]
        beats = all(d["eval"]["miou"] > sc["eval"]["miou"] for d in pair if d["teacher"] for sc in pair if not sc["teacher"])
        parts.append(f"Best student with an int8 file under 100 KB: `{b['name']}` "
                     f"({art(b, 'tflite_int8')['bytes'] / 1024:.1f} KB, {epochs(b)}; "
                     f"{'distilled' if b['teacher'] else 'no teacher'}), mIoU {b['eval']['miou']:.4f} = "
                     f"{b['eval']['miou'] / t['miou']:.3f} x the teacher (target >= 0.95: "
                     f"{yes(b['eval']['miou'] >= 0.95 * t['miou'])})"
                     + "".join(f"; `{o['name']}` ({epochs(o)}; {'distilled' if o['teacher'] else 'no teacher'}) "
                               f"{o['eval']['miou']:.4f}" for o in same)
                     + (f" (distilled beats scratch: {yes(beats)})" if same else "") + ".")
    if "edge_distilled_lite0" in e:
        ed = e["edge_distilled_lite0"]["eval"]["miou"]
        parts.append(f"`edge` distilled from the pretrained teacher: {ed:.4f} (from the classic teacher: "
                     + (f"{e['edge_distilled']['eval']['miou']:.4f}; better: "
                        f"{yes(ed > e['edge_distilled']['eval']['miou'])})." if "edge_distilled" in e else "n/a)."))
    if tm.get("eval_tta"):
        parts.append(f"With flip TTA (4x the time) the teacher scores {tm['eval_tta']['miou']:.4f}.")
    c = (tm["init_config"] or tm["config"])["config"]  # a fine-tune's recipe is its first run's
    d = next((m["config"]["config"] for m in ms if m["teacher"] in PRETRAINED_TEACHERS), None)
    parts.append(f"The recipe's choices (loss `{c['loss']}`, crop scale {c['scale'][0]}-{c['scale'][1]}, "
                 f"{100 * c['rare_fraction']:.0f} % rare-class crops, photometric jitter {c['photometric']}, "
                 f"{c['lr_schedule']} learning rate"
                 + (f", distillation alpha {d['alpha']} and T {d['temperature']}" if d else "")
                 + ") were first chosen in an experiment outside this repository"
                 + ("; the loss, the crop scale, the rare-class crops and the distillation weighting were then "
                    "measured against alternatives on the validation split (Recipe ablations, below; the jitter and "
                    "the schedule were not)" if ABLATIONS.exists() else "") + "; every run's validation curve is in "
                 "its card.")
    worst = max(ms, key=lambda m: m["eval"]["miou"] - m["eval_int8"]["miou"])
    gap = 100 * (worst["eval"]["miou"] - worst["eval_int8"]["miou"])
    fixed = worst.get("eval_int8_fixed")
    parts.append(f"int8 files within 1 point of their float models: {yes(gap <= 1.0)} (largest loss {gap:.2f} points, "
                 f"`{worst['name']}`, whole image"
                 + (f"; its fixed-size int8 file in tiles loses {100 * (worst['eval']['miou'] - fixed['miou']):.2f}"
                    if fixed else "") + ").")
    if any("**no**" in part for part in parts):
        parts.append("What was tried for the targets marked **no** is in "
                     "[docs/recipe.md](../docs/recipe.md#targets-the-data-refuses).")
    return " ".join(parts)


def val_score(m) -> float:
    """mIoU on the validation split's whole images (``evaluate_val.json``), else the run's best
    validation-patch mIoU: what shipped models are compared on."""
    return m["eval_val"]["miou"] if m.get("eval_val") else best_val_miou(m)


def best_val_miou(m) -> float:
    """A run's best validation mIoU (from its history): what choices between runs are made on."""
    return max((float(h["val_miou"]) for h in m["history"]), default=float("nan"))


def fast_edge_headline(ms, bench) -> str:
    """The fast edge student against `edge` (from the same teacher) on accuracy, size and speed."""
    e = {m["name"]: m for m in ms}
    fast = [m for m in ms if m["config"]["config"]["model"] == "fast_edge"]
    edge = e.get("edge_distilled_lite0")
    if not fast or not edge:
        return ""
    rows = int8_rows(bench)
    best = max(fast, key=val_score)

    def describe(m):
        r = rows.get(m["name"], {})
        speed = (f", whole image {r['whole_image_s']:.3f} s = {r['whole_image_x_limit']:.1f}x its MAC limit"
                 if "whole_image_s" in r else "")
        return (f"mIoU {m['eval']['miou']:.4f} (int8 {m['eval_int8']['miou']:.4f}), int8 file "
                f"{art(m, 'tflite_int8')['bytes'] / 1024:.1f} KB{speed}")

    fr, er = rows.get(best["name"], {}), rows.get(edge["name"], {})
    wins = {"accuracy": best["eval"]["miou"] > edge["eval"]["miou"],
            "int8 accuracy": best["eval_int8"]["miou"] > edge["eval_int8"]["miou"],
            "size": art(best, "tflite_int8")["bytes"] < art(edge, "tflite_int8")["bytes"],
            "speed": fr["whole_image_s"] < er["whole_image_s"] if "whole_image_s" in fr and "whole_image_s" in er
            else None}
    others = "; ".join(f"`{m['name']}` {m['eval']['miou']:.4f} (validation {val_score(m):.4f})"
                       for m in fast if m is not best)
    return (f"**Fast edge student (test split, whole images).** `{best['name']}` (the `fast_edge` run chosen on "
            f"validation: {val_score(best):.4f}): {describe(best)}; `edge` (`edge_distilled_lite0`): {describe(edge)}. Better than `edge` on "
            + ", ".join(f"{k} {'not measured' if v is None else 'yes' if v else '**no**'}" for k, v in wins.items())
            + (" (so it does not replace `edge`, which stays in the zoo)" if not all(wins.values()) else "")
            + (f". Other `fast_edge` runs: {others}" if others else "") + ".")


def ablation_table() -> str:
    """The recipe ablations (``benchmarks/ablations.py``) as a table against the recipe's run."""
    if not ABLATIONS.exists():
        return ""
    doc = json.loads(ABLATIONS.read_text())
    runs = doc["runs"]
    base = next((r for r in runs if r["name"] == "recipe"), None)
    classes = list(runs[0]["val_iou"])
    seeds = [r for r in runs if r["name"] in doc.get("seed_runs", [])]
    if len(seeds) > 1:
        vals = [r["val_miou"] for r in seeds]
        spread = (f"One run per variant (seed 42). The recipe under {len(seeds)} training seeds on the same split "
                  f"scores {', '.join(f'{v:.4f}' for v in vals)}: {100 * (max(vals) - min(vals)):.2f} points apart by "
                  "chance alone, so a variant that differs from the recipe by less than that is a tie.")
    else:
        spread = ("One run per variant (seed 42); the spread between seeds was not measured, so read differences "
                  "of a few tenths of a point as ties.")
    lines = ["## Recipe ablations (validation split)", "",
             f"{doc['what']}; from `{doc['command']}` (`ablations.json`). {spread}", "",
             "| variant | change | val mIoU | vs recipe (pt) | " + " | ".join(classes) + " | best epoch |",
             "|---|---|---:|---:|" + "---:|" * len(classes) + "---:|"]
    for r in runs:
        delta = "" if base is None or r is base else f"{100 * (r['val_miou'] - base['val_miou']):+.2f}"
        lines.append(f"| `{r['name']}` | {r['change']} | {r['val_miou']:.4f} | {delta} | "
                     + " | ".join(f"{r['val_iou'][c]:.3f}" for c in classes) + f" | {r['best_epoch']} of {r['epochs']} |")
    weights = next((r["class_weights"] for r in runs if r.get("class_weights")), None)
    if weights:
        lines += ["", "Balanced class weights (training masks; order of the class table): "
                  + ", ".join(f"{w:g}" for w in weights) + "."]
    return "\n".join(lines) + "\n"


def int8_seconds(bench, name) -> float | None:
    row = int8_rows(bench).get(name) or {}
    return row.get("whole_image_s", row.get("tiled_s"))


def write_index(ms, bench) -> list[dict]:
    """exported_models/index.json: what is shipped, in a form programs can read."""
    rows = []
    for m in ms:
        task = m["task"]
        rows.append({"name": m["name"], "role": "teacher" if m["name"] in TEACHERS else "student",
                     "teacher": m["teacher"], "architecture": m["config"]["config"]["model"],
                     "keras": f"{m['name']}/model.keras", "int8": f"{m['name']}/model_int8.tflite",
                     "int8_bytes": art(m, "tflite_int8")["bytes"], "val_miou": val_score(m),
                     "test_miou": m["eval"]["miou"],
                     "test_miou_without_unlabeled": miou5(m["eval"]),
                     "test_miou_int8": m["eval_int8"]["miou"],
                     "test_miou_int8_interval": (m["eval_int8"].get("interval") or {}).get("miou"),
                     "test_images": m["eval_int8"]["images"],
                     "int8_seconds_per_image": int8_seconds(bench, m["name"]),
                     "task": TASKS[task]["title"], "score": TASKS[task]["score"],
                     "test_score_int8": score(m["eval_int8"], task),
                     "test_score_int8_interval": score_interval(m["eval_int8"], task),
                     "val_score": val_task_score(m, task),
                     "classes": list(m["eval_int8"]["per_class"]),
                     "pick": PICK.get(m["name"], "")})
    for title in {r["task"] for r in rows}:
        best = choose_default([r for r in rows if r["task"] == title])
        for r in rows:
            if r["task"] == title:
                r["default_for_task"] = r["name"] == best
    return rows


def val_task_score(m, task: str) -> float:
    """A task's headline score on the validation split's whole images: what choices are made on."""
    return score(m["eval_val"], task) if m.get("eval_val") else best_val_miou(m)


def choose_default(rows) -> str:
    """The default model of a task: the shipped student whose int8 file is under 100 KB that is
    best on the validation split (never chosen on test); a task with no such student yet has its
    best model on validation."""
    small = [r for r in rows if r["role"] == "student" and r["int8_bytes"] < 100 * 1024]
    return max(small or rows, key=lambda r: r["val_score"])["name"]


def zoo_table(rows) -> str:
    """README's table of the shipped models: what to pick, from index.json."""
    lines = ["| model | task | test score, int8 (95 % interval) | int8 KB | s / image | pick it for |",
             "|---|---|---|---:|---:|---|"]
    for r in rows:
        if not r["pick"]:
            continue
        ci = r["test_score_int8_interval"]
        sec = r["int8_seconds_per_image"]
        lines.append(f"| `{r['name']}` | {r['task']} | {r['score']} {r['test_score_int8']:.3f}"
                     + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "") + f" | {r['int8_bytes'] / 1024:.1f} | "
                     + (f"{sec:.2f}" if sec else "n/a") + f" | {r['pick']} |")
    return "\n".join(lines)


def planned(files: dict[Path, bytes], dry_run: bool) -> None:
    """Write each file atomically, or only say which would change."""
    from satseg.atomic import atomic_write

    for path, data in files.items():
        old = path.read_bytes() if path.exists() else None
        state = "unchanged" if old == data else "new" if old is None else "changed"
        print(f"{'would write' if dry_run and state != 'unchanged' else state:>11}  {path.relative_to(ROOT)}")
        if not dry_run and state != "unchanged":
            atomic_write(path, lambda p, d=data: p.write_bytes(d))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="say which files would change; write nothing")
    args = ap.parse_args(argv)
    ms = [load(n) for n in ORDER if (MODELS / n / "report.json").exists()]
    if not ms:
        sys.exit(f"model_cards: error: {MODELS}: no shipped model (no */report.json)")
    bench = json.loads((MODELS / "bench.json").read_text()) if (MODELS / "bench.json").exists() else None
    teacher_eval = {m["name"]: m["eval"] for m in ms if m["name"] in TEACHERS}
    rows = write_index(ms, bench)
    default = choose_default([r for r in rows if r["task"] == TASKS["dubai"]["title"]])
    dubai = [m for m in ms if m["task"] == "dubai"]
    table = results_table(dubai, bench)
    heads = [h for h in (pretrained_headline(dubai), fast_edge_headline(dubai, bench), headline(dubai)) if h]
    note = (f"The default model of `satseg predict` and `satseg evaluate` (packaged in `satseg/default_model/`) is "
            f"`{default}`: of the shipped students whose int8 file is under 100 KB, the best on the validation "
            "split. Each task has its own default the same way (`satseg models` marks it; `index.json`: "
            "`default_for_task`): " + ", ".join(f"{r['task']}: `{r['name']}`" for r in rows if r["default_for_task"])
            + ".")
    ablations = ablation_table()
    doc = ["# Shipped models", "",
           "Trained on the real Dubai dataset (`../shared/data/dubai`) and measured on its test split: whole images "
           "that no training run saw. Generated by `python tools/model_cards.py` from the files in this folder; "
           "`index.json` lists them for programs.", ""] + sum(([h, ""] for h in heads), []) + [note, "", table, ""] \
        + ([ablations] if ablations else []) + [card(m, teacher_eval) for m in ms]
    speed_on = (f"`satseg bench`, one {bench['image_size'][1]}x{bench['image_size'][0]} (width x height) image, {bench['threads']} "
                "CPU threads" if bench else "no bench.json")
    readme = fill((ROOT / "README.md").read_text(), "zoo", zoo_table(rows) + (
        "\n\nGenerated by `python tools/model_cards.py` from `exported_models/` (int8 files, whole images of each "
        "task's test split: " + "; ".join(
            f"{t['title']}: {t['score']} on {t['test']}, {n} images"
            for t in TASKS.values() for n in sorted({r['test_images'] for r in rows if r['task'] == t['title']}))
        + f"; the interval is a bootstrap over those images; s / image: {speed_on}). Imagery unlike the training "
        "data scores lower. All models and their cards: [exported_models/README.md](exported_models/README.md)."))
    speed = (ROOT / "docs" / "speed.md").read_text()
    if bench:
        for key, body in bench_tables(bench).items():
            speed = fill(speed, f"bench:{key}", body)
    for name in STAGE_TIMES:
        speed = fill(speed, name, stage_table(name))
    speed = fill(speed, "serving_variants", variants_table())
    recipe = (ROOT / "docs" / "recipe.md").read_text()
    recipe = fill(fill(recipe, "training", training_table(dubai)), "ablations", ablation_table().split("\n", 2)[2].strip())
    your_data = (ROOT / "docs" / "your-data.md").read_text()
    walk = json_in(MODELS / "hotosm_walkthrough.json")
    for key, body in (walkthrough_blocks(walk) if walk else {}).items():
        your_data = fill(your_data, key, body)
    large = json_in(MODELS / "train_large_scene.json")
    if large:
        your_data = fill(your_data, "large_scene", large_scene_block(large))
    cli_doc = (ROOT / "docs" / "command-line.md").read_text()
    mem = json_in(MODELS / "predict_memory.json")
    if mem:
        cli_doc = fill(cli_doc, "memory", memory_block(mem))
    to_map = (ROOT / "docs" / "to-a-map.md").read_text()
    vector_runs = [json_in(p) for p in sorted(MODELS.glob("predict_memory_vector*.json"))]
    if vector_runs:
        to_map = fill(to_map, "vector_memory", vector_memory_block(vector_runs, (mem or {}).get("full_install")))
    best = next(r for r in rows if r["name"] == default)
    dest = ROOT / "satseg" / "default_model"
    planned({MODELS / "README.md": "\n".join(doc).encode(),
             MODELS / "index.json": (json.dumps(rows, indent=2) + "\n").encode(),
             ROOT / "README.md": readme.encode(),
             ROOT / "docs" / "speed.md": speed.encode(),
             ROOT / "docs" / "command-line.md": cli_doc.encode(),
             ROOT / "docs" / "recipe.md": recipe.encode(),
             ROOT / "docs" / "your-data.md": your_data.encode(),
             ROOT / "docs" / "to-a-map.md": to_map.encode(),
             dest / "model_int8.tflite": (MODELS / best["int8"]).read_bytes(),
             dest / "model_int8.satseg.json": (MODELS / best["int8"].replace(".tflite", ".satseg.json")).read_bytes(),
             dest / "SOURCE": (default + "\n").encode()}, args.dry_run)


if __name__ == "__main__":
    main()
