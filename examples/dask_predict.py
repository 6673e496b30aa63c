"""Predict a folder of scenes on a Dask cluster: one task per scene, each a pure function of
(model file, scene) that reads the scene, runs the LiteRT model and writes its outputs.

    pip install "satseg-zoo[cli,dask]"
    python examples/dask_predict.py MODEL.tflite SCENES/ OUT/                      # local cluster
    python examples/dask_predict.py MODEL.tflite SCENES/ OUT/ --scheduler tcp://host:8786
    python examples/dask_predict.py MODEL.tflite s3://bucket/scenes/ s3://bucket/out/  # object storage

Locally it starts a ``LocalCluster`` (one single-threaded worker process per core); on a
cluster, pass the scheduler's address: nothing else changes. Workers need satseg installed and
the model, scenes and output folder on a path they all see (a shared file system). Each worker
process loads the model once and keeps it (``satseg.edge.cached_model``: the cache lives in an
installed module, not in this script, whose globals Dask ships with every task). The outputs are
those of ``satseg predict``: planned first (two scenes that would write one file are refused), a
scene that cannot be read is reported and the others are done (exit status 2), and
``--skip-existing`` resumes a batch. Scenes and outputs may also be fsspec URLs (``s3://``,
``gs://``, ``az://``, ... with the matching fsspec package on every worker): each worker copies its
scene to a temporary folder, predicts it there and uploads the files (one object each); scenes are
found there by name (.jpg, .jpeg, .png, .tif, .tiff), not by content.

Why Dask: it is pure Python, installs in seconds next to numpy, runs the same code on a laptop
and on a cluster (SSH, Kubernetes, HPC job queues), and needs no pipeline rewrite of a function
that already takes a path and writes files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def predict_scene_file(model_path: str, src: str, dst: str, threads: int = 1) -> list[str] | str:
    """One scene on a worker: the worker's cached model, predict, write; the files written, or
    why the scene could not be read."""
    import os

    from satseg.edge import cached_model, predict_or_reason

    result = predict_or_reason(cached_model(model_path, threads), Path(src), Path(dst))
    return result if isinstance(result, str) else [str(p) for p in result.paths] + [f"pid:{os.getpid()}"]


def is_url(where) -> bool:
    return "://" in str(where)


def url_plan(inputs: str, out: str, force: bool = False, skip_existing: bool = False) -> list[tuple[str, list[str]]]:
    """(scene URL, its output URLs) for every scene under ``inputs``, planned like ``predict``'s:
    the layout mirrored, two scenes writing one file refused, the output folder never read as
    input, existing outputs kept unless ``force`` (left out with ``skip_existing``). Local inputs
    are found as ``predict`` finds them (by content, masks left out); remote ones by name."""
    from pathlib import PurePosixPath

    import fsspec

    from satseg.edge import collect_inputs, output_paths, output_stem
    from satseg.imaging import IMAGE_SUFFIXES

    out_fs, out_root = fsspec.core.url_to_fs(out)
    out_root = out_root.rstrip("/")
    if not is_url(inputs):
        scenes = [(str(src), PurePosixPath(rel.as_posix())) for src, rel in collect_inputs([inputs])]
    else:
        fs, root = fsspec.core.url_to_fs(inputs)
        root = root.rstrip("/")
        if not fs.exists(root):
            raise FileNotFoundError(f"{inputs}: no such file or folder")
        inside = type(fs) is type(out_fs) and (out_root + "/").startswith(root + "/")
        found = sorted(p for p in fs.find(root) if p.lower().endswith(IMAGE_SUFFIXES)
                       and not (inside and p.startswith(out_root + "/"))) if fs.isdir(root) else [root]
        scenes = [(fs.unstrip_protocol(p), output_stem(PurePosixPath(p[len(root) + 1:] if p != root
                                                                     else PurePosixPath(p).name))) for p in found]
    if not scenes:
        raise FileNotFoundError(f"{inputs}: no scenes (.jpg, .jpeg, .png, .tif, .tiff) found")
    owner, work = {}, []
    for scene, stem in scenes:
        outs = [out_fs.unstrip_protocol(f"{out_root}/{p}") for p in output_paths(PurePosixPath(scene), stem)]
        for o in outs:
            if o in owner:
                raise FileExistsError(f"{owner[o]} and {scene} would both write {o}")
            owner[o] = scene
        work.append((scene, outs))
    if skip_existing:
        return [(src, outs) for src, outs in work if not all(out_fs.exists(o) for o in outs)]
    clash = [] if force else [o for _, outs in work for o in outs if out_fs.exists(o)]
    if clash:
        raise FileExistsError(f"{clash[0]}: output exists ({len(clash)} in all); pass --force to overwrite")
    return work


def predict_scene_url(model_path: str, src: str, outs: list[str], threads: int = 1) -> list[str] | str:
    """One scene given as a URL: copied to a temporary folder, predicted there, its files uploaded
    to ``outs`` (ids, then colours); the URLs written, or why the scene could not be read."""
    import os
    import shutil
    import tempfile

    import fsspec

    from satseg.edge import cached_model, predict_or_reason

    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / ("scene" + Path(src).suffix)
        try:
            with fsspec.open(src, "rb") as f, open(local, "wb") as g:
                shutil.copyfileobj(f, g)
        except OSError as e:
            return f"{src}: cannot copy it here ({e})"
        result = predict_or_reason(cached_model(model_path, threads), local, Path(d) / "out" / "scene")
        if isinstance(result, str):
            return result.replace(str(local), src)
        try:
            for written, url in zip(result.paths, outs):
                fs, path = fsspec.core.url_to_fs(url)
                fs.makedirs(path.rpartition("/")[0], exist_ok=True)
                fs.put_file(str(written), path)
        except OSError as e:
            return f"{src}: cannot upload its outputs ({e})"
    return outs + [f"pid:{os.getpid()}"]


def plan(inputs, out_dir, force: bool = False, skip_existing: bool = False) -> list[tuple[str, object]]:
    """Every scene with where its outputs go, checked before any worker starts: (scene, output
    stem) for paths (``satseg.edge.plan_outputs``), (scene URL, output URLs) when either is a URL."""
    from satseg.edge import collect_inputs, plan_outputs

    if is_url(inputs) or is_url(out_dir):
        return url_plan(str(inputs), str(out_dir), force, skip_existing)
    out_dir = Path(out_dir)
    return [(str(src), str(dst)) for src, dst in plan_outputs(collect_inputs([inputs], out_dir), out_dir, force,
                                                             skip_existing)]


PROCESS_LOCAL = ("memory",)  # fsspec filesystems that live inside one process


def check_reachable(planned, client):
    """Refuse URLs on a filesystem that lives inside this process (``memory://``) when a worker
    runs in another process: it would read nothing, or write files no one else can see and
    report them written."""
    from satseg.errors import SatsegError

    urls = [u for src, outs in planned if not isinstance(outs, str) for u in (src, *outs)]
    local = next((u for u in urls if u.split("://", 1)[0] in PROCESS_LOCAL), None)
    if local is None:
        return
    if set(client.run(os.getpid).values()) - {os.getpid()}:
        raise SatsegError(f"{local}: a filesystem inside this process; Dask workers in other processes cannot "
                          "see it (use a shared one: a path, s3://, gs://, ...)")


def run(model_path, planned, client):
    """Submit one task per planned scene to ``client`` (a ``distributed.Client``) and gather;
    returns (files written, [(scene, reason)] for scenes that failed, worker pids)."""
    check_reachable(planned, client)
    task = predict_scene_file if planned and isinstance(planned[0][1], str) else predict_scene_url
    futures = [client.submit(task, str(model_path), src, dst, pure=False) for src, dst in planned]
    files, failed, pids = [], [], set()
    for (src, _), result in zip(planned, client.gather(futures)):
        if isinstance(result, str):
            failed.append((src, result))
        else:
            files += [f for f in result if not f.startswith("pid:")]
            pids |= {f for f in result if f.startswith("pid:")}
    return files, failed, pids


def fail(message: str, code: int = 2):
    print(f"dask_predict.py: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a .tflite file, or a shipped model's name (satseg models)")
    ap.add_argument("inputs", help="a scene or a folder of scenes (a path or an fsspec URL)")
    ap.add_argument("out", help="the output folder (a path or an fsspec URL)")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler [default: a local cluster]")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="local cluster only (at least 1)")
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--force", action="store_true", help="overwrite existing outputs")
    what.add_argument("--skip-existing", action="store_true", help="leave out scenes whose outputs exist (resume)")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be at least 1, not {args.workers}")
    from satseg.edge import EdgeModel, default_model
    from satseg.errors import SatsegError

    try:  # checked here, before any worker starts
        args.model = default_model(args.model)
        EdgeModel(args.model)
    except SatsegError as e:
        fail(str(e))
    try:
        planned = plan(args.inputs, args.out, args.force, args.skip_existing)
    except (OSError, ValueError, ImportError, SatsegError) as e:  # ImportError: fsspec's "install s3fs"
        fail(str(e).replace("predict into another --out", "predict into another output folder"))
    from distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True))
    with client:
        try:
            files, failed, pids = run(args.model, planned, client)
        except SatsegError as e:
            fail(str(e))
    print(f"wrote {len(files)} files to {args.out}/ from {len(pids)} worker processes")
    for _src, reason in failed:
        print(f"dask_predict.py: error: {reason}", file=sys.stderr)
    if failed:
        sys.exit(2)


if __name__ == "__main__":
    main()
