"""Where the time of a whole-image int8 file goes: the serving graph cut after each stage, every
cut converted like the shipped file (int8, uint8 pixels in, int8 out) and timed on one whole
image; a stage costs the difference between its cut and the one before. Next to each stage: its
multiply-accumulates and their time at the machine's measured matmul rate.

    python benchmarks/stage_times.py [--model exported_models/edge_distilled_lite0/model.keras]
        [--data "../shared/data/dubai/Semantic segmentation dataset"] [--size 1480 2152]
        [--threads 2] [--repeats 5]

Random uint8 image (the time does not depend on the pixels); medians after one warm-up. The
stages are the layers named ``normalize``, ``*_relu`` and ``head_logits`` of the model, then the
logits at full resolution (one stage with the head where the serving graph fuses them,
``BilinearHead``), then the class ids (the shipped graph). Last, for comparison, a graph
that is not shipped: the class decided at the logits' resolution and the ids upsampled nearest
(cheaper, but another model: its agreement with the shipped file on a real image is printed), for
models whose logits (``head_logits``) are below full resolution.
"""

import argparse
import tempfile
from pathlib import Path

import keras
import numpy as np
from results import check_out, emit, output_options, run

from satseg.bench import matmul_macs_per_second, median_seconds
from satseg.classes import load_spec
from satseg.data.catalog import dataset_path
from satseg.export import calibration_patches, convert_tflite
from satseg.models import layer_macs, load_model_file, stride_of, with_input_size
from satseg.serving import BilinearHead, serving_model


class CoarseIds(keras.layers.Layer):
    """argmax at the input's resolution, uint8 ids upsampled 2x nearest."""

    def call(self, x):
        import tensorflow as tf

        ids = tf.expand_dims(tf.cast(tf.argmax(x, -1, output_type=tf.int32), tf.uint8), -1)
        return tf.squeeze(tf.nn.depth_to_space(tf.concat([ids] * 4, -1), 2), -1)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape[:-1], "uint8")


def any_size(inner, layer: str, bands: int) -> keras.Model:
    """The rewritten model up to ``layer``, on an input of any height and width."""
    sub = keras.Model(inner.input, inner.get_layer(layer).output)
    inp = keras.Input((None, None, bands), batch_size=1, name="image")
    return keras.Model(inp, sub(inp))


def coarse_graph(model, whole, head: str = "head_logits") -> keras.Model:
    """The class decided on the model's own head logits (at their resolution), ids upsampled."""
    trained = model.get_layer(head)
    body = any_size(whole.layers[1], trained.input._keras_history.operation.name, whole.input_shape[-1])
    conv = keras.layers.Conv2D.from_config(trained.get_config())
    logits = conv(body.output)
    conv.set_weights(trained.get_weights())
    return keras.Model(body.input, CoarseIds(name="class_ids")(logits))


def agreement(a: bytes, b: bytes, image: np.ndarray) -> float:
    return float((run_file(a, image) == run_file(b, image)).mean())


def cuts(model) -> list[str]:
    names = [layer.name for layer in model.layers]
    return [n for n in names if n == "normalize" or n.endswith("_relu") or n == "head_logits"]


def stage_graphs(model, whole) -> list[tuple[str, keras.Model]]:
    """(name, graph) for each cut of the serving graph ``whole``, in order, ending with it."""
    inner, bands = whole.layers[1], model.input_shape[-1]  # inner: the rewritten model, logits at full size
    names = [n for n in cuts(model) if not isinstance(inner.get_layer(n), keras.layers.Identity)]  # folded away
    last = inner.layers[-1]
    full = [] if isinstance(last, keras.layers.Identity) else [  # else fused into the head (BilinearHead)
        ("logits (full resolution)", any_size(inner, last.name, bands))]
    return [*((label(inner, name), any_size(inner, name, bands)) for name in names), *full,
            ("class ids (shipped graph)", whole)]


def label(inner, name: str) -> str:
    return f"{name} + bilinear 2x (BilinearHead)" if isinstance(inner.get_layer(name), BilinearHead) else name


