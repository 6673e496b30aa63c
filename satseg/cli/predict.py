import json
import os

import click

from satseg.atomic import check_writable
from satseg.cli.common import default_model, require_file, require_tensorflow
from satseg.cli.options import (
    force_option,
    json_option,
    overlap_option,
    trust_option,
    vector_options,
    verbosity_options,
)


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
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
@trust_option
@force_option
@json_option
@verbosity_options
def command(inputs, model_path, out, overlap, threads, jobs, force, tta, trust, skip_existing, vector,
            vector_classes, min_area, simplify, merge_vectors, as_json):
    """Segment images of any size: writes NAME.png (class ids) and NAME_color.png.

    INPUTS are files or folders; a folder's layout is mirrored under --out, and in a
    dataset folder only images are read, never masks. TIFF input gives TIFF output that
    keeps the GeoTIFF tags. --vector adds polygons (NAME.gpkg or NAME.geojson). An image
    that cannot be read is reported and the others are done (exit status 2 at the end);
    --skip-existing then resumes the batch. --json prints one document: per scene, its
    files, pixels per class and, when it is placed on the Earth, hectares per class.
    """
    from satseg.edge import BatchError, predict_files
    from satseg.errors import SatsegError

    check_writable(out)
    vopts = vector_request(vector, vector_classes, min_area, simplify, merge_vectors)
    merged = merged_path(out, vopts, force) if merge_vectors else None
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
    scenes = []
    try:
        written = predict_files(model, inputs, out, overlap, force, progress=not as_json, tta=tta,
                                jobs=jobs or os.cpu_count() or 1, skip_existing=skip_existing, vector=vopts,
                                on_scene=scenes.append)
    except BatchError as e:
        for _, reason in e.failed:
            click.echo(f"satseg: error: {reason}", err=True)
        click.echo(f"wrote {len(e.written)} files to {out}/", err=as_json)
        raise
    except (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as e:
        raise SatsegError(str(e)) from None
    if merged is not None:
        written.append(merge_scene_layers(inputs, out, vopts, merged))
    if as_json:
        click.echo(json.dumps({"out": str(out), "written": len(written), "scenes": scenes,
                               "merged": str(merged) if merged else None}, indent=2))
    else:
        click.echo(f"wrote {len(written)} files to {out}/")


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
    names = tuple(c.strip() for c in classes.split(",") if c.strip()) if classes else None
    return VectorOptions(vector, names, parse_measure(min_area, True, "--min-area") if min_area else None,
                         parse_measure(simplify, False, "--simplify") if simplify else None)


def merged_path(out, vopts, force):
    from pathlib import Path

    from satseg.errors import SatsegError

    path = Path(out) / f"merged{vopts.suffix}"
    if path.is_symlink() or (path.exists() and not force):
        raise SatsegError(f"{path}: exists; pass --force to overwrite it")
    return path


def merge_scene_layers(inputs, out, vopts, merged):
    """Every input's polygon layer under --out (also those a --skip-existing run left) in one."""
    from pathlib import Path

    from satseg.edge import collect_inputs, output_paths
    from satseg.geo.vectors import merge_files

    layers = [output_paths(src, Path(out) / rel, vopts)[-1] for src, rel in collect_inputs(inputs, out)]
    return merge_files([p for p in layers if p.is_file()], merged, vopts.format)
