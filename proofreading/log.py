"""The append-only edit log: schema, rows <-> :class:`Edit`, snapshots, the base mapping.

Every method that writes expects to run inside ``db.transaction(write=True)``, which the
:class:`~proofreading.proofreader.Proofreader` opens; rows are only ever inserted, so an
edit is wholly in the log (its transaction committed) or wholly out.

The SQL is written once for SQLite and PostgreSQL through the small adapter in :mod:`.db`
(why not SQLAlchemy: see there).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from .db import Database
from .mapping import Delta, SegmentMapping, pack_ids, pack_sorted, unpack_ids, unpack_sorted

FORMAT = "1"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ("CREATE TABLE IF NOT EXISTS base_mapping (one BIGINT PRIMARY KEY CHECK (one = 1), fragment_ids BLOB NOT NULL, "
     "segment_ids BLOB NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS edits ("
    " version BIGINT PRIMARY KEY CHECK (version > 0),"
    " base_version BIGINT NOT NULL CHECK (base_version >= 0 AND base_version < version),"
    " author TEXT NOT NULL,"
    " created_at TEXT NOT NULL,"
    " operation TEXT NOT NULL CHECK (operation IN ('merge', 'split', 'undo', 'redo')),"
    " arguments TEXT NOT NULL,"
    " target BIGINT,"
    " kind TEXT NOT NULL CHECK (kind IN ('join', 'part')),"
    " whole_id BIGINT NOT NULL,"
    " part_a BIGINT NOT NULL,"
    " part_b BIGINT NOT NULL,"
    " part_a_fragments BLOB NOT NULL,"
    " edge_u BIGINT,"
    " edge_v BIGINT,"
    " next_segment_id BIGINT NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS edit_segments (version BIGINT NOT NULL, segment_id BIGINT NOT NULL, "
     "change TEXT NOT NULL CHECK (change IN ('removed', 'added')), PRIMARY KEY (version, segment_id))"),
    "CREATE INDEX IF NOT EXISTS edit_segments_by_segment ON edit_segments (segment_id, version)",
    "CREATE INDEX IF NOT EXISTS edits_by_author ON edits (author, version)",
    "CREATE INDEX IF NOT EXISTS edits_by_operation ON edits (operation, version)",
    ("CREATE TABLE IF NOT EXISTS snapshots (version BIGINT PRIMARY KEY, positions BLOB NOT NULL, "
     "segment_ids BLOB NOT NULL, created_at TEXT NOT NULL)"),
)

_EDIT_COLUMNS = ("version, base_version, author, created_at, operation, arguments, target, kind, whole_id, part_a, "
                 "part_b, part_a_fragments, edge_u, edge_v, next_segment_id")


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fingerprint(mapping: SegmentMapping) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(mapping.fragment_ids, "<u8").tobytes())
    digest.update(np.ascontiguousarray(mapping.segment_ids, "<u8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Edit:
    """One row of the log. ``delta`` is what the edit did to the mapping."""

    version: int
    base_version: int
    author: str
    created_at: str
    operation: str
    arguments: dict
    target: int | None
    delta: Delta
    edge: tuple[int, int] | None
    next_segment_id: int

    @property
    def new_segments(self) -> tuple[int, ...]:
        return self.delta.added

    @property
    def removed_segments(self) -> tuple[int, ...]:
        return self.delta.removed

    def summary(self) -> dict:
        """JSON-able description (without the fragment list)."""
        return {"version": self.version, "base_version": self.base_version, "author": self.author,
                "time": self.created_at, "operation": self.operation, "arguments": self.arguments,
                "target": self.target, "removed_segments": list(self.removed_segments),
                "new_segments": list(self.new_segments)}


def _edit_from_row(row) -> Edit:
    (version, base, author, created, operation, arguments, target, kind, whole, part_a, part_b, fragments,
     edge_u, edge_v, next_id) = row
    delta = Delta(kind, int(whole), (int(part_a), int(part_b)), unpack_ids(fragments))
    edge = None if edge_u is None else (int(edge_u), int(edge_v))
    return Edit(int(version), int(base), author, created, operation, json.loads(arguments),
                None if target is None else int(target), delta, edge, int(next_id))


class EditLog:
    """Rows of one edit log in a :class:`~proofreading.db.Database`."""

    def __init__(self, db: Database):
        self.db = db
        with db.transaction(write=True):
            for statement in SCHEMA:
                db.execute(statement)

    # -- the base mapping and its description ----------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.db.query("SELECT key, value FROM meta"))

    def initialize(self, base: SegmentMapping, meta: dict[str, str]) -> dict[str, str]:
        """Store version 0 unless a log is there already; returns the stored description."""
        with self.db.transaction(write=True):
            existing = self.meta()
            if existing:
                return existing
            first_new = max(int(base.fragment_ids[-1]) if len(base) else 0,
                            int(base.segment_ids.max()) if len(base) else 0) + 1
            meta = {**meta, "format": FORMAT, "fragments": str(len(base)), "fingerprint": fingerprint(base),
                    "first_new_segment_id": str(first_new), "created_at": now_utc()}
            for key, value in meta.items():
                self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
            self.db.execute("INSERT INTO base_mapping (one, fragment_ids, segment_ids) VALUES (1, ?, ?)",
                            (pack_sorted(base.fragment_ids), pack_ids(base.segment_ids)))
            return meta

    def base_mapping(self) -> SegmentMapping:
        row = self.db.execute("SELECT fragment_ids, segment_ids FROM base_mapping WHERE one = 1").fetchone()
        if row is None:
            raise RuntimeError("the edit log has no base mapping; open it through Proofreader.open")
        return SegmentMapping.trusted(unpack_sorted(row[0]), unpack_ids(row[1]), 0)

    # -- reading ---------------------------------------------------------------------------
    def head(self) -> tuple[int, int]:
        """(head version, next free segment id)."""
        row = self.db.execute("SELECT version, next_segment_id FROM edits ORDER BY version DESC LIMIT 1").fetchone()
        if row is None:
            return 0, int(self.meta()["first_new_segment_id"])
        return int(row[0]), int(row[1])

    def edits(self, after: int = 0, upto: int | None = None, *, author: str | None = None,
              operations: tuple[str, ...] | None = None) -> list[Edit]:
        """Edits with ``after < version <= upto``, in order, optionally by one author or operation."""
        sql, params = f"SELECT {_EDIT_COLUMNS} FROM edits WHERE version > ?", [after]
        if upto is not None:
            sql, params = sql + " AND version <= ?", params + [upto]
        if author is not None:
            sql, params = sql + " AND author = ?", params + [author]
        if operations:
            sql += f" AND operation IN ({', '.join('?' * len(operations))})"
            params += list(operations)
        return [_edit_from_row(row) for row in self.db.query(sql + " ORDER BY version", params)]

    def edit(self, version: int) -> Edit | None:
        rows = self.db.query(f"SELECT {_EDIT_COLUMNS} FROM edits WHERE version = ?", (version,))
        return _edit_from_row(rows[0]) if rows else None

    def last_changes(self, segments, after: int) -> dict[int, int | None]:
        """For each segment: the latest version > ``after`` that removed it (None if none did)."""
        return {int(s): self.db.scalar("SELECT MAX(version) FROM edit_segments WHERE segment_id = ? AND version > ? "
                                       "AND change = 'removed'", (int(s), after)) for s in segments}

    def actions(self, author: str) -> list[tuple[int, str, int | None]]:
        """(version, operation, target) of one author's edits, in order (no fragment lists read)."""
        return [(int(v), op, None if t is None else int(t)) for v, op, t in
                self.db.query("SELECT version, operation, target FROM edits WHERE author = ? ORDER BY version",
                              (author,))]

    def toggles(self) -> list[tuple[int, str, int]]:
        """(version, 'undo'|'redo', target) for every undo and redo, in order."""
        return [(int(v), op, int(t)) for v, op, t in
                self.db.query("SELECT version, operation, target FROM edits WHERE operation IN ('undo', 'redo') "
                              "ORDER BY version")]

    def merge_edges(self) -> list[tuple[int, int, int]]:
        """(version, fragment u, fragment v) of every merge, in order."""
        return [(int(v), int(a), int(b)) for v, a, b in
                self.db.query("SELECT version, edge_u, edge_v FROM edits WHERE operation = 'merge' "
                              "AND edge_u IS NOT NULL ORDER BY version")]

    # -- writing (inside a write transaction) ------------------------------------------------
    def append(self, edit: Edit) -> None:
        d = edit.delta
        self.db.execute(
            f"INSERT INTO edits ({_EDIT_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            (edit.version, edit.base_version, edit.author, edit.created_at, edit.operation,
             json.dumps(edit.arguments, sort_keys=True), edit.target, d.kind, d.whole, d.parts[0], d.parts[1],
             pack_ids(d.first_part_fragments), None if edit.edge is None else edit.edge[0],
             None if edit.edge is None else edit.edge[1], edit.next_segment_id))
        for segment in d.removed:
            self.db.execute("INSERT INTO edit_segments (version, segment_id, change) VALUES (?, ?, 'removed')",
                            (edit.version, segment))
        for segment in d.added:
            self.db.execute("INSERT INTO edit_segments (version, segment_id, change) VALUES (?, ?, 'added')",
                            (edit.version, segment))

    # -- snapshots: the mapping at a version, stored as its difference from version 0 ---------
    def latest_snapshot(self, upto: int) -> int:
        return int(self.db.scalar("SELECT MAX(version) FROM snapshots WHERE version <= ?", (upto,)) or 0)

    def read_snapshot(self, version: int, base: SegmentMapping) -> SegmentMapping:
        row = self.db.execute("SELECT positions, segment_ids FROM snapshots WHERE version = ?", (version,)).fetchone()
        segment_ids = base.segment_ids.copy()
        segment_ids[unpack_sorted(row[0]).astype(np.int64)] = unpack_ids(row[1])
        return SegmentMapping.trusted(base.fragment_ids, segment_ids, version)

    def write_snapshot(self, mapping: SegmentMapping, base: SegmentMapping) -> None:
        changed = np.flatnonzero(mapping.segment_ids != base.segment_ids)
        self.db.execute("INSERT INTO snapshots (version, positions, segment_ids, created_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (version) DO NOTHING",
                        (mapping.version, pack_sorted(changed), pack_ids(mapping.segment_ids[changed]), now_utc()))
