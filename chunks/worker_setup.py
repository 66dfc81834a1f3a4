"""What every dask worker does once, when a client of connecto connects to it.

- **Codec threads = the worker's threads.** zarr decodes and encodes chunks in a thread
  pool of its own, ``min(32, cores + 4)`` threads by default, whatever dask's
  ``threads_per_worker`` says. Two one-thread workers on two cores then run up to twelve
  codec threads between them: measured on a 128x512x512 segment run, the region-graph
  blocks took 1.8x longer with two workers busy than with one, and two workers were only
  1.5x faster than one. Limited to the worker's thread count (the worker's share of the
  machine), they were 1.9x faster. Reading from object storage keeps its concurrency: that
  is zarr's asyncio ``async.concurrency``, not this pool.
- **Warm-up hooks**: modules named by the caller whose ``warm_up()`` loads compiled
  kernels (numba) once per worker process, at cluster start rather than inside the first
  block of a stage (about a second per process).

Registered by :func:`chunks.cluster.connect` on every client it opens or is given.
"""

from __future__ import annotations

import importlib
import logging

from distributed.diagnostics.plugin import WorkerPlugin

logger = logging.getLogger(__name__)


def limit_codec_threads(threads: int) -> bool:
    """Make zarr's codec pool ``threads`` wide in this process; False if the pool already runs (kept)."""
    import zarr
    import zarr.core.sync as zarr_sync

    zarr.config.set({"threading.max_workers": max(1, int(threads))})
    return getattr(zarr_sync, "_executor", None) is None


class WorkerSetup(WorkerPlugin):
    """The plugin: codec threads, then each warm-up module's ``warm_up()`` (see the module docstring)."""

    name = "connecto-worker-setup"

    def __init__(self, warm_up: tuple[str, ...] = ()):
        self.warm_up = tuple(warm_up)

    def setup(self, worker) -> None:
        if not limit_codec_threads(worker.state.nthreads):
            logger.info("worker %s: zarr's codec pool already runs; its width is kept", worker.address)
        for module in self.warm_up:
            importlib.import_module(module).warm_up()
