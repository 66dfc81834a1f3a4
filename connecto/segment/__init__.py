"""Segmentation: affinities -> fragments -> region graph -> merge history -> segments.

One module per job; each stage is a pure function over arrays or tables, with its
blockwise wrapper in :mod:`connecto.segment.blockwise`:

- :mod:`.affinities`: affinity conventions, input checks, affinities from labels (tests)
- :mod:`.fragments`: seam-free watershed on affinities (and scikit-image / mutex baselines)
- :mod:`.region_graph`: contacts and affinity statistics between touching fragments
- :mod:`.agglomerate`: mean-affinity hierarchy (waterz semantics), mutex watershed on the graph
- :mod:`.greedy`: the compiled priority queue behind the mean hierarchy
- :mod:`.hierarchical`: agglomeration per block with context, then a threshold cut over streamed files
- :mod:`.unionfind`: the compiled union-find kernels of the hierarchical mode
- :mod:`.premerge`: in-block agglomeration of the watershed fragments (fewer, larger fragments)
- :mod:`.relabel`: a fragment -> segment mapping applied to voxels (fastremap)
- :mod:`.evaluate`: VOI split/merge, adapted Rand error, worst objects
- :mod:`.params`: ``SegmentParams``, the parameters and their one default each
- :mod:`.blockwise`: the stages through the engine and the ``segment`` pipeline (orchestration)
- :mod:`.graph_store`: the run directory's Parquet tables (region graph, merge history, mappings)
- :mod:`.sweep`: VOI / ARAND of many thresholds from one contingency table

Nothing heavy is imported here; import the submodules you use.
"""
