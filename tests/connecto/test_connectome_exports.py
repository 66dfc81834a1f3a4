"""Exports read back with pandas / networkx / navis give the Connectome's counts and weights."""

import re

import networkx as nx
import pandas as pd
import pytest

from connecto.connectome import Connectome

from .test_connectome_tables import small_neurons, small_synapses

HEADER = re.compile(r"^(:(ID|START_ID|END_ID)\([\w-]+\)|:LABEL|:TYPE|\w+:(int|long|float|string|boolean|float\[\]|"
                    r"point\{srid:9157\}))$")


@pytest.fixture(scope="module")
def worm():
    pytest.importorskip("cect")
    from connecto.connectome.published import celegans

    return celegans()


@pytest.fixture(scope="module")
def hemibrain():
    navis = pytest.importorskip("navis")
    neurons = navis.example_neurons(kind="skeleton")
    return Connectome.from_navis(neurons), neurons


def test_parquet_export_read_back_with_pandas(tmp_path, worm):
    worm.export(tmp_path / "c", "parquet")
    neurons = pd.read_parquet(tmp_path / "c" / "neurons.parquet")
    edges = pd.read_parquet(tmp_path / "c" / "edges.parquet")
    assert len(neurons) == 473 and neurons["n_pre"].sum() == worm.synapses["weight"].sum()
    totals = edges.groupby("kind", observed=True)["weight"].agg(["sum", "count"])
    assert totals.loc["chemical"].tolist() == [28113, 4879] and totals.loc["electrical"].tolist() == [23313, 2883]
    assert Connectome.open(tmp_path / "c").adjacency().sum() == 28113 + 23313
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        worm.export(tmp_path / "c", "parquet")
    worm.export(tmp_path / "c", "parquet", overwrite=True)
    with pytest.raises(ValueError, match="export format 'xlsx' is not one of parquet, neuprint, graphml, swc"):
        worm.export(tmp_path / "x", "xlsx")


def test_networkx_and_graphml_round_trip(tmp_path, worm):
    graph = worm.to_networkx()
    assert graph.number_of_nodes() == 473
    assert sum(w for *_, w in graph.edges(data="weight")) == 28113 + 23313
    assert sum(w for *_, w in graph.edges(data="weight_electrical", default=0)) == 23313
    aval = worm.neuron("AVAL")["segment_id"]
    assert graph.nodes[int(aval)]["name"] == "AVAL"
    assert graph.nodes[int(aval)]["n_post"] == worm.neuron("AVAL")["n_post"]
    path = worm.to_graphml(tmp_path / "worm.graphml")
    back = nx.read_graphml(path, node_type=int)
    assert back.number_of_nodes() == 473 and back.number_of_edges() == graph.number_of_edges()
    for u, v, data in graph.edges(data=True):
        assert back.edges[u, v] == data
    assert back.nodes[int(aval)]["name"] == "AVAL"
    chemical = nx.read_graphml(worm.to_graphml(tmp_path / "chem.graphml", kind="chemical"), node_type=int)
    assert sum(w for *_, w in chemical.edges(data="weight")) == 28113
    with pytest.raises(FileExistsError, match="worm.graphml exists; pass overwrite=True"):
        worm.to_graphml(tmp_path / "worm.graphml")
    worm.to_graphml(tmp_path / "worm.graphml", overwrite=True)


def _read_neuprint(directory):
    tables = {p.name: pd.read_csv(p) for p in sorted(directory.glob("Neuprint_*.csv"))}
    for name, table in tables.items():
        bad = [c for c in table.columns if not HEADER.match(c)]
        assert not bad, f"{name}: headers {bad} are not neo4j-admin import headers"
    return tables


def _check_references(tables):
    """Every relationship end names a node of the id group it declares (neo4j-admin's rule)."""
    ids = {}
    for table in tables.values():
        for column in table.columns:
            group = re.match(r"^:ID\(([\w-]+)\)$", column)
            if group:
                ids.setdefault(group.group(1), set()).update(table[column].astype(str))
    for name, table in tables.items():
        for column in table.columns:
            end = re.match(r"^:(START_ID|END_ID)\(([\w-]+)\)$", column)
            if end:
                missing = set(table[column].astype(str)) - ids[end.group(2)]
                assert not missing, f"{name}.{column} names unknown nodes {sorted(missing)[:3]}"


def test_neuprint_csvs_of_celegans(tmp_path, worm):
    tables = _read_neuprint(tmp_path / worm.to_neuprint(tmp_path / "np", dataset="cook2019"))
    neurons = tables["Neuprint_Neurons.csv"]
    assert len(neurons) == 473 and (neurons[":ID(Body-ID)"] == neurons["bodyId:long"]).all()
    assert neurons["downstream:int"].sum() == 28113 == neurons["upstream:int"].sum()  # electrical left out
    assert set(neurons[":LABEL"]) == {"Segment;cook2019_Segment;Neuron;cook2019_Neuron"}
    connections = tables["Neuprint_Neuron_Connections.csv"]
    expected = worm.edges("chemical")
    ends = connections[[":START_ID(Body-ID)", ":END_ID(Body-ID)", "weight:int"]]
    assert ends.values.tolist() == expected.values.tolist()
    assert set(connections[":TYPE"]) == {"ConnectsTo"}
    assert len(tables["Neuprint_Synapses.csv"]) == 0  # an edge list has no synapse positions
    _check_references(tables)
    assert "neo4j-admin" in (tmp_path / "np" / "IMPORT.txt").read_text()
    with pytest.raises(FileExistsError):
        worm.to_neuprint(tmp_path / "np")


