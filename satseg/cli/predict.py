import os

import click

from satseg.atomic import check_writable
from satseg.cli.common import default_model, require_file, require_tensorflow
from satseg.cli.options import force_option, overlap_option, trust_option, verbosity_options


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_path", type=click.Path(),
              help=".tflite (edge runtime, no TensorFlow) or .keras or a shipped model's NAME (satseg models) [default: the packaged best small student, satseg/default_model].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@overlap_option
@click.option("--threads", type=click.IntRange(min=1), help="LiteRT threads with --jobs 1 [default: all cores].")
@click.option("--jobs", type=click.IntRange(min=1), help="Images predicted at once, each in its own process with "
              "an equal share of the cores (.tflite models) [default: all cores].")
@click.option("--tta", is_flag=True, help="Test-time augmentation: average over four flips (4x the time).")
@click.option("--skip-existing", is_flag=True,
              help="Leave out images whose outputs exist (resume a batch) instead of refusing them.")
@trust_option
@force_option
@verbosity_options
def command(inputs, model_path, out, overlap, threads, jobs, force, tta, trust, skip_existing):
    """Segment images of any size: writes NAME.png (class ids) and NAME_color.png.

    INPUTS are files or folders; a folder's layout is mirrored under --out, and in a
    dataset folder only images are read, never masks. TIFF input gives TIFF output that
    keeps the GeoTIFF tags. An image that cannot be read is reported and the others are
    done (exit status 2 at the end); --skip-existing then resumes the batch.
    """
    from satseg.edge import BatchError, predict_files
    from satseg.errors import SatsegError

    check_writable(out)
    path = default_model(model_path)
    require_file(path)
    if str(path).endswith(".tflite"):
        from satseg.edge import EdgeModel

        model = EdgeModel(path, num_threads=threads)
    else:
        require_tensorflow("predict with a .keras or SavedModel model")
        from satseg.evaluate import load_predictor

        model = load_predictor(path, trust=trust)
    if force and skip_existing:
        raise SatsegError("--force and --skip-existing contradict each other; pass one")
    try:
        written = predict_files(model, inputs, out, overlap, force, tta=tta,
                                jobs=jobs or os.cpu_count() or 1, skip_existing=skip_existing)
    except BatchError as e:
        for _, reason in e.failed:
            click.echo(f"satseg: error: {reason}", err=True)
        click.echo(f"wrote {len(e.written)} files to {out}/")
        raise
    except (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as e:
        raise SatsegError(str(e)) from None
    click.echo(f"wrote {len(written)} files to {out}/")
