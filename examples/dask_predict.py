"""Predict a folder of scenes on a Dask cluster: one task per scene, each a pure function of
(model file, scene) that reads the scene, runs the LiteRT model and writes its outputs.

    pip install "satseg-zoo[cli,dask]"
    python examples/dask_predict.py MODEL.tflite SCENES/ OUT/                      # local cluster
    python examples/dask_predict.py MODEL.tflite SCENES/ OUT/ --scheduler tcp://host:8786

Locally it starts a ``LocalCluster`` (one single-threaded worker process per core); on a
cluster, pass the scheduler's address: nothing else changes. Workers need satseg installed and
the model, scenes and output folder on a path they all see (a shared file system). Each worker
process loads the model once and keeps it (``satseg.edge.cached_model``: the cache lives in an
installed module, not in this script, whose globals Dask ships with every task). The outputs are
those of ``satseg predict``: planned first (two scenes that would write one file are refused), a
scene that cannot be read is reported and the others are done (exit status 2), and
``--skip-existing`` resumes a batch.

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
    return result if isinstance(result, str) else [str(p) for p in result] + [f"pid:{os.getpid()}"]


def run(model_path, inputs, out_dir, client, force: bool = False, skip_existing: bool = False):
    """Plan the outputs, submit one task per scene to ``client`` (a ``distributed.Client``) and
    gather; returns (files written, [(scene, reason)] for scenes that failed, worker pids)."""
    from satseg.edge import collect_inputs, plan_outputs

    out_dir = Path(out_dir)
    planned = plan_outputs(collect_inputs([inputs], out_dir), out_dir, force, skip_existing)
    futures = [client.submit(predict_scene_file, str(model_path), str(src), str(dst), pure=False)
               for src, dst in planned]
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
    ap.add_argument("inputs", help="a scene or a folder of scenes")
    ap.add_argument("out", help="the output folder")
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
    from distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True))
    with client:
        try:
            files, failed, pids = run(args.model, args.inputs, args.out, client, args.force, args.skip_existing)
        except (OSError, ValueError, SatsegError) as e:
            fail(str(e).replace("predict into another --out", "predict into another output folder"))
    print(f"wrote {len(files)} files to {args.out}/ from {len(pids)} worker processes")
    for _src, reason in failed:
        print(f"dask_predict.py: error: {reason}", file=sys.stderr)
    if failed:
        sys.exit(2)


if __name__ == "__main__":
    main()
