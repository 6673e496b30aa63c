"""Seconds per training epoch on real data, side by side in one process (issue: distillation must
not waste work; with random crops it must stay within 1.3x of a scratch step).

    python benchmarks/train_epochs.py --data DATA --max-patches 320 --out benchmarks/train_epochs.json
    python benchmarks/train_epochs.py --data DATA --crops --teacher exported_models/lite0_unet_512/model.keras \
        [--student lite0_edge] --out benchmarks/train_epochs_crops.json

Grid mode (the reference): teacher, scratch student, online and offline distillation on fixed
patches. ``--crops`` (the shipped recipe): the student from scratch against the student distilled
from the teacher's logits, cached once per whole training image and cut with every random crop.
Each configuration runs one warm-up epoch (tracing) and then ``--epochs`` timed epochs; the
median is reported, and the one-off cost of caching the logits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from results import run


def time_epochs(name, trainer, sampler, batch_size, epochs, n):
    """Median seconds of ``epochs`` epochs after one warm-up epoch."""
    from satseg import data as D

    ds = D.make_tf_dataset(sampler, batch_size)
    times = []
    for e in range(epochs + 1):
        sampler.epoch = e
        t = time.perf_counter()
        trainer.fit(ds, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - t)
    row = {"run": name, "epoch_s": statistics.median(times[1:]), "first_epoch_s": times[0], "patches": n,
           "batch": batch_size}
    print(f"{row['run']:<28}{row['epoch_s']:8.1f} s/epoch  (first epoch {row['first_epoch_s']:.1f} s)", flush=True)
    return row


def crop_rows(args):
    """The shipped recipe's random crops: scratch against offline distillation (cached whole-image logits)."""
    from satseg.classes import ModelSpec, load_spec
    from satseg.distill import cache_teacher_logits
    from satseg.models import load_model_file
    from satseg.train import TrainConfig, build_trainer, make_datasets, make_strategy, prepare_data

    cfg = TrainConfig(model=args.student, data=args.data, teacher=args.teacher, crops_per_epoch=args.max_patches,
                      **({"batch_size": args.batch_size} if args.batch_size else {}))
    data = prepare_data(cfg, args.data, progress=False)
    spec = ModelSpec(normalization=data.normalization, patch_size=cfg.patch_size, bands=data.bands,
                     architecture=cfg.model)
    teacher = load_model_file(args.teacher, "teacher")
    t0 = time.perf_counter()
    logits = cache_teacher_logits(cfg, [(teacher, load_spec(args.teacher))], data)
    cache_s = time.perf_counter() - t0
    strategy, steps = make_strategy("default"), -(-cfg.crops_per_epoch // cfg.batch_size)

    def sampler(cached):  # the training run's own crop sampler
        return make_datasets(cfg, data, cached)[0]

    rows = [time_epochs(f"{args.student} scratch", build_trainer(cfg, spec, None, False, steps, strategy),
                        sampler(None), cfg.batch_size, args.epochs, cfg.crops_per_epoch),
            time_epochs(f"{args.student} distill offline", build_trainer(cfg, spec, teacher, True, steps, strategy),
                        sampler(logits), cfg.batch_size, args.epochs, cfg.crops_per_epoch)]
    return rows, cache_s, len(data.train)


def grid_rows(args):
    """The reference: teacher, scratch student, online and offline distillation on fixed patches."""
    import keras

    from satseg import data as D
    from satseg.distill import Distiller
    from satseg.inference import predict_logits
    from satseg.losses import get_loss
    from satseg.models import build_model
    from satseg.train import TrainConfig
    from satseg.trainer import SegmentationTrainer

    args.batch_size = args.batch_size or 16
    ps = D.load_patches(args.data)
    keep = np.sort(np.random.default_rng(0).choice(len(ps), min(args.max_patches, len(ps)), replace=False))
    x, y = ps.images[keep], ps.masks[keep]
    teacher = build_model("teacher", seed=0)
    t0 = time.perf_counter()
    logits = predict_logits(teacher, x, args.batch_size, np.float16)
    cache_s = time.perf_counter() - t0

    def run(name, make, cached=None, jit=False):
        tr = make()
        recipe = TrainConfig()
        kw = {"alpha": recipe.alpha, "temperature": recipe.temperature} if isinstance(tr, Distiller) else {}
        tr.compile(keras.optimizers.Adam(1e-3), student_loss=get_loss("dice_focal"), jit_compile=jit, **kw)
        return time_epochs(name + (" (jit)" if jit else ""), tr, D.EpochSampler(x, y, cached, seed=0),
                           args.batch_size, args.epochs, len(x))

    cases = [("teacher", lambda: SegmentationTrainer(build_model("teacher", seed=1)), None),
             ("student scratch", lambda: SegmentationTrainer(build_model("student", seed=1)), None),
             ("student distill online", lambda: Distiller(build_model("student", seed=1), teacher), None),
             ("student distill offline", lambda: Distiller(build_model("student", seed=1)), logits)]
    rows = [run(*c) for c in cases]
    if args.jit:
        rows += [run(*c, jit=True) for c in cases[1:]]
    return rows, cache_s, len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-patches", type=int, default=320, help="patches (grid) or crops per epoch (--crops)")
    ap.add_argument("--batch-size", type=int, help="default: 16 (grid), the recipe's (--crops)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--jit", action="store_true", help="grid mode: also time XLA jit_compile=True variants")
    ap.add_argument("--crops", action="store_true", help="the shipped recipe: random crops, cached whole-image logits")
    ap.add_argument("--teacher", default="exported_models/lite0_unet_512/model.keras", help="--crops: the teacher")
    ap.add_argument("--student", default="lite0_edge", help="--crops: the student")
    ap.add_argument("--out")
    args = ap.parse_args()

    rows, cache_s, n = (crop_rows if args.crops else grid_rows)(args)
    base = next(r for r in rows if "scratch" in r["run"])["epoch_s"]
    for r in rows:
        r["x_scratch"] = r["epoch_s"] / base
    result = {"data": args.data, "mode": "crops" if args.crops else "grid", "logit_cache_s": cache_s, "rows": rows}
    if args.crops:
        result.update(teacher=args.teacher, student=args.student)
    print(f"teacher logits cached once in {cache_s:.1f} s for {n} {'images' if args.crops else 'patches'}")
    for r in rows:
        print(f"  {r['run']:<28}{r['x_scratch']:.2f} x scratch")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    run(main)
