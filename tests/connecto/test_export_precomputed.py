"""``connecto export RUN OUT --format precomputed``: every layer reads back through CloudVolume."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chunks import open_volume
from connecto.cli import cli
from connecto.export_precomputed import downsample_mean, export_precomputed, pyramid_factors, served_state

from .precomputed_run import OFFSET, SHAPE, VOXEL, make_small_run

MIN_VOXELS = 5000  # the small run has segments of 3671 to 41338 voxels: some are left out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = make_small_run(tmp_path_factory.mktemp("precomputed"))
    out = run.parent / "export"
    summary = export_precomputed(run, out, scheduler="sync", min_voxels=MIN_VOXELS, progress=False)
    return run, out, summary


def cloudvolume(path, mip=0):
    from cloudvolume import CloudVolume

    return CloudVolume(f"file://{path}", mip=mip, progress=False)


def test_volumes_read_back_equal_through_cloudvolume(exported):
    run, out, _ = exported
    segmentation = open_volume(str(run / "segmentation")).read()
    cv = cloudvolume(out / "segmentation")
    assert cv.info["mesh"] == "mesh" and cv.info["skeletons"] == "skeletons"
    assert cv.info["segment_properties"] == "segment_properties"
    assert list(cv.voxel_offset) == list(OFFSET[::-1]) and list(cv.resolution) == list(VOXEL[::-1])
    np.testing.assert_array_equal(np.asarray(cv[:, :, :])[..., 0].transpose(2, 1, 0), segmentation)
    raw = open_volume(str(run.parent / "raw.zarr")).read()
    np.testing.assert_array_equal(np.asarray(cloudvolume(out / "raw")[:, :, :])[..., 0].transpose(2, 1, 0), raw)
    factor = pyramid_factors(VOXEL, SHAPE)[0]
    assert factor == (2, 2, 2)
    mip1 = np.asarray(cloudvolume(out / "raw", mip=1)[:, :, :])[..., 0].transpose(2, 1, 0)
    np.testing.assert_array_equal(mip1, downsample_mean(raw, factor))


def test_largest_segment_has_a_mesh_and_a_skeleton_in_its_voxels(exported):
    run, out, summary = exported
    segmentation = open_volume(str(run / "segmentation")).read()
    ids, counts = np.unique(segmentation[segmentation != 0], return_counts=True)
    largest = int(ids[np.argmax(counts)])
    assert summary["largest_segment"] == largest
    voxels = np.argwhere(segmentation == largest)
    low = (voxels.min(axis=0) + OFFSET) * VOXEL  # nm, z y x
    high = (voxels.max(axis=0) + 1 + np.asarray(OFFSET)) * VOXEL
    cv = cloudvolume(out / "segmentation")
    mesh = cv.mesh.get(largest)
    mesh = mesh[largest] if isinstance(mesh, dict) else mesh
    assert len(mesh.faces) > 100
    xyz = mesh.vertices
    assert (xyz >= low[::-1] - VOXEL[0]).all() and (xyz <= high[::-1] + VOXEL[0]).all()
    skeleton = cv.skeleton.get(largest)
    assert len(skeleton.vertices) > 5 and len(skeleton.edges) >= len(skeleton.vertices) - 3
    assert (skeleton.vertices >= low[::-1]).all() and (skeleton.vertices <= high[::-1]).all()
    assert skeleton.radius.shape == (len(skeleton.vertices),) and (skeleton.radius > 0).all()
    small = int(ids[np.argmin(counts)])
    assert counts.min() < MIN_VOXELS and not (out / "segmentation" / "skeletons" / str(small)).exists()


def test_segment_properties_and_synapse_annotations(exported):
    run, out, _ = exported
    segmentation = open_volume(str(run / "segmentation")).read()
    info = json.loads((out / "segmentation" / "segment_properties" / "info").read_text())["inline"]
    by_id = dict(zip(info["ids"], next(p for p in info["properties"] if p["id"] == "size_voxels")["values"]))
    ids, counts = np.unique(segmentation[segmentation != 0], return_counts=True)
    assert by_id == {str(i): int(c) for i, c in zip(ids, counts)}

    annotations = json.loads((out / "synapses" / "info").read_text())
    assert annotations["annotation_type"] == "line"
    assert [r["id"] for r in annotations["relationships"]] == ["pre_segment", "post_segment"]
    table = pd.read_parquet(run / "synapses.parquet")
    first = table.iloc[0]
    record = (out / "synapses" / "by_id" / str(int(first["id"]))).read_bytes()
    geometry = np.frombuffer(record[:24], np.float32)
    pre = (first[["pre_x_nm", "pre_y_nm", "pre_z_nm"]].to_numpy(float) / VOXEL[::-1]) + 0.5
    np.testing.assert_allclose(geometry[:3], pre)
    # after geometry and the two float32 properties: per relationship a uint32 count and the uint64 ids
    count = np.frombuffer(record[32:36], np.uint32)[0]
    pre_segment = np.frombuffer(record[36:44], np.uint64)[0]
    z, y, x = (np.rint(first[["pre_z_nm", "pre_y_nm", "pre_x_nm"]].to_numpy(float) / VOXEL).astype(int) - OFFSET)
    assert count == 1 and pre_segment == segmentation[z, y, x]


def test_state_names_every_layer_and_moves_with_the_server(exported):
    import neuroglancer

    _, out, summary = exported
    state = json.loads((out / "state.json").read_text())
    names = [layer["name"] for layer in state["layers"]]
    assert names == ["raw", "segmentation", "synapses"]
    assert state["layers"][0]["source"] == "precomputed://http://127.0.0.1:8000/raw"
    assert state["layers"][1]["segments"][0] == str(summary["largest_segment"])
    moved = served_state(out, "http://127.0.0.1:4321/")
    assert moved["layers"][1]["source"] == "precomputed://http://127.0.0.1:4321/segmentation"
    assert neuroglancer.ViewerState(moved).to_json()["layers"][2]["type"] == "annotation"


def test_cli_refuses_an_existing_export_and_names_the_flag(exported, tmp_path):
    run, out, _ = exported
    result = CliRunner().invoke(cli, ["export", str(run), str(out), "--format", "precomputed"])
    assert result.exit_code == 1
    assert result.output.strip() == f"connecto: error: {out} exists and is not empty; pass --overwrite to replace " \
                                    "the export there"
    bad = CliRunner().invoke(cli, ["export", str(run), str(tmp_path / "x"), "--format", "precomputd"])
    assert bad.exit_code == 2 and "'precomputd' is not one of" in bad.output and "precomputed" in bad.output


def test_downsample_mean_known_values():
    data = np.arange(8, dtype=np.uint8).reshape(1, 2, 4)
    assert downsample_mean(data, (1, 2, 2)).tolist() == [[[2, 4]]]  # (0+1+4+5)/4 = 2.5 -> 2 (even), 4.5 -> 4
    assert pyramid_factors((40, 4, 4), (16, 300, 300)) == [(1, 2, 2), (1, 2, 2), (1, 2, 2)]


def test_merge_by_two_points_on_a_real_run(exported):
    """The acceptance check on a real (small) run: two voxel points, no other flag, then show --json."""
    run, _, _ = exported
    segmentation = open_volume(str(run / "segmentation")).read()
    ids, counts = np.unique(segmentation[segmentation != 0], return_counts=True)
    a, b = (int(i) for i in ids[np.argsort(-counts)[:2]])
    points = [",".join(str(int(v)) for v in np.argwhere(segmentation == s)[0] + np.asarray(OFFSET)) for s in (a, b)]

    def show(point):
        result = CliRunner().invoke(cli, ["proofread", "show", str(run), point, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert [show(p)["segment"] for p in points] == [a, b]  # version 0 is the run's own segmentation
    merged = CliRunner().invoke(cli, ["proofread", "merge", str(run), *points])
    assert merged.exit_code == 0, merged.output
    after = [show(p) for p in points]
    assert after[0]["segment"] == after[1]["segment"] not in (a, b) and after[0]["version"] == 1
