"""Options shared by several commands, defined once (in the style of rasterio's rio/options.py)."""

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
force_option = click.option("--force", is_flag=True, help="Overwrite existing results.")
overlap_option = click.option("--overlap", type=click.IntRange(min=0),
                              help="Tile overlap in pixels, at most half the patch [default: a quarter of the patch]. "
                              "Fixed-size models only: whole-image files run in windows that overlap by the "
                              "model's own margin.")


trust_option = click.option("--trust-model", "trust", is_flag=True,
                            help="Load a SavedModel directory (it runs its own graph, so it can run any code: "
                            "only for models you made).")


def comma_list(value) -> list[str]:
    """``a, b,c`` as ``["a", "b", "c"]`` (empty items dropped; nothing given: an empty list)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def seed_option(default: int = 42):
    return click.option("--seed", default=default, show_default=True, type=int,
                        help="Random seed (recorded in config.json).")


def _set_verbosity(ctx, param, value):
    import os

    if value:
        os.environ["SATSEG_VERBOSE" if param.name == "verbose" else "SATSEG_QUIET"] = "1"
        if param.name == "verbose":
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    return value


def verbosity_options(f):
    """--quiet (results only) and --verbose (also TensorFlow's and the converter's own output)."""
    f = click.option("--verbose", "-v", is_flag=True, expose_value=False, callback=_set_verbosity, is_eager=True,
                     help="Also show TensorFlow's logs and the converter's dumps.")(f)
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=_set_verbosity, is_eager=True,
                        help="Print only results and errors (no progress).")(f)


def quiet() -> bool:
    import os

    return bool(os.environ.get("SATSEG_QUIET"))


def pairing_options(f):
    """How a dataset's images pair with masks, when its layout cannot be told (train, evaluate, inspect)."""
    f = click.option("--pairs", type=click.Path(dir_okay=False),
                     help="CSV of 'image,mask[,group]' lines, paths relative to the data root, when the layout "
                     "cannot be told.")(f)
    f = click.option("--masks", type=click.Path(file_okay=False),
                     help="A folder of masks mirroring the image tree (mask of a/x.jpg: MASKS/a/x.* or x_mask.*).")(f)
    return f


def data_options(f):
    """Pairing and the class set (train, inspect)."""
    f = pairing_options(f)
    return click.option("--classes", "classes", metavar="FILE|NAME",
                        help="Class file (JSON: names, colours, mask values; see `satseg data inspect "
                        "--write-classes`) or a shipped set (dubai) [default: inferred from the masks].")(f)


def vector_options(f):
    """Polygons beside each prediction (``predict``): format, classes, smallest kept, simplification,
    and one merged layer for chips that tile a region."""
    f = click.option("--merge-vectors", is_flag=True,
                     help="Also write OUT/merged.<format>: every scene's polygons in one layer, those of one class "
                     "that touch across a scene border (chips that tile a region) made one; with --skip-existing, the merged "
                     "layer a run before wrote is made again from every scene.")(f)
    f = click.option("--simplify", metavar="TOL",
                     help="Simplify polygons by this tolerance: pixels ('1', '1px') or metres ('0.5m'); topology "
                     "and holes kept.")(f)
    f = click.option("--min-area", metavar="AREA",
                     help="Drop polygons smaller than this: pixels ('4', '4px') or square metres ('20m2').")(f)
    f = click.option("--vector-classes", metavar="NAME,NAME",
                     help="Classes to write as polygons (names) [default: every class].")(f)
    return click.option("--vector", type=click.Choice(["gpkg", "geojson"]),
                        help="Also write polygons of the classes beside each raster (NAME.gpkg in the scene's CRS, "
                        "or NAME.geojson in EPSG:4326), with class_id, class and area_m2; a chip named as a "
                        "slippy-map tile (...-X-Y-Z) is placed by its name (EPSG:3857). Needs the [geo] extra.")(f)
