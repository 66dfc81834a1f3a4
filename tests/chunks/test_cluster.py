"""Cloud-worker mode for real: a dask scheduler and two dask workers as separate processes."""

import dataclasses
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from chunks import create_volume, open_volume, run_blockwise

DASK = Path(sys.executable).parent / "dask"


def slow_invert(delay, block, inputs):
    import time as _time

    _time.sleep(delay)
    return {"out": 255 - inputs["raw"][block.write_slices()]}


REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_MEMORY_LIMIT = "1.5GB"
SMALL_WORKER_LIMIT = "750MB"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log, env=None):
    # as on a real cluster, workers run the same code: this test module is importable there
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def _cluster(tmp_path, worker_args, env=None):
    if not DASK.exists() and not shutil.which("dask"):
        pytest.skip("the dask command line (distributed) is not installed")
    dask = str(DASK) if DASK.exists() else shutil.which("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "cluster.log", "w")
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], log, env)]
    time.sleep(1.0)
    workers = [
        _start([dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", *worker_args,
                "--name", f"w{i}"], log)
        for i in range(2)
    ]
    procs += workers
    from distributed import Client

    client = Client(address, timeout="30s")
    client.wait_for_workers(2, timeout=60)
    try:
        yield address, client, workers
    finally:
        client.close()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def dask_cluster(tmp_path):
    yield from _cluster(tmp_path, ["--no-nanny"])


@pytest.fixture
def limited_cluster(tmp_path):
    """Workers under a nanny with a memory limit: one that goes over it is killed and restarted."""
    yield from _cluster(tmp_path, ["--memory-limit", WORKER_MEMORY_LIMIT])


@pytest.fixture
def small_workers(tmp_path):
    """Workers with 750 MB each; a task that takes one over it fails at once (no retries on other workers)."""
    yield from _cluster(tmp_path, ["--memory-limit", SMALL_WORKER_LIMIT],
                        env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})


def test_run_on_a_tcp_cluster_survives_a_killed_worker(tmp_path, dask_cluster):
    address, client, workers = dask_cluster
    raw = create_volume(str(tmp_path / "raw.zarr"), (16, 32, 32), "uint8", (8, 8, 8), chunk_shape=(4, 8, 8))
    raw.write(raw.roi, np.random.default_rng(1).integers(0, 256, (16, 32, 32)).astype(np.uint8))
    out = create_volume(str(tmp_path / "out.zarr"), raw.shape, "uint8", (8, 8, 8), chunk_shape=(4, 8, 8))
    marker_dir = tmp_path / "out.zarr" / "done" / "invert"

    import threading

    killed = {}

    def kill_one_worker_mid_run():
        deadline = time.time() + 60
        while time.time() < deadline:
            if marker_dir.exists() and len(list(marker_dir.glob("*_*_*"))) >= 6:
                killed["at"] = len(list(marker_dir.glob("*_*_*")))
                os.killpg(workers[0].pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker_mid_run)
    killer.start()
    # the same string a user passes as --scheduler tcp://127.0.0.1:PORT
    result = run_blockwise(functools.partial(slow_invert, 0.1), raw.roi, (4, 8, 8), task="invert",
                           inputs={"raw": raw}, outputs={"out": out}, scheduler=address, progress=False)
    killer.join()
    assert 6 <= killed.get("at", 0) < 64, "a worker must have been killed mid-run"
    assert workers[0].poll() is not None
    assert result.processed_blocks == result.total_blocks == 64
    assert np.array_equal(open_volume(str(tmp_path / "out.zarr")).read(), 255 - raw.read())


def test_two_local_clusters_at_once_do_not_collide_on_a_port():
    import warnings

    from chunks.cluster import connect

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with connect("threads", 1) as first, connect("threads", 1) as second:
            assert first.submit(abs, -1).result() + second.submit(abs, -2).result() == 3
    assert not [w for w in caught if "already in use" in str(w.message)]


