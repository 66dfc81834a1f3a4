"""chunks.resample: known values per method, labels keep their ids, blockwise equals one block."""

import numpy as np
import pytest

from chunks import Roi, create_volume
from chunks.resample import choose_method, resample_array, resample_volume, target_roi


def test_area_nearest_linear_known_values():
    data = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    whole = Roi((0, 0, 0), (1, 4, 4))
    # area: the mean of each 2x2 (0+1+4+5)/4 = 2.5 rounds to even
    assert resample_array(data, whole, (1, 1, 1), (1, 2, 2), Roi((0, 0, 0), (1, 2, 2)), "area").tolist() == \
        [[[2, 4], [10, 12]]]
    # nearest: the voxel under each new centre (1.0, 3.0 in old voxel units)
    assert resample_array(data, whole, (1, 1, 1), (1, 2, 2), Roi((0, 0, 0), (1, 2, 2)), "nearest").tolist() == \
        [[[5, 7], [13, 15]]]
    # linear, upsampling a ramp 0, 4, 8, 12 along y by 2: centres at old -0.25, 0.25, 0.75, ... (edges held)
    ramp = np.repeat((np.arange(4, dtype=np.float32) * 4)[None, :, None], 2, axis=2)
    up = resample_array(ramp, Roi((0, 0, 0), (1, 4, 2)), (1, 2, 2), (1, 1, 2), Roi((0, 0, 0), (1, 8, 2)), "linear")
    np.testing.assert_allclose(up[0, :, 0], [0, 1, 3, 5, 7, 9, 11, 12])


def test_labels_keep_their_ids_and_refuse_interpolation():
    labels = np.random.default_rng(0).integers(1, 50, (4, 6, 6)).astype(np.uint64) * 1_000_003
    up = resample_array(labels, Roi((0, 0, 0), labels.shape), (8, 8, 8), (4, 4, 4), Roi((0, 0, 0), (8, 12, 12)),
                        "nearest")
    assert set(np.unique(up)) == set(np.unique(labels))
    np.testing.assert_array_equal(up[::2, ::2, ::2], labels)
    assert choose_method(np.uint64, (8, 8, 8), (4, 4, 4)) == "nearest"
    with pytest.raises(ValueError, match=r"a label volume \(uint64\) is resampled by nearest neighbour only, not "
                                         "linear"):
        choose_method(np.uint64, (8, 8, 8), (4, 4, 4), "linear")
    with pytest.raises(ValueError, match="area averaging needs each new voxel size .5,5,5 nm. to be a whole multiple "
                                         "of the old one .8,8,8 nm.; use linear"):
        choose_method(np.uint8, (8, 8, 8), (5, 5, 5), "area")
    assert choose_method(np.uint8, (4, 4, 4), (8, 8, 8)) == "area"
    assert choose_method(np.uint8, (8, 8, 8), (5, 5, 5)) == "linear"


@pytest.mark.parametrize("method, target", [("linear", (5, 6, 6)), ("area", (8, 16, 16)), ("nearest", (3, 7, 5))])
def test_blockwise_equals_one_block(tmp_path, method, target):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (20, 40, 36)).astype(np.uint8)
    offset = (2, 4, 0)
    source = create_volume(str(tmp_path / "in.zarr"), data.shape, np.uint8, (4, 4, 4), offset=offset,
                           chunk_shape=(8, 16, 16))
    source.write(source.roi, data)
    out = resample_volume(source, str(tmp_path / f"out-{method}.zarr"), target, method=method, chunk_shape=(4, 8, 8),
                          block_shape=(8, 8, 8), scheduler="sync", progress=False)
    expected_roi = target_roi(source.roi, (4, 4, 4), target)
    assert out.roi == expected_roi and tuple(out.voxel_size_nm) == target
    whole = resample_array(data, source.roi, (4, 4, 4), target, expected_roi, method)
    np.testing.assert_array_equal(out.read(out.roi), whole)
    # the new extent covers the old one, rounded outwards to whole new voxels
    old_nm = np.asarray(source.roi.end) * 4
    assert (np.asarray(out.roi.end) * np.asarray(target) >= old_nm).all()
    assert ((np.asarray(out.roi.end) - 1) * np.asarray(target) < old_nm).all()
