"""Region graph: exact contacts and statistics, ownership of contacts, linked pieces."""

import numpy as np

from connecto.segment.affinities import affinities_from_labels
from connecto.segment.fragments import fragments
from connecto.segment.region_graph import merge_edge_tables, region_graph


def test_contacts_and_statistics_of_a_hand_example():
    labels = np.array([[[1, 1, 2, 2], [1, 3, 3, 2]]], dtype=np.uint64)
    affs = np.zeros((3, 1, 2, 4), np.uint8)
    affs[2, 0, 0] = [0, 0, 51, 0]  # x: 1|2 at 51
    affs[2, 0, 1] = [0, 102, 0, 204]  # x: 1|3 at 102, 3|2 at 204
    affs[1, 0, 1] = [0, 0, 255, 0]  # y: (0,1)=1 over (1,1)=3 at 0, (0,2)=2 over (1,2)=3 at 255
    edges = region_graph(labels, affs).set_index(["u", "v"])
    assert sorted(edges.index.tolist()) == [(1, 2), (1, 3), (2, 3)]
    assert edges.loc[(1, 2), "contact_area"] == 1 and edges.loc[(1, 2), "affinity_sum"] == 51
    assert edges.loc[(1, 3), "contact_area"] == 2 and edges.loc[(1, 3), "affinity_sum"] == 102
    two_three = edges.loc[(2, 3)]
    assert two_three["contact_area"] == 2 and two_three["affinity_sum"] == 204 + 255
    assert two_three["affinity_mean"] == (204 + 255) / 2 / 255
    assert two_three["affinity_min"] == np.float32(0.8) and two_three["affinity_max"] == np.float32(1.0)
    assert two_three["affinity_median"] == np.float32((0.8 + 1.0) / 2)


def test_no_contact_with_background():
    labels = np.array([[[1, 0, 2]]], dtype=np.uint64)
    assert len(region_graph(labels, np.full((3, 1, 1, 3), 100, np.uint8))) == 0


def test_owned_parts_add_up_to_the_whole_graph():
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(1, 9, (3, 3, 3)), np.ones((4, 4, 4), int)).astype(np.uint64)
    affs = affinities_from_labels(labels, noise=0.2)
    frags = fragments(affs)
    whole = region_graph(frags, affs)
    # two halves along y: the second owns the contacts between its first row and the row before
    first = region_graph(frags, affs, owned=(slice(0, 12), slice(0, 6), slice(0, 12)))
    second = region_graph(frags, affs, owned=(slice(0, 12), slice(6, 12), slice(0, 12)))
    merged = merge_edge_tables([first, second]).groupby(["u", "v"], as_index=False)[
        ["contact_area", "affinity_sum"]].sum()
    expected = whole[["u", "v", "contact_area", "affinity_sum"]]
    assert merged.equals(expected)


def test_pieces_of_one_basin_are_linked():
    affs = np.zeros((3, 1, 1, 4), np.uint8)
    affs[2, 0, 0] = [0, 200, 100, 150]
    pieces = np.array([[[1, 2, 3, 3]]], dtype=np.uint64)  # the basin {0, 1} cut in two
    edges = region_graph(pieces, affs).set_index(["u", "v"])
    assert edges.loc[(1, 2), "linked"] and not edges.loc[(2, 3), "linked"]
