import json

import click

from satseg.cli.common import default_model


@click.command("evaluate")
@click.option("--model", "model_path", type=click.Path(),
              help=".keras file, SavedModel directory or .tflite file [default: the shipped distilled student].")
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset root.")
@click.option("--split", type=click.Choice(["all", "train", "val", "test"]), default="all", show_default=True,
              help="Images to score; train/val/test repeat training's seeded split by image.")
@click.option("--seed", default=42, show_default=True, help="Seed of the split (the training run's).")
@click.option("--overlap", type=int, help="Tile overlap in pixels [default: a quarter of the patch].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--plots", type=click.Path(file_okay=False), help="Write pr_curve.png, predictions.png, confusion.png here.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON result to this file.")
def command(model_path, data, split, seed, overlap, as_json, plots, out):
    """Score a model on whole images (tiled, borders included): IoU, precision, recall, F1."""
    from satseg.atomic import atomic_write_text
    from satseg.evaluate import evaluate, format_table, load_predictor

    predictor = load_predictor(default_model(model_path))
    result = evaluate(predictor, data, split, seed, overlap, plots_dir=plots, progress=not as_json)
    text = json.dumps(result, indent=2)
    if out:
        atomic_write_text(out, text)
    if as_json:
        click.echo(text)
    else:
        click.echo(format_table(result))
        if plots:
            click.echo(f"plots in {plots}/")
