"""Options shared by several commands, defined once (in the style of rasterio's rio/options.py)."""

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON document on stdout.")
force_option = click.option("--force", is_flag=True, help="Overwrite existing results.")
overlap_option = click.option("--overlap", type=click.IntRange(min=0),
                              help="Tile overlap in pixels, less than the patch size [default: a quarter of the patch].")


def seed_option(default: int = 42):
    return click.option("--seed", default=default, show_default=True, type=int,
                        help="Random seed (recorded in config.json).")
