"""The merge rounds of mean agglomeration, evaluated only where the last round changed something.

Greedy mean agglomeration merges, again and again, the two regions whose contact has the
lowest score (ties to the smaller anchors, see :mod:`connecto.segment.agglomerate`). Mean
affinity is reducible, so the same merges come out of rounds that each make, at once,
every merge that no other merge can come before:

- reciprocal best pairs (:func:`_reciprocal`);
- a node whose other neighbours all have a higher best score (:func:`_safe_absorptions`);
- nodes that a reciprocal pair's hub takes with it (:func:`_hub_batches`).

Long chains need hundreds of rounds (FIB-25: 575), most of the graph is the same after
each one, and a few huge regions (tens of thousands of neighbours) take part in most of
them; so after the first round nothing is recomputed for the whole graph:

- the adjacency is kept per node (:class:`~connecto.segment.adjacency.Rows`); a round
  patches only the rows of the nodes it merged and of their neighbours, and within a row
  moves only the entries that change;
- each node's best neighbour and best score are kept, and long rows keep their first
  entries (:class:`~connecto.segment.adjacency.FirstEntries`): a patched row is searched
  again only when its best entry changed and, for a long row, when all its kept ones did;
- a rule is evaluated again only where one of its inputs changed: a new reciprocal pair
  contains a node whose best neighbour changed; a non-reciprocal absorption needs a
  patched row or a neighbour whose best score rose past the node's own; a hub batch is
  evaluated for every hub that more nodes than its partner want (hubs merge in their round).

Rounds evaluated this way are the rounds of evaluating every rule on the whole graph,
merge for merge (the tests compare the two on graphs full of ties and chains), so the
merges, their order and the regions' representatives do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .adjacency import NO_KEY, FirstEntries, Rows, before, best_of_runs, scores, segment_min

LONG_ROW = 1024  # rows at least this long keep their first entries
KEPT = 512  # how many (at most)


def _reciprocal(fresh: np.ndarray, best: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal best pairs with a member in ``fresh``: (partner, hub) per pair.

    The pair merges into the hub, its member with the smaller key. A pair of two nodes
    whose best neighbours did not change was a pair in the last round already: it merged
    then, or it scores above ``max_score`` and never merges.
    """
    x = best[fresh]
    mutual = (x >= 0) & (best[np.maximum(x, 0)] == fresh)
    a, b = fresh[mutual], x[mutual]
    hub = np.unique(np.where(key[a] < key[b], a, b))
    return best[hub], hub


def _safe_absorptions(rows: Rows, candidates: np.ndarray, best_score, best) -> np.ndarray:
    """Candidates without a reciprocal best whose other neighbours all have a higher best score.

    A node ``f`` is merged into its best neighbour ``x`` at score ``s`` (its best score)
    when every other neighbour ``g`` of ``f`` has a best score above ``s``: every merge that
    involves ``g``'s region scores at least ``g``'s best score (mean affinity is reducible),
    and greedy merging is monotone, so nothing that could change the contact between ``f``
    and ``x``'s region, or give ``f`` a better partner, happens before score ``s``. Merge
    targets may be merged themselves in the same round: scores fall strictly along such a
    chain, so there are no cycles.
    """
    x = best[candidates]
    candidates = candidates[(x >= 0) & (best[np.maximum(x, 0)] != candidates)]
    position, index, lengths = rows.gather(candidates)
    other = rows.other[index]
    rival = np.where(other != best[candidates][position], best_score[other], np.inf)
    return candidates[best_score[candidates] < segment_min(rival, lengths, np.inf)]


def _hub_members_scanned(rows: Rows, hubs: np.ndarray, best_score, best, max_score: float):
    """For each hub: its lowest score to a node that does not want it (``hub_out``); and the nodes
    that want it (best neighbour) and score at most that and ``max_score``, with their hub's index.

    Other members are never taken, and their own other edges (none below their score)
    never bind another member.
    """
    position, index, lengths = rows.gather(hubs)
    other, score = rows.other[index], rows.score[index]
    wants = best[other] == hubs[position]
    hub_out = segment_min(np.where(wants, np.inf, score), lengths, np.inf)
    members, member_hub = other[wants], position[wants]
    taken = best_score[members] <= np.minimum(hub_out[member_hub], max_score)
    return hub_out, members[taken], member_hub[taken]


