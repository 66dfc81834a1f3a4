"""Connectome tables: schema, fragment mapping, Parquet round trip, versions, every bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from connecto.connectome import Connectome, map_fragments, map_synapses
from connecto.connectome.store import refuse_existing


def small_synapses():
    # 1 -> 2 (x3: two share one T-bar), 2 -> 3, 3 -> 1, 1 -> 0 (unknown partner), one electrical 2 <-> 3
    return pd.DataFrame({
        "synapse_id": [10, 11, 12, 13, 14, 15, 16, 17],
        "pre_segment": [1, 1, 1, 2, 3, 1, 2, 3],
        "post_segment": [2, 2, 2, 3, 1, 0, 3, 2],
        "pre_z_nm": [40.0, 40.0, 80.0, 400.0, 800.0, 0.0, 400.0, 400.0],
        "pre_y_nm": [8.0, 8.0, 16.0, 80.0, 160.0, 0.0, 80.0, 80.0],
        "pre_x_nm": [8.0, 8.0, 16.0, 80.0, 160.0, 0.0, 80.0, 80.0],
        "post_z_nm": [40.0, 40.0, 80.0, 440.0, 840.0, np.nan, 400.0, 400.0],
        "post_y_nm": [16.0, 24.0, 24.0, 88.0, 168.0, np.nan, 88.0, 88.0],
        "post_x_nm": [16.0, 24.0, 24.0, 88.0, 168.0, np.nan, 88.0, 88.0],
        "score": [0.9, 0.8, 0.7, 0.95, 0.6, 0.5, 1.0, 1.0],
        "kind": ["chemical"] * 6 + ["electrical"] * 2,
    })


def _syn(pre, post):
    return pd.DataFrame({"pre_segment": pre, "post_segment": post})


def small_neurons():
    return pd.DataFrame({"segment_id": [1, 2, 3], "size_voxels": [5000, 300, 80], "name": ["a", "b", "c"],
                         "z_nm": [40.0, 400.0, 800.0], "y_nm": [8.0, 80.0, 160.0], "x_nm": [8.0, 80.0, 160.0]})


@pytest.fixture
def small():
    return Connectome.from_tables(small_neurons(), small_synapses(), voxel_size_nm=(40, 8, 8))


def test_tables_get_every_standard_column_and_exact_counts(small):
    assert small.neurons["segment_id"].dtype == np.uint64
    assert small.synapses["pre_segment"].dtype == np.uint64 and small.synapses["kind"].dtype == "category"
    by_id = small.neurons.set_index("segment_id")
    assert by_id.loc[1, "n_pre"] == 4 and by_id.loc[1, "n_post"] == 1
    assert by_id.loc[2, "n_pre"] == 2 and by_id.loc[2, "n_post"] == 4
    assert by_id.loc[1, "size_um3"] == pytest.approx(5000 * 40 * 8 * 8 / 1e9)
    assert small.kinds == ["chemical", "electrical"]
    edges = small.edges(by_kind=True)
    assert edges.values.tolist() == [[1, 2, "chemical", 3], [2, 3, "chemical", 1], [3, 1, "chemical", 1],
                                     [2, 3, "electrical", 1], [3, 2, "electrical", 1]]
    assert small.edges().values.tolist() == [[1, 2, 3], [2, 3, 2], [3, 1, 1], [3, 2, 1]]
    assert repr(small) == "Connectome(3 neurons, 8 synapses (chemical 6, electrical 2), voxel size (40, 8, 8) nm)"


def test_input_tables_are_not_modified():
    synapses, neurons = small_synapses(), small_neurons()
    before = (synapses.copy(), neurons.copy())
    Connectome.from_tables(neurons, synapses, voxel_size_nm=(40, 8, 8))
    pd.testing.assert_frame_equal(synapses, before[0])
    pd.testing.assert_frame_equal(neurons, before[1])


def test_segments_named_only_by_synapses_become_neurons():
    c = Connectome.from_tables(pd.DataFrame({"segment_id": [1]}), _syn([1], [9]))
    assert sorted(c.neuron_ids.tolist()) == [1, 9]
    assert c.neuron(9)["n_post"] == 1


def test_map_fragments_and_synapses():
    assert map_fragments([5, 6, 0, 9], [5, 6], [1, 1]).tolist() == [1, 1, 0, 9]
    assert map_fragments([5, 9], [5], [1], missing="zero").tolist() == [1, 0]
    with pytest.raises(KeyError, match="fragment 9 is not in the mapping"):
        map_fragments([5, 9], [5], [1], missing="error")
    with pytest.raises(ValueError, match="more than once"):
        map_fragments([5], [5, 5], [1, 2])
    frag = pd.DataFrame({"pre_fragment": [101, 102, 103], "post_fragment": [201, 202, 0]})
    mapped = map_synapses(frag, [101, 102, 201, 202], [1, 1, 2, 2])
    assert mapped[["pre_segment", "post_segment"]].values.tolist() == [[1, 2], [1, 2], [103, 0]]
    c = Connectome.from_tables(None, frag, mapping=([101, 102, 201, 202], [1, 1, 2, 2]))
    assert c.upstream(2)["weight"].tolist() == [2]
    with pytest.raises(ValueError, match="pre_fragment"):
        map_synapses(pd.DataFrame({"pre_segment": [1]}), [1], [1])


def test_from_edge_list_with_names_and_ids():
    edges = pd.DataFrame({"pre": ["x", "y", "x"], "post": ["y", "z", "z"], "weight": [4, 2, 0],
                          "kind": ["chemical", "electrical", "chemical"]})
    c = Connectome.from_edge_list(edges)
    assert c.neurons["name"].tolist() == ["x", "y", "z"] and c.neuron_ids.tolist() == [1, 2, 3]
    assert c.upstream("y").values.tolist() == [[1, 4, "x"]]
    assert len(c.synapses) == 2  # the zero-weight edge is no connection
    by_id = Connectome.from_edge_list(pd.DataFrame({"pre": [7], "post": [8], "weight": [3]}))
    assert by_id.kinds == ["chemical"] and by_id.downstream(7)["weight"].tolist() == [3]


def test_bad_tables_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match="lacks the column"):
        Connectome.from_tables(None, pd.DataFrame({"pre": [1], "post": [2]}))
    with pytest.raises(ValueError, match="segment_id 0"):
        Connectome.from_tables(pd.DataFrame({"segment_id": [0]}), _syn([1], [2]))
    with pytest.raises(ValueError, match="segment_id 4 appears more than once"):
        Connectome.from_tables(pd.DataFrame({"segment_id": [4, 4]}), _syn([4], [4]))
    with pytest.raises(ValueError, match="must not be negative"):
        Connectome.from_tables(None, pd.DataFrame({"pre_segment": [-1], "post_segment": [2]}))
    with pytest.raises(ValueError, match="synapse_id 3 appears more than once"):
        Connectome.from_tables(None, _syn([1, 1], [2, 2]).assign(synapse_id=[3, 3]))
    with pytest.raises(ValueError, match="'weight' must be >= 1"):
        Connectome.from_tables(None, pd.DataFrame({"pre_segment": [1], "post_segment": [2], "weight": [0]}))
    with pytest.raises(ValueError, match="negative counts"):
        Connectome.from_edge_list(pd.DataFrame({"pre": [1], "post": [2], "weight": [-3]}))


def test_unknown_neuron_and_kind_errors_name_the_value(small):
    with pytest.raises(KeyError, match="neuron 99999999 is not in this connectome"):
        small.upstream(99999999)
    with pytest.raises(KeyError, match="neuron 'zz' is not in this connectome"):
        small.downstream("zz")
    with pytest.raises(KeyError, match="neuron -5"):
        small.upstream(-5)
    with pytest.raises(KeyError, match="neuron 42"):
        small.adjacency([1, 42])
    with pytest.raises(ValueError, match="synapse kind 'neuropeptide' is not in this connectome"):
        small.upstream(1, kind="neuropeptide")
    assert 1 in small and "b" in small and 42 not in small


def test_save_open_round_trip_and_versions(tmp_path, small):
    path = small.save(tmp_path / "run" / "connectome")
    again = Connectome.open(tmp_path / "run")  # a run directory holding connectome/
    pd.testing.assert_frame_equal(again.neurons, small.neurons)
    pd.testing.assert_frame_equal(again.synapses, small.synapses)
    assert again.voxel_size_nm == (40, 8, 8)
    edges = pd.read_parquet(f"{path}/edges.parquet")
    between_neurons = small.synapses.pre_segment.ne(0) & small.synapses.post_segment.ne(0)
    assert edges["weight"].sum() == small.synapses.loc[between_neurons, "weight"].sum()
    assert json.loads((tmp_path / "run" / "connectome" / "connectome.json").read_text())["n_synapses"] == 8

    small.save(tmp_path / "run" / "connectome", version=2)
    assert Connectome.open(tmp_path / "run", version=2).neurons.equals(small.neurons)
    with pytest.raises(ValueError, match=r"version 7 does not exist in .*available versions: \['2'\]"):
        Connectome.open(tmp_path / "run", version=7)
    with pytest.raises(FileNotFoundError, match="no connectome at"):
        Connectome.open(tmp_path / "nothing")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        small.save(tmp_path / "run" / "connectome")
    small.save(tmp_path / "run" / "connectome", overwrite=True)
    assert (tmp_path / "run" / "connectome" / "versions" / "2").is_dir()  # overwrite keeps the versions


def test_refuse_existing_never_deletes_foreign_directories(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("important")
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        refuse_existing(foreign, overwrite=False)
    with pytest.raises(FileExistsError, match="not a connecto export"):
        refuse_existing(foreign, overwrite=True)
    assert (foreign / "thesis.tex").exists()
