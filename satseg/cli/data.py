import json

import click

from satseg.cli.common import check_outputs
from satseg.cli.options import force_option, verbosity_options


@click.group("data")
def command():
    """Inspect datasets and make the built-in synthetic one."""


@command.command("inspect")
@verbosity_options
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--patch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a picture of a few pairs and the class histogram.")
@force_option
def inspect_cmd(path, patch_size, as_json, plot, force):
    """Images, sizes, patch count, class pixel shares, off-palette (ignored) share."""
    from satseg.data import find_samples, inspect, load_sample

    check_outputs([plot], force)
    info = inspect(path, patch_size, progress=not as_json)
    if plot:
        from satseg.plots import plot_dataset

        samples = find_samples(path)
        picks = [samples[i] for i in range(0, len(samples), max(len(samples) // 4, 1))][:4]
        pairs = [(li.image, li.mask) for li in (load_sample(s) for s in picks)]
        plot_dataset(pairs, info["class_share"], plot)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['root']}: {info['images']} images, {info['patches']} patches of "
               f"{patch_size}x{patch_size} (crop mode), {info['pixels']:,} pixels")
    sizes = sorted({(f["width"], f["height"]) for f in info["files"]})
    click.echo(f"sizes from {sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]}")
    click.echo("class share of labelled pixels:")
    for name, share in info["class_share"].items():
        click.echo(f"  {name:<22}{100 * share:6.2f} %")
    click.echo(f"off-palette pixels (ignored): {info['ignored_pixels']:,} = {100 * info['ignored_share']:.2f} % of all pixels")
    if plot:
        click.echo(f"wrote {plot}")


@command.command("synth")
@verbosity_options
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--tiles", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--images-per-tile", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--size", default=512, show_default=True, type=click.IntRange(min=16), help="Square image size in pixels.")
@click.option("--seed", default=0, show_default=True)
@force_option
def synth_cmd(out, tiles, images_per_tile, size, seed, force):
    """Write a synthetic dataset in the Dubai layout (no download needed)."""
    import shutil
    from pathlib import Path

    from satseg.synthetic import write_dataset

    if Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        check_outputs([out], force)
        shutil.rmtree(out)
    write_dataset(out, tiles, images_per_tile, (size, size), seed)
    click.echo(f"wrote {tiles * images_per_tile} synthetic images to {out}")