def _hub_members_kept(first: FirstEntries, hubs: np.ndarray, best, max_score: float):
    """:func:`_hub_members_scanned` from the kept first entries; ``ok`` says for which hubs they
    suffice (a kept entry to a node that does not want the hub, scoring below the row's limit)."""
    slots = first.slot[hubs]
    other, score = first.other[slots], first.score[slots]
    wants = (other >= 0) & (best[np.maximum(other, 0)] == hubs[:, None])
    hub_out = np.where((other >= 0) & ~wants, score, np.inf).min(axis=1, initial=np.inf)
    ok = hub_out < first.limit_score[slots]
    taken = wants & ok[:, None] & (score <= np.minimum(hub_out, max_score)[:, None])
    member_hub, column = np.nonzero(taken)
    return ok, hub_out, other[member_hub, column], member_hub


def _hub_batches(rows: Rows, first: FirstEntries, hubs: np.ndarray, best_score, best, max_score: float):
    """Nodes that the hubs take with them in the round their pair merges.

    A hub ``x`` takes a node ``f`` that wants it (``f``'s best neighbour is ``x``) when
    ``f`` touches no other node that wants ``x`` and ``f``'s score is at most every score
    leaving the group: the hub's edges to nodes that do not want it and the other edges of
    all nodes that want it. Nothing can then join the group, or touch ``f``, before ``f`` does.
    """
    kept = hubs[first.slot[hubs] >= 0]
    ok, kept_out, kept_members, kept_hub = _hub_members_kept(first, kept, best, max_score)
    scanned = np.r_[hubs[first.slot[hubs] < 0], kept[~ok]]
    scanned_out, scanned_members, scanned_hub = _hub_members_scanned(rows, scanned, best_score, best, max_score)
    bound, hub_of = np.r_[kept_out, scanned_out], np.r_[kept, scanned]
    members, member_hub = np.r_[kept_members, scanned_members], np.r_[kept_hub, scanned_hub + kept.size]
    position, index, lengths = rows.gather(members)
    other, hub_of_entry = rows.other[index], hub_of[member_hub][position]
    member_out = segment_min(np.where(other != hub_of_entry, rows.score[index], np.inf), lengths, np.inf)
    crowded = segment_min((best[other] != hub_of_entry).astype(np.int8), lengths, 1) == 0
    np.minimum.at(bound, member_hub, member_out)
    return members[~crowded & (best_score[members] <= bound[member_hub])]


