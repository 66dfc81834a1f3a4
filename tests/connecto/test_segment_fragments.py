"""Fragments: steepest-ascent watershed on affinities, ids, fragment table, bad input."""

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from connecto.segment.affinities import AffinityError, affinities_from_labels, as_uint8_affinities
from connecto.segment.evaluate import evaluate
from connecto.segment.fragments import (
    components,
    distance_watershed,
    fragment_table,
    fragments,
    link_mask,
)


def blocks_of_labels(seed=0, grid=(3, 4, 4), size=6):
    """Cubes of ``size`` voxels, each its own object."""
    ids = np.random.default_rng(seed).permutation(np.prod(grid)).reshape(grid) + 1
    return np.kron(ids, np.ones((size,) * 3, int)).astype(np.uint64)


def test_affinities_from_labels_follow_the_minus_one_convention():
    labels = np.array([[[1, 1, 2]], [[1, 3, 2]]])
    affs = affinities_from_labels(labels)
    assert affs.shape == (3, 2, 1, 3) and affs.dtype == np.uint8
    assert affs[2, 0, 0].tolist() == [0, 255, 0]  # x: (1,1) joined, (1,2) not
    assert affs[0, 1, 0].tolist() == [255, 0, 255]  # z: slice 1 against slice 0
    assert affs[0, 0].max() == 0  # first plane has no neighbour


def test_noise_free_affinities_give_back_the_labels():
    labels = blocks_of_labels()
    result = evaluate(fragments(affinities_from_labels(labels)), labels)
    assert result.voi_sum == 0.0


def test_noisy_affinities_oversegment_but_never_merge():
    labels = blocks_of_labels(1)
    frags = fragments(affinities_from_labels(labels, noise=0.15, seed=2))
    result = evaluate(frags, labels)
    assert result.voi_merge == 0.0
    assert result.num_segments > len(np.unique(labels))


def test_ids_start_after_the_offset_and_background_is_zero():
    labels = np.zeros((4, 6, 6), np.uint64)
    labels[:, :3] = 1
    labels[:, 3:5] = 2
    affs = affinities_from_labels(labels)
    affs[..., 5] = 0  # the last x column joins nothing: background
    frags = fragments(affs, id_offset=1000)
    assert set(np.unique(frags).tolist()) == {0, 1001, 1002}
    assert (frags[:, :, 5] == 0).all()


def test_components_match_a_scipy_reference():
    rng = np.random.default_rng(5)
    links = rng.random((3, 6, 7, 8)) < 0.3
    n = 6 * 7 * 8
    index = np.arange(n).reshape(6, 7, 8)
    rows, cols = [], []
    for c in range(3):
        here = [slice(None)] * 3
        there = [slice(None)] * 3
        here[c], there[c] = slice(1, None), slice(None, -1)
        mask = links[c][tuple(here)]
        rows.append(index[tuple(here)][mask])
        cols.append(index[tuple(there)][mask])
    graph = coo_matrix((np.ones(sum(r.size for r in rows)), (np.concatenate(rows), np.concatenate(cols))), (n, n))
    _, reference = connected_components(graph, directed=False)
    labels, count = components(links)
    assert count == reference.max() + 1
    assert evaluate(labels, reference.reshape(6, 7, 8) + 1).voi_sum == 0.0


def test_an_edge_is_linked_when_it_is_the_strongest_of_either_voxel():
    affs = np.zeros((3, 1, 1, 4), np.uint8)
    affs[2, 0, 0] = [0, 200, 100, 150]  # edges (0,1)=200, (1,2)=100, (2,3)=150
    links = link_mask(affs)
    assert links[2, 0, 0].tolist() == [False, True, False, True]
    assert fragments(affs)[0, 0].tolist() == [1, 1, 2, 2]


def test_fragment_table_knows_sizes_anchors_centroids_and_boxes():
    labels = np.zeros((2, 3, 4), np.uint64)
    labels[0, 0, 1:3] = 7
    labels[1, 2, :] = 9
    table = fragment_table(labels, offset=(10, 0, 0), voxel_size_nm=(40, 4, 4)).set_index("id")
    assert table.loc[7, "size"] == 2 and table.loc[9, "size"] == 4
    assert table.loc[7, "anchor"] == 1  # raster index of its first voxel
    assert table.loc[9, ["z_nm", "y_nm", "x_nm"]].tolist() == [11 * 40, 2 * 4, 1.5 * 4]
    assert table.loc[7, ["bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1"]].tolist() == \
        [10, 0, 1, 11, 1, 3]


def test_empty_volume_has_no_fragments():
    affs = np.zeros((3, 4, 4, 4), np.uint8)
    frags = fragments(affs)
    assert frags.dtype == np.uint64 and not frags.any()
    assert len(fragment_table(frags)) == 0


def test_distance_watershed_baseline_finds_the_objects():
    labels = blocks_of_labels(2, grid=(2, 2, 2), size=10)
    result = evaluate(distance_watershed(affinities_from_labels(labels)), labels)
    assert result.voi_merge < 0.05


@pytest.mark.parametrize("affs, message", [
    (np.zeros((2, 4, 4, 4), np.uint8), r"shape \(2, 4, 4, 4\); expected \(3, z, y, x\)"),
    (np.zeros((3, 4, 4), np.uint8), r"shape \(3, 4, 4\); expected"),
    (np.zeros((3, 4, 4, 4), np.int32), "dtype int32; expected uint8"),
    (np.full((3, 2, 2, 2), np.nan, np.float32), "contain 24 NaN values"),
])
def test_bad_affinities_are_refused(affs, message):
    with pytest.raises(AffinityError, match=message):
        fragments(affs)


def test_float_affinities_are_scaled_to_uint8():
    assert as_uint8_affinities(np.full((3, 1, 1, 2), 0.5, np.float32)).tolist() == [[[[128, 128]]]] * 3


def test_anchors_are_raster_order_whatever_the_memory_order():
    labels = np.zeros((3, 3, 3), np.uint64)
    labels[1, 2, 0] = labels[2, 0, 0] = 4
    for array in (labels, np.asfortranarray(labels)):
        assert fragment_table(array).set_index("id").loc[4, "anchor"] == 1 * 9 + 2 * 3
    assert fragments(affinities_from_labels(labels)).flags["C_CONTIGUOUS"]
