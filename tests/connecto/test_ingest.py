"""Ingest from every source kind, real data included, and every bad input's message."""

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from chunks import IncompatibleVolumeError, open_volume
from chunks.sources import open_source
from connecto.ingest import ingest


def _png_stack(directory, volume):
    directory.mkdir(parents=True, exist_ok=True)
    for z, section in enumerate(volume):
        Image.fromarray(section).save(directory / f"slice_{z}.png")  # slice_10 sorts after slice_9
    return directory


@pytest.fixture
def small():
    return np.random.default_rng(3).integers(0, 256, (12, 20, 18)).astype(np.uint8)


def test_png_stack_sorted_naturally(tmp_path, small):
    _png_stack(tmp_path / "stack", small)
    vol = ingest(str(tmp_path / "stack"), str(tmp_path / "a.zarr"), (40, 4, 4), chunk_shape=(4, 8, 8),
                 scheduler="sync", progress=False)
    assert np.array_equal(vol.read(), small)
    by_glob = ingest(str(tmp_path / "stack" / "*.png"), str(tmp_path / "b.zarr"), (40, 4, 4),
                     chunk_shape=(4, 8, 8), block_shape=(4, 8, 8), scheduler="sync", progress=False)
    assert np.array_equal(by_glob.read(), small)
    assert open_volume(str(tmp_path / "a.zarr")).voxel_size_nm == (40, 4, 4)


def test_multipage_tiff_hdf5_npy(tmp_path, small):
    tifffile.imwrite(tmp_path / "stack.tif", small)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("volumes/raw", data=small)
    np.save(tmp_path / "v.npy", small)
    for spec in (str(tmp_path / "stack.tif"), f"{tmp_path}/v.h5:/volumes/raw", f"{tmp_path}/v.h5:volumes/raw",
                 str(tmp_path / "v.npy")):
        vol = ingest(spec, f"memory://ingest-{hash(spec)}", (8, 8, 8), chunk_shape=(4, 8, 8),
                     scheduler="threads", num_workers=2, progress=False)
        assert np.array_equal(vol.read(), small), spec


def test_ingest_into_precomputed_with_offset(tmp_path, small):
    np.save(tmp_path / "v.npy", small)
    url = f"precomputed://file://{tmp_path}/layer"
    vol = ingest(str(tmp_path / "v.npy"), url, (8, 8, 8), chunk_shape=(4, 8, 8), offset=(4, 0, 8),
                 scheduler="sync", progress=False)
    again = open_volume(url)
    assert again.offset == (4, 0, 8) and np.array_equal(again.read(), small)
    assert vol.attrs["connecto_runs"]["ingest"]["params"]["source"].endswith("v.npy")


def test_fib25_hdf5_into_zarr_and_precomputed(tmp_path, shared_data):
    path = shared_data / "fib25" / "training_sample2.h5"
    with h5py.File(path) as f:
        expected = f["raw"][:]
    zarr_vol = ingest(f"{path}:/raw", str(tmp_path / "fib25.zarr"), (10, 10, 10), chunk_shape=(64, 64, 64),
                      scheduler="threads", num_workers=2, progress=False)
    ingest(f"{path}:raw", f"precomputed://file://{tmp_path}/fib25", (10, 10, 10),
                     chunk_shape=(64, 64, 64), scheduler="threads", num_workers=2, progress=False)
    assert zarr_vol.shape == (250, 250, 250)
    assert np.array_equal(open_volume(str(tmp_path / "fib25.zarr")).read(), expected)
    assert np.array_equal(open_volume(f"precomputed://file://{tmp_path}/fib25").read(), expected)


def test_isbi_png_set_into_zarr_and_precomputed(tmp_path, shared_data):
    with h5py.File(shared_data / "isbi2012" / "train.h5") as f:
        expected = f["raw"][:]
    _png_stack(tmp_path / "isbi", expected)  # the ISBI training set as the PNG files it ships as
    for url in (str(tmp_path / "isbi.zarr"), f"precomputed://file://{tmp_path}/isbi_pre"):
        ingest(str(tmp_path / "isbi"), url, (50, 4, 4), chunk_shape=(4, 128, 128), scheduler="threads",
               num_workers=2, progress=False)
        vol = open_volume(url)
        assert vol.voxel_size_nm == (50, 4, 4)
        assert np.array_equal(vol.read(), expected)


# --- bad input: one clear message each ---------------------------------------------

