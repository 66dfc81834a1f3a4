"""The same edit log on PostgreSQL: a server the session starts (see conftest.py) or the one
$PROOFREADING_TEST_POSTGRES_DSN names, e.g.
``PROOFREADING_TEST_POSTGRES_DSN=postgresql://postgres@/postgres?host=/tmp/pg&port=5432``.

Each test works in a fresh schema of that database and drops it afterwards.
"""

import multiprocessing
import uuid

import numpy as np
import psycopg
import pytest

from proofreading import ConflictError, Proofreader

from .synthetic import fragment_id, make_run
from .test_concurrency import _start
from .workers import random_edits, reexecute

W = 6


@pytest.fixture
def dsn(postgres_dsn):
    schema = f"proofread_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    yield postgres_dsn + ("&" if "?" in postgres_dsn else "?") + f"options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(f"DROP SCHEMA {schema} CASCADE")


def test_edits_undo_conflicts_and_replay_on_postgresql(tmp_path, dsn):
    run = make_run(tmp_path / "run", height=6, width=W, stripe=2)
    with Proofreader.open(run, "ada", threshold=0.5, database=dsn, snapshot_every=2) as pr, \
            Proofreader.open(run, "bob", database=dsn) as bob:
        before = pr.mapping()
        merged = pr.merge(101, 107).new_segments[0]
        top, bottom = pr.split(merged, [fragment_id(0, 0, W)], [fragment_id(5, 0, W)]).new_segments
        with pytest.raises(ConflictError, match="segment 101 was changed by edit 1 .merge by ada."):
            bob.merge(101, 113)
        assert bob.merge(113, top).version == 3  # after the conflict bob's view is at the head
        with pytest.raises(ConflictError, match=f"segment {top} was changed by edit 3 .merge by bob."):
            pr.undo()  # ada's split made `top`, which bob has merged since
        assert bob.undo().target == 3
        assert pr.undo().target == 2 and pr.undo().target == 1
        assert np.array_equal(pr.mapping().segment_ids, before.segment_ids)
        assert bottom in pr.mapping(2).segments()
        seen = {v: pr.mapping(v).segment_ids for v in range(pr.head_version + 1)}
        with Proofreader.open(run, "carol", database=dsn) as fresh:
            for v, expected in seen.items():
                assert np.array_equal(fresh.mapping(v).segment_ids, expected)
                assert np.array_equal(fresh.mapping(v, use_snapshots=False).segment_ids, expected)
        assert np.array_equal(pr.mapping(0).segment_ids, before.segment_ids)


@pytest.mark.timeout(180)
def test_concurrent_processes_on_postgresql(tmp_path, dsn):
    H, Wc, S = 6, 8, 2
    run = make_run(tmp_path / "run", height=H, width=Wc, stripe=S, necks=())
    Proofreader.open(run, "setup", threshold=0.5, database=dsn).close()
    args = [(run, f"w{k}", [2 * k, 2 * k + 1], 5, k, H, Wc, S) for k in range(2)]
    results = _start(random_edits, args, database=dsn)
    assert multiprocessing.active_children() == []
    with Proofreader.open(run, "check", database=dsn) as pr:
        edits = pr.log()
        assert [e.version for e in edits] == list(range(1, 11))
        assert sum(c for _, _, c in results) == 0
        with Proofreader.open(run, "serial", threshold=0.5, database=tmp_path / "serial.sqlite") as serial:
            reexecute(edits, serial)
            assert np.array_equal(serial.mapping().segment_ids, pr.mapping().segment_ids)
