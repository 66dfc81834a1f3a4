"""The connectome: neurons and synapses as tables, queries, exports, skeletons, meshes.

``from connecto.connectome import Connectome``. Modules, one job each:

- :mod:`.tables`: table schemas, fragment -> segment mapping, per-neuron counts
- :mod:`.connectome`: the ``Connectome`` class (constructors, queries, exports)
- :mod:`.graph`, :mod:`.paths`, :mod:`.motifs`, :mod:`.spatial`: the queries
- :mod:`.store`: Parquet on disk; the overwrite rule of every export
- :mod:`.exports` (networkx, GraphML), :mod:`.neuprint`, :mod:`.navis_io` (navis, SWC)
- :mod:`.published`: real connectomes that installed packages ship (C. elegans, hemibrain)
- :mod:`.skeletons` (kimimaro, blockwise), :mod:`.meshes` (zmesh, precomputed),
  :mod:`.neuroglancer` (a viewer state), :mod:`.model` (torch; imported on use)

Nothing heavy is imported here: navis, kimimaro, zmesh and torch load where used.
"""

from .connectome import Connectome
from .tables import map_fragments, map_synapses

__all__ = ["Connectome", "map_fragments", "map_synapses"]
