"""Side-by-side measurements in one process: inference (Keras and LiteRT), tiled whole-image
prediction, training steps, and the machine's matmul limit. Medians after warm-up; every
latency is also given as a ratio to a named baseline and to its physical lower bound."""

from __future__ import annotations

import functools
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


def litert_gemm_macs_per_second(kind: str, threads: int, size: int = 96, channels: int = 512,
                                repeats: int = 5) -> float:
    """Measured GEMM throughput of LiteRT through XNNPACK, float32 or int8: one 1x1 convolution
    (a (size*size, channels) x (channels, channels) matrix product), the kernel that the int8
    models' convolutions run on. The int8 models' limit: the float32 numpy rate is no bound for them."""
    import keras

    from satseg.export import convert_tflite

    x = keras.Input((size, size, channels))
    gemm = keras.Model(x, keras.layers.Conv2D(channels, 1, use_bias=False)(x))
    rng = np.random.default_rng(0)
    calib = [rng.uniform(-1, 1, (size, size, channels)).astype(np.float32) for _ in range(2)]
    flat = convert_tflite(gemm, kind, calib if kind == "tflite_int8" else None, int8_io=kind == "tflite_int8")
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=flat, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    return size * size * channels * channels / median_seconds(it.invoke, repeats)


def _shipped(models_dir: Path) -> list[tuple[str, Path]]:
    return sorted((d.name, d) for d in models_dir.iterdir() if (d / "model.keras").exists()) if models_dir.is_dir() else []


def _quick_models(tmp: Path, patch: int):
    """Random-weight zoo models exported on the fly (for --quick without shipped models)."""
    from satseg.classes import ModelSpec, save_spec
    from satseg.export import convert_tflite, make_graphs
    from satseg.models import build_model

    out = []
    calib = list(np.random.default_rng(0).uniform(0, 255, (4, patch, patch, 3)).astype(np.float32))
    norm = {"mean": [128.0] * 3, "std": [64.0] * 3}
    for name in ("student", "edge"):
        d = tmp / name
        d.mkdir(parents=True, exist_ok=True)
        whole = name == "edge"  # normalised inside: whole-image files, as `export` makes them
        m = build_model(name, (patch, patch, 3), seed=0, normalization=norm if whole else None)
        m.save(d / "model.keras")
        spec = ModelSpec(patch_size=patch, architecture=name,
                         normalization={"kind": "in_model", **norm} if whole else {"kind": "minmax"})
        save_spec(spec, d / "model.satseg.json")
        graphs = make_graphs(m, spec)
        for kind in ("tflite_float32", "tflite_int8"):
            p = d / f"model_{kind.split('_')[1]}.tflite"
            graph, whole_spec = graphs.for_format(kind)
            p.write_bytes(convert_tflite(graph, kind, calib if whole else [c / 255 for c in calib],
                                         uint8_pixels=whole and kind == "tflite_int8"))
            save_spec(whole_spec or spec, p.with_name(p.stem + ".satseg.json"))
        out.append((name, d))
    return out


