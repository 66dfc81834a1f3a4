"""Meshes (zmesh -> Neuroglancer precomputed, read back by cloud-volume) and the viewer state."""

import json
import urllib.parse
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from chunks import create_volume
from connecto.connectome import Connectome
from connecto.connectome.meshes import link_mesh_to_segmentation, mesh_labels, mesh_volume, write_precomputed_meshes
from connecto.connectome.neuroglancer import neuroglancer_state, source_url, state_url, write_state

pytest.importorskip("zmesh")


def _box_labels():
    labels = np.zeros((8, 10, 12), np.uint32)
    labels[2:5, 3:7, 4:10] = 5
    labels[6:8, 0:2, 0:3] = 9  # touches the volume's edges
    return labels


def test_box_mesh_lies_on_voxel_faces_and_is_closed():
    meshes = mesh_labels(_box_labels(), (40, 8, 4), offset=(10, 0, 0), reduction_factor=0)
    assert sorted(meshes) == [5, 9]
    box = meshes[5]
    # x, y, z nm: voxels [4, 10) x [3, 7) x [2 + 10, 5 + 10) at 4 x 8 x 40 nm
    assert box.vertices.min(axis=0).tolist() == [16, 24, 480] and box.vertices.max(axis=0).tolist() == [40, 56, 600]
    edges = Counter(tuple(sorted(e)) for f in box.faces.tolist() for e in ((f[0], f[1]), (f[1], f[2]), (f[0], f[2])))
    assert set(edges.values()) == {2}  # every edge between two triangles: watertight


def _triangles(mesh) -> set:
    points = [tuple(v) for v in np.asarray(mesh.vertices).tolist()]
    return {frozenset(points[i] for i in face) for face in np.asarray(mesh.faces).tolist()}


def _cloudvolume_mesh(layer_dir, segment_id):
    cloudvolume = pytest.importorskip("cloudvolume")
    mesh = cloudvolume.CloudVolume(f"file://{layer_dir}", progress=False).mesh.get(segment_id)
    return mesh[segment_id] if isinstance(mesh, dict) else mesh


def _segmentation_layer(tmp_path, labels, voxel_size, offset=(0, 0, 0), chunk=(32, 32, 32)):
    url = f"precomputed://file://{tmp_path}/seg"
    volume = create_volume(url, labels.shape, labels.dtype, voxel_size, offset=offset, chunk_shape=chunk,
                           layer_type="segmentation")
    volume.write(volume.roi, labels)
    return volume


