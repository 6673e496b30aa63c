"""Seconds per training epoch on real data: teacher, scratch student, online and offline
distillation, side by side in one process (issue: distillation must not waste work).

    python benchmarks/train_epochs.py --data "../shared/data/dubai/Semantic segmentation dataset" \
        --max-patches 320 --out benchmarks/train_epochs.json

Each configuration runs one warm-up epoch (tracing) and then ``--epochs`` timed epochs; the
median is reported. Offline distillation also reports the one-off cost of caching the logits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-patches", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--jit", action="store_true", help="also time XLA jit_compile=True variants")
    ap.add_argument("--out")
    args = ap.parse_args()

    import keras

    from satseg import data as D
    from satseg.distill import Distiller
    from satseg.losses import get_loss
    from satseg.models import build_model
    from satseg.train import predict_logits
    from satseg.trainer import SegmentationTrainer

    ps = D.load_patches(args.data)
    keep = np.sort(np.random.default_rng(0).choice(len(ps), min(args.max_patches, len(ps)), replace=False))
    x, y = ps.images[keep], ps.masks[keep]
    teacher = build_model("teacher", seed=0)
    t0 = time.perf_counter()
    logits = predict_logits(teacher, x, args.batch_size, np.float16)
    cache_s = time.perf_counter() - t0

    def run(name, make, cached=None, jit=False):
        tr = make()
        tr.compile(keras.optimizers.Adam(1e-3), student_loss=get_loss("dice_focal"), jit_compile=jit)
        sampler = D.EpochSampler(x, y, cached, seed=0)
        ds = D.make_tf_dataset(sampler, args.batch_size)
        times = []
        for e in range(args.epochs + 1):
            sampler.epoch = e
            t = time.perf_counter()
            tr.fit(ds, epochs=1, verbose=0, shuffle=False)
            times.append(time.perf_counter() - t)
        row = {"run": name + (" (jit)" if jit else ""), "epoch_s": statistics.median(times[1:]),
               "first_epoch_s": times[0], "patches": len(x), "batch": args.batch_size}
        print(f"{row['run']:<28}{row['epoch_s']:8.1f} s/epoch  (first epoch {row['first_epoch_s']:.1f} s)", flush=True)
        return row

    cases = [("teacher", lambda: SegmentationTrainer(build_model("teacher", seed=1)), None),
             ("student scratch", lambda: SegmentationTrainer(build_model("student", seed=1)), None),
             ("student distill online", lambda: Distiller(build_model("student", seed=1), teacher), None),
             ("student distill offline", lambda: Distiller(build_model("student", seed=1)), logits)]
    rows = [run(*c) for c in cases]
    if args.jit:
        rows += [run(*c, jit=True) for c in cases[1:]]
    base = rows[1]["epoch_s"]
    for r in rows:
        r["x_scratch"] = r["epoch_s"] / base
    result = {"data": args.data, "logit_cache_s": cache_s, "rows": rows}
    print(f"teacher logits cached once in {cache_s:.1f} s for {len(x)} patches")
    for r in rows:
        print(f"  {r['run']:<28}{r['x_scratch']:.2f} x scratch")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
