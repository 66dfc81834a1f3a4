"""Adjacency rows that merge rounds patch in place (see :mod:`connecto.segment.mean_rounds`).

:class:`Rows` keeps both directions of every edge of a region graph, one row of entries
``(other, total, area, score)`` per node, in one pool; a round patches the rows it
changes and moves only the entries that change. :class:`FirstEntries` keeps the first
entries of long rows, by score and then by the neighbour's key, so that a long row's best
entry need not be searched for after every patch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .affinities import AFFINITY_MAX

NO_KEY = np.iinfo(np.int64).max


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for each row."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def segment_min(values: np.ndarray, lengths: np.ndarray, empty) -> np.ndarray:
    """Minimum of each consecutive run of ``lengths`` values (``empty`` for an empty run)."""
    out = np.full(lengths.size, empty, dtype=values.dtype)
    nonempty = lengths > 0
    if values.size:
        out[nonempty] = np.minimum.reduceat(values, (np.cumsum(lengths) - lengths)[nonempty])
    return out


def scores(total: np.ndarray, area: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 - mean affinity of contacts with affinity sum ``total`` (uint8 units) over ``area``."""
    denominator = area * AFFINITY_MAX
    return np.divide(denominator - total, denominator, out=out)


def before(score_a, key_a, score_b, key_b) -> np.ndarray:
    """Whether (score, key) ``a`` comes before ``b``."""
    return (score_a < score_b) | ((score_a == score_b) & (key_a < key_b))


