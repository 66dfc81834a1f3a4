"""``Proofreader``: one editor's view of the segments and the edits they make.

The view is the mapping at :attr:`Proofreader.version`; it moves forward on
:meth:`~Proofreader.refresh` and on each of the editor's own edits. An edit is planned
against the view (its *base version*), then committed in one write transaction that
catches the view up to the head, checks that every segment the edit touches still exists
there (segment ids are never reused for a different fragment set, so "still exists" means
"unchanged"), takes fresh segment ids and appends the row. An edit whose segments changed
since its base raises :class:`~proofreading.errors.ConflictError` and writes nothing.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Self

import numpy as np

from .db import Database, connect
from .errors import ConflictError, IncompatibleLogError, NothingToUndoError
from .graph import RegionGraph
from .history import active_merge_edges, applied_states, author_stacks, next_target
from .log import Edit, EditLog, fingerprint, now_utc
from .mapping import SegmentMapping
from .plan import Plan, plan_merge, plan_split

logger = logging.getLogger(__name__)

DATABASE_NAME = "proofreading.sqlite"
PAUSE_ENV = "PROOFREADING_TEST_PAUSE_IN_EDIT"  # tests: seconds to sleep inside the write transaction


class Proofreader:
    """Versioned merge/split edits on a run's fragment -> segment mapping.

    Open with :meth:`open`; see the module docstring for how edits commit.

    Examples
    --------
    >>> pr = Proofreader.open("run", author="ada", threshold=0.5)      # doctest: +SKIP
    >>> edit = pr.merge(17, 42)                                          # doctest: +SKIP
    >>> edit.new_segments, pr.version                                    # doctest: +SKIP
    ((1000001,), 1)
    >>> pr.undo(); pr.mapping(version=0)                                 # doctest: +SKIP
    """

    def __init__(self, log: EditLog, author: str, run_dir: str | os.PathLike | None, *,
                 snapshot_every: int = 100, split_backend: str | None = None):
        if not author or not str(author).strip():
            raise ValueError("author must be a non-empty name (who made the edits is part of the log)")
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1 (got {snapshot_every})")
        self.edit_log = log
        self.author = str(author)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.snapshot_every = snapshot_every
        self.split_backend = split_backend
        self._base = log.base_mapping()
        self._view = self._base.copy()
        self._graph: RegionGraph | None = None
        self.refresh()

    @classmethod
    def open(cls, run_dir: str | os.PathLike, author: str, *, threshold: float | None = None,
             initial_mapping=None, database: str | os.PathLike | Database | None = None,
             snapshot_every: int = 100, split_backend: str | None = None) -> Proofreader:
        """Open (creating on first use) the edit log of ``run_dir``.

        Parameters
        ----------
        run_dir : the run directory (``graph/``, ``agglomeration/``).
        author : who makes the edits.
        threshold : the agglomeration threshold that defines version 0 (needed on first open
            unless ``initial_mapping`` is given; checked against the log afterwards).
        initial_mapping : ``(fragment_ids, segment_ids)`` or a :class:`SegmentMapping` as version 0.
        database : an SQLite path, a ``postgresql://`` URL or an open :class:`Database`;
            default ``run_dir/proofreading.sqlite``.
        snapshot_every : store the mapping every this many versions (fast mapping at a version).
        split_backend : ``"igraph"`` (default when installed) or ``"networkx"``.
        """
        run_dir = Path(run_dir)
        if threshold is None and initial_mapping is None:  # version 0 from the run's own threshold
            from .points import run_threshold

            start_threshold = run_threshold(run_dir)
        else:
            start_threshold = threshold
        given = None
        if initial_mapping is not None:
            given = initial_mapping if isinstance(initial_mapping, SegmentMapping) else SegmentMapping(*initial_mapping)
        base = None
        if database is None and not (run_dir / DATABASE_NAME).exists():
            base = _version_zero(run_dir, start_threshold, given)  # refuse before writing any file
        db = database if isinstance(database, Database) else connect(database or run_dir / DATABASE_NAME)
        try:
            log = EditLog(db)
            meta = log.meta()
            if not meta:
                base = base if base is not None else _version_zero(run_dir, start_threshold, given)
                source = {"source": "mapping"} if given is not None else {"source": "threshold",
                                                                          "threshold": repr(start_threshold)}
                meta = log.initialize(base, {**source, "run_dir": str(run_dir.resolve())})
            _check_compatible(meta, threshold, given, run_dir)
            return cls(log, author, run_dir, snapshot_every=snapshot_every, split_backend=split_backend)
        except BaseException:
            if not isinstance(database, Database):  # close only what this call opened
                db.close()
            raise

    # -- the view --------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The version of this editor's view (the base version of its next edit)."""
        return self._view.version

    @property
    def head_version(self) -> int:
        return self.edit_log.head()[0]

    def refresh(self) -> int:
        """Move the view to the head of the log; returns the new version."""
        with self.edit_log.db.transaction(write=False):
            self._catch_up()
        return self.version

    def _catch_up(self) -> None:
        head, _ = self.edit_log.head()
        snapshot = self.edit_log.latest_snapshot(head)
        if snapshot > self._view.version + 1:
            self._view = self.edit_log.read_snapshot(snapshot, self._base)
        for edit in self.edit_log.edits(after=self._view.version, upto=head):
            self._view.apply(edit.delta, edit.version)

    def segment_of(self, fragment, version: int | None = None):
        """Segment id(s) of fragment id(s) in the view (or at ``version``)."""
        return self._at(version).segment_of(fragment)

    def fragments_of(self, segment: int, version: int | None = None) -> np.ndarray:
        """Sorted fragment ids of a segment in the view (or at ``version``)."""
        return self._at(version).fragments_of(segment)

    def _at(self, version: int | None) -> SegmentMapping:
        return self._view if version is None or version == self._view.version else self.mapping(version)

    def mapping(self, version: int | None = None, *, use_snapshots: bool = True) -> SegmentMapping:
        """A copy of the mapping at ``version`` (default: the view), from the nearest snapshot plus the log."""
        if version is None:
            return self._view.copy()
        head = self.edit_log.head()[0]
        if not 0 <= version <= head:
            raise ValueError(f"version {version} is not in the log (versions 0..{head})")
        start = self.edit_log.latest_snapshot(version) if use_snapshots else 0
        if use_snapshots and start <= self._view.version <= version:
            mapping = self._view.copy()
        elif start:
            mapping = self.edit_log.read_snapshot(start, self._base)
        else:
            mapping = self._base.copy()
        for edit in self.edit_log.edits(after=mapping.version, upto=version):
            mapping.apply(edit.delta, edit.version)
        return mapping

    @property
    def graph(self) -> RegionGraph:
        """The run's region graph over this log's fragments (read on first use)."""
        if self._graph is None:
            if self.run_dir is None:
                raise FileNotFoundError("this proofreader has no run directory, so no region graph to split on")
            self._graph = RegionGraph.from_run(self.run_dir, self._base.fragment_ids)
        return self._graph

    def _graph_or_none(self) -> RegionGraph | None:
        try:
            return self.graph
        except FileNotFoundError:
            return None

    # -- edits -----------------------------------------------------------------------------
    def merge(self, a: int, b: int, *, by: str = "segment", base_version: int | None = None) -> Edit:
        """Merge two segments, named by segment ids or (``by="fragment"``) by a fragment of each."""
        view = self._base_view(base_version)
        return self._commit(plan_merge(view, a, b, by, self._graph_or_none()), view.version)

    def split(self, segment: int | None, sources, sinks, *, base_version: int | None = None) -> Edit:
        """Split ``segment`` (or the sources' segment, if None) between source and sink fragments.

        The cut is a minimum cut of the segment's region-graph edges weighted by affinity
        (plus the fragment pairs of applied merges). Each side stays connected; a split that
        cannot do that, or whose points lie in different segments, raises ``SplitError``.
        """
        view = self._base_view(base_version)
        states = applied_states(self.edit_log.toggles())
        merge_edges = active_merge_edges(self.edit_log.merge_edges(), states)
        plan = plan_split(view, segment, sources, sinks, self.graph, merge_edges, self.split_backend)
        return self._commit(plan, view.version)

    def undo(self, version: int | None = None) -> Edit:
        """Undo the author's latest applied merge/split (or the edit at ``version``) as a new edit."""
        return self._toggle("undo", version)

    def redo(self, version: int | None = None) -> Edit:
        """Redo the author's latest undone edit (or the edit at ``version``) as a new edit."""
        return self._toggle("redo", version)

    def _toggle(self, operation: str, version: int | None) -> Edit:
        want_applied = operation == "undo"
        states = applied_states(self.edit_log.toggles())
        if version is None:
            undo_stack, redo_stack = author_stacks(self.edit_log.actions(self.author))
            version = next_target(undo_stack if want_applied else redo_stack, states, want_applied)
            if version is None:
                raise NothingToUndoError(f"nothing to {operation} for author {self.author!r}: no "
                                         f"{'applied' if want_applied else 'undone'} edit of theirs is left")
        target = self.edit_log.edit(version)
        if target is None or target.operation not in ("merge", "split"):
            what = "not in the log" if target is None else f"an edit of type {target.operation!r}"
            raise NothingToUndoError(f"cannot {operation} version {version}: it is {what}; only merges and splits "
                                     "are undone or redone (undo an undo by redoing its target)")
        delta = target.delta.inverse() if want_applied else target.delta
        plan = Plan(operation, {"edit": version}, delta.removed, delta)
        return self._commit(plan, self.version, target=version)

    def _base_view(self, base_version: int | None) -> SegmentMapping:
        return self._view if base_version is None or base_version == self._view.version else self.mapping(base_version)

    def _commit(self, plan: Plan, base_version: int, target: int | None = None) -> Edit:
        with self.edit_log.db.transaction(write=True):
            self._catch_up()
            self._check_commutes(plan, base_version, target)
            head, next_id = self.edit_log.head()
            delta, next_id = plan.build(next_id)
            edit = Edit(head + 1, base_version, self.author, now_utc(), plan.operation, plan.arguments, target,
                        delta, plan.edge, next_id)
            self.edit_log.append(edit)
            pause = float(os.environ.get(PAUSE_ENV) or 0)
            if pause:
                time.sleep(pause)
        self._view.apply(edit.delta, edit.version)
        logger.info("version %d: %s by %s -> segments %s", edit.version, edit.operation, self.author,
                    list(edit.new_segments))
        if edit.version % self.snapshot_every == 0:
            self._write_snapshot()
        return edit

    def _check_commutes(self, plan: Plan, base_version: int, target: int | None) -> None:
        if target is not None:
            states = applied_states(self.edit_log.toggles())
            if states.get(target, True) != (plan.operation == "undo"):
                raise NothingToUndoError(f"cannot {plan.operation} edit {target}: it is already "
                                         f"{'undone' if plan.operation == 'undo' else 'applied'} at version "
                                         f"{self.version}")
        gone = [s for s in plan.touched if not self._view.has_segment(s)]
        if not gone:
            return
        changed = self.edit_log.last_changes(gone, base_version)
        reasons = []
        for segment, version in changed.items():
            if version is None:
                reasons.append(f"segment {segment} does not exist at version {self.version}")
            else:
                by = self.edit_log.edit(version)
                reasons.append(f"segment {segment} was changed by edit {version} ({by.operation} by {by.author})")
        raise ConflictError(f"{plan.operation} made against version {base_version} conflicts with later edits: "
                            f"{'; '.join(reasons)}; the log is at version {self.version} now: look at the segments "
                            "again (refresh) and redo the edit if it still applies",
                            changed, base_version, self.version)

    def _write_snapshot(self) -> None:
        try:
            with self.edit_log.db.transaction(write=True):
                self.edit_log.write_snapshot(self._view, self._base)
        except Exception as exc:  # noqa: BLE001 - a snapshot is a cache; the edit is already committed
            logger.warning("could not store the snapshot at version %d: %s", self.version, exc)

    # -- reading the log -------------------------------------------------------------------
    def log(self, after: int = 0, upto: int | None = None, *, author: str | None = None,
                    segment: int | None = None) -> list[Edit]:
        """The edits after ``after`` (optionally by one author, or touching one segment id)."""
        edits = self.edit_log.edits(after=after, upto=upto, author=author)
        if segment is not None:
            edits = [e for e in edits if int(segment) in e.removed_segments or int(segment) in e.new_segments]
        return edits

    def close(self) -> None:
        self.edit_log.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Proofreader(run_dir={str(self.run_dir)!r}, author={self.author!r}, version={self.version})"


