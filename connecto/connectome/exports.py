"""networkx DiGraph and GraphML exports with node and edge attributes."""

from __future__ import annotations

import math

import numpy as np

from .store import refuse_existing


def to_networkx(connectome, kind=None, min_weight: int = 1):
    """DiGraph over all neurons (node = int segment id; attributes: the neurons-table
    columns, NaN left out). Edges carry ``weight`` (synapses of the chosen kinds) and
    ``weight_<kind>`` for each kind present on that connection."""
    import networkx as nx

    graph = nx.DiGraph()
    columns = [c for c in connectome.neurons.columns if c != "segment_id"]
    records = connectome.neurons[columns].to_dict("records")
    for segment_id, attrs in zip(connectome.neuron_ids.tolist(), records):
        graph.add_node(segment_id, **_plain(attrs))
    total = connectome.edges(kind, min_weight=min_weight)
    graph.add_weighted_edges_from(zip(total["pre"].tolist(), total["post"].tolist(), total["weight"].tolist()))
    kinds = connectome.kinds if kind is None else ([kind] if isinstance(kind, str) else list(kind))
    for name in kinds:
        part = connectome.edges(name)
        for pre, post, weight in zip(part["pre"].tolist(), part["post"].tolist(), part["weight"].tolist()):
            if graph.has_edge(pre, post):
                graph.edges[pre, post][f"weight_{name}"] = weight
    graph.graph.update({"voxel_size_nm": str(list(connectome.voxel_size_nm)) if connectome.voxel_size_nm else "",
                        "kinds": ",".join(kinds)})
    return graph


def write_graphml(connectome, path, *, kind=None, min_weight: int = 1, overwrite: bool = False) -> str:
    """Write the :func:`to_networkx` graph as GraphML (node ids are the segment ids;
    read back with ``networkx.read_graphml(path, node_type=int)``)."""
    import networkx as nx

    path = refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    nx.write_graphml(to_networkx(connectome, kind=kind, min_weight=min_weight), path)
    return str(path)


def _plain(attrs: dict) -> dict:
    """Python scalars only, NaN and None dropped (GraphML has no missing values)."""
    out = {}
    for key, value in attrs.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, np.generic):
            value = value.item()
            if isinstance(value, float) and math.isnan(value):
                continue
        if not isinstance(value, (bool, int, float, str)):
            value = str(value)
        out[key] = value
    return out