def _roots(absorbed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Follow merge targets through nodes absorbed in the same round (``absorbed`` sorted)."""
    root = target.copy()
    while True:
        at = np.minimum(np.searchsorted(absorbed, root), absorbed.size - 1)
        chained = absorbed[at] == root
        if not chained.any():
            return root
        root[chained] = target[at[chained]]


@dataclass
class _Patch:
    """What a merge changed: the patched rows (``nodes``, sorted), the entries added to them
    (``added_row`` indexes ``nodes``), and which entries it touched (:meth:`touched`)."""

    nodes: np.ndarray
    added_row: np.ndarray
    added_other: np.ndarray
    added_score: np.ndarray
    merged: np.ndarray  # per node: absorbed or a root this round
    reached: np.ndarray  # per node: an absorbed row points at it

    def touched(self, owner, other) -> np.ndarray:
        """Entries (owner, other) that the merge removed or added up; the others stayed as they were."""
        return self.merged[other] | (self.merged[owner] & self.reached[other])


def _merge(rows: Rows, parent: np.ndarray, absorbed: np.ndarray) -> _Patch:
    """Merge ``absorbed`` into ``parent[absorbed]``: patch the rows of the roots and of all neighbours.

    Touched entries are removed and added back, added up per pair with the absorbed rows'
    entries; the others stay.
    """
    a_position, a_index, _ = rows.gather(absorbed)
    a_owner, a_other = parent[absorbed][a_position], parent[rows.other[a_index]]
    changed = np.unique(a_other)
    merged = np.zeros(parent.size, bool)
    merged[absorbed] = merged[parent[absorbed]] = True
    reached = np.zeros(parent.size, bool)
    reached[a_other] = True
    patch = _Patch(changed, np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), merged, reached)
    position, index, _ = rows.gather(changed)
    raw_other = rows.other[index]
    touched = patch.touched(changed[position], raw_other)
    holes, hole_row = index[touched], position[touched]
    owner = np.r_[changed[hole_row], a_owner]
    other = np.r_[parent[raw_other[touched]], a_other]
    source = np.r_[holes, a_index]
    keep = owner != other
    n = np.int64(parent.size)
    pair, inverse = np.unique(owner[keep] * n + other[keep], return_inverse=True)
    total = np.bincount(inverse, weights=rows.total[source[keep]], minlength=pair.size).astype(np.int64)
    area = np.bincount(inverse, weights=rows.area[source[keep]], minlength=pair.size).astype(np.int64)
    added = (pair % n, total, area, scores(total, area))
    patch.added_row = np.searchsorted(changed, pair // n)
    patch.added_other, patch.added_score = added[0], added[3]
    rows.clear(absorbed)
    rows.patch(changed, hole_row, holes, patch.added_row, added)
    return patch


def _unblocked(rows: Rows, raised: np.ndarray, before_score: np.ndarray, best_score: np.ndarray) -> np.ndarray:
    """Neighbours of ``raised`` nodes whose best score lies in [old, new) of that node's best score."""
    position, index, _ = rows.gather(raised)
    neighbour = rows.other[index]
    level = best_score[neighbour]
    hit = (before_score[position] <= level) & (level < best_score[raised][position])
    return np.unique(neighbour[hit])


class _Rounds:
    """The state between rounds: rows, best scores and neighbours, who wants whom."""

    def __init__(self, rows: Rows, key: np.ndarray, max_score: float):
        n = key.size
        self.rows = rows
        self.first = FirstEntries(n, KEPT)
        self.key, self.max_score = key, max_score
        everyone = np.arange(n, dtype=np.int64)
        self.best_score, self.best = np.full(n, np.inf), np.full(n, -1, dtype=np.int64)
        self._search(everyone)
        self.parent = everyone.copy()
        self.wanted = np.zeros(n, np.int64)  # nodes (best score <= max_score) whose best neighbour this is
        self._count_wanted(everyone, 1)
        self.fresh = everyone  # best neighbour changed
        self.candidates = everyone  # may be absorbed without a reciprocal pair

    def absorptions(self) -> np.ndarray:
        """This round's absorbed nodes (sorted); their targets are their best neighbours."""
        best_score, best, max_score = self.best_score, self.best, self.max_score
        partners, hubs = _reciprocal(self.fresh, best, self.key)
        hubs = hubs[(best_score[hubs] <= max_score) & (self.wanted[hubs] > 1)]  # wanted by more than the partner
        candidates = self.candidates[best_score[self.candidates] <= max_score]
        absorbed = np.unique(np.r_[partners, _safe_absorptions(self.rows, candidates, best_score, best),
                                   _hub_batches(self.rows, self.first, hubs, best_score, best, max_score)])
        return absorbed[best_score[absorbed] <= max_score]

    def merge(self, absorbed: np.ndarray) -> None:
        self.parent[absorbed] = _roots(absorbed, self.best[absorbed])
        patch = _merge(self.rows, self.parent, absorbed)
        changed = patch.nodes
        before_score, before_best = self.best_score[changed], self.best[changed]
        self._count_wanted(np.r_[changed, absorbed], -1)
        self.best_score[absorbed], self.best[absorbed] = np.inf, -1
        self.first.drop(absorbed)
        self._update_best(patch)
        self._count_wanted(changed, 1)
        self.fresh = changed[self.best[changed] != before_best]
        raised = self.best_score[changed] > before_score
        unblocked = _unblocked(self.rows, changed[raised], before_score[raised], self.best_score)
        self.candidates = np.union1d(changed, unblocked)

    def _count_wanted(self, nodes: np.ndarray, sign: int) -> None:
        nodes = nodes[(self.best[nodes] >= 0) & (self.best_score[nodes] <= self.max_score)]
        np.add.at(self.wanted, self.best[nodes], sign)

    def _update_best(self, patch: _Patch) -> None:
        """Best score and neighbour of the patched rows, searching as few rows again as it can."""
        long = self.first.slot[patch.nodes] >= 0
        refill = self._update_long(patch, long)
        kept = self._update_short(patch, ~long)
        self._search(np.r_[patch.nodes[~long & ~kept], refill])

    def _update_long(self, patch: _Patch, long: np.ndarray) -> np.ndarray:
        """Long rows (``long``: mask over the patched rows): from their kept first entries.
        Returns the rows to search again (none kept)."""
        nodes, added = patch.nodes[long], np.flatnonzero(long[patch.added_row])
        row = np.searchsorted(np.flatnonzero(long), patch.added_row[added])
        refill = self.first.update(nodes, patch.touched, row, patch.added_other[added], patch.added_score[added],
                                   self.key)
        self.best_score[nodes], self.best[nodes] = self.first.best(nodes, self.key)
        return refill

    def _update_short(self, patch: _Patch, short: np.ndarray) -> np.ndarray:
        """Other rows (``short``) whose best entry the patch did not touch: that entry against the
        added ones. Returns which rows (mask over the patched rows) were done so."""
        nodes, key = patch.nodes, self.key
        old_best = self.best[nodes]
        kept = short & (old_best >= 0) & ~patch.touched(nodes, np.maximum(old_best, 0))
        lengths = np.bincount(patch.added_row, minlength=nodes.size)
        added_score, added_best = best_of_runs(patch.added_score, patch.added_other, lengths, key)
        added_key = np.where(added_best >= 0, key[np.maximum(added_best, 0)], NO_KEY)
        use_added = kept & before(added_score, added_key, self.best_score[nodes], key[np.maximum(old_best, 0)])
        self.best_score[nodes[use_added]], self.best[nodes[use_added]] = added_score[use_added], added_best[use_added]
        return kept

    def _search(self, nodes: np.ndarray) -> None:
        """Best score and neighbour of ``nodes`` from their whole rows (long rows: kept first entries again)."""
        long = nodes[self.rows.length[nodes] >= LONG_ROW]
        self.first.fill(self.rows, long, self.key)
        self.best_score[long], self.best[long] = self.first.best(long, self.key)
        short = nodes[self.rows.length[nodes] < LONG_ROW]
        self.first.drop(short)
        _, index, lengths = self.rows.gather(short)
        self.best_score[short], self.best[short] = best_of_runs(self.rows.score[index], self.rows.other[index],
                                                                lengths, self.key)


def mean_rounds(rows: Rows, key: np.ndarray, max_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Merge rounds over the graph ``rows`` (which they change), nodes with tie-break ``key``:
    (root, absorbed, score) per merge and the number of rounds. Merges come round by round,
    within a round by absorbed node; ``root`` is the node whose region the absorbed node's
    region joins (ties: see the rules)."""
    state = _Rounds(rows, key, max_score)
    roots, merged, merge_scores = [], [], []
    rounds = 0
    while state.rows.entries:
        rounds += 1
        absorbed = state.absorptions()
        if absorbed.size == 0:
            break
        merge_scores.append(state.best_score[absorbed])
        state.merge(absorbed)
        roots.append(state.parent[absorbed])
        merged.append(absorbed)
    if not roots:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0, np.float64), rounds
    return np.concatenate(roots), np.concatenate(merged), np.concatenate(merge_scores), rounds
