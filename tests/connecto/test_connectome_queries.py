"""Queries: exact answers on a hand-made graph, then every query on real connectomes
(C. elegans, Cook et al. 2019 via cect; navis' hemibrain neurons) against references
computed independently (networkx from cect's own graph; numpy over navis' tables)."""

import itertools

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from chunks import Roi
from connecto.connectome import Connectome

cect = pytest.importorskip("cect")


@pytest.fixture(scope="module")
def worm():
    from connecto.connectome.published import celegans

    return celegans()


@pytest.fixture(scope="module")
def worm_reference():
    """cect's own networkx graphs of the same data (rows pre, columns post)."""
    from cect.ConnectomeDataset import get_cache_filename, load_connectome_dataset_file

    data = load_connectome_dataset_file(get_cache_filename("Cook2019HermReader"))
    return {"chemical": data.to_networkx_graph("Generic_CS"), "electrical": data.to_networkx_graph("Generic_GJ")}


def test_hand_made_graph_exact_answers():
    # a -> b (3), b -> c (2), a -> c (1): one feed-forward triad; c <-> d: one reciprocal pair
    syn = pd.DataFrame({"pre_segment": [1, 1, 1, 2, 2, 1, 3, 4, 4],
                        "post_segment": [2, 2, 2, 3, 3, 3, 4, 3, 4]})
    c = Connectome.from_tables(None, syn)
    assert c.upstream(3).values.tolist() == [[2, 2], [1, 1], [4, 1]]
    assert c.upstream(3, min_weight=2).values.tolist() == [[2, 2]]
    assert c.downstream(1).values.tolist() == [[2, 3], [3, 1]]
    assert c.adjacency([3, 1, 2]).toarray().tolist() == [[0, 0, 0], [1, 0, 3], [2, 0, 0]]
    assert c.shortest_path(1, 4) == [1, 3, 4]
    assert c.shortest_path(1, 4, min_weight=2) == []
    assert c.shortest_path(4, 1) == []
    assert c.shortest_path(1, 3, weighted=True) == [1, 2, 3]  # 1/3 + 1/2 < 1/1
    assert c.paths(1, 4, max_length=3) == [[1, 3, 4], [1, 2, 3, 4]]
    assert c.paths(1, 4, max_length=2) == [[1, 3, 4]]
    assert c.motifs() == {"edges": 5, "autapses": 1, "reciprocal_pairs": 1, "feed_forward_loops": 1,
                          "feed_forward_triads": 1}
    with pytest.raises(ValueError, match="max_length must be >= 1"):
        c.paths(1, 4, max_length=0)


@pytest.mark.parametrize("kind", ["chemical", "electrical"])
def test_celegans_partners_and_adjacency_match_networkx(worm, worm_reference, kind):
    ref = worm_reference[kind]
    assert worm.graph(kind).num_edges == ref.number_of_edges()
    names = worm.neurons["name"].tolist()
    ref_matrix = nx.to_scipy_sparse_array(ref, nodelist=names, weight="weight")
    assert (worm.adjacency(kind=kind) != ref_matrix).nnz == 0
    by_id = dict(zip(worm.neuron_ids.tolist(), names))
    for name in names:
        for min_weight in (1, 5):
            up = worm.upstream(name, min_weight=min_weight, kind=kind)
            expected = {p: d["weight"] for p, _, d in ref.in_edges(name, data=True) if d["weight"] >= min_weight}
            assert {by_id[s]: w for s, w in zip(up["segment_id"].tolist(), up["weight"].tolist())} == expected
            assert up["weight"].is_monotonic_decreasing
            down = worm.downstream(name, min_weight=min_weight, kind=kind)
            expected = {q: d["weight"] for _, q, d in ref.out_edges(name, data=True) if d["weight"] >= min_weight}
            assert dict(zip(down["name"], down["weight"].tolist())) == expected
    subset = ["AVAL", "AVAR", "AVBL", "PVCL", "DD1"]
    expected = nx.to_scipy_sparse_array(ref, nodelist=subset, weight="weight").toarray()
    assert np.array_equal(worm.adjacency(subset, kind=kind).toarray(), expected)


