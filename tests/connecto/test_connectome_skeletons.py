"""Skeletons: a tube whose answer is known, the real pinky40 segmentation (count and
containment), blockwise equals whole-volume in topology, and the resumable Volume stage."""

import numpy as np
import pandas as pd
import pytest

from chunks import create_volume
from connecto.connectome import Connectome
from connecto.connectome.skeletons import large_labels, skeletonize

pytest.importorskip("kimimaro")


def _inside(table, labels, voxel_size_nm, offset=(0, 0, 0)):
    voxels = np.rint(table[["z_nm", "y_nm", "x_nm"]].to_numpy() / np.asarray(voxel_size_nm)).astype(int)
    voxels -= np.asarray(offset)
    return labels[tuple(voxels.T)] == table["segment_id"].to_numpy()


def _pieces(table):
    return table[table["parent_id"] == -1].groupby("segment_id").size().to_dict()


def test_tube_gives_one_straight_skeleton():
    # a tube 3 x 5 voxels (48 x 40 nm at 16 x 8 x 8 nm) along x from voxel 2 to 57
    labels = np.zeros((9, 11, 60), np.uint32)
    labels[3:6, 3:8, 2:58] = 7
    labels[0, 0, 0] = 9  # one voxel: below min_voxels
    table = skeletonize(labels, (16, 8, 8), min_voxels=10)
    assert table["segment_id"].unique().tolist() == [7]
    assert _pieces(table) == {7: 1} and len(table) == 56  # one vertex per voxel along the tube
    assert sorted(table["x_nm"].tolist()) == [8.0 * x for x in range(2, 58)]
    on_axis = (table["z_nm"] == 4 * 16) & (table["y_nm"] == 5 * 8)
    assert on_axis.sum() >= 50  # the two ends bend towards the tube's corners, as TEASAR's ends do
    assert _inside(table, labels, (16, 8, 8)).all()
    blocks = skeletonize(labels, (16, 8, 8), min_voxels=10, block_shape=(9, 11, 16))
    assert _pieces(blocks) == {7: 1} and _inside(blocks, labels, (16, 8, 8)).all()
    assert blocks["x_nm"].min() == 16 and blocks["x_nm"].max() == 8 * 57


@pytest.fixture(scope="module")
def pinky(shared_data_module):
    from connecto.connectome.published import dense_segmentation

    return dense_segmentation(shared_data_module / "segmentation" / "connectomics.npy.ckl.gz",
                              crop=(slice(192, 320),) * 3)


@pytest.fixture(scope="module")
def shared_data_module():
    from connecto.connectome.published import shared_data_dir

    path = shared_data_dir()
    if not (path / "segmentation" / "connectomics.npy.ckl.gz").exists():
        pytest.skip(f"real segmentation not found at {path}/segmentation (the ../shared checkout beside the repo)")
    return path


@pytest.mark.shared_data
def test_real_segmentation_blockwise_count_and_containment(pinky):
    labels, voxel_size = pinky
    assert labels.shape == (128, 128, 128) and voxel_size == (40, 32, 32)
    keep, _sizes = large_labels(labels, 1000)
    table = skeletonize(labels, voxel_size, min_voxels=1000, block_shape=(64, 128, 128))
    assert sorted(table["segment_id"].unique().tolist()) == sorted(keep.tolist())
    assert len(keep) == 119  # labels of >= 1000 voxels in this crop
    assert _inside(table, labels, voxel_size).all()
    assert not table.duplicated(["segment_id", "z_nm", "y_nm", "x_nm"]).any()  # block borders merged


@pytest.mark.shared_data
def test_real_segmentation_blockwise_joins_like_whole_volume(pinky):
    labels, voxel_size = pinky
    crop = labels[:64, :64, :64]
    whole = skeletonize(crop, voxel_size, min_voxels=500)
    blocks = skeletonize(crop, voxel_size, min_voxels=500, block_shape=(32, 32, 32))
    assert set(whole["segment_id"]) == set(blocks["segment_id"])
    assert _pieces(blocks) == _pieces(whole)  # pieces per label: blocks joined, nothing split


@pytest.mark.shared_data
def test_volume_stage_resumes_and_refuses_to_overwrite(tmp_path, pinky):
    from connecto.connectome.skeleton_stage import skeletonize_volume

    labels, voxel_size = pinky
    crop = np.ascontiguousarray(labels[:64, :64, :96])
    volume = create_volume(str(tmp_path / "seg.zarr"), crop.shape, crop.dtype, voxel_size, offset=(5, 0, 0),
                           chunk_shape=(32, 32, 48))
    volume.write(volume.roi, crop)
    table = skeletonize_volume(volume, tmp_path / "conn", min_voxels=500, scheduler="sync", progress=False)
    expected = skeletonize(crop, voxel_size, min_voxels=500, block_shape=(32, 32, 48), offset=(5, 0, 0))
    pd.testing.assert_frame_equal(table, expected)
    assert _inside(table, crop, voxel_size, offset=(5, 0, 0)).all()
    with pytest.raises(FileExistsError, match="skeletons.parquet exists; pass overwrite=True"):
        skeletonize_volume(volume, tmp_path / "conn", min_voxels=500, scheduler="sync", progress=False)
    again = skeletonize_volume(volume, tmp_path / "conn", min_voxels=500, scheduler="sync", progress=False,
                               overwrite=True)
    pd.testing.assert_frame_equal(again, expected)


@pytest.mark.shared_data
def test_skeletons_feed_navis_with_connectors(pinky):
    navis = pytest.importorskip("navis")
    labels, voxel_size = pinky
    crop = labels[:64, :64, :64]
    table = skeletonize(crop, voxel_size, min_voxels=2000)
    a, b = table["segment_id"].unique()[:2]
    node = table[table["segment_id"] == a].iloc[0]
    synapses = pd.DataFrame({"pre_segment": [a], "post_segment": [b], "pre_z_nm": [node.z_nm],
                             "pre_y_nm": [node.y_nm], "pre_x_nm": [node.x_nm], "post_z_nm": [node.z_nm],
                             "post_y_nm": [node.y_nm], "post_x_nm": [node.x_nm + 32]})
    connectome = Connectome.from_tables(None, synapses, voxel_size_nm=voxel_size, skeletons=table)
    neurons = connectome.to_navis([int(a), int(b)])
    assert isinstance(neurons, navis.NeuronList) and len(neurons) == 2
    first = neurons.idx[int(a)]
    assert first.n_nodes == (table["segment_id"] == a).sum()
    assert first.connectors[["type", "partner_id"]].values.tolist() == [["pre", int(b)]]
    assert first.connectors["node_id"].tolist() == [int(node.node_id)]
