"""navis and SWC: skeletons with connectors out, navis TreeNeurons in.

navis and SWC are x, y, z; the tables are z, y, x in nm. The conversion happens here only.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from .store import refuse_existing, write_marker

logger = logging.getLogger(__name__)

_RELATIONS = {"pre": "pre", "post": "post", 0: "pre", 1: "post", "0": "pre", "1": "post"}


def tables_from_navis(neurons):
    """(neurons, synapses, skeletons, voxel_size_nm) tables from navis TreeNeurons.

    Coordinates are converted to nm through each neuron's ``units``; connectors of type
    pre/post (or CATMAID relations 0/1) become synapse rows whose other side is unknown
    (segment 0, no position) unless the connector table has ``partner_id``.
    """
    import navis

    if isinstance(neurons, navis.TreeNeuron):
        neurons = [neurons]
    neuron_rows, synapse_parts, skeleton_parts, scales = [], [], [], set()
    for neuron in neurons:
        if not isinstance(neuron, navis.TreeNeuron):
            raise TypeError(f"expected navis TreeNeurons, got {type(neuron).__name__}")
        scale = _nm_per_unit(neuron)
        scales.add(scale)
        segment_id = int(neuron.id)
        nodes = neuron.nodes
        zyx = nodes[["z", "y", "x"]].to_numpy(np.float64) * scale
        radius = nodes["radius"].to_numpy(np.float64) * scale if "radius" in nodes else np.full(len(nodes), np.nan)
        skeleton_parts.append(pd.DataFrame({
            "segment_id": np.uint64(segment_id), "node_id": nodes["node_id"].to_numpy(np.int64),
            "parent_id": nodes["parent_id"].to_numpy(np.int64), "z_nm": zyx[:, 0], "y_nm": zyx[:, 1],
            "x_nm": zyx[:, 2], "radius_nm": radius}))
        neuron_rows.append({"segment_id": segment_id, "name": str(neuron.name) if neuron.name is not None else "",
                            "z_nm": zyx[:, 0].mean(), "y_nm": zyx[:, 1].mean(), "x_nm": zyx[:, 2].mean(),
                            **{f"bbox_min_{a}_nm": zyx[:, i].min() for i, a in enumerate("zyx")},
                            **{f"bbox_max_{a}_nm": zyx[:, i].max() for i, a in enumerate("zyx")}})
        connectors = neuron.connectors
        if connectors is not None and len(connectors):
            synapse_parts.append(_connector_synapses(segment_id, connectors, scale))
    synapses = pd.concat(synapse_parts, ignore_index=True) if synapse_parts else pd.DataFrame(
        {"pre_segment": np.zeros(0, np.uint64), "post_segment": np.zeros(0, np.uint64)})
    synapses["synapse_id"] = np.arange(1, len(synapses) + 1, dtype=np.uint64)
    only = scales.pop() if len(scales) == 1 else None
    voxel_size_nm = (int(only),) * 3 if only is not None and float(only).is_integer() else None
    skeletons = pd.concat(skeleton_parts, ignore_index=True) if skeleton_parts else None
    return pd.DataFrame(neuron_rows), synapses, skeletons, voxel_size_nm


def _nm_per_unit(neuron) -> float:
    units = getattr(neuron, "units", None)
    try:
        return float(units.to("nm").magnitude)
    except Exception:  # noqa: BLE001 - dimensionless or unset units
        logger.warning("neuron %s has units %r, not a length; taking its coordinates as nm", neuron.id, units)
        return 1.0


def _connector_synapses(segment_id: int, connectors: pd.DataFrame, scale: float) -> pd.DataFrame:
    relation = connectors["type"].map(lambda t: _RELATIONS.get(t, None))
    if relation.isna().any():
        bad = connectors["type"][relation.isna()].iloc[0]
        raise ValueError(f"connector type {bad!r} of neuron {segment_id} is neither pre/post nor 0/1")
    zyx = connectors[["z", "y", "x"]].to_numpy(np.float64) * scale
    partner = (connectors["partner_id"].fillna(0).to_numpy(np.uint64) if "partner_id" in connectors
               else np.zeros(len(connectors), np.uint64))
    is_pre = (relation == "pre").to_numpy()
    nan = np.full(len(connectors), np.nan)
    table = pd.DataFrame({
        "pre_segment": np.where(is_pre, np.uint64(segment_id), partner),
        "post_segment": np.where(is_pre, partner, np.uint64(segment_id)),
    })
    for i, axis in enumerate("zyx"):
        table[f"pre_{axis}_nm"] = np.where(is_pre, zyx[:, i], nan)
        table[f"post_{axis}_nm"] = np.where(is_pre, nan, zyx[:, i])
    if "confidence" in connectors:
        table["score"] = connectors["confidence"].to_numpy(np.float32)
    return table


def to_navis(connectome, neurons=None):
    """navis NeuronList of the skeletons (units nm), with connector tables: ``pre`` where
    the neuron is presynaptic (at the pre point), ``post`` where postsynaptic (at the post
    point), ``partner_id`` the other segment (0 unknown), ``node_id`` the nearest node."""
    import navis
    from scipy.spatial import cKDTree

    skeletons = _skeletons_for(connectome, neurons)
    syn = connectome.synapses
    by_pre = {k: v for k, v in syn.groupby("pre_segment", sort=False).indices.items()}
    by_post = {k: v for k, v in syn.groupby("post_segment", sort=False).indices.items()}
    names = _names(connectome)
    out = []
    for segment_id, nodes in skeletons.groupby("segment_id", sort=False):
        segment_id = int(segment_id)
        table = pd.DataFrame({"node_id": nodes["node_id"].to_numpy(), "parent_id": nodes["parent_id"].to_numpy(),
                              "x": nodes["x_nm"].to_numpy(), "y": nodes["y_nm"].to_numpy(),
                              "z": nodes["z_nm"].to_numpy(), "radius": nodes["radius_nm"].to_numpy()})
        neuron = navis.TreeNeuron(table, units="1 nm", id=segment_id, name=names.get(segment_id, str(segment_id)))
        parts = [_connectors(syn.iloc[rows], side, partner) for side, partner, rows in (
            ("pre", "post_segment", by_pre.get(segment_id, [])), ("post", "pre_segment", by_post.get(segment_id, [])))]
        connectors = pd.concat(parts, ignore_index=True)
        if len(connectors):
            tree = cKDTree(table[["x", "y", "z"]].to_numpy())
            _, nearest = tree.query(connectors[["x", "y", "z"]].to_numpy())
            connectors.insert(1, "node_id", table["node_id"].to_numpy()[nearest])
            neuron.connectors = connectors
        out.append(neuron)
    return navis.NeuronList(out)


def _names(connectome) -> dict[int, str]:
    return (dict(zip(connectome.neuron_ids.tolist(), connectome.neurons["name"].astype(str)))
            if "name" in connectome.neurons else {})


def _connectors(rows: pd.DataFrame, side: str, partner: str) -> pd.DataFrame:
    xyz = rows[[f"{side}_x_nm", f"{side}_y_nm", f"{side}_z_nm"]].to_numpy(np.float64)
    keep = ~np.isnan(xyz).any(axis=1)
    return pd.DataFrame({"connector_id": rows["synapse_id"].to_numpy()[keep].astype(np.int64), "type": side,
                         "x": xyz[keep, 0], "y": xyz[keep, 1], "z": xyz[keep, 2],
                         "partner_id": rows[partner].to_numpy()[keep], "weight": rows["weight"].to_numpy()[keep],
                         "confidence": rows["score"].to_numpy()[keep]})


def _skeletons_for(connectome, neurons) -> pd.DataFrame:
    skeletons = connectome.skeletons
    if skeletons is None:
        raise ValueError("this connectome has no skeletons; compute them with connecto.connectome.skeletons."
                         "skeletonize(labels, voxel_size_nm) and Connectome.with_skeletons(table)")
    if neurons is None:
        return skeletons
    ids = connectome.segment_ids(list(neurons))
    lacking = np.setdiff1d(ids, skeletons["segment_id"].to_numpy())
    if len(lacking):
        raise ValueError(f"neuron {int(lacking[0])} has no skeleton ({len(lacking)} of the {len(ids)} asked lack one)")
    return skeletons[skeletons["segment_id"].isin(ids)]


def write_swc(connectome, directory, neurons=None, *, overwrite: bool = False) -> str:
    """One ``<segment_id>.swc`` per skeleton in ``directory``: columns id, type (0),
    x, y, z, radius (nm; -1 unknown), parent (-1 root)."""
    skeletons = _skeletons_for(connectome, neurons)
    names = _names(connectome)
    directory = refuse_existing(directory, overwrite)
    directory.mkdir(parents=True)
    for segment_id, nodes in skeletons.groupby("segment_id", sort=False):
        radius = nodes["radius_nm"].fillna(-1).to_numpy()
        table = pd.DataFrame({"n": nodes["node_id"].to_numpy(), "type": 0, "x": nodes["x_nm"].to_numpy(),
                              "y": nodes["y_nm"].to_numpy(), "z": nodes["z_nm"].to_numpy(), "radius": radius,
                              "parent": nodes["parent_id"].to_numpy()})
        # navis.read_swc takes id, name and units from the "# Meta:" line (read_meta, on by default)
        meta = {"id": int(segment_id), "name": names.get(int(segment_id), str(int(segment_id))), "units": "1 nm"}
        header = (f"# skeleton of segment {int(segment_id)}, written by connecto\n# units: nm\n"
                  f"# Meta: {json.dumps(meta)}\n# n type x y z radius parent\n")
        with open(directory / f"{int(segment_id)}.swc", "w") as f:
            f.write(header)
            table.to_csv(f, sep=" ", header=False, index=False, float_format="%.3f")
    write_marker(directory, "swc", units="nm")
    return str(directory)
