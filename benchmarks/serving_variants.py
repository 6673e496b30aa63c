"""Rewrites of a model's serving graph timed against the shipped one: the measurement behind the
choices in ``satseg/serving.py``.

    python benchmarks/serving_variants.py [--model exported_models/fast_edge_distilled/model.keras]
        [--data "../shared/data/dubai/Semantic segmentation dataset"] [--size 1488 2160]
        [--threads 2] [--repeats 9] [--rounds 2]

For a patch-stem, sub-pixel-head model (``fast_edge``):

- ``strided_stem``: the stem as the strided convolution it is (normalisation folded the same way)
  instead of ``space_to_depth`` + 1x1 convolution;
- ``argmax_per_cell``: the class taken per stride x stride cell on the 1x1 convolution's output
  (reshaped), then uint8 ids ``depth_to_space``'d, instead of ``depth_to_space`` then argmax.

For a model whose 1x1 classifier and bilinear upsampling are served as one ``BilinearHead``
(``edge``, ``lite0_edge``):

- ``separate_head``: the 1x1 classifier, then the four depthwise phase convolutions +
  ``depth_to_space`` (the graph before ``BilinearHead``).

Each is converted like the shipped file (int8, uint8 pixels in) and timed on a random image,
alternating with the shipped graph for ``--rounds`` rounds (medians after one warm-up); each
one's pixel agreement with the shipped graph on the dataset's first image is printed.
"""


import keras
from results import check_out, emit, run
from stage_times import agreement, any_size, first_image, load_serving, time_file, timing_args

from satseg.export import convert_tflite
from satseg.models import stride_of
from satseg.serving import BilinearHead, PatchEmbedding, SubpixelConv, serving_model


class CellIds(keras.layers.Layer):
    """A ``SubpixelConv``'s output decided per cell: argmax over the classes of each sub-pixel
    before ``depth_to_space``, so only uint8 ids are rearranged."""

    def __init__(self, sub: SubpixelConv, **kwargs):
        super().__init__(**kwargs)
        self.sub = sub

    def call(self, x):
        import tensorflow as tf

        s, k = self.sub.stride, self.sub.filters
        y = tf.nn.conv2d(x, self.sub.kernel, 1, "VALID") + self.sub.bias
        h, w = tf.shape(y)[1], tf.shape(y)[2]
        ids = tf.cast(tf.argmax(tf.reshape(y, [1, h, w * s * s, k]), -1, output_type=tf.int32), tf.uint8)
        return tf.squeeze(tf.nn.depth_to_space(tf.reshape(ids, [1, h, w, s * s]), s), -1)

    def compute_output_spec(self, x):
        return keras.KerasTensor((1, None, None), "uint8")


def strided_stem(whole) -> keras.Model:
    """The shipped graph with its ``PatchEmbedding`` back as one strided convolution."""
    inner = whole.layers[1]

    def swap(layer):
        if isinstance(layer, PatchEmbedding):
            return keras.layers.Conv2D(layer.filters, layer.stride, strides=layer.stride, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(inner, clone_function=swap)
    for layer in clone.layers:
        src = inner.get_layer(layer.name)
        if isinstance(src, PatchEmbedding):
            kernel, bias = src.get_weights()
            s, c = src.stride, inner.input_shape[-1]
            layer.set_weights([kernel.reshape(s, s, c, -1), bias])
        elif layer.weights:
            layer.set_weights(src.get_weights())
    inp = keras.Input((None, None, inner.input_shape[-1]), batch_size=1, name="image")
    return keras.Model(inp, whole.layers[-1](clone(inp)))


def argmax_per_cell(whole) -> keras.Model:
    """The shipped graph with the class decided per cell before ``depth_to_space``."""
    inner = whole.layers[1]
    head = inner.layers[-1]  # the SubpixelConv
    body = any_size(inner, head.input._keras_history.operation.name, inner.input_shape[-1])
    return keras.Model(body.input, CellIds(head, name="class_ids")(body.output))


def main():
    ap = timing_args(__doc__, "exported_models/fast_edge_distilled/model.keras", (1488, 2160), 9)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    check_out(args)
    model, spec, calib, whole = load_serving(args)
    bands = model.input_shape[-1]
    inner = whole.layers[1]
    if any(isinstance(layer, BilinearHead) for layer in inner.layers):
        graphs = {"shipped": whole, "separate_head": serving_model(model, fuse_head=False)}
    else:
        graphs = {"shipped": whole, "strided_stem": strided_stem(whole), "argmax_per_cell": argmax_per_cell(whole)}
    files = {k: convert_tflite(g, "tflite_int8", calib, uint8_pixels=True) for k, g in graphs.items()}
    ms = {k: [] for k in files}
    for _ in range(args.rounds):
        for k, data in files.items():
            ms[k].append(round(1e3 * time_file(data, args.size, bands, args.threads, args.repeats), 1))
    real = first_image(args.data, bands, stride_of(spec.architecture))
    emit(args, {"model": args.model, "image": list(args.size), "threads": args.threads,
                      "ms_per_round": ms,
                      "pixel_agreement_with_shipped": {k: agreement(files["shipped"], d, real)
                                                       for k, d in files.items() if k != "shipped"}}, indent=2)


if __name__ == "__main__":
    run(main)
