"""The segment stage with every input and output in an S3 bucket (a local moto server on 127.0.0.1)."""

import numpy as np

from chunks import create_volume, open_volume
from connecto.segment.affinities import affinities_from_labels
from connecto.segment.blockwise import SegmentParams, segment
from tests.chunks.test_s3 import s3_endpoint  # noqa: F401 - the fixture

from .test_segment_blockwise import voronoi_labels


def test_hierarchical_segment_reads_and_writes_only_the_bucket(s3_endpoint, tmp_path):  # noqa: F811
    labels = voronoi_labels((24, 48, 48), cells=20)
    data = affinities_from_labels(labels, noise=0.25, seed=3)
    bucket = f"s3://{s3_endpoint}/em-data"
    for where in (f"{bucket}/affs.zarr", str(tmp_path / "affs")):
        vol = create_volume(where, labels.shape, np.uint8, (8, 8, 8), chunk_shape=(12, 24, 48), num_channels=3)
        vol.write(vol.roi, data)
    params = SegmentParams(agglomeration="hierarchical", min_size=200)
    common = {"block_shape": (12, 24, 48), "params": params, "scheduler": "threads", "num_workers": 2,
              "progress": False}
    remote = segment(f"{bucket}/affs.zarr", f"{bucket}/run", **common)
    local = segment(str(tmp_path / "affs"), str(tmp_path / "run"), **common)
    assert remote.history.num_segments(0.5) == local.history.num_segments(0.5) > 1
    again = open_volume(f"{bucket}/run/segmentation").read()
    assert np.array_equal(again, open_volume(str(tmp_path / "run" / "segmentation")).read())
    import boto3

    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
        Bucket="em-data", Prefix="run/agglomeration/")["Contents"]}
    assert "run/agglomeration/hierarchy.json" in keys
    assert sum(k.startswith("run/agglomeration/blocks/scores-") for k in keys) == 4
    assert sum(k.startswith("run/agglomeration/mapping-0.5000/block-") for k in keys) == 4
