import json
import os

import click

from satseg.atomic import check_writable
from satseg.cli.common import default_model, require_file, require_tensorflow
from satseg.cli.options import (
    comma_list,
    force_option,
    json_option,
    overlap_option,
    trust_option,
    vector_options,
    verbosity_options,
)


@click.command("predict")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--model", "model_path", type=click.Path(),
              help=".tflite (edge runtime, no TensorFlow) or .keras or a shipped model's NAME (satseg models) [default: the packaged best small student, satseg/default_model].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@overlap_option
@click.option("--threads", type=click.IntRange(min=1), help="LiteRT threads with --jobs 1 [default: all cores].")
@click.option("--jobs", type=click.IntRange(min=1), help="Images predicted at once, each in its own process with "
              "an equal share of the cores (.tflite models) [default: all cores].")
@click.option("--tta", is_flag=True, help="Test-time augmentation: average over four flips (4x the time).")
@click.option("--skip-existing", is_flag=True,
              help="Leave out images whose outputs exist (resume a batch) instead of refusing them.")
@vector_options
@click.option("--tiles", metavar="URL", help="Predict imagery from a slippy-map tile service instead of files: a URL "
              "template with {z}, {x} and {y} (OpenAerialMap's, for one; {-y} for a TMS service); needs --bbox and --zoom. The tiles are "
              "mosaicked into OUT/imagery/NAME.tif (EPSG:3857), then predicted.")
@click.option("--bbox", metavar="W,S,E,N", help="With --tiles: the area, in degrees (EPSG:4326).")
@click.option("--zoom", type=int, help="With --tiles: the zoom level of the tiles fetched.")
@click.option("--tile-cache", type=click.Path(file_okay=False),
              help="With --tiles: where fetched tiles are kept, so a rerun fetches none twice [default: OUT/tile-cache].")