def test_celegans_all_kinds_sum_chemical_and_electrical(worm, worm_reference):
    total = worm.adjacency().toarray()
    names = worm.neurons["name"].tolist()
    expected = sum(nx.to_scipy_sparse_array(g, nodelist=names).toarray() for g in worm_reference.values())
    assert np.array_equal(total, expected)


def test_celegans_paths_match_networkx(worm, worm_reference):
    ref = worm_reference["chemical"]
    rng = np.random.default_rng(0)
    names = worm.neurons["name"].to_numpy()
    strong = nx.DiGraph((u, v, d) for u, v, d in ref.edges(data=True) if d["weight"] >= 3)
    strong.add_nodes_from(ref)
    for source, target in rng.choice(names, size=(40, 2)):
        path = worm.shortest_path(source, target, kind="chemical")
        expected = nx.shortest_path_length(ref, source, target) if nx.has_path(ref, source, target) else None
        assert (len(path) - 1 if path else None) == expected
        assert all(ref.has_edge(by, to) for by, to in zip(_names(worm, path), _names(worm, path)[1:]))
        thresholded = worm.shortest_path(source, target, kind="chemical", min_weight=3)
        expected = nx.shortest_path_length(strong, source, target) if nx.has_path(strong, source, target) else None
        assert (len(thresholded) - 1 if thresholded else None) == expected
    for source, target in [("ASHL", "AVAL"), ("AWCL", "AIYL"), ("PLML", "AVAR")]:
        mine = {tuple(_names(worm, p)) for p in worm.paths(source, target, max_length=3, kind="chemical")}
        assert mine == {tuple(p) for p in nx.all_simple_paths(ref, source, target, cutoff=3)}
        assert mine  # these sensory -> interneuron pairs are connected
    inverse = nx.DiGraph((u, v, {"cost": 1 / d["weight"]}) for u, v, d in ref.edges(data=True))
    for source, target in [("ASHL", "AVAL"), ("PLML", "DB3")]:
        mine = _names(worm, worm.shortest_path(source, target, kind="chemical", weighted=True))
        cost = sum(inverse.edges[a, b]["cost"] for a, b in itertools.pairwise(mine))
        assert cost == pytest.approx(nx.dijkstra_path_length(inverse, source, target, weight="cost"))


def _names(connectome, ids):
    lookup = dict(zip(connectome.neuron_ids.tolist(), connectome.neurons["name"]))
    return [lookup[i] for i in ids]


@pytest.mark.parametrize("kind,min_weight", [("chemical", 1), ("chemical", 4), ("electrical", 1)])
def test_celegans_motifs_match_networkx(worm, worm_reference, kind, min_weight):
    ref = nx.DiGraph((u, v) for u, v, d in worm_reference[kind].edges(data=True) if d["weight"] >= min_weight)
    loops = [u for u in ref if ref.has_edge(u, u)]
    ref.remove_edges_from((u, u) for u in loops)
    reciprocal = sum(1 for u, v in ref.edges if u < v and ref.has_edge(v, u))
    ffl = sum(1 for a in ref for b in ref.successors(a) for c in ref.successors(b)
              if c != a and ref.has_edge(a, c))
    counts = worm.motifs(min_weight=min_weight, kind=kind)
    assert counts == {"edges": ref.number_of_edges(), "autapses": len(loops), "reciprocal_pairs": reciprocal,
                      "feed_forward_loops": ffl, "feed_forward_triads": nx.triadic_census(ref)["030T"]}


@pytest.fixture(scope="module")
def hemibrain():
    navis = pytest.importorskip("navis")
    neurons = navis.example_neurons(kind="skeleton")
    return Connectome.from_navis(neurons), neurons