def test_slices_of_different_shape_or_dtype(tmp_path, small):
    stack = _png_stack(tmp_path / "stack", small)
    Image.fromarray(np.zeros((20, 17), np.uint8)).save(stack / "slice_5.png")
    with pytest.raises(ValueError, match=r"slice .*slice_5.png' is 20x17 uint8, but .*slice_0.png' is 20x18 uint8"):
        open_source(str(stack))
    Image.fromarray(np.zeros((20, 18), np.uint16)).save(stack / "slice_5.png")
    with pytest.raises(ValueError, match=r"slice_5.png' is 20x18 uint16, but .* is 20x18 uint8; all slices"):
        open_source(str(stack))


def test_empty_glob_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no images match .*\*.png"):
        open_source(str(tmp_path / "*.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images match .*empty"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="ingest source .*missing.npy' does not exist"):
        open_source(str(tmp_path / "missing.npy"))
    with pytest.raises(FileNotFoundError, match="HDF5 file .*missing.h5' does not exist"):
        open_source(f"{tmp_path}/missing.h5:/raw")


def test_unreadable_files(tmp_path):
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(OSError, match="cannot read HDF5 file .*broken.h5"):
        open_source(f"{tmp_path}/broken.h5:/raw")
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "a.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match="cannot read image .*a.png"):
        open_source(str(tmp_path / "stack"))
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(OSError, match="cannot read numpy file .*bad.npy"):
        open_source(str(tmp_path / "bad.npy"))


def test_wrong_hdf5_dataset_lists_the_ones_there(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["raw"] = np.zeros((2, 2, 2), np.uint8)
        f["labels/neurons"] = np.zeros((2, 2, 2), np.uint64)
    with pytest.raises(KeyError, match=r"no dataset '/volumes/raw' in .*v.h5'; it holds /labels/neurons, /raw"):
        open_source(f"{tmp_path}/v.h5:/volumes/raw")
    with pytest.raises(ValueError, match=r"name the dataset in .*v.h5:/DATASET; it holds /labels/neurons, /raw"):
        open_source(f"{tmp_path}/v.h5")


def test_not_3d_and_rgb(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"flat.npy has shape \(4, 4\); expected a 3D volume"):
        open_source(str(tmp_path / "flat.npy"))
    (tmp_path / "rgb").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb" / "0.png")
    with pytest.raises(ValueError, match="is a RGB image; expected grayscale"):
        open_source(str(tmp_path / "rgb"))


def test_existing_output_with_other_shape_is_refused_unless_overwrite(tmp_path, small):
    np.save(tmp_path / "v.npy", small)
    out = str(tmp_path / "out.zarr")
    ingest(str(tmp_path / "v.npy"), out, (8, 8, 8), chunk_shape=(4, 8, 8), scheduler="sync", progress=False)
    np.save(tmp_path / "w.npy", small[:6])
    with pytest.raises(IncompatibleVolumeError, match=r"out.zarr already exists with different properties: shape \(12, 20, 18\) \(existing\) != \(6, 20, 18\)"):
        ingest(str(tmp_path / "w.npy"), out, (8, 8, 8), chunk_shape=(4, 8, 8), scheduler="sync", progress=False)
    assert np.array_equal(open_volume(out).read(), small), "the refused ingest must not touch the old output"
    vol = ingest(str(tmp_path / "w.npy"), out, (8, 8, 8), chunk_shape=(4, 8, 8), scheduler="sync",
                 progress=False, overwrite=True)
    assert np.array_equal(vol.read(), small[:6])


def test_ingest_memory_is_bounded_by_the_block_not_the_stack(tmp_path):
    import tracemalloc

    def peak_bytes(depth):
        stack = np.random.default_rng(depth).integers(0, 256, (depth, 128, 128)).astype(np.uint8)
        _png_stack(tmp_path / f"s{depth}", stack)
        tracemalloc.start()
        ingest(str(tmp_path / f"s{depth}"), str(tmp_path / f"s{depth}.zarr"), (8, 8, 8), chunk_shape=(4, 128, 128),
               block_shape=(4, 128, 128), scheduler="sync", progress=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert np.array_equal(open_volume(str(tmp_path / f"s{depth}.zarr")).read(), stack)
        return peak

    peak_bytes(8)  # imports and codec set-up happen once
    small, large = peak_bytes(32), peak_bytes(256)  # 0.5 MiB and 4 MiB stacks
    # a stack 8x larger must not need 8x the memory: the peak is set by the 4-slice block
    assert large < small + 1.5 * 2**20, f"peak {large} bytes for 4 MiB vs {small} for 0.5 MiB"
