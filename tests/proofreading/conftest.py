"""A PostgreSQL server for the proofreading tests: $PROOFREADING_TEST_POSTGRES_DSN, or one started here.

Without the variable, the session starts a throw-away server from the ``pgserver`` wheel (a
test extra) or, where that has no wheel, from a PostgreSQL installation found on the machine
(``initdb`` on PATH or ``/usr/lib/postgresql/*/bin``). It listens on a unix socket in a
temporary directory only (``listen_addresses = ''``: no TCP port), runs without fsync, and is
stopped and deleted when the session ends. PostgreSQL refuses to run as root, so as root the
server runs as ``nobody`` from a copy of pgserver's binaries in that directory (the install
may sit below a directory ``nobody`` cannot enter).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

DSN_VARIABLE = "PROOFREADING_TEST_POSTGRES_DSN"
_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def _pgserver_install() -> Path | None:
    """pgserver's PostgreSQL tree (``bin/``, ``lib/``, ``share/``), found without importing pgserver.

    Importing it creates a lock directory under $XDG_RUNTIME_DIR; only its binaries are used here.
    """
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    return install if all((install / "bin" / p).is_file() for p in _PROGRAMS) else None


def _system_bindir() -> Path | None:
    on_path = shutil.which("initdb")
    candidates = ([Path(on_path).resolve().parent] if on_path else []) + \
        [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    return next((d for d in candidates if all((d / p).is_file() for p in _PROGRAMS)), None)


def _run(command: list, as_user: dict, log: Path | None = None) -> None:
    done = subprocess.run([str(c) for c in command], check=False, capture_output=True, text=True, **as_user)
    if done.returncode != 0:
        server_log = log.read_text()[-3000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{' '.join(map(str, command))} failed (exit {done.returncode}):\n"
                           f"{done.stdout}{done.stderr}{server_log}")


@contextmanager
def local_postgres(bindir: Path | None, install: Path | None = None):
    """Start PostgreSQL (``install``: a relocatable tree to run from, copied when root) and yield its DSN."""
    root = Path(tempfile.mkdtemp(prefix="connecto-pg-"))  # short: a socket path has at most 107 bytes
    as_user: dict = {"cwd": root, "env": {k: v for k, v in os.environ.items() if not k.startswith("PG")}}
    if os.geteuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody")
        if install is not None:  # the same layout: binaries find pgserver.libs through a relative rpath
            copy = root / "pg" / install.parent.name / install.name
            shutil.copytree(install, copy, ignore=shutil.ignore_patterns("include"))
            libs = install.parent.parent / f"{install.parent.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, root / "pg" / libs.name)
            bindir = copy / "bin"
        for path in [root, *root.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
        as_user.update(user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    elif install is not None:
        bindir = install / "bin"
    data, log = root / "data", root / "server.log"
    try:
        _run([bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale",
              "--no-sync"], as_user)
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = ''\nunix_socket_directories = '{root}'\nport = 5432\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        _run([bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start"], as_user, log)
        yield f"postgresql://postgres@/postgres?host={quote(str(root), safe='')}&port=5432"
    finally:
        try:
            if (data / "postmaster.pid").exists():  # running, or a start that failed half-way
                _run([bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], as_user, log)
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn():
    """The DSN of a PostgreSQL database the tests may create schemas in."""
    given = os.environ.get(DSN_VARIABLE)
    if given:
        yield given
        return
    install = _pgserver_install()
    bindir = None if install is not None else _system_bindir()
    if install is None and bindir is None:
        pytest.skip(f"no PostgreSQL: install the test extras (pgserver has wheels for Python <= 3.12 on x86_64 "
                    f"and macOS arm64), put PostgreSQL's initdb on PATH, or set {DSN_VARIABLE}")
    with local_postgres(bindir, install) as dsn:
        yield dsn
