"""Integrity of blockwise outputs: what a stage wrote, what its inputs were, what is missing.

- Every block's done-marker records a crc32 of each chunk it wrote (:func:`chunk_checksums`).
- Every run's plan records the identity of its inputs (:func:`volume_identity`): URL,
  shape, dtype, voxel size, offset, chunks, channels and a content token. The token of a
  volume the engine wrote is the digest of its finished tasks' checksums (one small read
  per task); of any other volume, a hash of its chunk listing (names, sizes, modification
  stamps); never a read of the data (``memory://`` volumes, which have no files, excepted).
- Zarr volumes written here hold a file for every chunk, so a chunk file missing inside a
  finished block is damage; so is (on local disk) a chunk file modified after its block's
  marker that no longer reads back with its crc32 (truncated, overwritten). Both are found
  from one listing of the chunks and one of the markers, reading only the suspects: the
  stage that wrote them recomputes the block on its next run (:func:`damaged_chunks`); a
  stage that reads them refuses, naming the file (:func:`check_input`).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass

import numpy as np

from .blocks import Block, plan_blocks
from .coordinate import Coordinate
from .errors import CorruptChunkError, IncompleteVolumeError, MissingChunkError
from .fs import filesystem, list_files
from .markers import DoneMarkers
from .roi import Roi
from .urls import canonical_url
from .volume import Volume, open_volume


def crc32(array: np.ndarray) -> str:
    """crc32 (8 hex digits) of an array's bytes in C order and native byte order."""
    array = np.ascontiguousarray(array)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return f"{zlib.crc32(array.view(np.uint8).reshape(-1)) & 0xFFFFFFFF:08x}"


def chunk_checksums(vol: Volume, roi: Roi, data: np.ndarray) -> dict[str, str]:
    """``{chunk key: crc32}`` of ``data`` (as written to ``roi`` of ``vol``), one entry per chunk."""
    data = np.asarray(data)
    if data.dtype != vol.dtype:
        data = data.astype(vol.dtype)  # as Volume.write stored it
    channel = (slice(None),) if vol.num_channels > 1 else ()
    return {vol.chunk_key(index): crc32(data[(*channel, *chunk_roi.to_slices(relative_to=roi.begin))])
            for index, chunk_roi in vol.chunk_rois(roi)}


# --- what wrote a volume ---------------------------------------------------------------

@dataclass(frozen=True)
class WrittenBy:
    """A finished or unfinished engine run whose done-markers live in a volume's directory."""

    markers: DoneMarkers
    plan: dict
    completion: dict | None

    @property
    def task(self) -> str:
        return self.markers.task

    @property
    def output(self) -> str:
        """The name the volume had among the run's outputs."""
        return self.plan["markers_of"]

    def blocks(self) -> list[Block]:
        offset, shape = self.plan["total_roi"]
        return plan_blocks(Roi(offset, shape), self.plan["block_shape"])

    def repair_hint(self) -> str:
        return repair_hint(self.plan, self.task)


def repair_hint(plan: dict, task: str) -> str:
    """How to rerun the stage of ``plan``: its command (and where it ran, if not here), else its task name."""
    command, cwd = plan.get("command"), plan.get("cwd")
    if command:
        return f"rerun `{command}`" + (f" in {cwd}" if cwd and cwd != os.getcwd() else "")
    return f"rerun the stage that wrote it (task {task!r}) with the same settings"


def written_by(vol: Volume) -> list[WrittenBy]:
    """The engine runs that wrote ``vol`` (their markers are in its ``done/``), oldest format excepted."""
    fs = filesystem(vol.url)
    done_dir = vol.url.join("done")
    fs.invalidate_cache(done_dir)
    try:
        entries = fs.ls(done_dir, detail=True)
    except FileNotFoundError:
        return []
    out = []
    for entry in sorted(entries, key=lambda e: e["name"]):
        if entry.get("type") != "directory":
            continue
        markers = DoneMarkers(vol.url, entry["name"].rstrip("/").rsplit("/", 1)[-1])
        plan = markers.plan()
        if plan is None or "format" not in plan or not plan.get("markers_of"):
            continue  # markers of a stage without this volume as output, or of an older version: no checksums
        out.append(WrittenBy(markers, plan, markers.completion()))
    return out


def content_token(vol: Volume, runs: list[WrittenBy] | None = None) -> str:
    """A short string that changes when the content of ``vol`` changes, without reading its data."""
    runs = written_by(vol) if runs is None else runs
    if runs and all(r.completion for r in runs):
        parts = sorted((r.task, r.completion.get("digest")) for r in runs)
        return "blocks:" + _hash(parts)
    if vol.format == "memory":
        return "data:" + crc32(vol.read())
    files = vol.list_chunks()
    if files is None:
        files = list_files(vol.url)
    return "files:" + _hash(sorted(files.items()))


def volume_identity(vol: Volume, *, content: bool = True) -> dict:
    """What a run records about an input: where it is, what it is, and a content token."""
    identity = {
        "url": canonical_url(vol.url),
        "shape": [int(v) for v in vol.shape],
        "dtype": str(vol.dtype),
        "voxel_size_nm": [float(v) for v in vol.voxel_size_nm],
        "offset": [int(v) for v in vol.offset],
        "chunk_shape": [int(v) for v in vol.chunk_shape],
        "channels": int(vol.num_channels),
    }
    if content:
        identity["content"] = content_token(vol)
    return identity


