"""Truth tables of a synthetic volume (pandas), and writing them as Parquet beside the volumes.

Coordinates are nm, zyx, with explicit column names; ids are uint64 as in the volumes.
Voxel ``i`` sits at ``i * voxel_size_nm``, so ``round(z_nm / voxel_size_z)`` is its index.

- ``neurons``: neuron_id, kind (body/dendrite/axon), n_nodes, cable_length_nm,
  mean_radius_nm, n_synapses_out (as presynaptic site), n_synapses_in (as partner)
- ``synapses``: one row per (synapse, postsynaptic partner): synapse_id (= its cleft
  label), pre_id, post_id, pre_{z,y,x}_nm, post_{z,y,x}_nm, cleft_{z,y,x}_nm; pre and post
  points lie 30 nm or more from the cleft inside the pre and post neurons.
- ``skeletons``: node_id, neuron_id, parent_id (-1 at a root), {z,y,x}_nm, radius_nm
- ``mitochondria``: mitochondrion_id, neuron_id, first_node_id, last_node_id, radius_nm
- ``vesicles``: synapse_id, {z,y,x}_nm, radius_nm
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .config import GENERATOR_VERSION
from .synapses import VESICLE_RADIUS_NM

TABLES = ("neurons", "synapses", "skeletons", "mitochondria", "vesicles")
AXES = ("z", "y", "x")


def _xyz(prefix: str, points: np.ndarray) -> dict:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return {f"{prefix}{a}_nm": points[:, i] for i, a in enumerate(AXES)}


def truth_tables(model) -> dict[str, pd.DataFrame]:
    """All truth tables of ``model`` by name."""
    sk, syn, mito = model.skeletons, model.synapses, model.mitochondria
    ids = np.arange(1, sk.num_neurons + 1, dtype=np.uint64)
    parent = sk.parent
    has_parent = parent >= 0
    seg = np.zeros(len(parent))
    seg[has_parent] = np.linalg.norm(sk.position_nm[has_parent] - sk.position_nm[parent[has_parent]], axis=1)
    index = sk.neuron - 1
    n = sk.num_neurons
    unique_pre = pd.DataFrame({"s": syn.synapse_id, "p": syn.pre_id}).drop_duplicates()
    neurons = pd.DataFrame({
        "neuron_id": ids,
        "kind": pd.Categorical(sk.kinds, categories=["body", "dendrite", "axon"]),
        "n_nodes": np.bincount(index, minlength=n),
        "cable_length_nm": np.bincount(index, weights=seg, minlength=n),
        "mean_radius_nm": np.bincount(index, weights=sk.radius_nm, minlength=n) / np.maximum(
            np.bincount(index, minlength=n), 1),
        "n_synapses_out": np.bincount(unique_pre["p"].to_numpy(np.int64) - 1, minlength=n)[:n],
        "n_synapses_in": np.bincount(syn.post_id - 1, minlength=n)[:n],
    })
    synapses = pd.DataFrame({
        "synapse_id": syn.synapse_id.astype(np.uint64),
        "pre_id": syn.pre_id.astype(np.uint64),
        "post_id": syn.post_id.astype(np.uint64),
        **_xyz("pre_", syn.pre_nm), **_xyz("post_", syn.post_nm), **_xyz("cleft_", syn.cleft_nm),
    })
    skeletons = pd.DataFrame({
        "node_id": np.arange(len(parent), dtype=np.int64),
        "neuron_id": sk.neuron.astype(np.uint64),
        "parent_id": parent.astype(np.int64),
        **_xyz("", sk.position_nm),
        "radius_nm": sk.radius_nm,
    })
    mitochondria = pd.DataFrame({
        "mitochondrion_id": np.arange(1, len(mito) + 1, dtype=np.uint64),
        "neuron_id": mito.neuron.astype(np.uint64),
        "first_node_id": mito.first_node, "last_node_id": mito.last_node,
        "radius_nm": mito.radius_nm,
    })
    vesicles = pd.DataFrame({
        "synapse_id": syn.vesicle_synapse.astype(np.uint64),
        **_xyz("", syn.vesicles_nm),
        "radius_nm": np.full(len(syn.vesicle_synapse), VESICLE_RADIUS_NM),
    })
    return {"neurons": neurons, "synapses": synapses, "skeletons": skeletons,
            "mitochondria": mitochondria, "vesicles": vesicles}


def summary(model, volumes: dict | None = None) -> dict:
    """What ``synthetic.json`` records: generator version, resolved config, counts, volume URLs."""
    syn = model.synapses
    return {
        "generator": "connecto.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": model.config.to_dict(),
        "config_digest": model.config.digest(),
        "counts": {
            "neurons": model.skeletons.num_neurons,
            "synapses": len(syn),
            "synapse_partners": len(syn.synapse_id),
            "mitochondria": len(model.mitochondria),
            "vesicles": len(syn.vesicle_synapse),
        },
        "volumes": dict(volumes or {}),
        "tables": {name: f"{name}.parquet" for name in TABLES},
    }


def write_tables(model, tables_url: str, volumes: dict | None = None) -> dict[str, str]:
    """Write every truth table as ``<tables_url>/<name>.parquet`` and ``synthetic.json``; return paths."""
    from chunks.fs import filesystem
    from chunks.urls import parse_url

    url = parse_url(tables_url)
    fs = filesystem(url)
    if url.protocol == "file":
        fs.makedirs(url.path, exist_ok=True)
    written = {}
    for name, frame in truth_tables(model).items():
        path = url.join(f"{name}.parquet")
        with fs.open(path, "wb") as f:
            frame.to_parquet(f, index=False)
        written[name] = path
    path = url.join("synthetic.json")
    with fs.open(path, "w") as f:
        json.dump(summary(model, volumes), f, indent=1, sort_keys=True)
    written["summary"] = path
    return written


def read_tables(tables_url: str) -> dict[str, pd.DataFrame]:
    """Read the truth tables written by ``write_tables``."""
    from chunks.fs import filesystem
    from chunks.urls import parse_url

    url = parse_url(tables_url)
    fs = filesystem(url)
    out = {}
    for name in TABLES:
        path = url.join(f"{name}.parquet")
        if not fs.exists(path):
            raise FileNotFoundError(f"no {name} table at {path}; was the volume generated with connecto synth?")
        with fs.open(path, "rb") as f:
            out[name] = pd.read_parquet(f)
    return out