def run_bench(models_dir="exported_models", quick: bool = False, repeats: int | None = None,
              baseline: str | None = None, image_size=(1479, 2149), train_batch: int = 16, log=print,
              scene_size: int | None = None) -> dict:
    """Everything side by side; ``scene_size``: the large scene of the memory row (default 12000,
    none with ``quick``; 0 skips it)."""
    import keras
    import tensorflow as tf

    from satseg.classes import load_spec
    from satseg.edge import EdgeModel
    from satseg.models import model_stats

    repeats = repeats or (3 if quick else 20)
    models = _shipped(Path(models_dir))
    tmp = None
    if quick or not models:
        import tempfile

        tmp = tempfile.TemporaryDirectory()
        models = _quick_models(Path(tmp.name), 64)
        image_size, train_batch = (150, 200), 2
    from satseg.roofline import machine_info, machine_line, memory_bandwidth

    threads = os.cpu_count()
    machine = machine_info()
    log(f"machine: {machine_line(machine)}")
    mac_rate = matmul_macs_per_second(512 if quick else 1024)
    int8_rate = litert_gemm_macs_per_second("tflite_int8", threads, size=48 if quick else 96)
    bandwidth = memory_bandwidth(64 if quick else 256)
    log(f"matmul throughput: {mac_rate / 1e9:.1f} GMAC/s float32 (numpy), {int8_rate / 1e9:.1f} GMAC/s int8 "
        f"(LiteRT GEMM) ({threads} threads); memory {bandwidth / 1e9:.1f} GB/s (copy)")
    why = "--quick" if quick else f"no shipped models in {models_dir}"
    log(f"models: random-weight 64 px stand-ins ({why})" if tmp is not None else f"models: shipped, from {models_dir}")
    rows = []
    for name, d in models:
        keras_model = keras.saving.load_model(d / "model.keras", compile=False)
        spec = load_spec(d / "model.keras")
        p = spec.patch_size
        stats = model_stats(keras_model, p)  # MACs of the patch timed (and scaled to whole images)
        x = np.random.default_rng(0).random((1, p, p, spec.bands)).astype(np.float32)
        fn = tf.function(lambda t, m=keras_model: m(t, training=False))
        sec = median_seconds(lambda fn=fn, x=x: fn(x).numpy(), repeats)
        rows.append({"model": name, "runtime": "keras", "ms_per_patch": 1e3 * sec, "macs": stats["macs"], "patch": p})
        for f in sorted(d.glob("model_*.tflite")):
            kind = f.stem.replace("model_", "")
            if kind == "dynamic":
                continue
            em = EdgeModel(f, num_threads=threads)
            row = {"model": name, "runtime": f"litert_{kind}", "macs": served_macs(f, (p, p)), "keras_macs": stats["macs"],
                   "bytes": f.stat().st_size, "whole_image": em.whole_image, "patch": p, "file": f}
            if em.whole_image:
                xu = (255 * x[0]).astype(np.uint8)
                sec = median_seconds(lambda em=em, xu=xu: em.run_window(xu), repeats)
            else:
                sec = median_seconds(lambda em=em, x=x: em.predict_patches(x), repeats)
            row["ms_per_patch"] = 1e3 * sec
            if kind.startswith("int8") or quick:
                row.update(whole_image_seconds(em, image_size, spec.bands, 1 if quick else 3))
                row["image_macs"] = (served_macs(f, padded(image_size, em.spec.stride)) if em.whole_image
                                     else row["macs"] * tile_count(image_size, p))
            rows.append(row)
        log(f"  {name}: " + ", ".join(f"{r['runtime']} {r['ms_per_patch']:.1f} ms" for r in rows if r["model"] == name))
    for r in rows:
        rate = int8_rate if r["runtime"].startswith(("litert_int8", "litert_edgetpu")) else mac_rate
        r["limit"] = "int8 GEMM" if rate is int8_rate else "float32 matmul"
        r["limit_ms"] = 1e3 * r["macs"] / rate
        for key in ("whole_image_s", "tiled_s", "windowed_s"):
            if key in r:  # the served graph's MACs at the timed size (all tiles, for tiled files)
                r[key.replace("_s", "_x_limit")] = r[key] / (r["image_macs"] / rate)
        r["x_limit"] = r["ms_per_patch"] / r["limit_ms"] if r["limit_ms"] else None
    roof = rooflines(rows, image_size, int8_rate, bandwidth)
    for r in rows:
        r.pop("file", None)
    base_key = baseline or next((f"{r['model']}/{r['runtime']}" for r in rows if r["model"].startswith("teacher")
                                 and r["runtime"] == "keras"), f"{rows[0]['model']}/{rows[0]['runtime']}")
    base = next((r for r in rows if f"{r['model']}/{r['runtime']}" == base_key), rows[0])
    for r in rows:
        r["speedup_vs_baseline"] = base["ms_per_patch"] / r["ms_per_patch"]
    scene_size = (0 if quick else 12000) if scene_size is None else scene_size
    scene = scene_memory(scene_size) if scene_size else None
    if scene:
        log(f"  scene {scene_size}x{scene_size}: peak {scene['peak_gb']} GB in {scene['seconds']} s")
    folder = bench_folder(models, quick, log=log)
    training = bench_training(quick, train_batch, repeats=3 if quick else 5, log=log)
    if tmp is not None:
        tmp.cleanup()
    return {"machine": machine, "threads": threads, "matmul_gmacs": mac_rate / 1e9, "int8_gemm_gmacs": int8_rate / 1e9,
            "memory_gbps": bandwidth / 1e9, "roofline": roof,
            "models": "random-weight stand-ins" if tmp is not None else "shipped", "baseline": base_key, "repeats": repeats,
            "image_size": list(image_size), "inference": rows, "folder": folder, "scene": scene, "training": training, "quick": quick}


