import click

from satseg.cli.options import comma_list, force_option, quiet, verbosity_options
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

    \b
    Accelerator files, on request (--formats ...,tflite_edgetpu,tflite_gpu):
      model_edgetpu.tflite  full-integer, fixed (1, P, P, C) input, int8 logits out (argmax on the
                            host), every op on the Edge TPU compiler's list: run edgetpu_compiler on it
      model_gpu.tflite      float16 weights, fixed size, probabilities out, every op on the
                            LiteRT GPU delegate's list
    Each is refused, naming the ops, if an architecture needs an op off its list.
    """
    from satseg.cli.common import on_tensorflow, require_file, require_tensorflow

    require_file(model_path, "model file")
    on_tensorflow()  # LiteRT conversion is TensorFlow's: a model trained on JAX is exported under it
    require_tensorflow("export")
    from satseg.export import export_model

    fmts = list(dict.fromkeys(comma_list(formats)))  # each once, in order
    if not fmts:
        from satseg.errors import SatsegError

        raise SatsegError(f"--formats: no format given; choose from {', '.join(FORMATS)}")
    export_model(model_path, out, fmts, calibration_data, teacher, int8_io, force, log=(lambda *a: None) if quiet() else click.echo)
    click.echo(open(f"{out}/report.md").read())
    click.echo(f"wrote {out}/")
