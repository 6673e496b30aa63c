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
    for name in ("a/one.png", "two.png", "three.png", "four.png", "five.png", "six.png"):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(scenes / name)
    ref = predict_files(EdgeModel(pixel_tflite, num_threads=1), [scenes], tmp_path / "ref", progress=False)
    (scenes / "bad.png").write_bytes((scenes / "two.png").read_bytes()[:200])  # truncated
    example = _example()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        files, failed, pids = example.run(pixel_tflite, example.plan(scenes, tmp_path / "dask"), client)
        models = client.run(lambda: __import__("satseg.edge").edge.models_loaded())
        again, _, _ = example.run(pixel_tflite, example.plan(scenes, tmp_path / "dask", skip_existing=True), client)
    assert len(files) == len(ref) == 12 and again == []  # the bad scene is retried, the rest skipped
    assert [Path(src).name for src, _ in failed] == ["bad.png"] and "bad.png" in failed[0][1]
    assert 1 <= len(pids) <= 2 and set(models.values()) <= {0, 1}  # one model per worker process, not per scene
    for r in ref:
        d = tmp_path / "dask" / Path(r).relative_to(tmp_path / "ref")
        assert d.read_bytes() == Path(r).read_bytes()


@pytest.mark.slow
def test_dask_pipeline_reads_and_writes_fsspec_urls(tmp_path, pixel_tflite):
    """Scenes and outputs as fsspec URLs (here memory://, seen by a threaded cluster; the outputs
    inside the input folder): the files are predict's, a truncated scene is reported by its URL,
    --skip-existing resumes, and a missing input is refused before any work."""
    import fsspec
    from distributed import Client, LocalCluster

    scenes = tmp_path / "scenes"
    (scenes / "a").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in ("a/one.png", "two.jpg"):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(scenes / name)
    ref = predict_files(EdgeModel(pixel_tflite, num_threads=1), [scenes], tmp_path / "ref", progress=False)
    fs = fsspec.filesystem("memory")
    for f in scenes.rglob("*.*"):
        fs.pipe(f"/in/{f.relative_to(scenes).as_posix()}", f.read_bytes())
    fs.pipe("/in/bad.png", (scenes / "a" / "one.png").read_bytes()[:200])
    example = _example()
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        files, failed, _ = example.run(pixel_tflite, example.plan("memory://in", "memory://in/out"), client)
        again, _, _ = example.run(pixel_tflite, example.plan("memory://in", "memory://in/out", skip_existing=True),
                                  client)
    with pytest.raises(FileExistsError, match="output exists"):
        example.plan("memory://in", "memory://in/out")  # the outputs inside the input folder are not inputs
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        example.plan("memory://nowhere", "memory://out")
    assert len(files) == len(ref) == 4 and again == []
    assert [src for src, _ in failed] == ["memory:///in/bad.png"] and "memory:///in/bad.png" in failed[0][1]
    for r in ref:
        assert fs.cat(f"/in/out/{Path(r).relative_to(tmp_path / 'ref').as_posix()}") == Path(r).read_bytes()


@pytest.mark.slow
def test_a_process_local_filesystem_is_refused_for_workers_in_other_processes(tmp_path, pixel_tflite):
    """memory:// outputs written by a worker process would live and die inside it: refused, not
    reported written."""
    import fsspec
    from distributed import Client, LocalCluster

    from satseg.errors import SatsegError

    rng = np.random.default_rng(2)
    fsspec.filesystem("memory").pipe("/procs/in/a.png", _png_bytes(rng))
    example = _example()
    planned = example.plan("memory://procs/in", "memory://procs/out")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(SatsegError, match="memory://.*inside this process"):
            example.run(pixel_tflite, planned, client)
    assert not fsspec.filesystem("memory").exists("/procs/out")


def _png_bytes(rng) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
