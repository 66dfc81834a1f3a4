"""``Connectome``: a neurons table and a synapse table, with queries and exports.

Build one from plain tables (any segmentation and synapse detector can produce them),
from a published weighted edge list, or from navis neurons; save and open it as Parquet.
Queries run on a scipy.sparse graph that is built once per synapse kind and cached.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd

from chunks import Coordinate, Roi

from . import store
from .graph import Graph
from .motifs import motif_counts
from .paths import shortest_path, simple_paths
from .spatial import neurons_in_roi, synapses_in_roi
from .tables import map_synapses, normalize_neurons, normalize_skeletons, normalize_synapses

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("parquet", "neuprint", "graphml", "swc")


class Connectome:
    """Neurons and synapses of a reconstruction (or of a published connectome).

    Parameters
    ----------
    neurons : table with at least ``segment_id``; see ``tables.NEURON_COLUMNS``.
    synapses : table with at least ``pre_segment``, ``post_segment``; see
        ``tables.SYNAPSE_COLUMNS``.
    voxel_size_nm : (z, y, x) voxel size, needed for Roi queries; None when unknown.
    skeletons : optional skeleton node table (``tables.SKELETON_COLUMNS``).

    Examples
    --------
    >>> import pandas as pd
    >>> syn = pd.DataFrame({"pre_segment": [1, 1, 2], "post_segment": [2, 2, 3]})
    >>> c = Connectome.from_tables(None, syn)
    >>> c.upstream(2).to_dict("records")
    [{'segment_id': 1, 'weight': 2}]
    """

    def __init__(self, neurons: pd.DataFrame | None, synapses: pd.DataFrame, *, voxel_size_nm=None,
                 skeletons: pd.DataFrame | None = None, meta: dict | None = None):
        self.voxel_size_nm = Coordinate(voxel_size_nm) if voxel_size_nm is not None else None
        self.synapses = normalize_synapses(synapses)
        self.neurons = normalize_neurons(neurons, self.synapses, self.voxel_size_nm)
        self.skeletons = normalize_skeletons(skeletons) if skeletons is not None else None
        self.meta = dict(meta or {})
        self._graphs: dict[tuple, Graph] = {}

    # --- constructors -----------------------------------------------------------------

    @classmethod
    def from_tables(cls, neurons: pd.DataFrame | None, synapses: pd.DataFrame, *, voxel_size_nm=None,
                    mapping: tuple | None = None, skeletons: pd.DataFrame | None = None) -> Connectome:
        """Build from a neurons table and a synapse table.

        ``mapping=(fragment_ids, segment_ids)`` maps a synapse table stored against
        fragments (``pre_fragment``/``post_fragment``) to segments first; fragments absent
        from the mapping are their own segments.
        """
        if mapping is not None:
            fragment_ids, segment_ids = mapping
            synapses = map_synapses(synapses, fragment_ids, segment_ids)
        return cls(neurons, synapses, voxel_size_nm=voxel_size_nm, skeletons=skeletons)

    @classmethod
    def from_edge_list(cls, edges: pd.DataFrame, *, pre: str = "pre", post: str = "post", weight: str = "weight",
                       kind: str | None = "kind", default_kind: str = "chemical",
                       neurons: pd.DataFrame | None = None) -> Connectome:
        """Build from a weighted edge list (a connectome published as counts, e.g. C. elegans).

        ``pre``/``post`` hold segment ids or names. With names, ids are taken from
        ``neurons`` (columns ``name`` and ``segment_id``) or assigned 1..n in the order of
        ``neurons["name"]`` (default: sorted names); the names land in the ``name`` column.
        Each edge becomes one synapse row with ``weight`` = its count and no coordinates.
        """
        for column in (pre, post, weight):
            if column not in edges:
                raise ValueError(f"edge list lacks the column {column!r}; it has {list(edges.columns)}")
        table = edges[edges[weight] != 0]
        if (table[weight] < 0).any():
            raise ValueError(f"edge column {weight!r} holds negative counts; weights are synapse counts")
        kinds = table[kind].astype(str) if kind is not None and kind in table else default_kind
        pre_ids, post_ids = table[pre].to_numpy(), table[post].to_numpy()
        if pre_ids.dtype.kind not in "iu" or post_ids.dtype.kind not in "iu":
            neurons, lookup = _name_ids(neurons, np.union1d(pre_ids.astype(str), post_ids.astype(str)))
            pre_ids, post_ids = lookup(pre_ids), lookup(post_ids)
        synapses = pd.DataFrame({"pre_segment": pre_ids.astype(np.uint64), "post_segment": post_ids.astype(np.uint64),
                                 "weight": table[weight].to_numpy().astype(np.int64), "kind": kinds})
        return cls(neurons, synapses)

    @classmethod
    def from_navis(cls, neurons) -> Connectome:
        """Build from navis TreeNeurons with connector tables (pre/post); a connector's
        partner is unknown (segment 0) unless the table has a ``partner_id`` column."""
        from .navis_io import tables_from_navis

        neuron_table, synapses, skeletons, voxel_size_nm = tables_from_navis(neurons)
        return cls(neuron_table, synapses, voxel_size_nm=voxel_size_nm, skeletons=skeletons)

    @classmethod
    def open(cls, path: str | os.PathLike, version=None, *, database=None) -> Connectome:
        """Open a saved connectome, or build one from a reconstruction run directory.

        ``path`` is one of:

        - a connectome saved with :meth:`save` (or a directory holding ``connectome/``):
          ``version`` picks a saved ``versions/<version>``;
        - a run directory (``run.json``, ``fragments``, ``agglomeration/``; see
          :mod:`connecto.connectome.run`): the neurons are the segments of the fragment
          Volume under a fragment -> segment mapping, the synapses the run's
          ``synapses.parquet`` mapped through it. ``version=None``: the run's
          agglomeration at its threshold (the segments of ``RUN/segmentation``); an
          integer ``v``: the proofreading edit log at version ``v`` (``"head"``: its
          latest); ``database=``: the log when it is not ``RUN/proofreading.sqlite``.
          A run without ``synapses.parquet`` gives neurons and an empty synapse table.
          ``RUN/skeletons.parquet`` (``connecto skeletonize RUN/segmentation RUN``) is
          carried for the segments the version has not changed; ``meta["skeletons"]`` says
          how many.
          Synapses whose pre and post fragments end up in one segment (autapses, e.g.
          after a merge) are kept, as self-connections; ``meta["n_autapses"]`` counts them.

        A version that does not exist raises ValueError naming the versions that do.
        """
        from . import run

        if run.is_run_directory(path):
            neurons, synapses, voxel_size_nm, meta, skeletons = run.tables_from_run(path, version, database=database)
            return cls(neurons, synapses, voxel_size_nm=voxel_size_nm, skeletons=skeletons, meta=meta)
        if database is not None:
            raise ValueError(f"--database names a proofreading edit log, which only a run directory has; {path} is "
                             "not one (it lacks run.json, fragments or agglomeration/)")
        directory = store.connectome_dir(path, version)
        tables, meta = store.read_tables(directory)
        return cls(tables["neurons"], tables["synapses"], voxel_size_nm=meta.get("voxel_size_nm"),
                   skeletons=tables["skeletons"], meta=meta)

    def save(self, path: str | os.PathLike, *, version=None, overwrite: bool = False) -> str:
        """Write Parquet tables and connectome.json to ``path`` (or ``path/versions/<version>``)."""
        directory = Path(path) if version is None else Path(path) / "versions" / str(version)
        meta = {"voxel_size_nm": list(self.voxel_size_nm) if self.voxel_size_nm else None,
                "n_neurons": len(self.neurons), "n_synapses": len(self.synapses), "kinds": self.kinds,
                "version": version, **{k: v for k, v in self.meta.items() if k == "source"}}
        store.write_tables(directory, {"neurons": self.neurons, "synapses": self.synapses,
                                       "edges": self.edges(by_kind=True), "skeletons": self.skeletons},
                           meta, overwrite)
        return str(directory)

    def with_skeletons(self, skeletons: pd.DataFrame) -> Connectome:
        """A copy of this connectome carrying ``skeletons``."""
        return Connectome(self.neurons, self.synapses, voxel_size_nm=self.voxel_size_nm, skeletons=skeletons,
                          meta=self.meta)

    # --- basics -------------------------------------------------------------------------

    @property
    def neuron_ids(self) -> np.ndarray:
        """Segment ids in the neurons table's order (the order of :meth:`adjacency`)."""
        return self.neurons["segment_id"].to_numpy()

    @property
    def kinds(self) -> list[str]:
        return sorted(str(k) for k in self.synapses["kind"].unique())

    def __len__(self) -> int:
        return len(self.neurons)

    def __contains__(self, neuron) -> bool:
        try:
            self.segment_ids([neuron])
        except KeyError:
            return False
        return True

    def __repr__(self) -> str:
        per_kind = self.synapses.groupby("kind", observed=True)["weight"].sum()
        kinds = ", ".join(f"{k} {int(v)}" for k, v in per_kind.items())
        size = f", voxel size {tuple(self.voxel_size_nm)} nm" if self.voxel_size_nm else ""
        return f"Connectome({len(self.neurons)} neurons, {int(per_kind.sum())} synapses ({kinds}){size})"

    def graph(self, kind=None) -> Graph:
        """The cached sparse graph over all neurons for ``kind`` (None: all kinds summed;
        a string or a list of kinds)."""
        key = self._kind_key(kind)
        if key not in self._graphs:
            syn = self.synapses
            if key != ("*",):
                syn = syn[syn["kind"].isin(key)]
            self._graphs[key] = Graph.build(self.neuron_ids, syn["pre_segment"].to_numpy(),
                                            syn["post_segment"].to_numpy(), syn["weight"].to_numpy())
        return self._graphs[key]

    def _kind_key(self, kind) -> tuple:
        if kind is None:
            return ("*",)
        key = (kind,) if isinstance(kind, str) else tuple(kind)
        unknown = [k for k in key if k not in self.kinds]
        if unknown:
            raise ValueError(f"synapse kind {unknown[0]!r} is not in this connectome; its kinds are {self.kinds}")
        return tuple(sorted(key))

    def segment_ids(self, neurons: Iterable) -> np.ndarray:
        """Segment ids of ``neurons`` (segment ids or names); KeyError naming the first unknown one."""
        neurons = [neurons] if isinstance(neurons, (str, Integral, np.integer)) else list(neurons)
        out = np.zeros(len(neurons), np.uint64)
        for i, neuron in enumerate(neurons):
            if isinstance(neuron, (Integral, np.integer)):
                if not 0 <= int(neuron) < 2**64:
                    raise KeyError(f"neuron {neuron} is not in this connectome (segment ids are uint64)")
                out[i] = int(neuron)
                continue
            if "name" not in self.neurons:
                raise KeyError(f"neuron {neuron!r} is not a segment id and this connectome has no names")
            hit = self._names().get(str(neuron))
            if hit is None:
                raise KeyError(f"neuron {neuron!r} is not in this connectome ({len(self.neurons)} neurons)")
            if len(hit) > 1:
                raise KeyError(f"name {neuron!r} is shared by segments {hit}; use a segment id")
            out[i] = hit[0]
        self.graph().index(out)  # raises KeyError for unknown ids
        return out

    def _names(self) -> dict[str, list[int]]:
        if "_name_index" not in self.__dict__:
            index: dict[str, list[int]] = {}
            for name, segment_id in zip(self.neurons["name"].astype(str), self.neuron_ids.tolist()):
                index.setdefault(name, []).append(segment_id)
            self._name_index = index
        return self._name_index

    def neuron(self, neuron) -> pd.Series:
        """The neurons-table row of one neuron (id or name)."""
        index = self.graph().index(self.segment_ids([neuron]))[0]
        return self.neurons.iloc[int(index)]

    def edges(self, kind=None, *, min_weight: int = 1, by_kind: bool = False) -> pd.DataFrame:
        """The weighted directed edge list (pre, post, weight), or (pre, post, kind, weight)
        with ``by_kind=True``, between neurons (segment 0 left out)."""
        if by_kind:
            parts = [self.edges(k, min_weight=min_weight).assign(kind=k) for k in self.kinds]
            table = pd.concat(parts, ignore_index=True) if parts else self.edges(min_weight=min_weight)
            if not parts:
                table["kind"] = pd.Series([], dtype="category")
            table["kind"] = table["kind"].astype("category")
            return table[["pre", "post", "kind", "weight"]]
        coo = self.graph(kind).thresholded(min_weight).tocoo()
        ids = self.neuron_ids
        table = pd.DataFrame({"pre": ids[coo.row], "post": ids[coo.col], "weight": coo.data.astype(np.int64)})
        return table.sort_values(["pre", "post"], ignore_index=True)

    # --- queries --------------------------------------------------------------------------

    def upstream(self, neuron, min_weight: int = 1, kind=None) -> pd.DataFrame:
        """Presynaptic partners of ``neuron`` (id or name) with at least ``min_weight``
        synapses: columns segment_id, weight (and name when known), strongest first."""
        return self._partners(neuron, "upstream", min_weight, kind)

    def downstream(self, neuron, min_weight: int = 1, kind=None) -> pd.DataFrame:
        """Postsynaptic partners of ``neuron``; see :meth:`upstream`."""
        return self._partners(neuron, "downstream", min_weight, kind)

    def _partners(self, neuron, direction, min_weight, kind) -> pd.DataFrame:
        graph = self.graph(kind)
        table = graph.partners(self.segment_ids([neuron])[0], direction, min_weight)
        if "name" in self.neurons:
            table["name"] = self.neurons["name"].to_numpy()[graph.index(table["segment_id"].to_numpy())]
        return table

    def adjacency(self, neurons=None, min_weight: int = 1, kind=None):
        """scipy.sparse CSR adjacency (rows pre, columns post, values synapse counts) of
        ``neurons`` in the order given (default: all, in :attr:`neuron_ids` order)."""
        ids = None if neurons is None else self.segment_ids(list(neurons))
        return self.graph(kind).adjacency(ids, min_weight)

    def shortest_path(self, source, target, min_weight: int = 1, kind=None, weighted: bool = False) -> list[int]:
        """Segment ids on a shortest path from ``source`` to ``target`` over connections
        with >= ``min_weight`` synapses (fewest steps; ``weighted=True``: least sum of
        1/weight); [] when there is none."""
        graph = self.graph(kind)
        s, t = graph.index(self.segment_ids([source, target]))
        path = shortest_path(graph.thresholded(min_weight), int(s), int(t), weighted=weighted)
        return [int(i) for i in graph.ids[path]] if path else []

    def paths(self, source, target, max_length: int = 3, min_weight: int = 1, kind=None) -> list[list[int]]:
        """All simple paths from ``source`` to ``target`` with at most ``max_length``
        connections, as lists of segment ids, shortest first."""
        graph = self.graph(kind)
        s, t = graph.index(self.segment_ids([source, target]))
        found = simple_paths(graph.thresholded(min_weight), int(s), int(t), max_length)
        out = [[int(i) for i in graph.ids[p]] for p in found]
        return sorted(out, key=lambda p: (len(p), p))

    def neurons_by_size(self, min_voxels: int = 0, max_voxels: int | None = None) -> pd.DataFrame:
        """Neurons with ``min_voxels`` <= size_voxels (<= ``max_voxels``), largest first."""
        size = self.neurons["size_voxels"]
        keep = size >= min_voxels
        if max_voxels is not None:
            keep &= size <= max_voxels
        return self.neurons.loc[keep].sort_values(["size_voxels", "segment_id"], ascending=[False, True])

    def neurons_in_roi(self, roi: Roi, mode: str = "centroid") -> pd.DataFrame:
        """Neurons whose centroid is in ``roi`` (voxels, zyx), or whose bbox overlaps it
        (``mode="bbox"``)."""
        return neurons_in_roi(self.neurons, roi, self.voxel_size_nm, mode)

    def synapses_in_roi(self, roi: Roi, point: str = "location") -> pd.DataFrame:
        """Synapses whose ``point`` is in ``roi``: "location" (cleft, else post, else
        pre), "pre", "post" or "cleft"."""
        return synapses_in_roi(self.synapses, roi, self.voxel_size_nm, point)

    def motifs(self, min_weight: int = 1, kind=None) -> dict[str, int]:
        """Reciprocal pairs and feed-forward triads; see :func:`motifs.motif_counts`."""
        return motif_counts(self.graph(kind).thresholded(min_weight))

    # --- exports ----------------------------------------------------------------------------

    def to_networkx(self, kind=None, min_weight: int = 1):
        """networkx DiGraph: nodes = segment ids with the neurons-table columns as
        attributes; edges with ``weight`` and ``weight_<kind>`` per kind."""
        from .exports import to_networkx

        return to_networkx(self, kind=kind, min_weight=min_weight)

    def to_graphml(self, path, *, kind=None, min_weight: int = 1, overwrite: bool = False) -> str:
        from .exports import write_graphml

        return write_graphml(self, path, kind=kind, min_weight=min_weight, overwrite=overwrite)

    def to_neuprint(self, directory, *, dataset: str = "connecto", overwrite: bool = False) -> str:
        """neuPrint-style CSVs for neo4j-admin import; see :mod:`connecto.connectome.neuprint`."""
        from .neuprint import write_neuprint

        return write_neuprint(self, directory, dataset=dataset, overwrite=overwrite)

    def to_navis(self, neurons=None):
        """navis NeuronList of TreeNeurons (nm) with connectors (type pre/post)."""
        from .navis_io import to_navis

        return to_navis(self, neurons)

    def to_swc(self, directory, neurons=None, *, overwrite: bool = False) -> str:
        """One SWC file per skeleton (``<segment_id>.swc``, nm, x y z)."""
        from .navis_io import write_swc

        return write_swc(self, directory, neurons, overwrite=overwrite)

    def export(self, path, format: str = "parquet", *, overwrite: bool = False, **options) -> str:
        """Export to ``path`` in ``format``: one of parquet, neuprint, graphml, swc."""
        writers = {"parquet": self.save, "neuprint": self.to_neuprint, "graphml": self.to_graphml,
                   "swc": self.to_swc}
        if format not in writers:
            raise ValueError(f"export format {format!r} is not one of {', '.join(EXPORT_FORMATS)}")
        if format == "parquet" and not overwrite and Path(path).exists() and (
                not Path(path).is_dir() or any(Path(path).iterdir())):
            raise FileExistsError(f"export target {path} exists; pass overwrite=True (CLI: --overwrite) to replace "
                                  "it or choose another path")
        return writers[format](path, overwrite=overwrite, **options)

    def to_torch(self, **options):
        """A connectome-constrained recurrent rate network; see :class:`model.ConnectomeRNN`."""
        from .model import ConnectomeRNN

        return ConnectomeRNN.from_connectome(self, **options)


def _name_ids(neurons: pd.DataFrame | None, names: np.ndarray):
    """(neurons table with segment ids, function names -> ids) for an edge list of names."""
    if neurons is None:
        neurons = pd.DataFrame({"name": names})
    if "name" not in neurons:
        raise ValueError("the edge list names neurons by strings, so neurons= needs a 'name' column")
    neurons = neurons.reset_index(drop=True).copy()
    if "segment_id" not in neurons:
        neurons.insert(0, "segment_id", np.arange(1, len(neurons) + 1, dtype=np.uint64))
    lookup = pd.Series(neurons["segment_id"].to_numpy(np.uint64), index=neurons["name"].astype(str))
    if lookup.index.duplicated().any():
        raise ValueError(f"neuron name {lookup.index[lookup.index.duplicated()][0]!r} appears twice in neurons=")

    def ids(values: np.ndarray) -> np.ndarray:
        values = values.astype(str)
        found = lookup.reindex(values)
        if found.isna().any():
            raise KeyError(f"neuron {values[found.isna().to_numpy()][0]!r} of the edge list is not in neurons=")
        return found.to_numpy().astype(np.uint64)

    return neurons, ids
