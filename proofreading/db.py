"""A tiny DB-API adapter: the same SQL on SQLite (the embedded default) and PostgreSQL.

SQL in this package is written once, with ``?`` placeholders and portable types
(``BIGINT``, ``TEXT``, ``BLOB``); the adapter rewrites the two things that differ: the
placeholder style and ``BLOB`` -> ``BYTEA``. A write transaction takes the log's write lock
before it reads the head (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped
advisory lock per schema), so two
writers never compute the same next version.

Not SQLAlchemy: its Core would write the portable types and placeholders (the two rewrites
above), but not the part that matters, the write lock taken at BEGIN. Its SQLite dialect
(2.1.9) has no option for ``BEGIN IMMEDIATE``; its documentation controls BEGIN on SQLite
with event hooks that emit the statement by hand, which is what :meth:`Database.transaction`
does; PostgreSQL's advisory lock is SQL text either way. It would add a dependency and keep
this code.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from contextlib import contextmanager


class Database:
    """A DB-API 2 connection in autocommit mode plus the dialect it speaks."""

    def __init__(self, connection, dialect: str):
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"dialect {dialect!r} is not one of 'sqlite', 'postgresql'")
        self.connection = connection
        self.dialect = dialect
        self._in_transaction = False

    def _sql(self, sql: str) -> str:
        if self.dialect == "postgresql":
            return sql.replace("?", "%s").replace(" BLOB", " BYTEA")
        return sql

    def execute(self, sql: str, params=()):
        cursor = self.connection.cursor()
        cursor.execute(self._sql(sql), tuple(params))
        return cursor

    def query(self, sql: str, params=()) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def scalar(self, sql: str, params=()):
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @contextmanager
    def transaction(self, write: bool):
        """One transaction: ``write=True`` holds the write lock from its first statement."""
        if self._in_transaction:
            raise RuntimeError("transactions do not nest; finish the open one first")
        if self.dialect == "sqlite":
            self.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        else:
            self.execute("BEGIN ISOLATION LEVEL READ COMMITTED" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ")
            if write:  # one writer per schema; a transaction-scoped lock needs no table (the schema may not exist yet)
                self.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.proofreading'))")
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            with contextlib.suppress(Exception):  # the original error is the one to report
                self.execute("ROLLBACK")
            raise
        self._in_transaction = False
        self.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


def connect_sqlite(path: str | os.PathLike, timeout_s: float = 60.0) -> Database:
    """Open (creating) an SQLite database in WAL mode; writers wait up to ``timeout_s`` for the lock."""
    connection = sqlite3.connect(os.fspath(path), timeout=timeout_s, isolation_level=None)
    deadline = time.monotonic() + timeout_s
    while True:  # switching to WAL needs a moment without other writers
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if mode.lower() != "wal":
        raise RuntimeError(f"{path}: SQLite refused WAL mode (journal_mode={mode}); is it on a network file system?")
    connection.execute("PRAGMA synchronous=FULL")
    return Database(connection, "sqlite")


def connect_postgresql(dsn: str) -> Database:
    """Open a PostgreSQL database through psycopg (install it; not a dependency of the embedded default)."""
    try:
        import psycopg
    except ImportError as exc:
        raise ImportError("PostgreSQL edit logs need psycopg: pip install 'psycopg[binary]'") from exc
    return Database(psycopg.connect(dsn, autocommit=True), "postgresql")


def connect(target: str | os.PathLike) -> Database:
    """``postgresql://...`` opens PostgreSQL; anything else is an SQLite file path."""
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://")):
        return connect_postgresql(text)
    return connect_sqlite(text)
