"""Volumes in an S3 bucket for real: a local S3-compatible server (moto) on 127.0.0.1."""

import functools
import socket

import numpy as np
import pytest

from chunks import Roi, create_volume, open_volume, run_blockwise
from connecto.smooth import context_for, smooth, smooth_block


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"moto server mode is not installed ({exc}); pip install 'moto[server]'")
    mp = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       # cloud-files reads the key pair from the environment only with a session token
                       "AWS_SESSION_TOKEN": "testing"}.items():
        mp.setenv(key, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        mp.undo()
        pytest.skip(f"cannot start a local S3 server on 127.0.0.1:{port}: {exc}")
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="em-data")
    yield endpoint
    server.stop()
    mp.undo()


def test_zarr_volume_in_s3_roundtrip_and_blockwise(s3_endpoint):
    url = f"s3://{s3_endpoint}/em-data/raw.zarr"
    vol = create_volume(url, (16, 24, 24), "uint8", (40, 4, 4), chunk_shape=(8, 8, 8))
    data = np.random.default_rng(2).integers(0, 256, (16, 24, 24)).astype(np.uint8)
    vol.write(vol.roi, data)
    again = open_volume(url)
    assert again.format == "zarr" and again.voxel_size_nm == (40, 4, 4)
    assert np.array_equal(again.read(), data)
    assert np.array_equal(again.read(Roi((8, 8, 0), (8, 8, 8))), data[8:, 8:16, :8])
    # a blockwise stage whose output and done-markers live in the bucket
    sigma = (0.5, 1.0, 1.0)
    out = create_volume(f"s3://{s3_endpoint}/em-data/smoothed.zarr", vol.shape, "uint8", (40, 4, 4), chunk_shape=(8, 8, 8))
    result = run_blockwise(functools.partial(smooth_block, sigma), vol.roi, (8, 8, 8), task="smooth",
                           inputs={"raw": again}, outputs={"smoothed": out}, context=context_for(sigma),
                           scheduler="threads", num_workers=2, progress=False)
    assert result.processed_blocks == 18
    assert np.array_equal(open_volume(f"s3://{s3_endpoint}/em-data/smoothed.zarr").read(), smooth(data, sigma))
    rerun = run_blockwise(functools.partial(smooth_block, sigma), vol.roi, (8, 8, 8), task="smooth",
                          inputs={"raw": again}, outputs={"smoothed": out}, context=context_for(sigma),
                          scheduler="sync", progress=False)
    assert rerun.skipped_blocks == 18, "done-markers in the bucket must be seen by the rerun"


def test_precomputed_volume_in_s3_roundtrip(s3_endpoint):
    url = f"precomputed://s3://{s3_endpoint}/em-data/layer"
    vol = create_volume(url, (8, 16, 16), "uint64", (8, 8, 8), chunk_shape=(8, 8, 8))
    data = np.arange(8 * 16 * 16, dtype=np.uint64).reshape(8, 16, 16)
    vol.write(vol.roi, data)
    again = open_volume(url)
    assert again.format == "precomputed" and again.dtype == np.uint64
    assert np.array_equal(again.read(), data)


def test_lost_and_damaged_chunks_in_a_bucket(s3_endpoint):
    import boto3

    from chunks import CorruptChunkError
    from chunks.verify import verify

    def copy(block, inputs):
        return {"out": inputs["raw"][block.write_slices()]}

    raw = create_volume(f"s3://{s3_endpoint}/em-data/integrity-raw.zarr", (16, 16, 16), "uint8", (8, 8, 8),
                        chunk_shape=(8, 8, 8))
    data = np.random.default_rng(4).integers(0, 256, (16, 16, 16)).astype(np.uint8)
    raw.write(raw.roi, data)
    url = f"s3://{s3_endpoint}/em-data/integrity-out.zarr"
    out = create_volume(url, raw.shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    run = functools.partial(run_blockwise, copy, raw.roi, (8, 8, 8), task="copy", inputs={"raw": raw},
                            outputs={"out": out}, scheduler="sync", progress=False)
    run()
    bucket = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket.delete_object(Bucket="em-data", Key="integrity-out.zarr/c/1/0/1")
    assert run().processed_blocks == 1, "the block whose chunk object is gone runs again"
    assert np.array_equal(open_volume(url).read(), data) and not verify(url).problems
    bucket.put_object(Bucket="em-data", Key="integrity-out.zarr/c/0/0/1", Body=b"garbage")
    with pytest.raises(CorruptChunkError, match="cannot read chunk file s3://em-data/integrity-out.zarr/c/0/0/1 "):
        open_volume(url).read()
    assert [p.path for p in verify(url).problems] == ["s3://em-data/integrity-out.zarr/c/0/0/1"]
