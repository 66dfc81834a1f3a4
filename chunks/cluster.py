"""Where blocks run: a dask.distributed client for a scheduler choice.

- ``None`` or ``"local"``: a LocalCluster of worker processes (one per core, one thread each)
- ``"threads"``: an in-process LocalCluster with one thread per worker slot (needed for
  ``memory://`` volumes; fine for stages that release the GIL)
- ``"sync"``: no dask at all, blocks run one after another in this process (debugging)
- ``"tcp://host:port"`` (or any dask address): an existing cluster, e.g. cloud workers
- a ``distributed.Client``: used as is

Every client gets :class:`chunks.worker_setup.WorkerSetup` on its workers: zarr's codec
threads limited to each worker's threads, and the caller's ``warm_up`` modules run once.
"""

from __future__ import annotations

import contextlib
import logging
import os

logger = logging.getLogger(__name__)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def connect(scheduler=None, num_workers: int | None = None, warm_up: tuple[str, ...] = ()):
    """Yield a ``distributed.Client`` (or None for ``"sync"``) and close what was opened here.

    ``warm_up``: modules whose ``warm_up()`` every worker runs once (compiled kernels loaded
    at cluster start, not inside a stage's first block).
    """
    if scheduler == "sync":
        yield None
        return
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        _set_up_workers(scheduler, warm_up)
        yield scheduler
        return
    workers = num_workers or default_workers()
    if scheduler in (None, "local", "threads"):
        processes = scheduler != "threads"
        try:
            cluster = LocalCluster(
                n_workers=workers if processes else 1,
                threads_per_worker=1 if processes else workers,
                processes=processes,
                dashboard_address=":0",  # any free port: two runs at once do not collide on 8787
                silence_logs=logging.ERROR,
            )
        except RuntimeError as exc:  # worker processes re-import the main module
            raise RuntimeError(
                f"cannot start a local dask cluster of worker processes ({exc}); code run from stdin or "
                "without `if __name__ == \"__main__\":` cannot start them: add that guard, or use "
                "scheduler='threads'"
            ) from exc
        client = Client(cluster)
        try:
            _set_up_workers(client, warm_up)
            yield client
        finally:
            client.close()
            cluster.close()
        return
    if not isinstance(scheduler, str) or "://" not in scheduler:
        raise ValueError(
            f"scheduler {scheduler!r} is not one of 'local', 'threads', 'sync' or a dask address like tcp://host:8786"
        )
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise ConnectionError(f"cannot reach dask scheduler at {scheduler}: {exc}") from None
    try:
        _set_up_workers(client, warm_up)
        yield client
    finally:
        client.close()


def _set_up_workers(client, warm_up: tuple[str, ...]) -> None:
    """Register :class:`chunks.worker_setup.WorkerSetup` (workers joining later run it too), once per client
    and warm-up module: every stage connects with the run's client, and a registration waits for all workers."""
    from .worker_setup import WorkerSetup

    registered = client.__dict__.get("_connecto_worker_setup")  # the warm-up modules, once set up
    missing = tuple(m for m in warm_up if m not in (registered or ()))
    if registered is not None and not missing:
        return
    client.register_plugin(WorkerSetup(missing), name="connecto-worker-setup-" + "-".join(missing))
    client.__dict__["_connecto_worker_setup"] = (registered or set()) | set(missing)
