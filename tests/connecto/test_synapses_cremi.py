import h5py
import numpy as np
import pandas as pd
import pytest

from connecto.synapses.cremi import CremiFormatError, labels_at, read_cremi, write_cremi


def _sample():
    labels = np.zeros((4, 10, 12), np.uint64)
    labels[:, :, :6] = 5
    labels[:, :, 6:] = 7
    clefts = np.zeros_like(labels)
    clefts[1:3, 4:6, 5:7] = 3
    raw = np.arange(labels.size, dtype=np.uint8).reshape(labels.shape)
    # absolute nm; voxel (z, y, x) sits at offset + index * (40, 4, 4)
    partners = pd.DataFrame({"pre_z_nm": [1040.0, 1040.0], "pre_y_nm": [120.0, 120.0], "pre_x_nm": [216.0, 216.0],
                             "post_z_nm": [1080.0, 1000.0], "post_y_nm": [120.0, 136.0],
                             "post_x_nm": [232.0, 236.0]})
    return raw, labels, clefts, partners


def test_cremi_round_trip(tmp_path):
    raw, labels, clefts, partners = _sample()
    path = tmp_path / "sample.h5"
    write_cremi(path, raw=raw, labels=labels, clefts=clefts, voxel_size_nm=(40, 4, 4),
                offset_nm=(1000.0, 100.0, 200.0), partners=partners)
    with h5py.File(path, "r") as f:  # the CREMI layout itself
        assert f["volumes/labels/clefts"][0, 0, 0] == np.uint64(2**64 - 1)
        assert list(f["volumes/raw"].attrs["resolution"]) == [40, 4, 4]
        assert list(f["annotations/types"][...]) == [b"presynaptic_site"] + [b"postsynaptic_site"] * 2
        np.testing.assert_array_equal(f["annotations/presynaptic_site/partners"][...], [[1, 2], [1, 3]])
        np.testing.assert_allclose(f["annotations/locations"][0], [40.0, 20.0, 16.0])  # relative to the offset
    vol = read_cremi(path)
    np.testing.assert_array_equal(vol.raw, raw)
    np.testing.assert_array_equal(vol.labels, labels)
    np.testing.assert_array_equal(vol.clefts, clefts)  # "no cleft" back to 0
    assert vol.voxel_size_nm == (40, 4, 4) and vol.offset_nm == (1000.0, 100.0, 200.0)
    table = vol.partners
    np.testing.assert_allclose(table[partners.columns].to_numpy(), partners.to_numpy())
    assert table["pre_annotation"].tolist() == [1, 1] and table["post_annotation"].tolist() == [2, 3]
    # neuron ids under the sites: pre at x index 4 (label 5), posts at x index 8 and 9 (label 7)
    assert table["pre_id"].tolist() == [5, 5] and table["post_id"].tolist() == [7, 7]
    assert table["pre_id"].dtype == np.uint64


def test_cremi_without_raw_or_partners(tmp_path):
    _, labels, clefts, _ = _sample()
    path = tmp_path / "labels.h5"
    write_cremi(path, labels=labels, clefts=clefts, voxel_size_nm=(8, 8, 8))
    vol = read_cremi(path, raw=False)
    assert vol.raw is None and vol.partners.empty and vol.voxel_size_nm == (8, 8, 8)


def test_cremi_refuses_foreign_files(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(CremiFormatError, match="not a CREMI file"):
        read_cremi(path)


def test_cremi_refuses_unknown_partner_ids(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["annotations/ids"] = np.array([1, 2], np.uint64)
        f["annotations/locations"] = np.zeros((2, 3))
        f["annotations/types"] = np.array([b"presynaptic_site", b"postsynaptic_site"])
        f["annotations/presynaptic_site/partners"] = np.array([[1, 9]], np.uint64)
    with pytest.raises(CremiFormatError, match="partner site id 9 is not among annotations/ids"):
        read_cremi(path)


def test_labels_at_outside_is_zero():
    labels = np.full((2, 2, 2), 4, np.uint64)
    assert labels_at(labels, [[0, 0, 0], [8, 8, 8], [80, 0, 0]], (8, 8, 8)).tolist() == [4, 4, 0]
