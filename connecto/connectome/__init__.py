"""The connectome: neurons and synapses as tables, queries, exports, skeletons, meshes.

``from connecto.connectome import Connectome``. Modules, one job each:

- :mod:`.tables`: table schemas, fragment -> segment mapping, per-neuron counts
- :mod:`.connectome`: the ``Connectome`` class (constructors, queries, exports)
- :mod:`.graph`, :mod:`.paths`, :mod:`.motifs`, :mod:`.spatial`: the queries
- :mod:`.store`: Parquet on disk; the overwrite rule of every export
- :mod:`.run`: a connectome built from a run directory, at a proofreading version
- :mod:`.exports` (networkx, GraphML), :mod:`.neuprint`, :mod:`.navis_io` (navis, SWC)
- :mod:`.published`: real connectomes that installed packages ship (C. elegans, hemibrain)
- :mod:`.skeletons` (kimimaro, blockwise), :mod:`.meshes` (zmesh, precomputed),
  :mod:`.neuroglancer` (a viewer state), :mod:`.model` (torch; imported on use)

Nothing heavy is imported here: navis, kimimaro, zmesh and torch load where used.
"""

__all__ = ["Connectome", "map_fragments", "map_synapses"]


def __getattr__(name):
    # lazy, so that the CLI (which imports connecto.connectome.cli) starts without pandas
    if name == "Connectome":
        from .connectome import Connectome

        return Connectome
    if name in ("map_fragments", "map_synapses"):
        from . import tables

        return getattr(tables, name)
    raise AttributeError(f"module 'connecto.connectome' has no attribute {name!r}")
