"""Split one segment's graph between source and sink nodes by a minimum cut, each side connected."""

from __future__ import annotations

import contextlib
import gc

import numpy as np

from .errors import SplitError


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic GC while building big edge lists: they are acyclic, and GC passes
    triggered by hundreds of thousands of small lists cost several times the build itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _igraph_source_side(n: int, edges: np.ndarray, capacity: np.ndarray, source: int, sink: int) -> np.ndarray:
    import igraph

    with _no_gc():  # igraph reads numpy arrays item by item; lists are 5-10x faster
        graph = igraph.Graph(n=n, edges=edges.tolist(), directed=False)
        capacities = capacity.tolist()
    # GraphBase.mincut: (value, cut edges, source partition, sink partition), without the Cut wrapper's cost
    _, _, source_side, _ = igraph.GraphBase.mincut(graph, source, sink, capacities)
    side = np.zeros(n, bool)
    side[np.asarray(source_side, dtype=np.int64)] = True
    return side


def _networkx_source_side(n: int, edges: np.ndarray, capacity: np.ndarray, source: int, sink: int) -> np.ndarray:
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for (a, b), c in zip(edges.tolist(), capacity.tolist()):
        if graph.has_edge(a, b):
            graph[a][b]["capacity"] += c
        else:
            graph.add_edge(a, b, capacity=c)
    _, (reachable, _) = nx.minimum_cut(graph, source, sink)
    side = np.zeros(n, bool)
    side[list(reachable)] = True
    return side


BACKENDS = {"igraph": _igraph_source_side, "networkx": _networkx_source_side}


def default_backend() -> str:
    try:
        import igraph  # noqa: F401
    except ImportError:
        return "networkx"
    return "igraph"


def _components(n: int, edges: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def min_cut_sides(n: int, edges: np.ndarray, capacity: np.ndarray, sources: np.ndarray, sinks: np.ndarray,
                  backend: str | None = None, names: np.ndarray | None = None) -> np.ndarray:
    """Boolean array over ``n`` nodes: True on the source side of a minimum cut.

    ``edges`` is (E, 2) node indices, ``capacity`` their cost to cut (affinity), ``sources``
    and ``sinks`` disjoint node indices. Pieces cut off from every terminal join the side
    they share the most capacity with, so each side is connected where the graph was.
    ``names`` (fragment ids of the nodes) make error messages name fragments.

    Raises
    ------
    SplitError
        If the sources (or sinks) fall into several pieces once separated from the other side.
    """
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"min-cut backend {backend!r} is not one of {sorted(BACKENDS)}")
    names = np.arange(n) if names is None else names
    big = float(capacity.sum()) + 1.0
    terminal_edges = np.concatenate([np.stack([np.full(len(sources), n), sources], 1),
                                     np.stack([np.full(len(sinks), n + 1), sinks], 1)]).astype(np.int64)
    all_edges = np.concatenate([edges.reshape(-1, 2).astype(np.int64), terminal_edges])
    all_capacity = np.concatenate([capacity, np.full(len(terminal_edges), big)])
    side = BACKENDS[backend](n + 2, all_edges, all_capacity, n, n + 1)[:n]
    return _connect_sides(n, edges, capacity, side, sources, sinks, names)


def _connect_sides(n, edges, capacity, side, sources, sinks, names) -> np.ndarray:
    same = side[edges[:, 0]] == side[edges[:, 1]]
    labels = _components(n, edges[same])  # pieces of each side
    cores = []
    for terminals, what in ((sources, "sources"), (sinks, "sinks")):
        pieces = np.unique(labels[terminals])
        if len(pieces) > 1:
            groups = [names[terminals[labels[terminals] == p]].tolist() for p in pieces]
            raise SplitError(f"cannot split so that each side stays connected: the {what} fall into {len(pieces)} "
                             f"pieces once cut from the other side ({what} fragments by piece: {groups}); "
                             f"choose {what} that lie together on one side, or split in two steps")
        cores.append(pieces[0])
    core = np.where(labels == cores[0], 0, np.where(labels == cores[1], 1, -1))
    if np.all(core >= 0):
        return core == 0
    # leftover pieces (cut off through zero-affinity edges): attach each to the side it touches most
    loose = core < 0
    leftover_labels = _components(n, edges[loose[edges[:, 0]] & loose[edges[:, 1]]])
    touch = np.zeros((n, 2))
    for a, b in ((0, 1), (1, 0)):
        crossing = loose[edges[:, a]] & ~loose[edges[:, b]]
        np.add.at(touch, (leftover_labels[edges[crossing, a]], core[edges[crossing, b]]), capacity[crossing] + 1e-12)
    piece_side = np.where(touch[:, 0] > touch[:, 1], 0, 1)  # ties and floating pieces go to the sink side
    core[loose] = piece_side[leftover_labels[loose]]
    return core == 0
