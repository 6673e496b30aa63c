import json
from pathlib import Path

import click

from satseg.cli.common import check_outputs
from satseg.cli.options import data_options, force_option, verbosity_options
from satseg.errors import SatsegError


@click.group("data")
def command():
    """Inspect datasets and make the built-in synthetic one."""


@command.command("inspect")
@verbosity_options
@click.argument("path", type=click.Path(file_okay=False))
@data_options
@click.option("--patch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--write-classes", type=click.Path(dir_okay=False),
              help="Write the class set (inferred, or --classes) to FILE, to edit and pass to train --classes.")
@click.option("--names", help="Comma-separated class names for the inferred classes, in id order (e.g. background,building).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a picture of a few pairs and the class histogram.")
@force_option
def inspect_cmd(path, classes, masks, pairs, patch_size, write_classes, names, as_json, plot, force):
    """How images pair with masks, how masks encode classes, sizes, bands and class shares.

    Finds the pairs in the common layouts (Tile N/images + masks, images/ + masks/, data/N + labels/N,
    x.tif + x_mask.tif), reads files by content, infers the classes from the mask values and reports
    images without masks, masks without images and files that are not images.
    """
    from satseg.classes import ClassSet
    from satseg.data import find_samples, inspect, load_sample

    check_outputs([plot, write_classes], force)
    names = [n.strip() for n in names.split(",")] if names else None
    info = inspect(path, patch_size, classes, progress=not as_json, masks=masks, pairs=pairs, names=names)
    cs = ClassSet.from_dict(info["classes"])
    for f in (plot, write_classes):  # a folder named in the path is made, once the data has been read
        if f:
            Path(f).parent.mkdir(parents=True, exist_ok=True)
    if write_classes:
        cs.save(write_classes)
    if plot:
        from satseg.plots import plot_dataset

        samples = find_samples(path, masks=masks, pairs=pairs)
        picks = [samples[i] for i in range(0, len(samples), max(len(samples) // 4, 1))][:4]
        pairs_ = [(li.image, li.mask) for li in (load_sample(s, cs) for s in picks)]
        plot_dataset(pairs_, info["class_share"], plot, cs)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for line in summary_lines(info):
        click.echo(line)
    for f in (write_classes, plot):
        if f:
            click.echo(f"wrote {f}")


def summary_lines(info: dict) -> list[str]:
    """The human-readable report of :func:`satseg.data.inspect`."""
    groups = info["groups"]
    shown = ", ".join(f"{'the top folder' if g == '.' else g}: {n}" for g, n in list(groups.items())[:8]) \
        + (", ..." if len(groups) > 8 else "")
    out = [f"{info['root']}: {info['images']} images with masks in {len(groups)} "
           f"group{'' if len(groups) == 1 else 's'} ({shown})",
           f"layout: {info['layout']}"]
    if info["unlabelled_images"]:
        ug = ", ".join(f"{g}: {n}" for g, n in info["unlabelled_groups"].items())
        out.append(f"images without masks: {info['unlabelled_images']}" + (f" (whole folders {ug})" if ug else ""))
    if info["masks_without_image"]:
        out.append(f"masks without an image: {len(info['masks_without_image'])} "
                   f"(first: {info['masks_without_image'][0]})")
    if info["skipped_files"]:
        out.append(f"not images, skipped: {len(info['skipped_files'])} files (first: {info['skipped_files'][0]})")
    sizes = sorted({(f["width"], f["height"]) for f in info["files"]})
    out.append(f"sizes from {sizes[0][0]}x{sizes[0][1]} to {sizes[-1][0]}x{sizes[-1][1]}; bands "
               f"{', '.join(map(str, info['bands']))} ({', '.join(info['dtypes'])}); {info['patches']} patches of "
               f"{info['patch_size']}x{info['patch_size']} (crop mode), {info['pixels']:,} pixels")
    out += [f"classes: {n}" for n in info["class_notes"]]
    out.append("class share of labelled pixels:")
    for c in info["classes"]["classes"]:
        enc = (f"values {c['values']}" if c.get("values") else f"range {c['range']}" if c.get("range")
               else f"colour {tuple(c['color'])} / id {c['id']}")
        out.append(f"  {c['id']:>3} {c['name']:<22}{100 * info['class_share'][c['name']]:6.2f} %   ({enc})")
    out.append(f"ignored pixels (no class, nodata): {info['ignored_pixels']:,} = "
               f"{100 * info['ignored_share']:.2f} % of all pixels")
    return out


@command.command("rasterize")
@verbosity_options
@click.argument("images", type=click.Path(file_okay=False, exists=True))
@click.option("--labels", required=True, type=click.Path(dir_okay=False, exists=True),
              help="GeoJSON polygons (EPSG:4326), such as the labels.geojson fAIr ships beside its chips.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Mask folder: one GeoTIFF per image, same relative path and stem (use it as --masks).")
@click.option("--value", default=255, show_default=True, type=click.IntRange(1, 255),
              help="Mask value inside a polygon (0 outside).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@force_option
def rasterize_cmd(images, labels, out, value, as_json, force):
    """Burn polygon labels onto each image's pixel grid: masks where only polygons were shipped.

    Each image is placed by its own georeference, or, when it has none, by its name as a slippy-map
    tile (OAM-<x>-<y>-<zoom>.png: the tile's bounds, EPSG:4326). A pixel is a label when its centre
    lies in a polygon; holes are kept.
    """
    from satseg.cli.options import quiet
    from satseg.geo.labels import rasterize_folder

    progress = None
    if not (as_json or quiet()):
        from tqdm import tqdm

        progress = lambda xs: tqdm(xs, desc="rasterize", unit="image")  # noqa: E731
    info = rasterize_folder(images, labels, out, value=value, force=force, progress=progress)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"wrote {info['images']} masks to {info['out']} ({info['with_labels']} with a label; "
               f"{info['polygons']} polygons; placed by {', '.join(info['placed_by'])})")


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

    from satseg.atomic import check_replaceable, check_writable
    from satseg.synthetic import MARKER, write_dataset

    if Path(out).is_symlink():
        raise SatsegError(f"{out}: is a link; satseg does not write through links (choose another folder)")
    check_writable(Path(out).parent, out)
    if Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        check_outputs([out], force)
        check_replaceable(out, MARKER, "a synthetic dataset satseg wrote")
        shutil.rmtree(out)
    write_dataset(out, tiles, images_per_tile, (size, size), seed)
    click.echo(f"wrote {tiles * images_per_tile} synthetic images to {out}")
