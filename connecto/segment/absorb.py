"""Fewer, larger fragments without seams: small fragments join the neighbour across their strongest contact.

The steepest-ascent watershed leaves many tiny fragments (FIB-25: 664 k fragments in
15.6 M voxels, median 6 voxels): noise maxima inside cells and pieces of membrane. Their
number sets the size of the region graph and of everything that holds one integer per
fragment. Here every fragment smaller than ``size`` voxels points to the neighbouring
fragment across its strongest contact (the highest affinity on its boundary; among equal
ones, the first contact in raster order of the whole volume), and pointers are joined.
A second round does the same for the joined sets still smaller than ``size``. This is
zwatershed's size-threshold step (Zlateski & Seung 2015) made local: each decision
depends only on one fragment (or one set) and its contacts, never on an order of merges
across the volume, so a block can take it exactly when it sees the whole fragment and
its neighbours.

Blockwise (:func:`absorb_in_block`), a block reads :data:`CONTEXT_VOXELS` voxels around
its write region and takes only the decisions it can see completely:

- round 1: a fragment whose voxels all lie inside the trusted part of the read region
  (links there are exact, see :mod:`.fragments`) has an exact size and all its contacts;
- round 2: a set is decided only when all its fragments and all their neighbours are
  complete (then no pointer into it is unknown, so its size is exact).

Every applied pointer is therefore one that a whole-volume run would apply as well: a
block never joins what the whole-volume rule keeps apart, so blocks never contradict one
another. A set that no block sees completely (one spread over more than the context) is
left unjoined: larger blocks or more context join more, never differently. The pieces
of one fragment in two blocks are joined by the region graph's ``linked`` edges as
before.

scikit-image and waterz have no blockwise, order-free size merge, hence this module.
"""

from __future__ import annotations

import numpy as np

# voxels of context a block reads for absorption: near a block face, the fragments and round-2
# sets whose extent fits in this many voxels are decided
CONTEXT_VOXELS = 32
# links within this many voxels of a cut face of the read region are not trusted (a link depends
# on the edges within two voxels; one more for the fragments' neighbours)
_UNTRUSTED = 3
ROUNDS = 2


def absorb(labels: np.ndarray, affs: np.ndarray, size: int, *, complete: np.ndarray | None = None,
           origin=(0, 0, 0), volume_shape=None, rounds: int = ROUNDS) -> np.ndarray:
    """``labels`` (uint32 fragments 1..n, 0 background) with small fragments joined; returns uint32 ids 1..m.

    ``affs`` (uint8, ``(3, z, y, x)``, the edge to the -1 neighbour) cover ``labels``.
    ``complete``: bool per fragment id (index 0 unused) saying whether the fragment and
    its contacts are wholly inside the array (default: all are, a whole volume).
    ``origin``/``volume_shape`` place the array in the volume, so that ties between
    equal contacts go the same way in every block.

    >>> labels = np.array([[[1, 1, 2, 3, 3, 3]]], np.uint32)
    >>> affs = np.zeros((3, 1, 1, 6), np.uint8); affs[2] = [0, 255, 90, 200, 255, 255]
    >>> absorb(labels, affs, 2).tolist()
    [[[1, 1, 2, 2, 2, 2]]]
    """
    import fastremap

    n = int(labels.max(initial=0))
    if size <= 0 or n < 2:
        return labels
    volume_shape = tuple(volume_shape) if volume_shape is not None else labels.shape
    if complete is None:
        complete = np.ones(n + 1, bool)
    voxels = np.bincount(labels.ravel(), minlength=n + 1)
    src, dst, value, position = _contacts(labels, affs, origin, volume_shape)
    if src.size == 0:
        return labels
    # strongest contact first, then the first in the volume's raster order
    order = np.lexsort((position, -value.astype(np.int16)))
    src, dst = src[order], dst[order]
    parent = np.arange(n + 1)

    # round 1: each complete small fragment points across its best contact
    first = _first_per(src)
    movers = src[first]
    chosen = dst[first]
    keep = complete[movers] & (voxels[movers] < size)
    _join(parent, movers[keep], chosen[keep])
    for _ in range(rounds - 1):
        root = parent.copy()
        # a set is sure when its fragments and all their neighbours are complete
        sure = np.ones(n + 1, bool)
        np.logical_and.at(sure, root[np.arange(n + 1)], complete)
        np.logical_and.at(sure, root[src], complete[dst])
        set_voxels = np.bincount(root, weights=voxels, minlength=n + 1)
        across = root[src] != root[dst]
        s_src, s_dst = root[src[across]], root[dst[across]]
        first = _first_per(s_src)
        movers, chosen = s_src[first], s_dst[first]
        keep = sure[movers] & (set_voxels[movers] < size)
        _join(parent, movers[keep], chosen[keep])
    joined = parent[labels]
    joined, _ = fastremap.renumber(joined, preserve_zero=True, in_place=True)
    return joined.astype(np.uint32, copy=False)


