"""neuPrint-style CSVs for ``neo4j-admin import``, after the conventions of the FlyEM
neuPrint snapshots (hemibrain ``Neuprint_*.csv``): typed headers (``bodyId:long``,
``weight:int``), id groups (``:ID(Body-ID)``, ``:ID(Syn-ID)``, ``:ID(SynSet-ID)``),
``:LABEL`` and ``:TYPE`` columns, points as ``{x:…, y:…, z:…}`` in voxels.

Files::

    Neuprint_Meta.csv                      dataset, voxelSize, voxelUnits, totals
    Neuprint_Neurons.csv                   (:Segment:Neuron) bodyId, pre, post, upstream, downstream, ...
    Neuprint_Neuron_Connections.csv        (Neuron)-[:ConnectsTo {weight}]->(Neuron)
    Neuprint_Synapses.csv                  (:Synapse) type pre|post, confidence, location
    Neuprint_Synapse_Connections.csv       (Synapse)-[:SynapsesTo]->(Synapse)
    Neuprint_SynapseSet.csv                (:SynapseSet) "<pre>_<post>_pre" / "_post": a connection set
    Neuprint_Neuron_to_SynapseSet.csv      (Neuron)-[:Contains]->(SynapseSet)
    Neuprint_SynapseSet_to_Synapses.csv    (SynapseSet)-[:Contains]->(Synapse)
    Neuprint_SynapseSet_to_SynapseSet.csv  (SynapseSet pre)-[:ConnectsTo]->(SynapseSet post)

neuPrint models chemical synapses: other kinds (electrical) are left out. Synapse nodes
are written for synapses with coordinates (an edge-list connectome has none; its
synapse files hold headers only). Presynaptic points shared by several synapses (one
T-bar, many PSDs) become one Synapse node.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .store import refuse_existing, write_marker

logger = logging.getLogger(__name__)

IMPORT_ORDER = {
    "nodes": ["Neuprint_Meta.csv", "Neuprint_Neurons.csv", "Neuprint_Synapses.csv", "Neuprint_SynapseSet.csv"],
    "relationships": ["Neuprint_Neuron_Connections.csv", "Neuprint_Synapse_Connections.csv",
                      "Neuprint_Neuron_to_SynapseSet.csv", "Neuprint_SynapseSet_to_Synapses.csv",
                      "Neuprint_SynapseSet_to_SynapseSet.csv"],
}


def write_neuprint(connectome, directory, *, dataset: str = "connecto", overwrite: bool = False) -> str:
    """Write the CSVs above into ``directory`` (refused if it exists, unless ``overwrite``)."""
    if not dataset.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"dataset {dataset!r} must be letters, digits, '_' or '-' (it becomes a neo4j label)")
    directory = refuse_existing(directory, overwrite)
    directory.mkdir(parents=True)
    syn = connectome.synapses
    chemical = syn[syn["kind"] == "chemical"]
    if len(chemical) < len(syn):
        logger.info("neuPrint export leaves out %d non-chemical synapse rows", len(syn) - len(chemical))
    voxel = np.asarray(connectome.voxel_size_nm if connectome.voxel_size_nm else (1, 1, 1), np.float64)
    points = _synapse_points(chemical, voxel)
    neurons = _neurons(connectome.neurons, chemical, points, dataset)
    connections = _connections(connectome.edges("chemical") if "chemical" in connectome.kinds else None)
    meta = pd.DataFrame({":ID(Meta-ID)": [dataset], "dataset:string": [dataset],
                         "voxelSize:float[]": [";".join(str(float(v)) for v in voxel[::-1])],
                         "voxelUnits:string": ["nanometers" if connectome.voxel_size_nm else "unknown"],
                         "totalPreCount:int": [int((points["type:string"] == "pre").sum())],
                         "totalPostCount:int": [int((points["type:string"] == "post").sum())],
                         ":LABEL": [f"Meta;{dataset}_Meta"]})
    tables = {"Neuprint_Meta.csv": meta, "Neuprint_Neurons.csv": neurons,
              "Neuprint_Neuron_Connections.csv": connections,
              **_synapse_tables(chemical, points, dataset, set(connectome.neuron_ids.tolist()))}
    for name, table in tables.items():
        table.to_csv(directory / name, index=False)
    (directory / "IMPORT.txt").write_text(_import_command())
    write_marker(directory, "neuprint-csv", dataset=dataset)
    return str(directory)


def _synapse_points(chemical: pd.DataFrame, voxel: np.ndarray) -> pd.DataFrame:
    """One row per Synapse node: pre points deduplicated per (body, position), one post
    point per synapse row; locations in voxels (x, y, z)."""
    rows = []
    for side in ("pre", "post"):
        zyx = chemical[[f"{side}_z_nm", f"{side}_y_nm", f"{side}_x_nm"]].to_numpy(np.float64)
        body = chemical[f"{side}_segment"].to_numpy()
        keep = ~np.isnan(zyx).any(axis=1) & (body != 0)
        vox = np.rint(zyx[keep] / voxel).astype(np.int64)
        table = pd.DataFrame({"row": np.flatnonzero(keep), "body": body[keep], "z": vox[:, 0], "y": vox[:, 1],
                              "x": vox[:, 2], "confidence": chemical["score"].to_numpy()[keep], "side": side})
        rows.append(table)
    pre, post = rows
    pre_nodes = pre.drop_duplicates(["body", "z", "y", "x"]).reset_index(drop=True)
    pre_nodes["node"] = np.arange(1, len(pre_nodes) + 1, dtype=np.int64)
    pre = pre.merge(pre_nodes[["body", "z", "y", "x", "node"]], on=["body", "z", "y", "x"], how="left")
    post["node"] = np.arange(len(pre_nodes) + 1, len(pre_nodes) + len(post) + 1, dtype=np.int64)
    nodes = pd.concat([pre_nodes, post], ignore_index=True)
    out = pd.DataFrame({
        ":ID(Syn-ID)": nodes["node"],
        "type:string": nodes["side"],
        "confidence:float": nodes["confidence"].astype(float).round(4),
        "location:point{srid:9157}": ("{x:" + nodes["x"].astype(str) + ", y:" + nodes["y"].astype(str)
                                      + ", z:" + nodes["z"].astype(str) + "}"),
    })
    out.attrs["pre_rows"] = pre[["row", "body", "node"]]
    out.attrs["post_rows"] = post[["row", "body", "node"]]
    return out


def _neurons(neurons: pd.DataFrame, chemical: pd.DataFrame, points: pd.DataFrame, dataset: str) -> pd.DataFrame:
    ids = neurons["segment_id"].to_numpy()
    weight = chemical["weight"].to_numpy()
    downstream = _sum_by(ids, chemical["pre_segment"].to_numpy(), weight)
    upstream = _sum_by(ids, chemical["post_segment"].to_numpy(), weight)
    pre_rows = points.attrs["pre_rows"]
    tbars = _sum_by(ids, pre_rows.drop_duplicates("node")["body"].to_numpy(), np.ones(pre_rows["node"].nunique()))
    no_points = _sum_by(ids, chemical["pre_segment"].to_numpy(),
                        np.isnan(chemical["pre_z_nm"].to_numpy()).astype(np.int64) * weight)
    out = pd.DataFrame({":ID(Body-ID)": ids.astype(np.int64), "bodyId:long": ids.astype(np.int64),
                        "pre:int": tbars + no_points, "post:int": upstream, "upstream:int": upstream,
                        "downstream:int": downstream, "synweight:int": upstream + downstream})
    size = neurons["size_voxels"].to_numpy()
    out["size:long"] = pd.Series(size, dtype="Int64").where(size > 0)
    if "name" in neurons:
        out["instance:string"] = neurons["name"].astype("string").to_numpy()
    if "type" in neurons:
        out["type:string"] = neurons["type"].astype("string").to_numpy()
    out["roiInfo:string"] = "{}"
    out[":LABEL"] = f"Segment;{dataset}_Segment;Neuron;{dataset}_Neuron"
    return out


def _connections(edges: pd.DataFrame | None) -> pd.DataFrame:
    edges = edges if edges is not None else pd.DataFrame({"pre": [], "post": [], "weight": []})
    return pd.DataFrame({":START_ID(Body-ID)": edges["pre"].astype(np.int64),
                         ":END_ID(Body-ID)": edges["post"].astype(np.int64),
                         "weight:int": edges["weight"].astype(np.int64), "roiInfo:string": "{}",
                         ":TYPE": "ConnectsTo"})


def _synapse_tables(chemical: pd.DataFrame, points: pd.DataFrame, dataset: str, neurons: set) -> dict:
    pre_rows, post_rows = points.attrs["pre_rows"], points.attrs["post_rows"]
    paired = pre_rows.merge(post_rows, on="row", suffixes=("_pre", "_post"))
    paired = paired[paired["body_pre"].isin(neurons) & paired["body_post"].isin(neurons)]
    synapses = points.copy()
    synapses.attrs = {}
    synapses[":LABEL"] = f"Synapse;{dataset}_Synapse"
    set_pre = paired["body_pre"].astype(str) + "_" + paired["body_post"].astype(str) + "_pre"
    set_post = paired["body_pre"].astype(str) + "_" + paired["body_post"].astype(str) + "_post"
    sets = pd.DataFrame({":ID(SynSet-ID)": pd.concat([set_pre, set_post]).unique()})
    sets[":LABEL"] = f"SynapseSet;{dataset}_SynapseSet"
    neuron_to_set = pd.concat([
        pd.DataFrame({":START_ID(Body-ID)": paired["body_pre"].astype(np.int64), ":END_ID(SynSet-ID)": set_pre}),
        pd.DataFrame({":START_ID(Body-ID)": paired["body_post"].astype(np.int64), ":END_ID(SynSet-ID)": set_post}),
    ]).drop_duplicates()
    neuron_to_set[":TYPE"] = "Contains"
    set_to_syn = pd.concat([
        pd.DataFrame({":START_ID(SynSet-ID)": set_pre, ":END_ID(Syn-ID)": paired["node_pre"]}),
        pd.DataFrame({":START_ID(SynSet-ID)": set_post, ":END_ID(Syn-ID)": paired["node_post"]}),
    ]).drop_duplicates()
    set_to_syn[":TYPE"] = "Contains"
    set_to_set = pd.DataFrame({":START_ID(SynSet-ID)": set_pre, ":END_ID(SynSet-ID)": set_post}).drop_duplicates()
    set_to_set[":TYPE"] = "ConnectsTo"
    syn_to_syn = pd.DataFrame({":START_ID(Syn-ID)": paired["node_pre"], ":END_ID(Syn-ID)": paired["node_post"],
                               ":TYPE": "SynapsesTo"})
    return {"Neuprint_Synapses.csv": synapses, "Neuprint_Synapse_Connections.csv": syn_to_syn,
            "Neuprint_SynapseSet.csv": sets, "Neuprint_Neuron_to_SynapseSet.csv": neuron_to_set,
            "Neuprint_SynapseSet_to_Synapses.csv": set_to_syn, "Neuprint_SynapseSet_to_SynapseSet.csv": set_to_set}


def _sum_by(ids: np.ndarray, keys: np.ndarray, weights: np.ndarray) -> np.ndarray:
    series = pd.Series(np.asarray(weights, np.int64)).groupby(np.asarray(keys)).sum()
    return series.reindex(ids, fill_value=0).to_numpy(np.int64)


def _import_command() -> str:
    nodes = " ".join(f"--nodes={n}" for n in IMPORT_ORDER["nodes"])
    rels = " ".join(f"--relationships={r}" for r in IMPORT_ORDER["relationships"])
    return ("# Build a neo4j database from these files (neo4j 5; neo4j 4.4: `neo4j-admin import ...`):\n"
            f"neo4j-admin database import full --array-delimiter=';' {nodes} {rels} neo4j\n")
