"""Adjacency rows of the merge rounds: patches in place, first entries of long rows."""

import numpy as np
import pytest

from connecto.segment.adjacency import FirstEntries, Rows


def row(rows: Rows, node: int) -> dict[int, tuple[int, int]]:
    _, index, _ = rows.gather(np.array([node]))
    return {int(o): (int(t), int(a)) for o, t, a in zip(rows.other[index], rows.total[index], rows.area[index])}


def star():
    """Node 0 touches 1..5 (affinity sum 10 * other, area 1); 1 touches 2."""
    u, v = np.array([0, 0, 0, 0, 0, 1]), np.array([1, 2, 3, 4, 5, 2])
    return Rows.build(6, u, v, 10 * v, np.ones(6, np.int64))


def test_rows_hold_both_directions():
    rows = star()
    assert row(rows, 0) == {1: (10, 1), 2: (20, 1), 3: (30, 1), 4: (40, 1), 5: (50, 1)}
    assert row(rows, 2) == {0: (20, 1), 1: (20, 1)}
    assert rows.entries == 12


def test_a_patch_fills_holes_and_grows_rows():
    rows = star()
    _, index, _ = rows.gather(np.array([0, 2]))
    holes = index[np.isin(rows.other[index], [1, 3])]  # 0's entries to 1 and 3; 2's entry to 1
    added = (np.array([6, 7, 8, 9]), np.array([1, 2, 3, 4]), np.array([1, 1, 1, 1]), np.zeros(4))
    rows.patch(np.array([0, 2]), np.array([0, 0, 1]), np.sort(holes), np.array([0, 1, 1, 1]), added)
    assert row(rows, 0) == {2: (20, 1), 4: (40, 1), 5: (50, 1), 6: (1, 1)}
    assert row(rows, 2) == {0: (20, 1), 7: (2, 1), 8: (3, 1), 9: (4, 1)}  # grew: moved, with room
    assert rows.capacity[2] > 4 and rows.entries == 12 - 3 + 4
    assert row(rows, 1) == {0: (10, 1), 2: (20, 1)}  # rows not patched stay


def test_first_entries_stay_right_through_patches():
    rows = star()
    key = np.array([0, 5, 4, 3, 2, 1])
    first = FirstEntries(6, kept=4)  # a fill keeps 2 entries of 0's row: to 5 and 4 (lowest scores); limit: 3
    first.fill(rows, np.array([0]), key)
    assert first.best(np.array([0]), key)[1].tolist() == [5]
    assert (first.limit_score[first.slot[0]], first.limit_key[first.slot[0]]) == (225 / 255, 3)
    # a patch removes the entry to 5 and adds one to 1 at score 0; another removes those to 4 and 1
    refill = first.update(np.array([0]), lambda owner, other: other == 5, np.array([0]), np.array([1]),
                          np.array([0.0]), key)
    assert refill.size == 0 and first.best(np.array([0]), key)[1].tolist() == [1]
    refill = first.update(np.array([0]), lambda owner, other: (other == 4) | (other == 1),
                          np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), key)
    assert refill.tolist() == [0]


def test_first_entries_need_room():
    with pytest.raises(ValueError, match="at least 2, got 1"):
        FirstEntries(3, kept=1)