def _version_zero(run_dir: Path, threshold: float | None, given: SegmentMapping | None) -> SegmentMapping:
    from .agglomeration import agglomeration_mapping

    if given is not None:
        return given
    if threshold is None:
        raise ValueError(f"no edit log in {run_dir} yet and no threshold in {run_dir / 'run.json'}: give the "
                         "agglomeration threshold that defines version 0 (--threshold), or a mapping to start from")
    return agglomeration_mapping(run_dir, threshold)


def _check_compatible(meta: dict, threshold, given: SegmentMapping | None, run_dir: Path) -> None:
    if threshold is not None and (meta.get("source") != "threshold" or float(meta["threshold"]) != float(threshold)):
        started = f"threshold {meta['threshold']}" if meta.get("source") == "threshold" else "a given mapping"
        raise IncompatibleLogError(f"the edit log of {run_dir} was started from {started}, not threshold {threshold}; "
                                   "leave out the threshold (--threshold), or start a separate log (--database)")
    if given is not None and fingerprint(given) != meta.get("fingerprint"):
        raise IncompatibleLogError(f"the edit log of {run_dir} was started from a different mapping (fingerprint "
                                   f"{meta.get('fingerprint')}, given {fingerprint(given)}); leave out the "
                                   "mapping, or start a separate log (--database)")

