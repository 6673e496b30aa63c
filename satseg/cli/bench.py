import json

import click

from satseg.cli.options import force_option, verbosity_options


@click.command("bench")
@click.option("--models-dir", type=click.Path(),
              help="Folder of shipped models (one sub-folder per model with model.keras and LiteRT files) "
                   "[default: the checkout's exported_models/]. Without one, random-weight stand-ins are "
                   "timed, and the result says so.")
@click.option("--quick", is_flag=True, help="Smoke run: small random-weight models, few repeats (seconds).")
@click.option("--repeats", type=int, help="Timed repeats per measurement [20; 3 with --quick].")
@click.option("--baseline", help="Row to compare against, as MODEL/RUNTIME [default: teacher/keras].")
@click.option("--scene-size", type=click.IntRange(min=0),
              help="Side of the synthetic JPEG scene whose peak memory `predict` is measured on "
                   "[12000; none with --quick]; 0 skips it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON result here.")
@force_option
@verbosity_options
def command(models_dir, quick, repeats, baseline, scene_size, as_json, out, force):
    """Measure inference (Keras, LiteRT float32/float16/int8), whole-image tiling and training
    steps side by side, against the machine's measured limits: the float32 matmul rate for
    float models, LiteRT's int8 GEMM rate for int8 files."""
    from satseg.cli.common import check_outputs, require_tensorflow

    check_outputs([out], force)
    require_tensorflow("bench")
    from satseg.atomic import atomic_write_text
    from satseg.bench import format_bench, run_bench

    if models_dir is None:
        from satseg.zoo import INDEX

        models_dir = INDEX.parent
    r = run_bench(models_dir, quick, repeats, baseline, log=(lambda *a: None) if as_json else click.echo,
                  scene_size=scene_size)
    if out:
        atomic_write_text(out, json.dumps(r, indent=2))
    click.echo(json.dumps(r, indent=2) if as_json else format_bench(r))
