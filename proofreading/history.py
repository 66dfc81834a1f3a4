"""Undo/redo bookkeeping read off the log: which edits are applied, each author's stacks.

An *action* is a merge or split edit. ``undo`` and ``redo`` edits toggle an action (their
``target``); an action is applied unless its latest toggle is an undo. Each author has an
undo stack (their actions, most recent on top, redone ones pushed back) and a redo stack
(what they undid since their last new action), as in any editor.
"""

from __future__ import annotations


def applied_states(toggles: list[tuple[int, str, int]]) -> dict[int, bool]:
    """target version -> applied? for every toggled action (untoggled actions are applied)."""
    states: dict[int, bool] = {}
    for _, operation, target in toggles:
        states[target] = operation == "redo"
    return states


def author_stacks(actions: list[tuple[int, str, int | None]]) -> tuple[list[int], list[int]]:
    """(undo stack, redo stack) of action versions from one author's (version, operation, target) rows."""
    undo_stack: list[int] = []
    redo_stack: list[int] = []
    for version, operation, target in actions:
        if operation in ("merge", "split"):
            undo_stack.append(version)
            redo_stack.clear()
        elif operation == "undo":
            if target in undo_stack:
                undo_stack.remove(target)
            redo_stack.append(target)
        elif operation == "redo":
            if target in redo_stack:
                redo_stack.remove(target)
            undo_stack.append(target)
    return undo_stack, redo_stack


def next_target(stack: list[int], states: dict[int, bool], want_applied: bool) -> int | None:
    """The top of ``stack`` that is in the wanted state (others may have toggled some already)."""
    for version in reversed(stack):
        if states.get(version, True) == want_applied:
            return version
    return None


def active_merge_edges(merge_edges: list[tuple[int, int, int]], states: dict[int, bool]) -> list[tuple[int, int]]:
    """Fragment pairs joined by merges that are applied now (a proofreader's asserted edges)."""
    return [(u, v) for version, u, v in merge_edges if states.get(version, True)]
