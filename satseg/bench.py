"""Side-by-side measurements in one process: inference (Keras and LiteRT), tiled whole-image
prediction, training steps, and the machine's matmul limit. Medians after warm-up; every
latency is also given as a ratio to a named baseline and to its physical lower bound."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_macs_per_second(n: int = 1024, repeats: int = 5) -> float:
    """Measured float32 GEMM throughput of this machine (multiply-accumulates per second)."""
    a = np.random.default_rng(0).random((n, n), np.float32)
    b = np.random.default_rng(1).random((n, n), np.float32)
    return n ** 3 / median_seconds(lambda: a @ b, repeats)


def _shipped(models_dir: Path) -> list[tuple[str, Path]]:
    return sorted((d.name, d) for d in models_dir.iterdir() if (d / "model.keras").exists()) if models_dir.is_dir() else []


def _quick_models(tmp: Path, patch: int):
    """Random-weight zoo models exported on the fly (for --quick without shipped models)."""
    from satseg.classes import ModelSpec, save_spec
    from satseg.export import convert_tflite, with_probs_head
    from satseg.models import build_model

    out = []
    calib = np.random.default_rng(0).random((4, patch, patch, 3)).astype(np.float32)
    for name in ("student", "edge"):
        d = tmp / name
        d.mkdir(parents=True, exist_ok=True)
        m = build_model(name, (patch, patch, 3), seed=0)
        m.save(d / "model.keras")
        spec = ModelSpec(patch_size=patch, architecture=name)
        save_spec(spec, d / "model.satseg.json")
        for kind in ("tflite_float32", "tflite_int8"):
            p = d / f"model_{kind.split('_')[1]}.tflite"
            p.write_bytes(convert_tflite(with_probs_head(m), kind, calib))
            save_spec(spec, p.with_name(p.stem + ".satseg.json"))
        out.append((name, d))
    return out


def run_bench(models_dir="exported_models", quick: bool = False, repeats: int | None = None,
              baseline: str | None = None, image_size=(1479, 2149), train_batch: int = 16, log=print) -> dict:
    import keras
    import tensorflow as tf

    from satseg.classes import load_spec
    from satseg.edge import EdgeModel, predict_tiled
    from satseg.models import model_stats

    repeats = repeats or (3 if quick else 20)
    models = _shipped(Path(models_dir))
    tmp = None
    if quick or not models:
        import tempfile

        tmp = tempfile.TemporaryDirectory()
        models = _quick_models(Path(tmp.name), 64)
        image_size, train_batch = (150, 200), 2
    threads = os.cpu_count()
    mac_rate = matmul_macs_per_second(512 if quick else 1024)
    log(f"matmul throughput: {mac_rate / 1e9:.1f} GMAC/s ({threads} threads)")
    rows = []
    for name, d in models:
        keras_model = keras.saving.load_model(d / "model.keras", compile=False)
        spec = load_spec(d / "model.keras")
        p = spec.patch_size
        stats = model_stats(keras_model)
        x = np.random.default_rng(0).random((1, p, p, spec.bands)).astype(np.float32)
        fn = tf.function(lambda t, m=keras_model: m(t, training=False))
        sec = median_seconds(lambda fn=fn, x=x: fn(x).numpy(), repeats)
        rows.append({"model": name, "runtime": "keras", "ms_per_patch": 1e3 * sec, "macs": stats["macs"]})
        for f in sorted(d.glob("model_*.tflite")):
            kind = f.stem.replace("model_", "")
            if kind == "dynamic":
                continue
            em = EdgeModel(f, num_threads=threads)
            sec = median_seconds(lambda em=em, x=x: em.predict_patches(x), repeats)
            row = {"model": name, "runtime": f"litert_{kind}", "ms_per_patch": 1e3 * sec, "macs": stats["macs"],
                   "bytes": f.stat().st_size}
            if kind == "int8" or quick:
                img = np.random.default_rng(1).integers(0, 256, (*image_size, spec.bands)).astype(np.uint8)
                row["whole_image_s"] = median_seconds(lambda em=em, img=img: predict_tiled(img, em.predict_patches, em.spec),
                                                      1 if not quick else 1, warmup=0)
            rows.append(row)
        log(f"  {name}: " + ", ".join(f"{r['runtime']} {r['ms_per_patch']:.1f} ms" for r in rows if r["model"] == name))
    for r in rows:
        r["limit_ms"] = 1e3 * r["macs"] / mac_rate
        r["x_limit"] = r["ms_per_patch"] / r["limit_ms"] if r["limit_ms"] else None
    base_key = baseline or next((f"{r['model']}/{r['runtime']}" for r in rows if r["model"].startswith("teacher")
                                 and r["runtime"] == "keras"), f"{rows[0]['model']}/{rows[0]['runtime']}")
    base = next((r for r in rows if f"{r['model']}/{r['runtime']}" == base_key), rows[0])
    for r in rows:
        r["speedup_vs_baseline"] = base["ms_per_patch"] / r["ms_per_patch"]
    training = bench_training(quick, train_batch, repeats=3 if quick else 5, log=log)
    if tmp is not None:
        tmp.cleanup()
    return {"threads": threads, "matmul_gmacs": mac_rate / 1e9, "baseline": base_key, "repeats": repeats,
            "image_size": list(image_size), "inference": rows, "training": training, "quick": quick}


def bench_training(quick: bool, batch: int, repeats: int, log=print) -> list[dict]:
    """Seconds per train step: teacher, scratch student, online and offline distillation."""
    import keras
    import tensorflow as tf

    from satseg.distill import Distiller
    from satseg.losses import CrossEntropy
    from satseg.models import build_model
    from satseg.trainer import SegmentationTrainer

    p = 64 if quick else 256
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, p, p, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 6, (batch, p, p)).astype(np.int32))
    teacher = build_model("teacher", (p, p, 3), seed=0)
    t_logits = tf.constant(np.asarray(teacher(x, training=False)).astype(np.float32))
    out = []
    cases = [("teacher", lambda: SegmentationTrainer(build_model("teacher", (p, p, 3), seed=0)), False),
             ("student_scratch", lambda: SegmentationTrainer(build_model("student", (p, p, 3), seed=0)), False),
             ("student_distill_online", lambda: Distiller(build_model("student", (p, p, 3), seed=0), teacher), False),
             ("student_distill_offline", lambda: Distiller(build_model("student", (p, p, 3), seed=0)), True)]
    for name, make, offline in cases:
        tr = make()
        tr.compile(keras.optimizers.Adam(), student_loss=CrossEntropy())
        step = tf.function(tr.train_step)
        data = (x, {"labels": y, "teacher_logits": t_logits}) if offline else (x, y)
        sec = median_seconds(lambda step=step, data=data: step(data)["loss"].numpy(), repeats)
        out.append({"step": name, "batch": batch, "patch": p, "seconds_per_step": sec})
        log(f"  train step {name}: {sec:.3f} s (batch {batch}, {p}px)")
    base = out[1]["seconds_per_step"]
    for r in out:
        r["x_student_scratch"] = r["seconds_per_step"] / base
    return out


def format_bench(r: dict) -> str:
    lines = [f"matmul limit: {r['matmul_gmacs']:.1f} GMAC/s on {r['threads']} threads; baseline {r['baseline']}; "
             f"medians of {r['repeats']} after warm-up", "",
             f"{'model':<20}{'runtime':<17}{'ms/patch':>9}{'x baseline':>11}{'limit ms':>10}{'x limit':>9}{'image s':>9}"]
    for x in r["inference"]:
        img = f"{x['whole_image_s']:.2f}" if "whole_image_s" in x else ""
        lines.append(f"{x['model']:<20}{x['runtime']:<17}{x['ms_per_patch']:>9.2f}{x['speedup_vs_baseline']:>10.1f}x"
                     f"{x['limit_ms']:>10.2f}{x['x_limit'] or 0:>8.1f}x{img:>9}")
    lines += ["", f"{'train step':<26}{'s/step':>8}{'x scratch':>10}"]
    for t in r["training"]:
        lines.append(f"{t['step']:<26}{t['seconds_per_step']:>8.3f}{t['x_student_scratch']:>9.2f}x")
    return "\n".join(lines)
