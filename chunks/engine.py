"""``run_blockwise``: run a stage over a Roi block by block, resumably, on dask.distributed.

A stage is a plain function ``stage_fn(block, inputs) -> outputs``: ``inputs`` maps each
input name to the array read at ``block.read_roi``; it returns a dict mapping output names
to arrays covering ``block.write_roi`` (or None when it writes elsewhere itself, e.g. a
table per block). The engine reads, calls, writes, and records a done-marker last, so a
killed run leaves every marked block valid and the rerun does only the rest.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .blocks import Block, plan_blocks
from .cluster import connect
from .coordinate import Coordinate
from .errors import BlockFailedError
from .integrity import canonical_url, check_input, chunk_checksums, damaged_chunks, describe, grid_region, volume_identity
from .markers import DoneMarkers
from .roi import Roi
from .volume import Volume

logger = logging.getLogger(__name__)

StageFn = Callable[[Block, dict], "dict[str, np.ndarray] | None"]

# set when a run in this process is interrupted (Ctrl-C): long stages running on this process's
# threads poll it and stop within a fraction of a second (a thread cannot be killed)
_STOP = threading.Event()


def stop_requested() -> bool:
    """True once the blockwise run in this process was interrupted; long stage functions may poll it
    and raise (``training.stream_forward`` does every few planes)."""
    return _STOP.is_set()


@dataclass(frozen=True)
class BlockwiseResult:
    task: str
    total_blocks: int
    skipped_blocks: int
    processed_blocks: int
    seconds: float
    failures: list = field(default_factory=list)


def process_block(stage_fn: StageFn, block: Block, inputs: Mapping[str, Volume],
                  outputs: Mapping[str, Volume], markers: DoneMarkers) -> tuple[str, dict]:
    """Read, compute, write and mark one block; returns its name and marker. Runs on a worker."""
    arrays = {name: vol.read(block.read_roi) for name, vol in inputs.items()}
    result = stage_fn(block, arrays)
    written = {}
    if result is not None:
        unknown = set(result) - set(outputs)
        if unknown:
            raise KeyError(f"stage returned outputs {sorted(unknown)} that are not among {sorted(outputs)}")
        for name, data in result.items():
            outputs[name].write(block.write_roi, data)
            written[name] = chunk_checksums(outputs[name], block.write_roi, data)
    return block.name, markers.mark(block, written)


def run_blockwise(
    stage_fn: StageFn,
    total_roi: Roi,
    block_shape,
    *,
    task: str,
    outputs: Mapping[str, Volume] | None = None,
    inputs: Mapping[str, Volume] | None = None,
    context=(0, 0, 0),
    markers_at: str | None = None,
    params: dict | None = None,
    scheduler=None,
    num_workers: int | None = None,
    retries: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> BlockwiseResult:
    """Run ``stage_fn`` over ``total_roi`` in blocks of ``block_shape``.

    Parameters
    ----------
    stage_fn : the stage, ``stage_fn(block, {name: array}) -> {name: array} | None``.
    total_roi : Roi to cover, in voxels.
    block_shape : write shape of a block; a multiple of every output's chunk shape
        (blocks at the volume edge may be smaller).
    task : name of the stage run; done-markers live under ``<output>/done/<task>/``.
    outputs, inputs : volumes by name. Inputs are read at the block's Roi grown by ``context``,
        clipped to the inputs' common Roi.
    markers_at : where to keep done-markers when the stage has no output volume.
    params : stage parameters, recorded in the outputs' metadata and in the run plan.
    scheduler : None/"local" (LocalCluster of processes), "threads", "sync", a dask
        address ``tcp://host:port``, or a ``distributed.Client``.
    retries : how often a failed block is retried before it is reported.
    overwrite : forget earlier done-markers and recompute every block.

    Raises
    ------
    BlockFailedError : when blocks still fail after their retries; finished blocks are kept
        and a rerun resumes from them. Its ``failures`` list holds (Roi, traceback text).
    IncompatibleVolumeError : when earlier done-markers belong to other settings or inputs
        (the message names what changed); ``overwrite`` starts again.
    IncompleteVolumeError, MissingChunkError : when an input written by another run is
        unfinished or has lost chunk files this run would read (the message names the file
        and the command that recomputes it).
    """
    outputs = dict(outputs or {})
    inputs = dict(inputs or {})
    block_shape = Coordinate(block_shape)
    context = Coordinate(context)
    _check_volumes(total_roi, block_shape, outputs)
    _check_memory(inputs, outputs, scheduler)
    if markers_at is None:
        if not outputs:
            raise ValueError("a stage without output volumes needs markers_at= (a directory for done-markers)")
        markers_at = next(iter(outputs.values())).url.original or next(iter(outputs.values())).url.path
    markers = DoneMarkers(markers_at, task)

    read_bounds = None
    for vol in inputs.values():
        read_bounds = vol.roi if read_bounds is None else read_bounds.intersect(vol.roi)
    blocks = plan_blocks(total_roi, block_shape, context, read_bounds)
    _check_alignment(blocks, outputs)
    plan, extra = _plan(task, total_roi, block_shape, context, params, inputs, outputs, markers, read_bounds)
    markers.check_plan(plan, overwrite, extra)
    done = markers.done()
    _recompute_lost_blocks(task, blocks, done, outputs, markers)
    todo = [b for b in blocks if b.name not in done]
    skipped = len(blocks) - len(todo)
    if skipped:
        logger.info("%s: %d of %d blocks already done, %d to go", task, skipped, len(blocks), len(todo))
    if todo:
        markers.set_incomplete()

    start = time.perf_counter()
    failures, records = _execute(stage_fn, todo, inputs, outputs, markers, scheduler, num_workers, retries,
                                 progress, task, len(blocks), skipped)
    seconds = time.perf_counter() - start
    result = BlockwiseResult(task, len(blocks), skipped, len(todo) - len(failures), seconds, failures)
    if not failures and (todo or markers.completion() is None):
        # markers of blocks that ran elsewhere are read back in one batch (cheaper than a result per block)
        unread = {b.name for b in blocks} - set(records)
        markers.set_complete({**markers.records(unread), **records})
    if failures:
        first_roi, first_tb = failures[0]
        raise BlockFailedError(
            f"{len(failures)} of {len(blocks)} blocks of {task!r} failed after {retries} retries "
            f"(finished blocks are kept; rerun to resume). First failure, block {first_roi}:\n{first_tb}",
            failures,
        )
    for vol in outputs.values():
        runs = dict(vol.attrs.get("connecto_runs", {}))
        runs[task] = {**plan, "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        vol.update_attrs({"connecto_runs": runs})
    return result


def _plan(task, total_roi, block_shape, context, params, inputs, outputs, markers, read_bounds) -> tuple[dict, dict]:
    """The run's plan (what a resume must match: Roi, blocks, parameters, the identity of every input) and
    what is recorded beside it; refuses inputs that are unfinished or lost chunk files this run reads."""
    written_here = {canonical_url(vol.url) for vol in outputs.values()}
    region = grid_region(total_roi, context, read_bounds)
    for name, vol in inputs.items():
        if canonical_url(vol.url) not in written_here:  # an input this run also writes has no fixed content
            check_input(name, vol, region.intersect(vol.roi))
    plan = {
        "task": task,
        "total_roi": [list(total_roi.offset), list(total_roi.shape)],
        "block_shape": list(block_shape),
        "context": list(context),
        "params": _jsonable(params or {}),
        "inputs": {name: volume_identity(vol, content=canonical_url(vol.url) not in written_here)
                   for name, vol in inputs.items()},
    }
    markers_url = canonical_url(markers.base)
    extra = {"outputs": {name: canonical_url(vol.url) for name, vol in outputs.items()},
             "markers_of": next((n for n, v in outputs.items() if canonical_url(v.url) == markers_url), None),
             "command": _command_line(), "cwd": os.getcwd()}
    return plan, extra


def _recompute_lost_blocks(task, blocks, done: set, outputs, markers) -> None:
    """Forget finished blocks whose output chunk files are gone or damaged (one listing per output), so
    they run again."""
    finished = {b.name: b.write_roi for b in blocks if b.name in done}
    lost: dict[str, list[str]] = {}
    for name, vol in outputs.items():
        for block_name, chunks in damaged_chunks(vol, name, finished, markers).items():
            lost.setdefault(block_name, []).extend(describe(vol, {block_name: chunks}))
    if lost:
        first = min(lost)
        logger.warning("%s: %d finished block(s) have missing or damaged chunk files (block %s: %s); computing "
                       "them again", task, len(lost), first, lost[first][0])
        markers.forget(lost)
        done.difference_update(lost)


def _command_line() -> str | None:
    """The ``connecto …`` command running now, to name in messages about repairing its outputs."""
    argv = sys.argv or [""]
    program = argv[0].replace("\\", "/")
    if program.rsplit("/", 1)[-1] in ("connecto", "connecto.exe") or program.endswith("connecto/cli.py"):
        # what repairs an output resumes it: without --overwrite, which would compute everything again
        return shlex.join(["connecto", *(a for a in argv[1:] if a != "--overwrite")])
    return None


def _execute(stage_fn, todo, inputs, outputs, markers, scheduler, num_workers, retries, progress,
             task, total, skipped) -> tuple[list, dict]:
    from tqdm.auto import tqdm

    failures: list = []
    records: dict = {}
    _STOP.clear()
    bar = tqdm(total=total, initial=skipped, unit="block", desc=task, disable=not progress, dynamic_ncols=True)
    try:
        with connect(scheduler, num_workers) as client:
            _submit_and_wait(stage_fn, todo, inputs, outputs, markers, client, retries, task, bar, failures,
                             records)
    except KeyboardInterrupt:
        logger.warning("%s interrupted; finished blocks are kept, rerun to resume", task)
        raise
    finally:
        bar.close()
    return failures, records


def _submit_and_wait(stage_fn, todo, inputs, outputs, markers, client, retries, task, bar, failures,
                     records) -> None:
    if client is None:
        for block in todo:
            failures.extend(_run_with_retries(stage_fn, block, inputs, outputs, markers, retries, records))
            bar.update(1)
        return
    from distributed import as_completed

    futures = {}
    for block in todo:
        future = client.submit(process_block, stage_fn, block, inputs, outputs, markers,
                               key=f"{task}-{block.name}-{time.time_ns()}", retries=retries, pure=False)
        futures[future] = block
    try:
        for future in as_completed(futures):
            if future.status == "error":
                exc = future.exception()
                tb = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
                failures.append((futures[future].write_roi, tb))
            future.release()
            bar.update(1)
    except KeyboardInterrupt:
        _STOP.set()  # before the cluster closes: stages on its threads stop at their next check
        try:
            client.cancel(list(futures))  # blocks not started yet never start
        except Exception as exc:  # noqa: BLE001 - a closing client; the interrupt is what matters
            logger.debug("could not cancel the remaining blocks: %s", exc)
        raise


def _run_with_retries(stage_fn, block, inputs, outputs, markers, retries, records) -> list:
    for attempt in range(retries + 1):
        try:
            name, record = process_block(stage_fn, block, inputs, outputs, markers)
            records[name] = record
            return []
        except Exception:  # noqa: BLE001 - reported with its traceback below
            if attempt == retries:
                return [(block.write_roi, traceback.format_exc())]
    return []


def _check_volumes(total_roi, block_shape, outputs) -> None:
    if any(b <= 0 for b in block_shape):
        raise ValueError(f"block shape {block_shape} must be > 0 in every axis")
    for name, vol in outputs.items():
        if not vol.writable:
            raise PermissionError(f"output {name!r} ({vol.url}) is opened read-only")
        if not vol.roi.contains(total_roi):
            raise ValueError(f"total Roi {total_roi} reaches outside output {name!r} ({vol.url}, Roi {vol.roi})")


def _check_alignment(blocks, outputs) -> None:
    """Every block's write Roi must start on each output's chunk grid, so no two blocks write one chunk."""
    for name, vol in outputs.items():
        for block in blocks:
            try:
                vol.check_write_roi(block.write_roi)
            except ValueError as exc:
                raise type(exc)(f"block shape does not fit output {name!r}: {exc}") from None


def _check_memory(inputs, outputs, scheduler) -> None:
    uses_memory = any(v.format == "memory" for v in [*inputs.values(), *outputs.values()])
    in_process = scheduler in ("threads", "sync") or not isinstance(scheduler, (str, type(None)))  # or a Client
    if uses_memory and not in_process:
        raise ValueError("memory:// volumes live in this process only; use scheduler='threads' or 'sync'")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