def test_neuprint_synapse_level_files(tmp_path):
    c = Connectome.from_tables(small_neurons(), small_synapses(), voxel_size_nm=(40, 8, 8))
    tables = _read_neuprint(tmp_path / c.to_neuprint(tmp_path / "np"))
    synapses = tables["Neuprint_Synapses.csv"]
    # chemical rows: 6; pre points: 1->2 twice share one T-bar, so 5 pre nodes; post points: 5 with a body
    assert (synapses["type:string"] == "pre").sum() == 5 and (synapses["type:string"] == "post").sum() == 5
    assert "{x:1, y:1, z:1}" in set(synapses["location:point{srid:9157}"])  # (40, 8, 8) nm = voxel (1, 1, 1)
    assert len(tables["Neuprint_Synapse_Connections.csv"]) == 5
    assert sorted(tables["Neuprint_SynapseSet.csv"][":ID(SynSet-ID)"]) == [
        "1_2_post", "1_2_pre", "2_3_post", "2_3_pre", "3_1_post", "3_1_pre"]
    set_to_syn = tables["Neuprint_SynapseSet_to_Synapses.csv"]
    assert (set_to_syn[":START_ID(SynSet-ID)"] == "1_2_pre").sum() == 2  # two T-bars hold the three 1->2 synapses
    assert (set_to_syn[":START_ID(SynSet-ID)"] == "1_2_post").sum() == 3
    neurons = tables["Neuprint_Neurons.csv"].set_index("bodyId:long")
    assert neurons.loc[1, "pre:int"] == 3 and neurons.loc[1, "downstream:int"] == 4  # incl. the unknown partner
    assert neurons.loc[1, "size:long"] == 5000 and neurons.loc[2, "instance:string"] == "b"
    meta = tables["Neuprint_Meta.csv"]
    assert meta["voxelSize:float[]"].tolist() == ["8.0;8.0;40.0"]
    _check_references(tables)


def test_navis_export_keeps_skeletons_and_connectors(hemibrain):
    connectome, originals = hemibrain
    exported = connectome.to_navis()
    assert len(exported) == 5
    for original in originals:
        mine = exported.idx[original.id] if hasattr(exported, "idx") else exported[exported.id == original.id][0]
        assert mine.n_nodes == original.n_nodes and mine.name == original.name
        assert float(mine.cable_length) == pytest.approx(float(original.cable_length) * 8, rel=1e-6)
        for kind in ("pre", "post"):
            want = original.connectors.loc[original.connectors["type"] == kind, ["x", "y", "z"]].to_numpy() * 8
            got = mine.connectors.loc[mine.connectors["type"] == kind, ["x", "y", "z"]].to_numpy()
            assert sorted(map(tuple, want)) == sorted(map(tuple, got))
        assert set(mine.connectors["node_id"]) <= set(mine.nodes["node_id"])
    one = connectome.to_navis([int(originals[0].id)])
    assert len(one) == 1
    with pytest.raises(KeyError, match="neuron 12345"):
        connectome.to_navis([12345])


def test_swc_round_trip_through_navis(tmp_path, hemibrain):
    navis = pytest.importorskip("navis")
    connectome, originals = hemibrain
    directory = connectome.to_swc(tmp_path / "swc")
    files = sorted((tmp_path / "swc").glob("*.swc"))
    assert len(files) == 5
    back = navis.read_swc(str(tmp_path / "swc"))
    lengths = {int(n.id): float(n.cable_length) for n in back}  # ids and units from each file's "# Meta:" line
    assert {str(n.units) for n in back} == {"1 nanometer"}
    assert sorted(lengths) == sorted(int(o.id) for o in originals)
    for original in originals:
        table = pd.read_csv(tmp_path / "swc" / f"{original.id}.swc", sep=" ", comment="#", header=None)
        assert len(table) == original.n_nodes and (table[6] == -1).sum() == (original.nodes.parent_id == -1).sum()
        assert lengths[int(original.id)] == pytest.approx(float(original.cable_length) * 8, rel=1e-4)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        connectome.to_swc(directory)
    connectome.to_swc(directory, overwrite=True)


def test_skeletons_survive_parquet_and_are_required_for_navis(tmp_path, hemibrain, worm):
    connectome, _ = hemibrain
    again = Connectome.open(connectome.save(tmp_path / "h"))
    pd.testing.assert_frame_equal(again.skeletons, connectome.skeletons)
    assert again.synapses_in_roi(((0, 0, 0), (10**6,) * 3)).shape[0] == 14836
    with pytest.raises(ValueError, match="has no skeletons"):
        worm.to_navis()
    with pytest.raises(ValueError, match="has no skeletons"):
        worm.to_swc(tmp_path / "none")
