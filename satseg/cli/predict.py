import os

import click

from satseg.atomic import check_writable
from satseg.cli.common import default_model, require_tensorflow
from satseg.cli.options import force_option, overlap_option, trust_option, verbosity_options


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_path", type=click.Path(),
              help=".tflite (edge runtime, no TensorFlow) or .keras [default: the packaged best small student, satseg/default_model].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@overlap_option
@click.option("--threads", type=click.IntRange(min=1), help="LiteRT threads with --jobs 1 [default: all cores].")
@click.option("--jobs", type=click.IntRange(min=1), help="Images predicted at once, each in its own process with "
              "an equal share of the cores (.tflite models) [default: all cores].")
@click.option("--tta", is_flag=True, help="Test-time augmentation: average over four flips (4x the time).")
@trust_option
@force_option
@verbosity_options
def command(inputs, model_path, out, overlap, threads, jobs, force, tta, trust):
    """Segment images of any size: writes NAME.png (class ids) and NAME_color.png.

    INPUTS are files or folders; a folder's layout is mirrored under --out, and in a
    dataset folder only images are read, never masks. TIFF input gives TIFF output that
    keeps the GeoTIFF tags.
    """
    from satseg.edge import predict_files
    from satseg.errors import SatsegError

    check_writable(out)
    path = default_model(model_path)
    if str(path).endswith(".tflite"):
        from satseg.edge import EdgeModel

        model = EdgeModel(path, num_threads=threads)
    else:
        require_tensorflow("predict with a .keras or SavedModel model")
        from satseg.evaluate import load_predictor

        model = load_predictor(path, trust=trust)
    try:
        written = predict_files(model, inputs, out, overlap, force, tta=tta,
                                jobs=jobs or os.cpu_count() or 1)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as e:
        raise SatsegError(str(e)) from None
    click.echo(f"wrote {len(written)} files to {out}/")
