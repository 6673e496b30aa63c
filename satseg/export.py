"""Export a trained model to SavedModel and LiteRT, with a measured size and parity report.

Uses Keras's exporter (``model.export``) for the SavedModel and TensorFlow's ``TFLiteConverter``
for the LiteRT flatbuffers, pinned to built-in ops (the ai-edge-litert wheel has no Flex delegate,
so a graph that would need Flex ops fails here, not on the device). Every exported graph ends in a
softmax head: it outputs per-class probabilities, which the tiled predictor blends.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satseg.classes import ModelSpec, class_names, fixed_file_spec, load_spec, save_spec
from satseg.errors import SatsegError

DEFAULT_FORMATS = ("saved_model", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8",
                   "tflite_int8_fixed")
ACCELERATOR_FORMATS = ("tflite_edgetpu", "tflite_gpu")
"""Opt-in (``--formats``): files whose every op is on one accelerator's list (serving.EDGETPU_OPS,
serving.GPU_OPS): fixed (1, P, P, C) input, int8 logits out for the Edge TPU compiler,
float16 weights and probabilities out for the GPU delegate."""
FORMATS = DEFAULT_FORMATS + ACCELERATOR_FORMATS
FILE_NAMES = {
    "tflite_edgetpu": "model_edgetpu.tflite",
    "tflite_gpu": "model_gpu.tflite",
    "saved_model": "saved_model",
    "tflite_float32": "model_float32.tflite",
    "tflite_float16": "model_float16.tflite",
    "tflite_dynamic": "model_dynamic.tflite",
    "tflite_int8": "model_int8.tflite",
    "tflite_int8_fixed": "model_int8_fixed.tflite",
}
"""For a model with its normalisation inside (``in_model``), the LiteRT files are whole-image
files (any size, raw pixels in, uint8 class ids out; int8: uint8 pixels in) and
``model_int8_fixed.tflite`` is the fixed-size (1, P, P, C) probability file for tiles and TTA.
Otherwise every LiteRT file is a fixed-size probability file."""


def whole_image_capable(spec: ModelSpec) -> bool:
    """Whole-image export needs the normalisation inside the model (not per patch)."""
    return spec.normalization.get("kind") == "in_model"


def with_probs_head(model):
    """The model with a softmax head, for serving (training graphs output logits)."""
    import keras

    out = keras.layers.Softmax(name="probs")(model.output)
    return keras.Model(model.input, out, name=f"{model.name}_probs")


def fixed_batch(model, spec: ModelSpec):
    """The model with a static (1, P, P, bands) input, as the LiteRT files have it."""
    from satseg.models import with_input_size

    return with_input_size(model, spec.patch_size, batch_size=1)


def convert_tflite(model, kind: str, representative=None, int8_io: bool = False, verbose: bool | None = None,
                   uint8_pixels: bool = False) -> bytes:
    """Convert a Keras model (with its head) to a LiteRT flatbuffer of one kind. The converter's
    signature dump ("Saved artifact at ... Captures: ...") is shown only when ``verbose``
    (default: the SATSEG_VERBOSE environment variable, which ``--verbose`` sets)."""
    import contextlib
    import io

    if verbose is None:
        verbose = bool(os.environ.get("SATSEG_VERBOSE"))
    from satseg.quiet import native_stderr_silenced

    out = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with out, native_stderr_silenced(not verbose):
        return _convert(model, kind, representative, int8_io, uint8_pixels)


def _convert(model, kind: str, representative, int8_io: bool, uint8_pixels: bool) -> bytes:
    """``uint8_pixels``: an int8 file whose input is raw uint8 pixels (scale 1, zero point 0);
    ``int8_io``: int8 output, and int8 input unless ``uint8_pixels``."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if kind == "tflite_int8_fixed":
        kind = "tflite_int8"
    if kind == "tflite_float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif kind == "tflite_dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif kind == "tflite_int8":
        if representative is None:
            raise SatsegError("int8 export needs calibration patches (--calibration-data)")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if uint8_pixels:
            representative = with_pixel_range(representative)
        conv.representative_dataset = lambda: ([p[None].astype(np.float32)] for p in representative)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8 if uint8_pixels else tf.int8 if int8_io else tf.float32
        if int8_io:
            conv.inference_output_type = tf.int8
    elif kind != "tflite_float32":
        raise SatsegError(f"unknown LiteRT kind '{kind}'")
    return conv.convert()