def test_precomputed_meshes_read_back_with_cloudvolume(tmp_path):
    labels = _box_labels()
    _segmentation_layer(tmp_path, labels, (40, 8, 4))
    meshes = mesh_labels(labels, (40, 8, 4), reduction_factor=0)
    write_precomputed_meshes(meshes, tmp_path / "seg" / "mesh")
    info = link_mesh_to_segmentation(tmp_path / "seg")
    assert info["mesh"] == "mesh"
    assert json.loads((tmp_path / "seg" / "mesh" / "info").read_text()) == {"@type": "neuroglancer_legacy_mesh"}
    assert json.loads((tmp_path / "seg" / "mesh" / "5:0").read_text()) == {"fragments": ["5:0:0"]}
    back = _cloudvolume_mesh(tmp_path / "seg", 5)
    assert _triangles(back) == _triangles(meshes[5])  # cloud-volume reorders vertices; the surface is the same
    (tmp_path / "seg" / "mesh" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        write_precomputed_meshes(meshes, tmp_path / "seg" / "mesh")
    write_precomputed_meshes({5: meshes[5]}, tmp_path / "seg" / "mesh", overwrite=True)
    assert not (tmp_path / "seg" / "mesh" / "9:0").exists() and (tmp_path / "seg" / "mesh" / "notes.txt").exists()
    with pytest.raises(FileNotFoundError, match="not a precomputed layer"):
        link_mesh_to_segmentation(tmp_path / "nothing")


@pytest.mark.shared_data
def test_real_segmentation_blockwise_meshes(tmp_path):
    from connecto.connectome.published import dense_segmentation, shared_data_dir

    path = shared_data_dir() / "segmentation" / "connectomics.npy.ckl.gz"
    if not path.exists():
        pytest.skip(f"real segmentation not found at {path}")
    labels, voxel_size = dense_segmentation(path, crop=(slice(192, 256), slice(192, 256), slice(192, 256)))
    volume = _segmentation_layer(tmp_path, labels, voxel_size, offset=(100, 0, 0))
    count = mesh_volume(volume, tmp_path / "seg" / "mesh", block_shape=(32, 32, 32), scheduler="sync",
                        progress=False, reduction_factor=0)
    ids = np.unique(labels)
    assert count == len(ids[ids != 0])
    link_mesh_to_segmentation(tmp_path / "seg")
    whole = mesh_labels(labels, voxel_size, offset=(100, 0, 0), reduction_factor=0)
    size = np.asarray(voxel_size[::-1], float)
    for segment_id in ids[ids != 0][:: max(1, len(ids) // 8)]:
        mesh = _cloudvolume_mesh(tmp_path / "seg", int(segment_id))
        where = np.argwhere(labels == segment_id)[:, ::-1] + [0, 0, 100]  # voxel x, y, z
        # the blockwise mesh spans exactly what the whole-volume mesh spans: the label's voxels
        assert np.allclose(mesh.vertices.min(0), whole[int(segment_id)].vertices.min(0))
        assert np.allclose(mesh.vertices.max(0), whole[int(segment_id)].vertices.max(0))
        assert np.all(mesh.vertices.min(0) >= where.min(0) * size)
        assert np.all(mesh.vertices.max(0) <= (where.max(0) + 1) * size)
    assert mesh_volume(volume, tmp_path / "seg" / "mesh", block_shape=(32, 32, 32), scheduler="sync",
                       progress=False, reduction_factor=0) == count  # a rerun resumes: nothing to do


def test_neuroglancer_state_shows_raw_segmentation_meshes_and_synapses(tmp_path):
    synapses = pd.DataFrame({"pre_segment": [1, 2], "post_segment": [2, 0],
                             "pre_z_nm": [400.0, 80.0], "pre_y_nm": [80.0, 16.0], "pre_x_nm": [40.0, 8.0],
                             "post_z_nm": [440.0, np.nan], "post_y_nm": [88.0, np.nan], "post_x_nm": [48.0, np.nan]})
    c = Connectome.from_tables(None, synapses, voxel_size_nm=(40, 8, 4))
    state = neuroglancer_state(c.voxel_size_nm, raw="zarr://http://localhost:8000/raw.zarr",
                               segmentation="zarr://http://localhost:8000/seg.zarr",
                               meshes="precomputed://http://localhost:8000/meshes", synapses=c.synapses,
                               segments=[1, 2])
    assert state["dimensions"] == {"x": [4e-9, "m"], "y": [8e-9, "m"], "z": [4e-8, "m"]}
    layers = {layer["name"]: layer for layer in state["layers"]}
    assert [layers[n]["type"] for n in ("raw", "segmentation", "synapses")] == ["image", "segmentation", "annotation"]
    assert layers["segmentation"]["source"] == ["zarr://http://localhost:8000/seg.zarr",
                                                "precomputed://http://localhost:8000/meshes"]
    assert layers["segmentation"]["segments"] == ["1", "2"]
    line, point = layers["synapses"]["annotations"]
    # 400 nm / 40 = voxel z 10, drawn at the voxel's centre; x y z order
    assert line == {"type": "line", "pointA": [10.5, 10.5, 10.5], "pointB": [12.5, 11.5, 11.5], "id": "1",
                    "segments": [["1"], ["2"]]}
    assert point["type"] == "point" and point["point"] == [2.5, 2.5, 2.5] and point["segments"] == [["2"], []]
    assert layers["synapses"]["linkedSegmentationLayer"] == {"pre_segment": "segmentation",
                                                             "post_segment": "segmentation"}
    assert state["position"] == [10.5, 10.5, 10.5]
    url = state_url(state)
    assert json.loads(urllib.parse.unquote(url.split("#!", 1)[1])) == state
    write_state(state, tmp_path / "state.json")
    assert json.loads((tmp_path / "state.json").read_text()) == state
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        write_state(state, tmp_path / "state.json")


def test_source_urls():
    assert source_url("precomputed://gs://b/seg") == "precomputed://gs://b/seg"
    assert source_url("gs://b/raw.zarr") == "zarr://gs://b/raw.zarr"
    assert source_url("/data/run/raw.zarr", http_root="/data", http_url="http://h:8000/") == \
        "zarr://http://h:8000/run/raw.zarr"
    with pytest.raises(ValueError, match="Neuroglancer reads over HTTP"):
        source_url("/data/run/raw.zarr")
    with pytest.raises(ValueError, match="not under the served directory"):
        source_url("/elsewhere/raw.zarr", http_root="/data", http_url="http://h:8000")
