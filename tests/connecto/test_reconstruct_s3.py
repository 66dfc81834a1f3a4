"""A whole reconstruct against an S3 API (a local moto server on 127.0.0.1): raw read from the bucket, every
output written there, the same segmentation as a local run, and nothing written on local disk."""

import numpy as np

from chunks import create_volume, open_volume
from connecto.demo import shipped_checkpoint, shipped_synapse_checkpoint
from connecto.reconstruct import ReconstructConfig, reconstruct
from connecto.synthetic import generate_arrays
from tests.chunks.test_s3 import s3_endpoint  # noqa: F401 - the fixture


def test_reconstruct_reads_and_writes_only_the_bucket(s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    volume = generate_arrays((32, 64, 64), (8, 8, 8), seed=5, n_synapses=4)
    bucket = f"s3://{s3_endpoint}/em-data/reconstruct"  # other tests' keys live in the same in-process server
    for where in (f"{bucket}/raw.zarr", str(tmp_path / "raw.zarr")):
        raw = create_volume(where, volume.raw.shape, np.uint8, (8, 8, 8), chunk_shape=(16, 32, 32))
        raw.write(raw.roi, volume.raw)
    common = {"checkpoint": shipped_checkpoint(), "synapse_checkpoint": shipped_synapse_checkpoint(),
              "threshold": 0.5, "predict_block_shape": (16, 32, 32),
              "segment_block_shape": (16, 32, 32), "scheduler": "threads", "workers": 2}
    local = reconstruct(ReconstructConfig(raw=str(tmp_path / "raw.zarr"), run_dir=str(tmp_path / "run"), **common),
                        progress=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a stray local write would land here
    remote = reconstruct(ReconstructConfig(raw=f"{bucket}/raw.zarr", run_dir=f"{bucket}/run", **common),
                         progress=False)
    stages = ["predict", "predict_synapses", "segment", "synapses"]
    assert sorted(remote["stages"]) == sorted(local["stages"]) == stages
    for name in ("segmentation", "clefts"):
        assert np.array_equal(open_volume(f"{bucket}/run/{name}").read(), open_volume(str(tmp_path / "run" / name)).read())
    from connecto.segment.graph_store import read_table

    synapses = read_table(f"{bucket}/run/synapses.parquet")
    assert len(synapses) and synapses.equals(read_table(str(tmp_path / "run" / "synapses.parquet")))
    assert list(work.iterdir()) == []
    import boto3

    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
        Bucket="em-data", Prefix="reconstruct/run/")["Contents"]}
    assert {f"reconstruct/run/{k}" for k in ("run.json", "affinities.zarr/zarr.json", "segmentation/zarr.json",
                                             "synapses.parquet", "clefts/zarr.json")} <= keys
    # a rerun resumes from the bucket's run.json: nothing is computed again
    again = reconstruct(ReconstructConfig(raw=f"{bucket}/raw.zarr", run_dir=f"{bucket}/run", **common),
                        progress=False)
    for stage in stages:
        assert again["stages"][stage]["seconds"] == remote["stages"][stage]["seconds"]
        assert again["stages"][stage]["fingerprint"] == remote["stages"][stage]["fingerprint"]