def _hash(value) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


# --- missing and damaged chunk files ---------------------------------------------------

MISSING, DAMAGED = "missing", "damaged"


def damaged_chunks(vol: Volume, output: str, blocks: dict[str, Roi], markers: DoneMarkers,
                   files: dict | None = None) -> dict[str, dict[str, str]]:
    """``{block name: {chunk key: "missing" | "damaged"}}``: chunks that finished ``blocks`` (write Rois
    by name) wrote into ``vol`` as ``output`` and whose files are now missing or empty, or (on local
    disk) were modified after the block's marker and no longer hold what was written (unreadable, or
    another crc32). One listing of the chunks and one of the markers; reads only the markers of
    suspect blocks and the suspect chunks themselves."""
    files = vol.list_chunks() if files is None else files
    if files is None or not blocks:
        return {}
    stamps = markers.stamps()
    suspects: dict[str, dict[str, str]] = {}
    for name, roi in blocks.items():
        marked = stamps.get(name) if stamps else None
        for index in vol.chunk_indices(roi):
            key = vol.chunk_key(index)
            found = files.get(key)
            if found is None or found[0] == 0:
                suspects.setdefault(name, {})[key] = MISSING
            elif marked is not None and _modified_after(found[1], marked):
                suspects.setdefault(name, {})[key] = DAMAGED
    if not suspects:
        return {}
    records = markers.records(suspects)
    out, verified = {}, []
    for name, keys in suspects.items():
        written = records.get(name, {}).get("outputs", {}).get(output, {})
        rois = {vol.chunk_key(index): roi for index, roi in vol.chunk_rois(blocks[name])} \
            if DAMAGED in keys.values() else {}
        bad = {k: what for k, what in keys.items()
               if k in written and (what == MISSING or not _holds(vol, rois[k], written[k]))}
        if bad:
            out[name] = bad
        elif all(what == DAMAGED for what in keys.values()):
            verified.append(name)
    markers.restamp(verified)  # rewritten with the same bytes (or copied): not read again next time
    return out


def _modified_after(stamp: str, marked_ns: int) -> bool:
    try:
        return int(stamp) > marked_ns
    except (TypeError, ValueError):
        return False


def _holds(vol: Volume, roi: Roi, expected: str) -> bool:
    """Whether the chunk of ``vol`` at ``roi`` reads back with the crc32 ``expected``."""
    try:
        return crc32(vol.read(roi)) == expected
    except Exception:  # noqa: BLE001 - any read failure is damage
        return False


def describe(vol: Volume, lost: dict[str, dict[str, str]]) -> list[str]:
    """``["missing chunk file PATH", "damaged chunk file PATH", ...]`` of :func:`damaged_chunks`' answer."""
    return [f"{what} chunk file {vol.chunk_path(key)}"
            for name in sorted(lost) for key, what in sorted(lost[name].items())]


def check_input(name: str, vol: Volume, region: Roi) -> None:
    """Refuse to read ``vol`` as input ``name`` over ``region`` when the stage that wrote it did not
    finish, or when chunk files it wrote there are missing (they would read as the fill value) or
    were changed since (:func:`damaged_chunks`)."""
    runs = written_by(vol)
    for run in runs:
        blocks = run.blocks()
        if run.completion is None:
            done = len(run.markers.done() & {b.name for b in blocks})
            raise IncompleteVolumeError(
                f"input {name!r} ({vol.url}) is unfinished: task {run.task!r} has done {done} of {len(blocks)} "
                f"blocks; {run.repair_hint()} to finish it, then run this stage again"
            )
        needed = {b.name: b.write_roi.intersect(region) for b in blocks}
        needed = {k: roi for k, roi in needed.items() if not roi.empty()}
        lost = damaged_chunks(vol, run.output, needed, run.markers)
        if lost:
            problems = describe(vol, lost)
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            missing = problems[0].startswith(MISSING)
            error, verb = (MissingChunkError, "is") if missing else (CorruptChunkError, "has a")
            raise error(
                f"input {name!r} ({vol.url}) {verb} {problems[0]}{more} that task {run.task!r} wrote; "
                f"{run.repair_hint()} to recompute it, then run this stage again"
            )


def damage(vol: Volume) -> list[str]:
    """Why ``vol`` is not as its writers left it, from listings: unfinished runs, missing or damaged chunk files.
    Empty when intact (or when no engine run with checksums wrote it)."""
    problems = []
    for run in written_by(vol):
        if run.completion is None:
            problems.append(f"task {run.task!r} is unfinished")
            continue
        problems.extend(describe(vol, damaged_chunks(vol, run.output, {b.name: b.write_roi for b in run.blocks()},
                                                     run.markers)))
    return problems


def damage_at(url: str) -> list[str]:
    """:func:`damage` of the volume at ``url``, or that it is gone."""
    try:
        return damage(open_volume(url))
    except FileNotFoundError:
        return [f"{url} is gone"]


def grid_region(total_roi: Roi, context, bounds: Roi | None) -> Roi:
    """What a blockwise run over ``total_roi`` reads: grown by ``context``, clipped to ``bounds``."""
    region = total_roi.grow(Coordinate(context))
    return region if bounds is None else region.intersect(bounds)
