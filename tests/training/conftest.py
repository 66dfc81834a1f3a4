import numpy as np
import pytest
from scipy import ndimage


def voronoi_volume(shape=(24, 48, 48), n_cells=30, seed=0):
    """Cells (labels) and an EM-like image: dark membranes between cells, noise."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int32)
    seeds[tuple(rng.integers(0, s, n_cells) for s in shape)] = np.arange(1, n_cells + 1)
    _, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(idx)].astype(np.uint64)
    boundary = np.zeros(shape, bool)
    for axis in range(3):
        d = np.diff(labels.astype(np.int64), axis=axis) != 0
        boundary[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))] |= d
    raw = np.where(boundary, 50.0, 180.0) + rng.normal(0, 10, shape)
    return np.clip(ndimage.gaussian_filter(raw, 0.7), 0, 255).astype(np.uint8), labels


@pytest.fixture
def tiny_training_files(tmp_path):
    raw, labels = voronoi_volume()
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path


def tiny_config_text(out_dir, steps=6, lr=0.01, raw="raw.npy", labels="labels.npy"):
    return f"""
[model]
widths = [4, 8]
downsample = [[2, 2, 2]]

[train]
out_dir = "{out_dir}"
voxel_size_nm = [8, 8, 8]
steps = {steps}
patch_shape = [8, 24, 24]
learning_rate = {lr}
checkpoint_every = 2
validate_every = 2
threads = 1

[[train.volumes]]
raw = "{raw}"
labels = "{labels}"
voxel_size_nm = [8, 8, 8]
validation_slab_z = [16, 24]
"""