def test_hierarchical_segment_on_a_tcp_cluster_survives_a_killed_worker(tmp_path, limited_cluster):
    """Every stage of ``segment`` runs on separate dask worker processes; one is killed during the block
    agglomeration, the run finishes with the result of a run in one process, and no worker went over its
    memory limit (a restart would show in the log)."""
    import threading

    from connecto.segment.affinities import affinities_from_labels
    from connecto.segment.blockwise import SegmentParams, segment
    from tests.connecto.test_segment_blockwise import voronoi_labels

    address, _client, workers = limited_cluster
    labels = voronoi_labels()
    affs = create_volume(str(tmp_path / "affs"), labels.shape, np.uint8, (8, 8, 8), chunk_shape=(16, 16, 16),
                         num_channels=3)
    affs.write(affs.roi, affinities_from_labels(labels, noise=0.25, seed=3))
    params = SegmentParams(agglomeration="hierarchical", min_size=500)
    common = {"block_shape": (16, 32, 32), "params": params, "progress": False}  # 12 blocks
    reference = segment(affs, str(tmp_path / "reference"), scheduler="sync", **common).segmentation.read()
    marker_dir = tmp_path / "run" / "done" / "agglomerate_blocks"
    killed = {}

    def kill_one_worker_mid_run():
        deadline = time.time() + 120
        while time.time() < deadline:
            if marker_dir.exists() and len(list(marker_dir.glob("*_*_*"))) >= 2:
                killed["at"] = len(list(marker_dir.glob("*_*_*")))
                os.killpg(workers[0].pid, signal.SIGKILL)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one_worker_mid_run)
    killer.start()
    result = segment(affs, str(tmp_path / "run"), scheduler=address, **common)
    killer.join()
    assert 2 <= killed.get("at", 0) < 12, "a worker must have been killed during the block agglomeration"
    assert workers[0].poll() is not None and workers[1].poll() is None
    assert np.array_equal(result.segmentation.read(), reference)
    log = (tmp_path / "cluster.log").read_text()
    assert "exceeded" not in log and "Restarting worker" not in log, log[-2000:]


def _codec_pool_width_after_a_read(url):
    import zarr.core.sync

    open_volume(url).read()
    return zarr.core.sync._executor._max_workers


def _segment_kernels_loaded():
    from connecto.segment import absorb, greedy, unionfind

    # the kernels called from Python (the ones they call are compiled into them)
    dispatchers = [unionfind._union_pairs, unionfind._join_scores, unionfind._flatten, greedy._greedy,
                   absorb._best_neighbours]
    return [bool(f.signatures) for f in dispatchers]


def test_each_worker_decodes_with_its_own_threads_and_is_warmed_up(tmp_path):
    """zarr's codec pool is as wide as the worker's threads (not the machine's cores), and the warm-up
    modules ran on every worker before any block (their compiled kernels are loaded)."""
    from chunks.cluster import connect

    raw = create_volume(str(tmp_path / "raw.zarr"), (8, 32, 32), "uint8", (8, 8, 8), chunk_shape=(4, 8, 8))
    raw.write(raw.roi, np.ones((8, 32, 32), np.uint8))
    with connect("local", 2, warm_up=("connecto.segment.warm",)) as client:
        widths = client.run(_codec_pool_width_after_a_read, str(tmp_path / "raw.zarr"))
        loaded = client.run(_segment_kernels_loaded)
    assert list(widths.values()) == [1, 1]
    assert len(loaded) == 2 and all(all(v) for v in loaded.values()), loaded


def test_a_volume_whose_global_step_kills_a_worker_segments_hierarchically_on_the_same_workers(tmp_path,
                                                                                              small_workers):
    """Workers limited to 750 MB: the hierarchical segmentation of this volume finishes on them with no worker
    going over the limit, and finds the true cells; the global agglomeration of the same region graph, run as
    a task on one of those workers, takes it over the limit and the nanny kills it."""
    from distributed import KilledWorker

    from connecto.segment.affinities import affinities_from_labels
    from connecto.segment.blockwise import SegmentParams, agglomerate_run, segment
    from connecto.segment.evaluate import evaluate
    from tests.connecto.test_segment_blockwise import voronoi_labels

    address, client, _workers = small_workers
    labels = voronoi_labels((64, 320, 320), cells=80_000, seed=4)
    affs = create_volume(str(tmp_path / "affs"), labels.shape, np.uint8, (8, 8, 8), chunk_shape=(32, 64, 64),
                         num_channels=3)
    affs.write(affs.roi, affinities_from_labels(labels, noise=0.3, seed=3))
    params = SegmentParams(agglomeration="hierarchical", min_size=0)  # cells of ~80 voxels: keep them
    run = str(tmp_path / "run")
    result = segment(affs, run, params=params, block_shape=(32, 128, 128), scheduler=address, progress=False)
    log = (tmp_path / "cluster.log").read_text()
    assert "exceeded" not in log and "Restarting worker" not in log, log[-2000:]
    from chunks.memory import peak_rss_mb

    peaks = client.run(peak_rss_mb)
    assert max(peaks.values()) < 0.8 * 750, peaks  # below where dask pauses a worker, too
    truth = evaluate(result.segmentation.read(), labels)
    assert truth.voi_sum < 0.3, truth

    # the same run's global step, where the workers would have to run it
    with pytest.raises(KilledWorker):
        client.submit(agglomerate_run, run, dataclasses.replace(params, agglomeration="global"),
                      pure=False).result(timeout=120)
    log = (tmp_path / "cluster.log").read_text()
    assert "exceeded" in log or "Restarting worker" in log, log[-2000:]
    print("hierarchical: workers' peak RSS (MB)", peaks)
