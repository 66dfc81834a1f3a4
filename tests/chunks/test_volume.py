import numpy as np
import pytest

from chunks import AlignmentError, IncompatibleVolumeError, OutOfBoundsError, Roi, create_volume, open_volume


def _urls(tmp_path):
    return {
        "zarr": str(tmp_path / "vol.zarr"),
        "zarr-file-url": f"file://{tmp_path}/vol2.zarr",
        "precomputed": f"precomputed://file://{tmp_path}/layer",
        "memory": f"memory://{tmp_path.name}",
    }


@pytest.mark.parametrize("kind", ["zarr", "zarr-file-url", "precomputed", "memory"])
def test_roundtrip_and_metadata(tmp_path, kind):
    url = _urls(tmp_path)[kind]
    vol = create_volume(url, (12, 20, 24), "uint16", (40, 4, 4), offset=(2, 0, 8), chunk_shape=(4, 8, 8))
    data = np.random.default_rng(0).integers(0, 60000, (12, 20, 24)).astype(np.uint16)
    vol.write(vol.roi, data)
    again = open_volume(url)
    assert again.shape == (12, 20, 24) and again.dtype == np.uint16
    assert again.voxel_size_nm == (40, 4, 4) and again.offset == (2, 0, 8) and again.chunk_shape == (4, 8, 8)
    assert again.num_channels == 1
    assert np.array_equal(again.read(), data)
    # a sub-Roi in world coordinates (offset included)
    assert np.array_equal(again.read(Roi((3, 5, 10), (2, 3, 4))), data[1:3, 5:8, 2:6])


@pytest.mark.parametrize("kind", ["zarr", "precomputed", "memory"])
def test_multichannel(tmp_path, kind):
    url = _urls(tmp_path)[kind]
    vol = create_volume(url, (8, 8, 8), "uint8", (8, 8, 8), chunk_shape=(4, 4, 4), num_channels=3)
    data = np.arange(3 * 512, dtype=np.uint32).reshape(3, 8, 8, 8).astype(np.uint8)
    vol.write(Roi((4, 0, 0), (4, 8, 8)), data[:, 4:])
    back = open_volume(url).read(Roi((4, 0, 0), (4, 8, 8)))
    assert back.shape == (3, 4, 8, 8) and np.array_equal(back, data[:, 4:])
    assert open_volume(url).num_channels == 3


