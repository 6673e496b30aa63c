import json

import click

from satseg.cli.common import check_outputs, default_model, require_file, require_tensorflow
from satseg.cli.options import (
    force_option,
    json_option,
    overlap_option,
    pairing_options,
    trust_option,
    verbosity_options,
)


@click.command("evaluate")
@click.option("--model", "model_path", type=click.Path(),
              help=".keras file, SavedModel directory or .tflite file or a shipped model's NAME (satseg models) [default: the packaged best small student, satseg/default_model].")
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset root.")
@pairing_options
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True,
              help="Images to score; train/val/test repeat training's split by image (all includes training images).")
@click.option("--seed", default=42, show_default=True, help="Seed of the split (the training run's).")
@overlap_option
@json_option
@click.option("--plots", type=click.Path(file_okay=False), help="Write predictions.png, confusion.png and, for models that give probabilities (not whole-image files), pr_curve.png here.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON result to this file.")
@click.option("--tta", is_flag=True, help="Test-time augmentation: average over four flips (4x the time).")
@trust_option
@force_option
@verbosity_options
def command(model_path, data, masks, pairs, split, seed, overlap, as_json, plots, out, force, tta, trust):
    """Score a model on whole images (tiled, borders included): IoU, precision, recall, F1."""
    from pathlib import Path

    from satseg.atomic import atomic_write_text
    from satseg.edge import check_overlap
    from satseg.evaluate import PLOT_FILES, evaluate, format_table, load_predictor

    check_outputs([out] + ([Path(plots) / f for f in PLOT_FILES] if plots else []), force)
    model_path = default_model(model_path)
    require_file(model_path)
    require_file(data, "dataset folder")
    if not str(model_path).endswith(".tflite"):
        require_tensorflow("evaluate")
    predictor = load_predictor(model_path, trust=trust)
    check_overlap(overlap, predictor.spec.patch_size)
    result = evaluate(predictor, data, split, seed, overlap, plots_dir=plots, progress=not as_json, tta=tta,
                      masks=masks, pairs=pairs)
    text = json.dumps(result, indent=2)
    if out:
        atomic_write_text(out, text)
    if as_json:
        click.echo(text)
    else:
        click.echo(format_table(result))
        if plots:
            click.echo(f"plots in {plots}/")