def stage_macs(model, names, size) -> list[int]:
    """Multiply-accumulates of the layers up to each cut (cumulative), for one image of ``size``."""
    total, cumulative = 0, {}
    for layer in with_input_size(model, tuple(size), batch_size=1).layers:
        total += layer_macs(layer)
        cumulative[layer.name] = total
    return [cumulative.get(n, total) for n in names]


def interpreter(data: bytes, shape, threads: int = 2):
    from ai_edge_litert.interpreter import Interpreter

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(data)
        f.flush()
        it = Interpreter(model_path=f.name, num_threads=threads)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(shape))
    it.allocate_tensors()
    return it, d["index"]


def run_file(data: bytes, image: np.ndarray) -> np.ndarray:
    it, index = interpreter(data, (1, *image.shape))
    it.set_tensor(index, image[None])
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def time_file(data: bytes, size, bands: int, threads: int, repeats: int) -> float:
    it, index = interpreter(data, (1, *size, bands), threads)
    it.set_tensor(index, np.random.default_rng(0).integers(0, 256, (1, *size, bands)).astype(np.uint8))
    return median_seconds(it.invoke, repeats, warmup=1)


def first_image(data: str, bands: int, stride: int) -> np.ndarray:
    """The first image of the dataset, cut to a stride multiple (uint8)."""
    from satseg import data as D

    image = D.load_sample(D.find_samples(data)[0], bands=bands).image
    h, w = (image.shape[0] // stride) * stride, (image.shape[1] // stride) * stride
    return np.clip(image[:h, :w], 0, 255).astype(np.uint8)


def timing_args(doc: str, model: str, size, repeats: int) -> argparse.ArgumentParser:
    """The options of the serving-graph timing scripts (this one and serving_variants.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=model)
    ap.add_argument("--data", default=str(dataset_path("dubai")),
                    help="calibration images (the int8 ranges)")
    ap.add_argument("--size", type=int, nargs=2, default=size, help="height width (stride multiples)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=repeats)
    output_options(ap)
    return ap


def load_serving(args):
    """(Keras model, its spec, int8 calibration patches, serving graph) for ``args.model``."""
    model, spec = load_model_file(args.model), load_spec(Path(args.model))
    calib, _, _ = calibration_patches(Path(args.model), args.data, spec, 16, 1)
    return model, spec, calib, serving_model(model)


def main():
    args = timing_args(__doc__, "exported_models/edge_distilled_lite0/model.keras", (1480, 2152), 5).parse_args()
    check_out(args)
    model, spec, calib, whole = load_serving(args)
    bands = model.input_shape[-1]
    graphs = stage_graphs(model, whole)
    files = [(name, convert_tflite(g, "tflite_int8", calib, int8_io=g.output.dtype != "uint8", uint8_pixels=True))
             for name, g in graphs]
    rate = matmul_macs_per_second()
    macs = stage_macs(model, [n for n, _ in graphs], args.size)
    rows, before, before_macs = [], 0.0, 0
    for (name, data), m in zip(files, macs):
        sec = time_file(data, args.size, bands, args.threads, args.repeats)
        rows.append({"stage": name, "cumulative_ms": round(1e3 * sec, 1), "stage_ms": round(1e3 * (sec - before), 1),
                     "stage_gmacs": round((m - before_macs) / 1e9, 3),
                     "stage_mac_limit_ms": round(1e3 * (m - before_macs) / rate, 1)})
        before, before_macs = sec, m
    result = {"model": args.model, "image": list(args.size), "threads": args.threads,
              "matmul_gmacs_per_s": round(rate / 1e9, 1), "stages": rows}
    if any(layer.name == "head_logits" for layer in model.layers):  # logits below full resolution
        coarse = convert_tflite(coarse_graph(model, whole), "tflite_int8", calib, uint8_pixels=True)
        real = first_image(args.data, bands, stride_of(spec.architecture))
        result["not_shipped_decision_at_logit_resolution"] = {
            "ms": round(1e3 * time_file(coarse, args.size, bands, args.threads, args.repeats), 1),
            "pixel_agreement_with_shipped_graph": agreement(files[-1][1], coarse, real)}
    emit(args, result, indent=2)

if __name__ == "__main__":
    run(main)