def absorb_in_block(labels: np.ndarray, affs: np.ndarray, size: int, cut_faces, origin, volume_shape) -> np.ndarray:
    """:func:`absorb` on a block's read region; ``cut_faces``: per axis, (low, high) True where the read
    region ends inside the volume (there the links and fragments are not exact)."""
    import cc3d

    n = int(labels.max(initial=0))
    complete = np.ones(n + 1, bool)
    if n and any(any(pair) for pair in cut_faces):
        stats = cc3d.statistics(labels, no_slice_conversion=True)
        box = np.asarray(stats["bounding_boxes"], np.int64).reshape(-1, 6)  # per axis: first, last
        margin = _UNTRUSTED + 1
        for axis, (low, high) in enumerate(cut_faces):
            if low:
                complete[: len(box)] &= box[:, 2 * axis] >= margin
            if high:
                complete[: len(box)] &= box[:, 2 * axis + 1] < labels.shape[axis] - margin
        complete[0] = False
    return absorb(labels, affs, size, complete=complete, origin=origin, volume_shape=volume_shape, rounds=ROUNDS)


def trust_links(links: np.ndarray, cut_faces) -> np.ndarray:
    """``links`` with every link within :data:`_UNTRUSTED` voxels of a cut face removed (their decisions
    need edges outside the array): components can then only be finer than the true fragments."""
    links = links.copy()
    for axis, (low, high) in enumerate(cut_faces):
        index = [slice(None)] * 4
        if low:
            index[axis + 1] = slice(0, _UNTRUSTED + 1)
            links[tuple(index)] = False
        if high:
            index[axis + 1] = slice(links.shape[axis + 1] - _UNTRUSTED, None)
            links[tuple(index)] = False
    return links


# --- helpers ----------------------------------------------------------------------------

def _contacts(labels, affs, origin, volume_shape):
    """Directed contacts between different fragments: (from, to, affinity, position key)."""
    srcs, dsts, values, positions = [], [], [], []
    for c in range(3):
        here = [slice(None)] * 3
        there = [slice(None)] * 3
        here[c], there[c] = slice(1, None), slice(None, -1)
        a, b = labels[tuple(here)], labels[tuple(there)]
        contact = (a != b) & (a != 0) & (b != 0)
        where = np.nonzero(contact)
        zyx = [w + (1 if axis == c else 0) + origin[axis] for axis, w in enumerate(where)]
        raster = np.ravel_multi_index(zyx, volume_shape).astype(np.int64) * 3 + c
        value = affs[c][tuple(here)][contact]
        a, b = a[contact], b[contact]
        srcs += [a, b]
        dsts += [b, a]
        values += [value, value]
        positions += [raster, raster]
    return (np.concatenate(srcs).astype(np.int64), np.concatenate(dsts).astype(np.int64),
            np.concatenate(values), np.concatenate(positions))


def _first_per(keys: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each key (in the given order)."""
    _, first = np.unique(keys, return_index=True)
    return first



def _join(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Join ``a[i]`` with ``b[i]`` in the flat forest ``parent`` (every node points to its root, the
    smallest id of its set), in place."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if a.size == 0:
        return
    n = parent.size
    graph = coo_matrix((np.ones(a.size + n, np.int8), (np.r_[a, np.arange(n)], np.r_[b, parent])), shape=(n, n))
    _, component = connected_components(graph, directed=True, connection="weak")
    # each component's root: its smallest id
    root = np.full(component.max() + 1, n, np.int64)
    np.minimum.at(root, component, np.arange(n))
    parent[:] = root[component]
