"""examples/dask_predict.py on a local Dask cluster gives the files `predict --jobs 1` gives."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from satseg.edge import EdgeModel, predict_files

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("distributed")


def _example():
    spec = importlib.util.spec_from_file_location("dask_predict", ROOT / "examples" / "dask_predict.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_dask_pipeline_matches_predict(tmp_path, pixel_tflite):
    from distributed import Client, LocalCluster

    scenes = tmp_path / "scenes"
    (scenes / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a/one.png", "two.png", "three.png"):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(scenes / name)
    ref = predict_files(EdgeModel(pixel_tflite, num_threads=1), [scenes], tmp_path / "ref", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        files = _example().run(pixel_tflite, scenes, tmp_path / "dask", client)
    assert len(files) == len(ref) == 6
    for r in ref:
        d = tmp_path / "dask" / Path(r).relative_to(tmp_path / "ref")
        assert d.read_bytes() == Path(r).read_bytes()