def test_hemibrain_counts_and_spatial_queries_match_navis(hemibrain):
    connectome, neurons = hemibrain
    assert connectome.voxel_size_nm == (8, 8, 8)
    for n in neurons:
        row = connectome.neuron(int(n.id))
        assert row["n_pre"] == (n.connectors["type"] == "pre").sum()
        assert row["n_post"] == (n.connectors["type"] == "post").sum()
        assert row["name"] == n.name
        # partners are unknown in navis' example connectors: no neuron-to-neuron connection
        assert connectome.upstream(int(n.id)).empty and connectome.downstream(int(n.id)).empty
    # a Roi (voxels of 8 nm, zyx) around the lateral horn, where these PNs make their outputs
    roi = Roi((14000, 20000, 4000), (1500, 3000, 2500))
    begin, end = np.array(roi.begin), np.array(roi.end)
    expected = set()
    for n in neurons:
        zyx = n.connectors[["z", "y", "x"]].to_numpy()
        inside = np.all((zyx >= begin) & (zyx < end), axis=1)
        expected |= {(int(n.id), t, tuple(p)) for t, p in zip(n.connectors["type"][inside], zyx[inside])}
    found = connectome.synapses_in_roi(roi)
    mine = set()
    for _, s in found.iterrows():
        side = "pre" if s["pre_segment"] else "post"
        p = tuple(round(s[f"{side}_{a}_nm"] / 8) for a in "zyx")
        mine.add((int(s[f"{side}_segment"]), side, p))
    assert mine == expected and len(found) > 100
    centroids = {int(n.id): n.nodes[["z", "y", "x"]].to_numpy().mean(axis=0) for n in neurons}
    box = Roi((20000, 21000, 1000), (20000, 20000, 20000))
    in_box = {i for i, c in centroids.items() if np.all((c >= box.begin) & (c < box.end))}
    assert set(connectome.neurons_in_roi(box)["segment_id"].tolist()) == in_box
    overlapping = {int(n.id) for n in neurons if np.all((n.nodes[["z", "y", "x"]].min().to_numpy() < roi.end)
                                                        & (n.nodes[["z", "y", "x"]].max().to_numpy() >= roi.begin))}
    assert set(connectome.neurons_in_roi(roi, mode="bbox")["segment_id"].tolist()) == overlapping
    with pytest.raises(ValueError, match="mode='sphere' is not one of"):
        connectome.neurons_in_roi(roi, mode="sphere")


def test_roi_query_without_voxel_size_says_what_to_give(worm):
    with pytest.raises(ValueError, match="no voxel size"):
        worm.neurons_in_roi(Roi((0, 0, 0), (1, 1, 1)))


def test_neurons_by_size_and_location_point(tmp_path):
    syn = pd.DataFrame({"pre_segment": [1, 2], "post_segment": [2, 3],
                        "pre_z_nm": [0.0, 400.0], "pre_y_nm": [0.0, 0.0], "pre_x_nm": [0.0, 0.0],
                        "post_z_nm": [40.0, 440.0], "post_y_nm": [0.0, 0.0], "post_x_nm": [0.0, 0.0],
                        "cleft_z_nm": [np.nan, 400.0], "cleft_y_nm": [np.nan, 0.0], "cleft_x_nm": [np.nan, 0.0]})
    neurons = pd.DataFrame({"segment_id": [1, 2, 3], "size_voxels": [10, 30, 20]})
    c = Connectome.from_tables(neurons, syn, voxel_size_nm=(40, 4, 4))
    assert c.neurons_by_size().segment_id.tolist() == [2, 3, 1]
    assert c.neurons_by_size(min_voxels=15, max_voxels=25).segment_id.tolist() == [3]
    # location: the cleft where known (z 400 nm = voxel 10), else the post point (z 40 nm = voxel 1)
    assert c.synapses_in_roi(Roi((1, 0, 0), (1, 1, 1))).pre_segment.tolist() == [1]
    assert c.synapses_in_roi(Roi((10, 0, 0), (1, 1, 1))).pre_segment.tolist() == [2]
    assert c.synapses_in_roi(Roi((10, 0, 0), (1, 1, 1)), point="pre").pre_segment.tolist() == [2]
    assert c.synapses_in_roi(Roi((11, 0, 0), (1, 1, 1)), point="post").pre_segment.tolist() == [2]
    assert list(itertools.chain(c.synapses_in_roi(Roi((0, 0, 0), (1, 1, 1)), point="pre").pre_segment)) == [1]
