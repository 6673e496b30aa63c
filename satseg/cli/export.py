import click

from satseg.cli.options import force_option, quiet, verbosity_options
from satseg.export import DEFAULT_FORMATS, FORMATS


@click.command("export")
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="Trained .keras model.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--formats", default=",".join(DEFAULT_FORMATS), show_default=True,
              help=f"Comma-separated, from: {', '.join(FORMATS)}.")
@click.option("--calibration-data", type=click.Path(file_okay=False),
              help="Dataset for int8 calibration and parity checks [default: the run's training data].")
@click.option("--teacher", type=click.Path(dir_okay=False), help="Teacher .keras: report the size reduction against it.")
@click.option("--int8-io", is_flag=True, help="int8 input and output tensors (microcontrollers; fixed-size "
              "int8 files only: whole-image ones take uint8 pixels and give uint8 ids anyway).")
@force_option
@verbosity_options
def command(model_path, out, formats, calibration_data, teacher, int8_io, force):
    """Export to SavedModel and LiteRT (float32/float16/dynamic/int8) with a size and parity report.

    A model that normalises inside its graph gets whole-image LiteRT files (any size, raw pixels
    in, uint8 class ids out; int8 takes uint8 pixels) and model_int8_fixed.tflite, the fixed-size
    probability file for tiles and --tta. Other models get fixed-size files only.
    """
    from satseg.cli.common import require_file, require_tensorflow

    require_file(model_path, "model file")
    require_tensorflow("export")
    from satseg.export import export_model

    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    export_model(model_path, out, fmts, calibration_data, teacher, int8_io, force, log=(lambda *a: None) if quiet() else click.echo)
    click.echo(open(f"{out}/report.md").read())
    click.echo(f"wrote {out}/")
