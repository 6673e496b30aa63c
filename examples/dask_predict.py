"""Predict a folder of scenes on a Dask cluster: one task per scene, each a pure function of
(model file, scene) that reads the scene, runs the LiteRT model and writes its outputs.

    pip install "satseg-zoo[cli,dask]"
    python examples/dask_predict.py MODEL.tflite SCENES/ OUT/                      # local cluster
    python examples/dask_predict.py MODEL.tflite SCENES/ OUT/ --scheduler tcp://host:8786

Locally it starts a ``LocalCluster`` (one single-threaded worker process per core); on a
cluster, pass the scheduler's address: nothing else changes. Workers need satseg installed and
the model, scenes and output folder on a path they all see (a shared file system). Each worker
process loads the model once and keeps it. The outputs are those of ``satseg predict``.

Why Dask: it is pure Python, installs in seconds next to numpy, runs the same code on a laptop
and on a cluster (SSH, Kubernetes, HPC job queues), and needs no pipeline rewrite of a function
that already takes a path and writes files.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

_MODELS: dict = {}


def predict_scene_file(model_path: str, src: str, dst: str, threads: int = 1) -> list[str]:
    """One scene: load the model once per worker process, predict, write; returns the files."""
    from satseg.edge import EdgeModel, predict_one

    key = (model_path, threads)
    if key not in _MODELS:
        _MODELS[key] = EdgeModel(model_path, num_threads=threads)
    return [str(p) for p in predict_one(_MODELS[key], Path(src), Path(dst))]


def run(model_path, inputs, out_dir, client, force: bool = False) -> list[str]:
    """Submit one task per scene to ``client`` (a ``distributed.Client``) and gather the files."""
    from satseg.edge import collect_inputs

    out_dir = Path(out_dir)
    pairs = collect_inputs([inputs])
    if not force:
        done = [rel for _, rel in pairs if any((out_dir / rel).with_suffix(s).exists() for s in (".png", ".tif"))]
        if done:
            raise FileExistsError(f"{out_dir / done[0]}: output exists; pass --force to overwrite")
    futures = [client.submit(predict_scene_file, str(model_path), str(src), str(out_dir / rel), pure=False)
               for src, rel in pairs]
    return [f for files in client.gather(futures) for f in files]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler [default: a local cluster]")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="local cluster only")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    from distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True))
    with client:
        files = run(args.model, args.inputs, args.out, client, args.force)
    print(f"wrote {len(files)} files to {args.out}/")


if __name__ == "__main__":
    main()
