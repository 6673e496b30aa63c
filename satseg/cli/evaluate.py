import json

import click

from satseg.cli.common import check_outputs, default_model, require_file, require_tensorflow
from satseg.cli.options import (
    comma_list,
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
@click.option("--objects", metavar="NAME,NAME",
              help="Also score these classes object by object: precision, recall and F1 at IoU >= 0.5 (SpaceNet's "
              "matching) and area error [default: the classes the class file marks \"objects\": true].")
@click.option("--min-object-pixels", type=click.IntRange(min=0), default=0, show_default=True,
              help="Object scores: leave out objects smaller than this, true and predicted alike (specks, and "
              "buildings a chip border cut to a sliver).")
@click.option("--labels", type=click.Path(exists=False),
              help="Score against polygons (a GeoJSON file, or a folder of them) burnt onto each image's grid instead "
              "of masks: every image under --data, placed by its georeference or its slippy-map tile name; the "
              "outlined class against the rest, object by object too.")
@click.option("--labels-class", metavar="NAME",
              help="The class the --labels polygons outline [default: the model's foreground class].")
@trust_option
@force_option
@verbosity_options
def command(model_path, data, masks, pairs, split, seed, overlap, as_json, plots, out, force, tta, trust, objects,
            labels, labels_class, min_object_pixels):
    """Score a model on whole images (tiled, borders included): IoU, precision, recall, F1;
    object by object for countable classes; against masks or polygon labels."""
    from pathlib import Path

    from satseg.atomic import atomic_write_text
    from satseg.edge import check_overlap
    from satseg.evaluate import PLOT_FILES, evaluate, format_table, load_predictor

    check_outputs([out] + ([Path(plots) / f for f in PLOT_FILES] if plots else []), force)
    model_path = default_model(model_path)
    require_file(model_path)
    require_file(data, "dataset folder")
    check_labels_request(labels, labels_class, masks, pairs)
    if not str(model_path).endswith(".tflite"):
        require_tensorflow("evaluate")
    predictor = load_predictor(model_path, trust=trust)
    check_overlap(overlap, predictor.spec.patch_size)
    result = evaluate(predictor, data, split, seed, overlap, plots_dir=plots, progress=not as_json, tta=tta,
                      masks=masks, pairs=pairs, labels=labels, labels_class=labels_class,
                      objects=comma_list(objects) or None,
                      min_object_pixels=min_object_pixels)
    text = json.dumps(result, indent=2)
    if out:
        atomic_write_text(out, text)
    if as_json:
        click.echo(text)
    else:
        click.echo(format_table(result))
        if plots:
            click.echo(f"plots in {plots}/")


def check_labels_request(labels, labels_class, masks, pairs):
    """--labels replaces masks and splits: a contradiction is one line before any work."""
    from satseg.errors import SatsegError

    ctx = click.get_current_context()
    if labels is None:
        if labels_class:
            raise SatsegError("--labels-class needs --labels")
        return
    require_file(labels, "labels file or folder")
    if masks or pairs:
        raise SatsegError("--labels scores against polygons; it replaces --masks and --pairs (pass one)")
    if ctx.get_parameter_source("split") is not click.core.ParameterSource.DEFAULT:
        raise SatsegError("--labels scores every image under --data; --split needs masks")
    from satseg.geo.vectors import require_geo

    require_geo("--labels")