@functools.lru_cache(maxsize=64)
def _layer_costs(path: str, hw: tuple) -> tuple:
    """Each file's layer costs at a size, read once per bench (the limit and the roofline both need them)."""
    from satseg.roofline import layer_costs

    return tuple(layer_costs(path, hw))


def served_macs(path, hw) -> int:
    """Multiply-accumulates of the LiteRT graph itself at input size ``hw`` (a fixed-size file: its own)."""
    return sum(c["macs"] for c in _layer_costs(str(path), tuple(hw)))


def padded(hw, stride: int) -> tuple[int, int]:
    """The size a whole-image file runs an image at: each side padded up to the stride."""
    return tuple(-(-v // stride) * stride for v in hw)


def tile_count(image_size, patch: int) -> int:
    from satseg.imaging import tile_starts

    step = patch - patch // 4
    return len(tile_starts(image_size[0], patch, step)) * len(tile_starts(image_size[1], patch, step))


def rooflines(rows, image_size, int8_rate: float, bandwidth: float, top: int = 8) -> list[dict]:
    """The per-layer roofline of the whole-image int8 files at ``image_size``: the packaged default
    and the fastest one (compute roof: the measured int8 GEMM rate; memory roof: the measured copy
    bandwidth), with the measured full-frame time against the sum of the layers' bounds."""
    from satseg.edge import SHIPPED_MODEL
    from satseg.roofline import roofline

    whole = [r for r in rows if r["runtime"] == "litert_int8" and "whole_image_s" in r]
    if not whole:
        return []
    default = next((r for r in whole if Path(r["file"]).read_bytes() == SHIPPED_MODEL.read_bytes()), None)
    picks = [r for r in (default, min(whole, key=lambda r: r["whole_image_s"])) if r is not None]
    out = []
    for r in {id(r): r for r in picks}.values():
        from satseg.classes import load_spec

        hw = padded(image_size, load_spec(r["file"]).stride)
        rl = roofline(list(_layer_costs(str(r["file"]), tuple(hw))), int8_rate, bandwidth, r["whole_image_s"])
        layers = sorted(rl.pop("layers"), key=lambda x: -x["bound_ms"])
        out.append({"model": r["model"], "default": r is default, "image_size": list(hw), **rl,
                    "top_layers": layers[:top], "layers_counted": len(layers)})
    return out


def whole_image_seconds(em, image_size, bands: int, repeats: int) -> dict:
    """Seconds for one whole random image: in one full-frame call and in ~1 Mpx windows (whole-image
    files), or in blended tiles (fixed-size files)."""
    from satseg.edge import array_windows, predict_ids_tiled, predict_windowed

    img = np.random.default_rng(1).integers(0, 256, (*image_size, bands)).astype(np.uint8)
    if not em.whole_image:
        return {"tiled_s": median_seconds(lambda: predict_ids_tiled(img, em.predict_patches, em.spec), repeats, 1)}
    read = array_windows(img)
    out = {}
    for key, budget in (("whole_image_s", 10 ** 12), ("windowed_s", 1_000_000)):
        out[key] = median_seconds(lambda b=budget: predict_windowed(read, *image_size, em.run_window, em.spec.stride,
                                                                    em.spec.margin, max_pixels=b), repeats, 1)
    return out


_PEAK_REPORTER = (
    "import atexit, sys\n"
    "def report():\n"
    "    with open('/proc/self/status') as f:\n"
    "        hwm = [line.split()[1] for line in f if line.startswith('VmHWM')]\n"
    "    sys.stderr.write(f'\\nSATSEG_VMHWM_KB {hwm[0]}\\n')\n"
    "atexit.register(report)\n"
    "from satseg.cli import main\n"
    "sys.argv[0] = 'satseg'\n"
    "main()\n")
"""Runs the CLI in a child and prints its own high-water RSS at exit: /proc's VmHWM belongs to the
new process image, while ru_maxrss keeps the parent's peak across fork and exec (a bench process
with TensorFlow loaded would report its own 1.9 GB)."""


BLOCK_IMPORTS = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in {blocked!r}:\n"
    "            raise ImportError(f'No module named {{name!r}}')\n"
    "sys.meta_path.insert(0, _Block())\n")
"""Python code (``.format(blocked=(...))``) that makes top-level modules unimportable in a child:
``("rasterio", "tensorflow", "keras")`` is the edge install (``.[cli]``) on a machine that has
everything; the tests use it the same way."""


def scene_memory(size: int, model=None, without: tuple[str, ...] = (), work: Path | None = None,
                 fmt: str = "jpeg", extra: tuple[str, ...] = ()) -> dict:
    """Peak resident memory of ``satseg predict`` on one synthetic ``size`` x ``size`` scene
    (``fmt``: a JPEG, or an uncompressed ``tiff`` that predict reads through a map of the file),
    run in a child process (its VmHWM) that cannot import the modules ``without``, and for a
    whole-image model the agreement of the scene's ids with one full-frame call on a 2048 px crop
    with the model's margin around it. ``work``: keep the scene and its outputs there. ``extra``:
    more predict options (``("--vector", "gpkg")``: the polygons too)."""
    import tempfile

    if work is not None:
        Path(work).mkdir(parents=True, exist_ok=True)
        return _scene_memory(size, model, without, Path(work), fmt, extra)
    with tempfile.TemporaryDirectory() as d:
        return _scene_memory(size, model, without, Path(d), fmt, extra)


def _scene_memory(size: int, model, without: tuple[str, ...], d: Path, fmt: str = "jpeg",
                  extra: tuple[str, ...] = ()) -> dict:
    import subprocess
    import sys

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    small = np.random.default_rng(0).integers(0, 256, (size // 16, size // 16, 3)).astype(np.uint8)
    big = Image.fromarray(small).resize((size, size), Image.BILINEAR)
    scene = d / ("scene.tif" if fmt == "tiff" else "scene.jpg")
    if fmt == "tiff":
        import tifffile

        tifffile.imwrite(scene, np.asarray(big), photometric="rgb")  # uncompressed, contiguous
    else:
        big.save(scene, quality=90)
    del big
    code = (BLOCK_IMPORTS.format(blocked=tuple(without)) if without else "") + _PEAK_REPORTER
    cmd = [sys.executable, "-c", code, "predict", str(scene), "--out", str(d / "out"), "--force", *extra]
    if model:
        cmd += ["--model", str(model)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = r.stderr.strip().splitlines()
    if r.returncode or not lines or not lines[-1].startswith("SATSEG_VMHWM_KB"):
        raise RuntimeError(f"satseg predict failed: {lines[-2:] if lines else r.returncode}")
    peak = int(lines[-1].split()[1]) * 1024
    decoded = size * size * 3
    from satseg.roofline import machine_info, machine_line

    result = {"size": size, "format": fmt, "without": list(without), "options": list(extra),
              "machine": machine_line(machine_info()),
              "peak_bytes": peak, "peak_gb": round(peak / 1e9, 3),
              "decoded_image_gb": round(decoded / 1e9, 3), "peak_over_image": round(peak / decoded, 2),
              "seconds": round(wall, 1)}
    result.update(crop_check(scene, d / "out" / (scene.stem + (".tif" if fmt == "tiff" else ".png")), model))
    return result


def crop_check(scene: Path, out: Path, model_path) -> dict:
    """The scene's ids on a centre crop against one full-frame call on that crop plus its margin."""
    from PIL import Image

    from satseg.edge import EdgeModel, default_model
    from satseg.imaging import RowReader

    em = EdgeModel(default_model(model_path), num_threads=2)
    m, s = em.spec.margin, em.spec.stride
    ids = np.asarray(Image.open(out))
    h, w = ids.shape
    c = min(2048, h - 2 * m, w - 2 * m) // s * s
    if not em.whole_image or c < s:
        return {}
    y0, x0 = (h // 2 - c // 2) // s * s, (w // 2 - c // 2) // s * s
    reader = RowReader(scene)  # the decoder `predict` used
    crop = reader.rows(y0 - m, y0 + c + m)[:, x0 - m:x0 + c + m]
    reader.close()
    full = em.run_window(crop)[m:m + c, m:m + c]
    return {"crop": [y0, x0, c], "crop_agreement": float((full == ids[y0:y0 + c, x0:x0 + c]).mean())}


def bench_folder(models, quick: bool, log=print) -> dict | None:
    """Images per second of `predict` on a folder of 16 scenes with the smallest int8 file:
    ``jobs=1`` with one interpreter thread against all cores (the default); outputs compared."""
    import tempfile

    from PIL import Image

    from satseg.edge import EdgeModel, predict_files

    files = sorted((f.stat().st_size, f) for _, d in models for f in d.glob("model_int8.tflite"))
    if not files:
        return None
    path = files[0][1]
    n, size = (4, (150, 200)) if quick else (16, (1479, 2149))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(2)
        (tmp / "in").mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (*size, 3)).astype(np.uint8)).save(tmp / "in" / f"{i}.png")
        result = {"model": f"{Path(path).parent.name}/{Path(path).name}", "images": n, "image_size": list(size), "cores": os.cpu_count()}
        for label, jobs, threads in (("jobs_1", 1, 1), ("all_cores", os.cpu_count() or 1, None)):
            t0 = time.perf_counter()
            predict_files(EdgeModel(path, num_threads=threads), [tmp / "in"], tmp / label, progress=False, jobs=jobs)
            result[f"{label}_images_per_s"] = n / (time.perf_counter() - t0)
        result["speedup"] = result["all_cores_images_per_s"] / result["jobs_1_images_per_s"]
        result["identical"] = all((tmp / "jobs_1" / f.name).read_bytes() == f.read_bytes()
                                  for f in (tmp / "all_cores").iterdir())
    log(f"  folder of {n}: {result['jobs_1_images_per_s']:.2f} img/s (jobs 1, 1 thread), "
        f"{result['all_cores_images_per_s']:.2f} img/s (all {result['cores']} cores), identical {result['identical']}")
    return result


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
    from satseg.train import TrainConfig

    recipe = TrainConfig()
    for name, make, offline in cases:
        tr = make()
        kw = {"alpha": recipe.alpha, "temperature": recipe.temperature} if isinstance(tr, Distiller) else {}
        tr.compile(keras.optimizers.Adam(), student_loss=CrossEntropy(), **kw)
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
    from satseg.roofline import machine_line

    int8 = f", int8 GEMM limit {r['int8_gemm_gmacs']:.1f} GMAC/s (int8 rows)" if "int8_gemm_gmacs" in r else ""
    lines = ([f"machine: {machine_line(r['machine'])}; memory {r['memory_gbps']:.1f} GB/s (copy)"] if "machine" in r else [])
    lines += [f"matmul limit: {r['matmul_gmacs']:.1f} GMAC/s float32{int8} on {r['threads']} threads; "
             f"models: {r.get('models', 'shipped')}; baseline {r['baseline']}; "
             f"medians of {r['repeats']} after warm-up; whole image {r['image_size'][0]}x{r['image_size'][1]}: "
             "full frame / ~1 Mpx windows (whole-image files) or tiles (fixed-size files), s and x limit", "",
             f"{'model':<22}{'runtime':<20}{'ms/patch':>9}{'x baseline':>11}{'limit ms':>10}{'x limit':>9}"
             f"{'frame s':>9}{'windows s':>10}{'tiles s':>9}{'x limit':>9}"]

    def cell(x, key, width):
        return f"{x[key]:>{width}.3f}" if key in x else " " * width

    for x in r["inference"]:
        lim = x.get("whole_image_x_limit", x.get("tiled_x_limit"))
        lines.append(f"{x['model']:<22}{x['runtime']:<20}{x['ms_per_patch']:>9.2f}{x['speedup_vs_baseline']:>10.1f}x"
                     f"{x['limit_ms']:>10.2f}{x['x_limit'] or 0:>8.1f}x{cell(x, 'whole_image_s', 9)}"
                     f"{cell(x, 'windowed_s', 10)}{cell(x, 'tiled_s', 9)}" + (f"{lim:>8.1f}x" if lim else ""))
    below = [x for x in r["inference"] if (x["x_limit"] or 1) < 1 or min(
        (x[k] for k in ("whole_image_x_limit", "tiled_x_limit") if k in x), default=1) < 1]
    if below:
        lines += ["", f"note: {len(below)} rows run faster than their limit (x limit under 1x): the limit was "
                  "measured lower than these kernels reach (a busy machine, or a kernel faster than the "
                  "reference GEMM); compare such ratios only on an idle machine"]
    f = r.get("folder")
    if f:
        lines += ["", f"folder of {f['images']} images {f['image_size'][0]}x{f['image_size'][1]} ({f['model']}): "
                  f"{f['jobs_1_images_per_s']:.2f} img/s with --jobs 1 (1 thread), {f['all_cores_images_per_s']:.2f} "
                  f"img/s on all {f['cores']} cores = {f['speedup']:.2f}x; outputs identical: {f['identical']}"]
    sc = r.get("scene")
    if sc:
        lines += ["", f"scene {sc['size']}x{sc['size']} JPEG, `satseg predict` with the default model: peak memory "
                  f"{sc['peak_gb']} GB ({sc['peak_over_image']}x the decoded image), {sc['seconds']} s"
                  + (f"; equal to one full-frame call on a {sc['crop'][2]} px crop: {100 * sc['crop_agreement']:.2f} %"
                     if "crop" in sc else "")]
    for rl in r.get("roofline", []):
        lines += ["", f"roofline of {rl['model']} (int8, {rl['image_size'][1]}x{rl['image_size'][0]}): "
                  f"{rl['macs'] / 1e9:.2f} G MACs, {rl['bytes'] / 1e9:.2f} GB moved; layers' bounds sum to "
                  f"{rl['bound_ms']:.1f} ms, measured {rl['measured_ms']:.1f} ms = {rl['x_roofline']:.1f}x",
                  f"  {'op':<20}{'out shape':<22}{'G MACs':>8}{'MB':>8}{'bound ms':>10}  bound"]
        for x in rl["top_layers"]:
            lines.append(f"  {x['op']:<20}{'x'.join(map(str, x['out_shape'][1:])):<22}{x['macs'] / 1e9:>8.3f}"
                         f"{x['bytes'] / 1e6:>8.1f}{x['bound_ms']:>10.2f}  {x['bound']}")
    lines += ["", f"{'train step':<26}{'s/step':>8}{'x scratch':>10}"]
    for t in r["training"]:
        lines.append(f"{t['step']:<26}{t['seconds_per_step']:>8.3f}{t['x_student_scratch']:>9.2f}x")
    return "\n".join(lines)
