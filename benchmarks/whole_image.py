"""Seconds per whole image of a whole-image LiteRT file as a function of the window size, next
to the fixed-size file beside it run in blended tiles: the measurement behind
``satseg.edge.WINDOW_PIXELS``.

    python benchmarks/whole_image.py [--model exported_models/lite0_edge_scratch/model_int8.tflite]
                                     [--size 1479 2149] [--threads 2] [--repeats 5]

Random uint8 image; medians after one warm-up; windows are squares of about the budget's pixels,
each keeping what lies at least the model's margin from its cuts.
"""

import argparse

import numpy as np
from results import check_out, emit, output_options, run

from satseg.bench import median_seconds
from satseg.edge import (
    FIXED_SUFFIX,
    EdgeModel,
    array_windows,
    predict_ids_tiled,
    predict_windowed,
    window_size,
)


def batch_vs_single(path, threads, repeats) -> dict:
    """Eight patches through a fixed-size file one by one against one batch of 8 (the batch
    dimension resized), to see whether batching tiles would pay."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    x = np.zeros((8, *d["shape"][1:]), d["dtype"])

    def run():
        it.set_tensor(d["index"], x if len(x) == d["shape"][0] else x[:1])
        it.invoke()
        return it.get_tensor(o["index"])

    it.allocate_tensors()
    single = median_seconds(lambda: [run() for _ in range(8)], repeats, warmup=1)
    try:
        it.resize_tensor_input(d["index"], list(x.shape))
        it.allocate_tensors()
        d = it.get_input_details()[0]
        batch = round(1e3 * median_seconds(run, repeats, warmup=1), 2)
    except RuntimeError as e:  # some graphs cannot take another batch size
        batch = f"fails ({str(e).splitlines()[0][:80]})"
    return {"one_by_one": round(1e3 * single, 2), "batch_of_8": batch}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="exported_models/lite0_edge_scratch/model_int8.tflite")
    ap.add_argument("--size", type=int, nargs=2, default=(1479, 2149))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    output_options(ap)
    args = ap.parse_args()
    check_out(args)
    h, w = args.size
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3)).astype(np.uint8)
    em = EdgeModel(args.model, num_threads=args.threads)
    stride, margin = em.spec.stride, em.spec.margin
    hh, ww = -(-h // stride) * stride, -(-w // stride) * stride
    rows = {}
    for budget in (250_000, 500_000, 1_000_000, 2_000_000, 10 ** 12):
        wh, wz = window_size(hh, ww, stride, margin, budget)
        sec = median_seconds(lambda b=budget: predict_windowed(array_windows(img), h, w, em.run_window, stride,
                                                               margin, max_pixels=b), args.repeats, warmup=1)
        rows["full frame" if budget == 10 ** 12 else f"{budget / 1e6:g} Mpx"] = {
            "window": [wh, wz], "seconds": round(sec, 4)}
    fixed = args.model.replace(".tflite", FIXED_SUFFIX)
    out = {"model": args.model, "image": [h, w], "threads": args.threads, "margin": margin, "windows": rows}
    try:
        ef = EdgeModel(fixed, num_threads=args.threads)
        out["tiled_fixed_file_seconds"] = round(median_seconds(
            lambda: predict_ids_tiled(img, ef.predict_patches, ef.spec), max(1, args.repeats // 2), warmup=1), 4)
        out["fixed_file_8_patches_ms"] = batch_vs_single(fixed, args.threads, args.repeats)
    except Exception as e:  # no fixed file beside it
        out["tiled_fixed_file_seconds"] = f"n/a ({e})"
    emit(args, out, indent=2)


if __name__ == "__main__":
    run(main)