def with_pixel_range(patches) -> list:
    """Calibration patches whose first one holds a 0 and a 255 in every band, so the int8 input
    quantisation is exactly scale 1, zero point 0: raw 8-bit pixels go in as they are."""
    first = np.array(patches[0], np.float32, copy=True)
    first[0, 0], first[0, 1] = 0.0, 255.0
    return [first, *patches[1:]]


def keras_file_bytes(model, with_optimizer: bool) -> int:
    """Size of the model's ``.keras`` file, optionally with Adam state (how training saves it)."""
    import keras

    m = keras.models.clone_model(model)
    m.set_weights(model.get_weights())
    if with_optimizer:
        m.compile(optimizer=keras.optimizers.Adam())
        m.optimizer.build(m.trainable_variables)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.keras"
        m.save(p)
        return p.stat().st_size


def tree_bytes(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def calibration_patches(model_path: Path, data: str | None, spec: ModelSpec, n_calib: int, n_parity: int,
                        seed: int = 42):
    """(calibration patches, parity patches, parity masks) from real data.

    Calibration uses training images, parity uses validation images: from the run's
    ``config.json`` when the model sits in a run directory, else a seeded split of ``data``.
    """
    from satseg import data as D
    from satseg.imaging import cut_patches, normalize
    from satseg.run import recorded_data

    split = masks = pairs = None
    record = recorded_data(model_path) if data is None else None
    if record is not None:
        data, split, masks, pairs = record["data_root"], record["split"], record["masks"], record["pairs"]
    if data is None or not Path(data).is_dir():
        raise SatsegError("no calibration data: pass --calibration-data DATASET (the int8 file is "
                          "calibrated, and every file checked, on real patches)")
    samples = D.find_samples(data, masks=masks, pairs=pairs)
    if split:
        rel = {str(s.image.relative_to(data)): i for i, s in enumerate(samples)}
        idx = {k: [rel[r] for r in v if r in rel] for k, v in split.items()}
    else:
        idx = D.image_split(samples, 0.15, 0.15, seed)
    rng = np.random.default_rng(seed)

    def take(ids, n):
        xs, ms = [], []
        for i in rng.permutation(ids):
            if len(xs) >= 4 * n:  # enough to sample from; no need to read every image
                break
            li = D.load_sample(samples[i], spec.seg_classes, spec.bands)
            px, pm = cut_patches(li.image, li.mask, spec.patch_size, "crop")
            xs += [normalize(p, spec.normalization) for p in px]
            ms += list(pm)
        if not xs:
            raise SatsegError(f"{data}: no {spec.patch_size}px patches for calibration")
        pick = rng.choice(len(xs), min(n, len(xs)), replace=False)
        return np.stack([xs[i] for i in pick]), np.stack([ms[i] for i in pick])

    calib, _ = take(idx["train"] or idx["val"], n_calib)
    parity, masks = take(idx["val"] or idx["test"] or idx["train"], n_parity)
    return calib, parity, masks


def remove_stale_temporaries(out_dir: Path):
    """Remove the temporary folders of exports into ``out_dir`` that were killed (their
    process is gone), so a kill -9 leaves no debris behind for good. Only folders that hold
    satseg's ownership token are touched, whatever their name."""
    import re

    from satseg.atomic import owned_temporary, pid_alive

    own = re.compile(rf"\.{re.escape(out_dir.name)}\.export-(\d+)-[a-z0-9_]{{8}}\.tmp")  # atomic_dir's names only
    for tmp in out_dir.parent.iterdir():
        m = own.fullmatch(tmp.name)
        if not m or not owned_temporary(tmp, out_dir):
            continue
        pid = int(m.group(1))
        if not pid_alive(pid):  # a pid no process can have counts as gone
            shutil.rmtree(tmp, ignore_errors=True)


def _miou_and_iou(masks, preds, k):
    from satseg.metrics import ConfusionMatrix

    s = ConfusionMatrix(k).update(masks, preds).scores()
    return s["miou"], s["iou"]


def check_export(model_path: Path, out_dir: Path, formats, teacher, force: bool):
    """Every argument, before any work."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise SatsegError(f"unknown format(s) {', '.join(unknown)}; valid: {', '.join(FORMATS)}")
    if not model_path.is_file():
        raise SatsegError(f"{model_path}: model file not found")
    if teacher and not Path(teacher).is_file():
        raise SatsegError(f"{teacher}: teacher model file not found")
    check_output_folder(out_dir, force)


def check_output_folder(out_dir: Path, force: bool):
    """``--out``: not a link, writable, and empty or new unless ``force``."""
    from satseg.atomic import check_replaceable, check_writable

    if out_dir.is_symlink():
        raise SatsegError(f"{out_dir}: is a link; satseg does not write through links (choose another --out)")
    check_writable(out_dir.parent, out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise SatsegError(f"{out_dir}: output exists; pass --force to overwrite it")
    if Path.cwd().is_relative_to(Path(os.path.realpath(out_dir))):
        raise SatsegError(f"{out_dir}: is the working folder or holds it; the export replaces its --out whole "
                          "(choose another --out)")
    if force:
        check_replaceable(out_dir, "report.json", "an export folder", keys=("artifacts", "spec", "parity"))


def load_for_export(model_path: Path):
    """(model, spec), checked against each other."""
    from satseg.models import load_model_file

    spec = load_spec(model_path)
    model = load_model_file(model_path)
    if model.output_shape[-1] != spec.num_classes:
        raise SatsegError(f"{model_path}: the model predicts {model.output_shape[-1]} classes, its spec lists "
                          f"{spec.num_classes}")
    return model, spec


@dataclass
class Parity:
    """The reference the exported files are checked against: Keras predictions on real patches."""

    calib: np.ndarray
    x: np.ndarray
    y: np.ndarray
    pred: np.ndarray
    miou: float
    iou: np.ndarray

    @property
    def calib_is_pixels(self) -> bool:
        """Calibration patches are raw 8-bit pixels (models that normalise inside): an int8 file
        can then take uint8 pixels as they are."""
        return 0 <= self.calib.min() <= self.calib.max() <= 255


@dataclass
class Graphs:
    """What the files are converted from: the fixed-size probability graph (SavedModel, tiles)
    and, when the model can take whole images, the any-size class-id graph with its spec."""

    fixed: object
    whole: object = None
    whole_spec: ModelSpec | None = None
    model: object = None
    spec: ModelSpec | None = None

    def for_format(self, fmt: str):
        if fmt in ACCELERATOR_FORMATS:
            from satseg.serving import accelerator_model

            target = fmt.split("_")[1]
            spec = ModelSpec.from_dict({**self.spec.to_dict(), "outputs": "logits" if target == "edgetpu" else ""})
            return accelerator_model(self.model, self.spec.patch_size, target), spec
        if self.whole is not None and fmt.startswith("tflite") and fmt != "tflite_int8_fixed":
            return self.whole, self.whole_spec
        return self.fixed, None


def make_graphs(model, spec: ModelSpec) -> Graphs:
    from satseg.models import stride_of
    from satseg.serving import receptive_margin, serving_model

    graphs = Graphs(with_probs_head(fixed_batch(model, spec)), model=model, spec=spec)
    if whole_image_capable(spec):
        stride = stride_of(spec.architecture)
        whole_spec = ModelSpec.from_dict({**spec.to_dict(), "stride": stride,
                                          "margin": receptive_margin(model, stride)})
        graphs.whole, graphs.whole_spec = serving_model(model), whole_spec
    return graphs


def _file_predictions(fmt: str, path: Path, spec: ModelSpec, graph_is_whole: bool, parity: Parity) -> np.ndarray:
    from satseg.edge import EdgeModel

    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return np.concatenate([np.asarray(loaded.serve(parity.x[i:i + 1])) for i in range(len(parity.x))]).argmax(-1)
    em = EdgeModel(path, spec=spec)
    if graph_is_whole:
        return np.stack([em.run_window(x) for x in parity.x])
    return em.predict_patches(parity.x).argmax(-1)


def write_artifact(fmt: str, graphs: Graphs, spec: ModelSpec, folder: Path, parity: Parity, int8_io: bool) -> dict:
    """Write one format into ``folder`` with its spec, run it on the parity patches, measure it."""
    t0 = time.perf_counter()
    path = folder / FILE_NAMES[fmt]
    graph, whole_spec = graphs.for_format(fmt)
    if fmt in ACCELERATOR_FORMATS:
        return write_accelerator(fmt, graph, whole_spec, path, parity, t0)
    if fmt == "saved_model":
        graph.export(str(path), format="tf_saved_model", verbose=False)
        save_spec(spec, path / "satseg.json")
    else:
        pixels = whole_spec is not None and fmt == "tflite_int8" and parity.calib_is_pixels
        from satseg.tflite_metadata import with_spec

        tflite = convert_tflite(graph, fmt, parity.calib, int8_io and fmt.startswith("tflite_int8") and not pixels,
                                uint8_pixels=pixels)
        file_spec = whole_spec or fixed_file_spec(spec)
        path.write_bytes(with_spec(tflite, file_spec.to_dict()))  # the file describes itself
        save_spec(file_spec, path.with_name(path.stem + ".satseg.json"))
    return measured(fmt, path, whole_spec or spec, whole_spec is not None, parity, t0)


def measured(fmt: str, path: Path, spec: ModelSpec, whole: bool, parity: Parity, t0: float, **extra) -> dict:
    """A written file's report row: size, and its agreement with Keras on the parity patches."""
    pred = _file_predictions(fmt, path, spec, whole, parity)
    miou, iou = _miou_and_iou(parity.y, pred, spec.num_classes)
    names = class_names(spec.seg_classes)
    return {"format": fmt, "path": path.name, "bytes": tree_bytes(path), "whole_image": whole, **extra,
            "agreement": float((pred == parity.pred).mean()), "miou": miou, "miou_delta": miou - parity.miou,
            "iou_delta": {n: (None if np.isnan(a - b) else float(a - b)) for n, a, b in zip(names, iou, parity.iou)},
            "seconds": round(time.perf_counter() - t0, 1)}


def write_accelerator(fmt: str, graph, spec: ModelSpec, path: Path, parity: Parity, t0: float) -> dict:
    """An accelerator file: its ops are checked against its target's list before it is kept."""
    from satseg.serving import EDGETPU_OPS, GPU_OPS
    from satseg.tflite_metadata import op_names, with_spec

    if fmt == "tflite_edgetpu":
        pixels = whole_image_capable(spec) and parity.calib_is_pixels
        tflite = convert_tflite(graph, "tflite_int8", parity.calib, int8_io=True, uint8_pixels=pixels)
        allowed, target = EDGETPU_OPS, "the Edge TPU compiler"
    else:
        tflite = convert_tflite(graph, "tflite_float16")
        allowed, target = GPU_OPS, "the GPU delegate"
    ops = sorted(set(op_names(tflite)))
    off = [op for op in ops if op not in allowed]
    if off:
        raise SatsegError(f"{path.name}: ops {', '.join(off)} are not on {target}'s list; this architecture "
                          "cannot be exported for it yet")
    spec = fixed_file_spec(spec)
    path.write_bytes(with_spec(tflite, spec.to_dict()))
    save_spec(spec, path.with_name(path.stem + ".satseg.json"))
    return measured(fmt, path, spec, False, parity, t0, ops=ops)


def build_report(model_path: Path, model, stats: dict, spec: ModelSpec, parity: Parity, artifacts, int8_io,
                 teacher) -> dict:
    report = {
        "model": str(model_path), "name": model.name, "params": stats["params"],
        "conv_layers": stats["conv_layers"], "macs": stats["macs"], "keras_bytes": model_path.stat().st_size,
        "keras_bytes_with_optimizer": keras_file_bytes(model, True),
        "parity": {"patches": int(len(parity.x)), "keras_miou": parity.miou, "calibration_patches": int(len(parity.calib))},
        "artifacts": artifacts, "int8_io": bool(int8_io), "spec": spec.to_dict(),
    }
    if teacher:
        report["teacher"] = teacher_reference(teacher, spec, parity.calib)
        add_reductions(report)
    warn = [a for a in artifacts if a["format"] == "tflite_int8" and a["miou_delta"] < -0.01]
    report["warnings"] = [f"int8 loses {-100 * a['miou_delta']:.2f} mIoU points against Keras" for a in warn]
    return report


def export_model(model_path, out_dir, formats=DEFAULT_FORMATS, calibration_data=None, teacher=None,
                 int8_io: bool = False, force: bool = False, n_calibration: int = 64, n_parity: int = 32,
                 log=print) -> dict:
    """Export ``model_path`` (.keras) to ``out_dir``; returns the report (also written there).
    Everything is written to a temporary folder beside ``out_dir`` that replaces it at the end;
    ``out_dir`` has one writer at a time (:class:`satseg.atomic.OutputLock`)."""
    from satseg.atomic import OutputLock

    model_path, out_dir = Path(model_path), Path(out_dir)
    check_export(model_path, out_dir, formats, teacher, force)
    with OutputLock(out_dir, "satseg export"):
        check_output_folder(out_dir, force)  # again, now that no other writer can start
        remove_stale_temporaries(out_dir)
        return _export(model_path, out_dir, formats, calibration_data, teacher, int8_io, n_calibration, n_parity, log)


def _export(model_path: Path, out_dir: Path, formats, calibration_data, teacher, int8_io: bool,
            n_calibration: int, n_parity: int, log) -> dict:
    from satseg.atomic import atomic_dir
    from satseg.inference import predict_logits
    from satseg.models import model_stats

    model, spec = load_for_export(model_path)
    graphs, stats = make_graphs(model, spec), model_stats(fixed_batch(model, spec))
    if graphs.whole is None:  # every LiteRT file is fixed-size: no separate one
        formats = [f for f in formats if f != "tflite_int8_fixed"]

    log("reading calibration and parity patches ...")
    calib, px, py = calibration_patches(model_path, calibration_data, spec, n_calibration, n_parity)
    pred = predict_logits(model, px).argmax(-1)
    parity = Parity(calib, px, py, pred, *_miou_and_iou(py, pred, spec.num_classes))

    def write(folder: Path):
        artifacts = []
        for fmt in formats:
            artifacts.append(write_artifact(fmt, graphs, spec, folder, parity, int8_io))
            a = artifacts[-1]
            log(f"  {fmt:<16}{a['bytes'] / 1024:>10.1f} KB  agreement {100 * a['agreement']:.2f} %  "
                f"mIoU delta {100 * a['miou_delta']:+.2f} pt")
        write.report = build_report(model_path, model, stats, spec, parity, artifacts, int8_io, teacher)
        (folder / "report.json").write_text(json.dumps(write.report, indent=2))
        (folder / "report.md").write_text(report_markdown(write.report))
        shutil.copy2(model_path, folder / "model.keras")
        save_spec(spec, folder / "model.satseg.json")
        run_config = model_path.parent / "config.json"
        if run_config.is_file():  # the run's recorded split travels, so evaluate scores the same test images
            shutil.copy2(run_config, folder / "config.json")
        os.chmod(folder, 0o755)  # mkdtemp makes it private

    atomic_dir(out_dir, write, prefix=f".{out_dir.name}.export-{os.getpid()}-")
    for w in write.report["warnings"]:
        log(f"WARNING: {w}")
    return write.report


def teacher_reference(teacher_path, spec: ModelSpec, calib) -> dict:
    """Sizes of the teacher as the reference reported them: ``.keras`` with Adam state, and
    its float32 LiteRT file."""
    from satseg.models import load_model_file

    teacher = load_model_file(teacher_path, "teacher")
    return {
        "path": str(teacher_path), "params": int(teacher.count_params()),
        "keras_bytes": Path(teacher_path).stat().st_size,
        "keras_bytes_with_optimizer": keras_file_bytes(teacher, True),
        "tflite_float32_bytes": len(convert_tflite(with_probs_head(fixed_batch(teacher, spec)), "tflite_float32")),
    }


def add_reductions(report: dict):
    t = report["teacher"]
    for a in report["artifacts"]:
        a["reduction_vs_teacher_keras_adam"] = 1 - a["bytes"] / t["keras_bytes_with_optimizer"]
        a["reduction_vs_teacher_tflite_float32"] = 1 - a["bytes"] / t["tflite_float32_bytes"]
    report["keras_reduction_vs_teacher_keras_adam"] = 1 - report["keras_bytes"] / t["keras_bytes_with_optimizer"]


def report_markdown(r: dict) -> str:
    lines = [f"# Export report: {r['name']}", "",
             f"Source `{r['model']}`: {r['params']:,} parameters, {r['conv_layers']} conv layers, "
             f"{r['macs'] / 1e9:.3f} G MACs per {r['spec']['patch_size']}px patch; `.keras` "
             f"{r['keras_bytes'] / 1024:.1f} KB ({r['keras_bytes_with_optimizer'] / 1024:.1f} KB with Adam state).",
             "", f"Parity on {r['parity']['patches']} validation patches (Keras mIoU "
             f"{r['parity']['keras_miou']:.4f}); int8 calibrated on {r['parity']['calibration_patches']} training patches.", ""]
    has_t = "teacher" in r
    head = "| format | file | size (KB) | pixel agreement | mIoU delta (pt) |"
    sep = "|---|---|---:|---:|---:|"
    if has_t:
        head += " vs teacher .keras+Adam | vs teacher LiteRT fp32 |"
        sep += "---:|---:|"
    lines += [head, sep]
    for a in r["artifacts"]:
        row = (f"| {a['format']} | `{a['path']}` | {a['bytes'] / 1024:.1f} | {100 * a['agreement']:.2f} % | "
               f"{100 * a['miou_delta']:+.2f} |")
        if has_t:
            row += (f" {-100 * a['reduction_vs_teacher_keras_adam']:+.1f} % |"
                    f" {-100 * a['reduction_vs_teacher_tflite_float32']:+.1f} % |")
        lines.append(row)
    if has_t:
        t = r["teacher"]
        lines += ["", f"Teacher `{t['path']}`: `.keras` with Adam state {t['keras_bytes_with_optimizer'] / 1024:,.0f} KB, "
                  f"LiteRT float32 {t['tflite_float32_bytes'] / 1024:,.0f} KB. This model's `.keras` (no optimizer): "
                  f"{r['keras_bytes'] / 1024:.0f} KB = {100 * r['keras_reduction_vs_teacher_keras_adam']:.1f} % smaller."]
    int8 = [a for a in r["artifacts"] if a["format"] == "tflite_int8"]
    if int8:
        lines += ["", "Per-class IoU change of int8 against Keras (points): " + ", ".join(
            f"{n} {100 * v:+.2f}" if v is not None else f"{n} n/a" for n, v in int8[0]["iou_delta"].items())]
    for w in r.get("warnings", []):
        lines += ["", f"**Warning:** {w}"]
    return "\n".join(lines) + "\n"