@pytest.mark.parametrize("kind", ["zarr", "precomputed", "memory"])
def test_unaligned_write_is_refused_with_roi_and_grid(tmp_path, kind):
    vol = create_volume(_urls(tmp_path)[kind], (10, 10, 10), "uint8", (8, 8, 8), chunk_shape=(4, 4, 4))
    with pytest.raises(AlignmentError, match=r"write Roi \[\(1, 0, 0\):\(5, 4, 4\)\].*chunks of \(4, 4, 4\)"):
        vol.write(Roi((1, 0, 0), (4, 4, 4)), np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(AlignmentError, match="not aligned"):
        vol.write(Roi((0, 0, 0), (3, 4, 4)), np.zeros((3, 4, 4), np.uint8))
    # a block that ends at the volume edge is fine even though 10 is not a multiple of 4
    vol.write(Roi((8, 8, 8), (2, 2, 2)), np.ones((2, 2, 2), np.uint8))
    assert vol.read(Roi((8, 8, 8), (2, 2, 2))).sum() == 8


def test_write_outside_volume_is_refused(tmp_path):
    vol = create_volume(str(tmp_path / "v.zarr"), (8, 8, 8), "uint8", (8, 8, 8), chunk_shape=(4, 4, 4))
    with pytest.raises(OutOfBoundsError, match=r"cannot write Roi \[\(4, 4, 4\):\(12, 8, 8\)\].*outside the volume's Roi \[\(0, 0, 0\):\(8, 8, 8\)\]"):
        vol.write(Roi((4, 4, 4), (8, 4, 4)), np.zeros((8, 4, 4), np.uint8))
    with pytest.raises(OutOfBoundsError, match="cannot read"):
        vol.read(Roi((-1, 0, 0), (2, 2, 2)))
    with pytest.raises(ValueError, match=r"data of shape \(2, 2, 2\) does not fit Roi"):
        vol.write(Roi((0, 0, 0), (4, 4, 4)), np.zeros((2, 2, 2), np.uint8))


@pytest.mark.parametrize("kind", ["zarr", "precomputed", "memory"])
def test_reopen_compatible_refuse_incompatible_overwrite(tmp_path, kind):
    url = _urls(tmp_path)[kind]
    vol = create_volume(url, (8, 8, 8), "uint8", (8, 8, 8), chunk_shape=(4, 4, 4))
    vol.write(vol.roi, np.full((8, 8, 8), 7, np.uint8))
    same = create_volume(url, (8, 8, 8), "uint8", (8, 8, 8), chunk_shape=(4, 4, 4))
    assert same.read().max() == 7, "reopening a compatible volume must keep its data"
    with pytest.raises(IncompatibleVolumeError, match=r"shape \(8, 8, 8\) \(existing\) != \(8, 8, 16\) \(requested\).*--overwrite"):
        create_volume(url, (8, 8, 16), "uint8", (8, 8, 8), chunk_shape=(4, 4, 4))
    with pytest.raises(IncompatibleVolumeError, match="dtype uint8 \\(existing\\) != uint64"):
        create_volume(url, (8, 8, 8), "uint64", (8, 8, 8), chunk_shape=(4, 4, 4))
    assert open_volume(url).read().max() == 7, "a refused create must not touch the data"
    new = create_volume(url, (8, 8, 16), "uint64", (8, 8, 8), chunk_shape=(4, 4, 4), overwrite=True)
    assert new.shape == (8, 8, 16) and new.read().max() == 0


def test_open_missing_volume(tmp_path):
    with pytest.raises(FileNotFoundError, match="no volume at .*nothing.zarr"):
        open_volume(tmp_path / "nothing.zarr")


def test_read_only_volume_refuses_writes(tmp_path):
    create_volume(str(tmp_path / "v.zarr"), (4, 4, 4), "uint8", (8, 8, 8))
    with pytest.raises(PermissionError, match="read-only"):
        open_volume(str(tmp_path / "v.zarr")).write(Roi((0, 0, 0), (4, 4, 4)), np.zeros((4, 4, 4), np.uint8))


def test_path_with_info_file_is_precomputed(tmp_path):
    create_volume(f"precomputed://{tmp_path}/layer", (4, 4, 4), "uint8", (8, 8, 8))
    assert open_volume(str(tmp_path / "layer")).format == "precomputed"
    assert open_volume(f"file://{tmp_path}/layer").format == "precomputed"


def test_bad_urls_and_metadata():
    with pytest.raises(ValueError, match="unknown scheme"):
        open_volume("ftp://host/vol")
    with pytest.raises(ValueError, match="voxel size .* must be > 0"):
        create_volume("memory://bad", (4, 4, 4), "uint8", (8, 0, 8))
    with pytest.raises(ValueError, match="must have 3 values"):
        create_volume("memory://bad2", (4, 4), "uint8", (8, 8, 8))


def test_volume_pickles_as_its_url(tmp_path):
    import pickle

    vol = create_volume(str(tmp_path / "v.zarr"), (4, 4, 4), "uint8", (8, 8, 8))
    vol.write(vol.roi, np.ones((4, 4, 4), np.uint8))
    clone = pickle.loads(pickle.dumps(vol))
    assert clone.writable and np.array_equal(clone.read(), vol.read())


def test_a_precomputed_layer_with_a_fractional_voxel_size_is_refused_not_rounded(tmp_path):
    import json

    from chunks import create_volume, open_volume

    create_volume(f"precomputed://file://{tmp_path}/layer", (8, 16, 16), "uint8", (50, 4, 4))
    info_path = tmp_path / "layer" / "info"
    info = json.loads(info_path.read_text())
    info["scales"][0]["resolution"] = [4.6, 4.6, 50]  # x, y, z as precomputed stores it
    info_path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"has voxel size 50, 4\.6, 4\.6 nm \(z, y, x\); connecto works in whole "
                                         r"nanometres: resample the layer"):
        open_volume(f"precomputed://file://{tmp_path}/layer")
