"""Code that runs in other processes for the concurrency and crash tests (spawned, so importable)."""

from __future__ import annotations

import sys

import numpy as np

from proofreading import ConflictError, NothingToUndoError, Proofreader, SplitError

from .synthetic import stripe_fragments



def random_split(pr, rng, segments):
    """Split a random segment between two of its fragments; None when it has only one."""
    segment = int(rng.choice(segments))
    members = pr.fragments_of(segment)
    if len(members) < 2:
        return None
    source, sink = rng.choice(members, 2, replace=False)
    return pr.split(segment, [int(source)], [int(sink)])

def random_edits(run, author, stripes, n_edits, seed, height, width, stripe, barrier, results, database=None):
    """Random merges/splits/undos/redos confined to ``stripes`` (so they commute with other workers')."""
    mine = np.array(sorted(f for s in stripes for f in stripe_fragments(s, height, width, stripe)), np.uint64)
    rng = np.random.default_rng(seed)
    done, conflicts = [], 0
    with Proofreader.open(run, author, database=database) as pr:
        barrier.wait(timeout=60)
        while len(done) < n_edits:
            segments = np.unique(pr.segment_of(mine))
            choice = rng.integers(5)
            try:
                if choice < 2 and len(segments) > 1:
                    a, b = rng.choice(segments, 2, replace=False)
                    edit = pr.merge(int(a), int(b))
                elif choice < 4:
                    edit = random_split(pr, rng, segments)
                    if edit is None:
                        continue
                else:
                    edit = pr.undo() if rng.integers(2) else pr.redo()
            except (SplitError, NothingToUndoError):
                continue
            except ConflictError:
                conflicts += 1
                continue
            done.append(edit.version)
    results.put((author, done, conflicts))


def contend(run, author, own_fragment, shared_fragment, barrier, results):
    """Merge my fragment's segment into the shared one, from a stale view; on conflict refresh and retry."""
    attempts = []
    with Proofreader.open(run, author) as pr:
        own, shared = pr.segment_of(own_fragment), pr.segment_of(shared_fragment)  # looked at version 0
        barrier.wait(timeout=60)
        for _ in range(50):
            try:
                edit = pr.merge(own, shared)
                attempts.append(("ok", edit.version))
                break
            except ConflictError as exc:
                attempts.append(("conflict", exc.head_version))
                pr.refresh()
                own, shared = pr.segment_of(own_fragment), pr.segment_of(shared_fragment)
    results.put((author, attempts))


def reexecute(edits, pr: Proofreader) -> None:
    """Serial replay: perform each logged operation again from its arguments, in version order."""
    for e in edits:
        if e.operation == "merge":
            pr.merge(e.arguments["a"], e.arguments["b"], by=e.arguments["by"])
        elif e.operation == "split":
            pr.split(e.arguments["segment"], e.arguments["sources"], e.arguments["sinks"])
        else:
            getattr(pr, e.operation)(e.target)


def edit_until_killed(run: str, seed: int, height: int, width: int, stripe: int) -> None:
    """The crash test's victim: edit in a loop, printing each committed version, until SIGKILL."""
    rng = np.random.default_rng(seed)
    with Proofreader.open(run, f"victim{seed}", snapshot_every=3) as pr:
        import igraph  # noqa: F401 - warm up, so the kill lands among edits rather than imports

        _ = pr.graph
        print("started", flush=True)
        while True:
            segments = pr.mapping().segments()
            try:
                if rng.integers(3) == 0 and len(segments) > 1:
                    a, b = rng.choice(segments, 2, replace=False)
                    edit = pr.merge(int(a), int(b))
                elif rng.integers(2):
                    edit = random_split(pr, rng, segments)
                    if edit is None:
                        continue
                else:
                    edit = pr.undo()
            except (SplitError, NothingToUndoError):
                continue
            sys.stdout.write(f"committed {edit.version}\n")  # one write: unbuffered, print writes each part
            sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1] == "edit-until-killed":
        edit_until_killed(sys.argv[2], *map(int, sys.argv[3:7]))
    elif sys.argv[1] == "one-merge":
        with Proofreader.open(sys.argv[2], "victim") as pr:
            print("editing", flush=True)
            pr.merge(int(sys.argv[3]), int(sys.argv[4]))
        print("done", flush=True)