def best_of_runs(score: np.ndarray, other: np.ndarray, lengths: np.ndarray,
                 key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best score and best neighbour (lowest score, ties to the smallest key) per run of entries; inf, -1 if none."""
    position = np.repeat(np.arange(lengths.size), lengths)
    best_score = segment_min(score, lengths, np.inf)
    tie_key = np.where(score == best_score[position], key[other], NO_KEY)
    chosen = (tie_key == segment_min(tie_key, lengths, NO_KEY)[position]) & (tie_key != NO_KEY)
    best = np.full(lengths.size, -1, dtype=np.int64)
    best[position[chosen]] = other[chosen]
    return best_score, best


@dataclass
class Rows:
    """Both directions of every edge, one row of entries per node in a pool.

    Rows are patched in place; a row that grows beyond its slot moves to the end of the
    pool with room to grow further; the pool is compacted when it is full.
    """

    start: np.ndarray
    length: np.ndarray
    capacity: np.ndarray
    other: np.ndarray
    total: np.ndarray
    area: np.ndarray
    score: np.ndarray
    used: int
    entries: int

    @classmethod
    def build(cls, n: int, u, v, total, area) -> Rows:
        """Rows of the edges ``(u, v)`` over nodes ``0..n-1`` (no parallel edges, no loops)."""
        node = np.r_[u, v]
        order = np.argsort(node, kind="stable")
        length = np.bincount(node, minlength=n).astype(np.int64)
        del node
        size = order.size + order.size // 4 + 16  # room for rows that grow
        columns = [np.empty(size, dtype=np.int64) for _ in range(3)] + [np.empty(size)]
        for column, (a, b) in zip(columns, ((v, u), (total, total), (area, area))):
            np.take(np.r_[a, b], order, out=column[:order.size])
        scores(columns[1][:order.size], columns[2][:order.size], out=columns[3][:order.size])
        return cls(np.cumsum(length) - length, length, length.copy(), *columns, order.size, order.size)

    def columns(self) -> tuple[np.ndarray, ...]:
        return self.other, self.total, self.area, self.score

    def gather(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The entries of ``nodes``' rows: (position in ``nodes`` per entry, pool index, row lengths)."""
        lengths = self.length[nodes]
        return np.repeat(np.arange(nodes.size), lengths), ranges(self.start[nodes], lengths), lengths

    def clear(self, nodes: np.ndarray) -> None:
        self.entries -= int(self.length[nodes].sum())
        self.length[nodes] = 0
        self.capacity[nodes] = 0

    def patch(self, nodes: np.ndarray, hole_row: np.ndarray, holes: np.ndarray, add_row: np.ndarray,
              added: tuple[np.ndarray, ...]) -> None:
        """Remove the entries at pool indices ``holes`` and add the entries ``added`` (one array per column).

        ``nodes`` is sorted; ``hole_row`` and ``add_row`` (both sorted) say which of its rows
        each hole and each added entry belong to. Added entries and entries from the end of
        a row fill its holes: only entries that change, and as many others, are written.
        """
        offset = holes - self.start[nodes][hole_row]
        old = self.length[nodes]
        new = old - np.bincount(hole_row, minlength=nodes.size) + np.bincount(add_row, minlength=nodes.size)
        self._make_room(nodes, new)
        start = self.start[nodes]
        grow, shrink = np.maximum(new - old, 0), np.maximum(old - new, 0)
        tail_row = np.repeat(np.arange(nodes.size), shrink)
        tail = start[tail_row] + ranges(new, shrink)
        hole = np.zeros(self.other.size, bool)
        hole[start[hole_row] + offset] = True
        tail_row, tail = tail_row[~hole[tail]], tail[~hole[tail]]
        below = offset < new[hole_row]
        dest_row = np.r_[hole_row[below], np.repeat(np.arange(nodes.size), grow)]
        dest = np.r_[start[hole_row[below]] + offset[below], ranges(start + old, grow)]
        dest = dest[np.argsort(dest_row, kind="stable")]
        order = np.argsort(np.r_[add_row, tail_row], kind="stable")
        for column, add in zip(self.columns(), added):
            column[dest] = np.r_[add, column[tail]][order]
        self.length[nodes] = new
        self.entries += int(new.sum() - old.sum())

    def _make_room(self, nodes: np.ndarray, lengths: np.ndarray) -> None:
        """Move the rows of ``nodes`` that will not fit ``lengths`` to the end of the pool, with room to grow."""
        room = lengths + lengths // 2
        if self.used + int(room[lengths > self.capacity[nodes]].sum()) > self.other.size:
            self._compact(int(room.sum()))
        moving = lengths > self.capacity[nodes]
        nodes, room = nodes[moving], room[moving]
        _, index, kept = self.gather(nodes)
        self.start[nodes] = self.used + np.cumsum(room) - room
        self.capacity[nodes] = room
        self.used += int(room.sum())
        where = ranges(self.start[nodes], kept)
        for column in self.columns():
            column[where] = column[index]

    def _compact(self, extra: int) -> None:
        nodes = np.flatnonzero(self.length)
        _, index, lengths = self.gather(nodes)
        size = 2 * (index.size + extra)
        for name in ("other", "total", "area", "score"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[:index.size] = old[index]
            setattr(self, name, new)
        self.start[nodes] = np.cumsum(lengths) - lengths
        self.capacity[:] = self.length
        self.used = int(index.size)


class FirstEntries:
    """The first entries (by score, then key of the neighbour) of long rows, up to ``kept`` per row.

    Each row's ``limit`` is the (score, key) of its first entry not kept: every entry before
    it is kept. A patch removes the touched entries and keeps the added ones before the
    limit, so the kept entries stay right until a row has none left (then it is refilled).
    A fill keeps half of ``kept`` and leaves room for added entries; a row that runs out
    of room keeps its first half again.
    """

    def __init__(self, n: int, kept: int):
        if kept < 2:
            raise ValueError(f"kept must be at least 2, got {kept}")
        self.kept = kept
        self.slot = np.full(n, -1, dtype=np.int64)
        self.other = np.full((0, kept), -1, dtype=np.int64)  # -1: empty
        self.score = np.full((0, kept), np.inf)
        self.limit_score = np.empty(0)
        self.limit_key = np.empty(0, dtype=np.int64)

    def fill(self, rows: Rows, nodes: np.ndarray, key: np.ndarray) -> None:
        """(Re)compute the kept entries of ``nodes``' rows (a few long rows: one at a time)."""
        new = nodes[self.slot[nodes] < 0]
        self.slot[new] = self.limit_score.size + np.arange(new.size)
        self.other = np.concatenate([self.other, np.full((new.size, self.kept), -1, dtype=np.int64)])
        self.score = np.concatenate([self.score, np.full((new.size, self.kept), np.inf)])
        self.limit_score = np.r_[self.limit_score, np.full(new.size, np.inf)]
        self.limit_key = np.r_[self.limit_key, np.full(new.size, NO_KEY)]
        for node in nodes:
            _, index, _ = rows.gather(np.array([node]))
            self._keep_first(self.slot[node], rows.other[index], rows.score[index], key)

    def _keep_first(self, slot: int, other: np.ndarray, score: np.ndarray, key: np.ndarray) -> None:
        """Keep the first half of the entries ``other``, ``score`` (all entries before the row's limit)."""
        half = self.kept // 2
        if score.size > half:  # the entries up to the (half+1)-th score, ties included
            first = score <= np.partition(score, half)[half]
            other, score = other[first], score[first]
        order = np.lexsort((key[other], score))
        self.other[slot], self.score[slot] = -1, np.inf
        self.other[slot, :min(order.size, half)] = other[order[:half]]
        self.score[slot, :min(order.size, half)] = score[order[:half]]
        if order.size > half:
            self.limit_score[slot], self.limit_key[slot] = score[order[half]], key[other[order[half]]]
        else:
            self.limit_score[slot], self.limit_key[slot] = np.inf, NO_KEY

    def update(self, nodes: np.ndarray, touched: Callable[[np.ndarray, np.ndarray], np.ndarray],
               add_row: np.ndarray, add_other: np.ndarray, add_score: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Apply a patch to the kept entries of ``nodes``: ``touched(owner, other)`` says which entries
        it removed or changed; ``add_*`` are the entries it added (``add_row``: sorted, into ``nodes``).
        Returns the nodes whose rows must be refilled."""
        slots = self.slot[nodes]
        other, score = self.other[slots], self.score[slots]
        gone = (other < 0) | touched(nodes[:, None], np.maximum(other, 0))
        other[gone], score[gone] = -1, np.inf
        early = before(add_score, key[add_other], self.limit_score[slots[add_row]], self.limit_key[slots[add_row]])
        row, add_other, add_score = add_row[early], add_other[early], add_score[early]
        full = np.bincount(row, minlength=nodes.size) > gone.sum(axis=1)
        fits = ~full[row]
        free_row, free_column = np.nonzero(gone & ~full[:, None])  # sorted by row
        rank = np.arange(row.size) - np.searchsorted(row, row)
        at = np.searchsorted(free_row, row[fits]) + rank[fits]
        other[free_row[at], free_column[at]], score[free_row[at], free_column[at]] = add_other[fits], add_score[fits]
        self.other[slots], self.score[slots] = other, score
        for i in np.flatnonzero(full):
            mine = row == i
            self._keep_first(slots[i], np.r_[other[i][other[i] >= 0], add_other[mine]],
                             np.r_[score[i][other[i] >= 0], add_score[mine]], key)
        empty = (self.other[slots] < 0).all(axis=1)
        return nodes[empty & (self.limit_score[slots] < np.inf)]

    def best(self, nodes: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best score and best neighbour of ``nodes`` (their rows must not need a refill)."""
        slots = self.slot[nodes]
        other, score = self.other[slots], self.score[slots]
        best_score = score.min(axis=1, initial=np.inf)
        tie_key = np.where((score == best_score[:, None]) & (other >= 0), key[np.maximum(other, 0)], NO_KEY)
        best = other[np.arange(nodes.size), np.argmin(tie_key, axis=1)] if nodes.size else np.empty(0, np.int64)
        return best_score, np.where(best_score < np.inf, best, -1)

    def drop(self, nodes: np.ndarray) -> None:
        self.slot[nodes] = -1
