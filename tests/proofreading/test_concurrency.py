"""Several processes edit one log at once; a process killed mid-edit leaves the log consistent."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from proofreading import Proofreader
from proofreading.proofreader import PAUSE_ENV

from .synthetic import fragment_id, make_run
from .workers import contend, random_edits, reexecute

H, W, S = 6, 16, 2  # 8 stripes
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def run(tmp_path):
    path = make_run(tmp_path / "run", height=H, width=W, stripe=S, necks=())
    Proofreader.open(path, "setup", threshold=0.5).close()  # create the log before the workers race
    return path


def _start(target, args_list, **kwargs):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(args_list)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results), kwargs=kwargs) for args in args_list]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return out


def check_log_consistent(db_path, pr: Proofreader) -> None:
    with sqlite3.connect(db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        versions = [v for (v,) in con.execute("SELECT version FROM edits ORDER BY version")]
        assert versions == list(range(1, len(versions) + 1))
        per_edit = dict(con.execute("SELECT version, COUNT(*) FROM edit_segments GROUP BY version"))
        assert set(per_edit) == set(versions) and all(n >= 3 for n in per_edit.values())
    head = pr.mapping(len(versions), use_snapshots=False)  # raises LogCorruptError if a delta does not fit
    assert np.array_equal(head.segment_ids, pr.mapping(len(versions)).segment_ids)


@pytest.mark.timeout(180)
def test_concurrent_commuting_edits_are_all_logged_and_equal_a_serial_replay(run, tmp_path):
    workers, per_worker = 4, 6
    args = [(run, f"w{k}", [2 * k, 2 * k + 1], per_worker, k, H, W, S) for k in range(workers)]
    started = time.monotonic()
    results = _start(random_edits, args)
    assert time.monotonic() - started < 120
    with Proofreader.open(run, "check") as pr:
        edits = pr.log()
        assert len(edits) == workers * per_worker
        assert sum(conflicts for _, _, conflicts in results) == 0  # commuting edits never conflict
        for author, versions, _ in results:
            assert [e.version for e in edits if e.author == author] == versions
        assert sorted(e.base_version < e.version for e in edits) == [True] * len(edits)
        check_log_consistent(run / "proofreading.sqlite", pr)
        with Proofreader.open(run, "serial", threshold=0.5, database=tmp_path / "serial.sqlite") as serial:
            reexecute(edits, serial)
            assert serial.version == pr.version
            assert np.array_equal(serial.mapping().segment_ids, pr.mapping().segment_ids)


@pytest.mark.timeout(180)
def test_conflicting_edits_are_rejected_not_lost(run):
    shared = fragment_id(0, 0, W)
    args = [(run, f"w{k}", fragment_id(0, 2 * (k + 1), W), shared) for k in range(4)]
    results = dict(_start(contend, args))
    firsts = [attempts[0][0] for attempts in results.values()]
    assert firsts.count("ok") == 1 and firsts.count("conflict") == 3  # all looked at version 0
    assert all(attempts[-1][0] == "ok" for attempts in results.values())  # each retried and got in
    with Proofreader.open(run, "check") as pr:
        assert len(pr.log()) == 4
        assert sorted(e.author for e in pr.log()) == sorted(results)
        merged = pr.segment_of(shared)
        assert pr.fragments_of(merged).tolist() == sorted(fragment_id(y, x, W) for y in range(H) for x in range(10))


def _child(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "tests.proofreading.workers", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _write_locked(db_path) -> bool:
    con = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        con.close()


@pytest.mark.timeout(120)
def test_process_killed_inside_the_edit_transaction_leaves_the_edit_out(run):
    db = run / "proofreading.sqlite"
    child = _child(["one-merge", run, fragment_id(0, 0, W), fragment_id(0, 2, W)], {PAUSE_ENV: "60"})
    assert child.stdout.readline().strip() == "editing"
    deadline = time.monotonic() + 30
    while not _write_locked(db):  # the child holds the write lock: its row is written, not committed
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with Proofreader.open(run, "after") as pr:
        assert pr.version == 0 and pr.log() == []  # wholly out
        check_log_consistent(db, pr)
        edit = pr.merge(fragment_id(0, 0, W), fragment_id(0, 2, W))  # and the log takes edits again
        assert edit.version == 1


@pytest.mark.timeout(150)
def test_killed_at_random_moments_the_log_stays_consistent(run):
    db = run / "proofreading.sqlite"
    rng = np.random.default_rng(7)
    reported = []
    for round_ in range(5):
        child = _child(["edit-until-killed", run, round_, H, W, S])
        assert child.stdout.readline().strip() == "started"
        time.sleep(float(rng.uniform(0.05, 0.6)))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        complete = out.split("\n")[:-1]  # a kill can cut the last line short: it has no newline yet
        reported += [int(line.split()[1]) for line in complete if line.startswith("committed")]
        with Proofreader.open(run, "check") as pr:
            check_log_consistent(db, pr)
            assert set(reported) <= {e.version for e in pr.log()}  # everything reported committed is there
    assert reported, "the victim never committed an edit; give it more time"