@trust_option
@force_option
@json_option
@verbosity_options
def command(inputs, model_path, out, overlap, threads, jobs, force, tta, trust, skip_existing, vector,
            vector_classes, min_area, simplify, merge_vectors, as_json, tiles, bbox, zoom, tile_cache):
    """Segment images of any size: writes NAME.png (class ids) and NAME_color.png.

    INPUTS are files or folders (or, with --tiles, a box over a tile service); a folder's
    layout is mirrored under --out, and in a dataset folder only images are read, never masks. TIFF input gives TIFF output that
    keeps the GeoTIFF tags. --vector adds polygons (NAME.gpkg or NAME.geojson). An image
    that cannot be read is reported and the others are done (exit status 2 at the end);
    --skip-existing then resumes the batch. --json prints one document: per scene, its
    files, pixels per class and, when it is placed on the Earth, hectares per class.
    """
    from satseg.edge import BatchError, predict_files
    from satseg.errors import SatsegError

    check_writable(out)
    vopts = vector_request(vector, vector_classes, min_area, simplify, merge_vectors)
    merged = merged_path(out, vopts, force, skip_existing) if merge_vectors else None
    request = tile_request(inputs, tiles, bbox, zoom, tile_cache, skip_existing)
    path = default_model(model_path)
    require_file(path)
    if str(path).endswith(".tflite"):
        from satseg.edge import EdgeModel

        model = EdgeModel(path, num_threads=threads)
    else:
        require_tensorflow("predict with a .keras or SavedModel model")
        from satseg.evaluate import load_predictor

        model = load_predictor(path, trust=trust)
    if force and skip_existing:
        raise SatsegError("--force and --skip-existing contradict each other; pass one")
    fetched = None
    if request is not None:
        fetched = fetch_tiles(request, out, tile_cache, vopts, force, as_json)
        inputs, force = [str(fetched.path)], True  # its outputs were checked before fetching
    scenes = []
    try:
        written = predict_files(model, inputs, out, overlap, force, progress=not as_json, tta=tta,
                                jobs=jobs or os.cpu_count() or 1, skip_existing=skip_existing, vector=vopts,
                                merged=merged, on_scene=scenes.append if as_json else None)
    except BatchError as e:
        for _, reason in e.failed:
            click.echo(f"satseg: error: {reason}", err=True)
        if as_json:  # the scenes that were done are reported all the same
            click.echo(json.dumps({"out": str(out), "written": len(e.written), "scenes": scenes,
                                   "failed": [{"input": str(s), "reason": r} for s, r in e.failed]}, indent=2))
        else:
            click.echo(f"wrote {_files(len(e.written))} to {out}/")
        raise
    except (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as e:
        raise SatsegError(str(e)) from None
    if as_json:
        tiles_doc = None if fetched is None else {
            "mosaic": str(fetched.path), "tiles": fetched.tiles, "used": fetched.used,
            "from_cache": fetched.from_cache, "problems": fetched.problems}
        click.echo(json.dumps({"out": str(out), "written": len(written), "scenes": scenes,
                               "merged": str(merged) if merged else None, "tiles": tiles_doc}, indent=2))
    else:
        click.echo(f"wrote {_files(len(written))} to {out}/")


def _files(n: int) -> str:
    return f"{n} file" + ("" if n == 1 else "s")


def vector_request(vector, classes, min_area, simplify, merge):
    """The --vector options as one :class:`VectorOptions` (None without --vector), checked before any work."""
    from satseg.errors import SatsegError

    if vector is None:
        given = [n for n, v in (("--vector-classes", classes), ("--min-area", min_area), ("--simplify", simplify),
                                ("--merge-vectors", merge)) if v]
        if given:
            raise SatsegError(f"{given[0]} needs --vector gpkg|geojson")
        return None
    from satseg.geo.vectors import VectorOptions, parse_measure, require_geo

    require_geo("--vector")
    names = tuple(comma_list(classes)) if classes else None
    if classes is not None and not names:
        raise SatsegError(f"--vector-classes '{classes}': names no class")
    return VectorOptions(vector, names, parse_measure(min_area, True, "--min-area") if min_area else None,
                         parse_measure(simplify, False, "--simplify") if simplify else None)


def merged_path(out, vopts, force, skip_existing):
    """OUT/merged.<format>, checked before any work: no link on the way, not over a file unless
    --force, or --skip-existing and the file is the merged layer satseg wrote (a resumed batch
    merges every scene again)."""
    from pathlib import Path

    from satseg.atomic import check_inside
    from satseg.cli.common import check_outputs
    from satseg.errors import SatsegError

    path = Path(out) / f"merged{vopts.suffix}"
    check_inside(out, path)
    if path.is_dir() and not path.is_symlink():  # check_outputs takes folders too (data synth's --out)
        raise SatsegError(f"{path}: is a folder where an output file goes")
    if skip_existing and path.is_file() and not path.is_symlink():
        from satseg.geo.vectors import is_satseg_layer

        if not is_satseg_layer(path):
            raise SatsegError(f"{path}: exists and is not a merged layer satseg wrote; move it away "
                              "(--skip-existing replaces only satseg's own)")
        return path
    check_outputs([path], force)
    return path


def tile_request(inputs, tiles, bbox, zoom, tile_cache, skip_existing):
    """--tiles, --bbox and --zoom as one checked :class:`TileRequest` (None without --tiles)."""
    from satseg.errors import SatsegError

    if tiles is None:
        given = [n for n, v in (("--bbox", bbox), ("--zoom", zoom), ("--tile-cache", tile_cache)) if v is not None]
        if given:
            raise SatsegError(f"{given[0]} needs --tiles URL")
        if not inputs:
            raise SatsegError("no INPUTS: name image files or folders (or --tiles URL --bbox W,S,E,N --zoom Z)")
        return None
    if inputs:
        raise SatsegError("--tiles predicts a tile service's imagery; it takes no INPUTS (pass one or the other)")
    if bbox is None or zoom is None:
        raise SatsegError("--tiles needs --bbox W,S,E,N and --zoom Z")
    if skip_existing:
        raise SatsegError("--skip-existing resumes a batch of files; with --tiles the tile cache makes a rerun cheap")
    from satseg.geo.tileservice import TileRequest, parse_bbox
    from satseg.geo.vectors import require_geo

    require_geo("--tiles")
    return TileRequest(tiles, parse_bbox(bbox), zoom)


def fetch_tiles(request, out, tile_cache, vopts, force, as_json):
    """The mosaic of the request under OUT/imagery/, after checking that nothing it or its
    prediction writes exists (without --force); each tile that could not be used is a warning line."""
    from pathlib import Path

    from satseg.atomic import check_inside
    from satseg.cli.common import check_outputs
    from satseg.edge import output_paths
    from satseg.errors import SatsegError
    from satseg.geo.tileservice import fetch_mosaic

    out = Path(out)
    name = request.name
    mosaic = out / "imagery" / f"{name}.tif"
    planned = [mosaic, *output_paths(mosaic, out / name, vopts)]
    for p in planned:
        check_inside(out, p)
    check_outputs(planned, force)
    cache = Path(tile_cache) if tile_cache else out / "tile-cache"
    if cache.is_relative_to(out):
        check_inside(out, cache)
    if cache.exists() and not cache.is_dir():
        raise SatsegError(f"{cache}: not a folder (--tile-cache)")
    fetched = fetch_mosaic(request, out / "imagery", cache, name, progress=not as_json)
    for problem in fetched.problems:
        click.echo(f"satseg: warning: {problem}", err=True)
    return fetched
