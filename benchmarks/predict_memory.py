"""Peak memory of `satseg predict` on one large synthetic scene (default 12000 x 12000 RGB).

    python benchmarks/predict_memory.py [--size 12000] [--model exported_models/.../model_int8.tflite]

Writes the scene as JPEG in a temporary folder, runs `satseg predict` on it in a child process and
prints the child's peak resident memory (ru_maxrss) next to the decoded image's size. For a
whole-image model it then checks the scene's output against one full-frame call on a 2048 px
crop (with the model's margin around it): `crop_agreement` is the share of equal pixels.
The same measurement is a row of `satseg bench` (`satseg.bench.scene_memory`).
"""

import argparse

from results import check_out, emit, output_options, run

from satseg.bench import scene_memory


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=12000)
    ap.add_argument("--model", help="model file [default: the shipped default model]")
    output_options(ap)
    args = ap.parse_args()
    check_out(args)
    if args.model is not None:
        from satseg.edge import EdgeModel, default_model

        args.model = default_model(args.model)
        EdgeModel(args.model)  # a missing or unusable model is named now, not after the scene is written
    emit(args, scene_memory(args.size, args.model), indent=2)


if __name__ == "__main__":
    run(main)
