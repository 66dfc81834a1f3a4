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

import numba
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
    volume_shape = np.asarray(volume_shape if volume_shape is not None else labels.shape, np.int64)
    origin = np.asarray(origin, np.int64)
    if complete is None:
        complete = np.ones(n + 1, bool)
    labels = np.ascontiguousarray(labels)
    affs = np.ascontiguousarray(affs)
    voxels = np.bincount(labels.ravel(), minlength=n + 1)
    parent = np.arange(n + 1, dtype=np.int64)
    for round_ in range(rounds):
        # round 1: a fragment is sure when it is complete; later rounds: a set when its fragments and
        # all their neighbours are (then no pointer into it is unknown, so its size is exact)
        sure = np.ones(n + 1, bool)
        np.logical_and.at(sure, parent, complete)
        set_voxels = np.bincount(parent, weights=voxels, minlength=n + 1)
        eligible = sure & (set_voxels < size)
        target = _best_neighbours(labels, affs, origin, volume_shape, parent, eligible, complete, round_ > 0)
        movers = np.flatnonzero(target >= 0)
        if movers.size == 0:
            break
        _join(parent, movers, target[movers])
    joined = parent.astype(np.uint32)[labels]  # ids fit: parent holds fragment ids
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

@numba.njit(cache=True)
def _best_neighbours(labels, affs, origin, volume_shape, root, eligible, complete, need_complete_neighbours):
    """For each eligible root: the root across its strongest contact (ties: the first contact in the
    volume's raster order), -1 for the others; with ``need_complete_neighbours``, roots with an
    incomplete neighbour fragment are not eligible. One pass over the voxels."""
    n = root.size
    best_value = np.full(n, -1, np.int64)
    best_position = np.full(n, np.iinfo(np.int64).max, np.int64)
    target = np.full(n, -1, np.int64)
    ok = eligible.copy()
    zs, ys, xs = labels.shape
    for z in range(zs):
        for y in range(ys):
            for x in range(xs):
                a = labels[z, y, x]
                if a == 0:
                    continue
                ra = root[a]
                for c in range(3):
                    if c == 0:
                        if z == 0:
                            continue
                        b = labels[z - 1, y, x]
                    elif c == 1:
                        if y == 0:
                            continue
                        b = labels[z, y - 1, x]
                    else:
                        if x == 0:
                            continue
                        b = labels[z, y, x - 1]
                    if b == 0:
                        continue
                    rb = root[b]
                    if ra == rb:
                        continue
                    if need_complete_neighbours:
                        if not complete[b]:
                            ok[ra] = False
                        if not complete[a]:
                            ok[rb] = False
                    value = np.int64(affs[c, z, y, x])
                    position = (((z + origin[0]) * volume_shape[1] + (y + origin[1])) * volume_shape[2]
                                + (x + origin[2])) * 3 + c
                    if eligible[ra] and (value > best_value[ra] or
                                         (value == best_value[ra] and position < best_position[ra])):
                        best_value[ra], best_position[ra], target[ra] = value, position, rb
                    if eligible[rb] and (value > best_value[rb] or
                                         (value == best_value[rb] and position < best_position[rb])):
                        best_value[rb], best_position[rb], target[rb] = value, position, ra
    for r in range(n):
        if not ok[r]:
            target[r] = -1
    return target


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
