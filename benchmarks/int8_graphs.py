"""Two int8 LiteRT facts behind the zoo's design, measured side by side in one run:

1. how the logits are upsampled: the fixed bilinear transposed convolution (``bilinear_up2``,
   which runs on unknown input sizes) against ``UpSampling2D(bilinear)`` (RESIZE_BILINEAR),
   on the same ``edge`` model, float32 and int8;
2. how many Lite0 blocks ``lite0_edge`` can keep with its int8 file under 100 KB.

    python benchmarks/int8_graphs.py [--repeats 20] [--threads 2]

Random weights and random calibration patches (sizes and op timings do not depend on them);
256 px patches, batch 1, medians after 5 warm-up invokes.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from results import check_out, emit, output_options, run

from satseg.export import convert_tflite, with_probs_head  # noqa: E402
from satseg.models import build_model, model_stats, with_input_size  # noqa: E402

P = 256


def litert(model, kind: str, calib) -> bytes:
    return convert_tflite(with_probs_head(with_input_size(model, P, batch_size=1)), kind, calib)


def median_ms(flatbuffer: bytes, x: np.ndarray, repeats: int, threads: int) -> float:
    it = Interpreter(model_content=flatbuffer, num_threads=threads)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    for _ in range(5):
        it.invoke()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    output_options(ap)
    args = ap.parse_args()
    check_out(args)
    rng = np.random.default_rng(0)
    calib = [rng.uniform(0, 255, (P, P, 3)).astype(np.float32) for _ in range(8)]
    x = calib[0][None]
    edge = build_model("edge", (P, P, 3), seed=0)
    resize = keras.Model(edge.input, keras.layers.UpSampling2D(2, interpolation="bilinear", name="logits_resize")(
        edge.get_layer("head_logits").output))
    out = {"upsampling": {}, "lite0_edge_blocks": {}}
    for name, m in (("transposed_conv", edge), ("resize_bilinear", resize)):
        out["upsampling"][name] = {kind: round(median_ms(litert(m, f"tflite_{kind}", calib), x, args.repeats,
                                                         args.threads), 2) for kind in ("float32", "int8")}
    for blocks in (4, 5):
        m = build_model("lite0_edge", (P, P, 3), max_blocks=blocks, pretrained=False, seed=0)
        out["lite0_edge_blocks"][blocks] = {"params": model_stats(m)["params"],
                                            "int8_kb": round(len(litert(m, "tflite_int8", calib)) / 1024, 1)}
    emit(args, {"threads": args.threads, "repeats": args.repeats, "ms_per_patch_and_sizes": out}, indent=2)


if __name__ == "__main__":
    run(main)
