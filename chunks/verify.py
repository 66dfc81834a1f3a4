"""Verify what finished blocks wrote: re-read every chunk and compare it with its marker's crc32.

``verify(path)`` finds every engine run whose done-markers live under ``path`` (a volume,
or a run directory holding several), re-reads each chunk their finished blocks wrote and
reports, one :class:`Problem` per chunk, files that are missing, cannot be decoded or
hold other bytes than were written; and inputs whose identity changed since the run.
With ``repair=True`` the blocks with damaged chunks are forgotten (their markers
deleted), so rerunning the stage that wrote them recomputes exactly those blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .fs import filesystem
from .integrity import crc32, repair_hint, volume_identity
from .markers import RUN_FILE, DoneMarkers
from .roi import Roi
from .urls import StorageUrl, canonical_url, parse_url, relocated
from .volume import Volume, open_volume


@dataclass(frozen=True)
class Problem:
    """One damaged chunk (or changed input): where, what, and expected against found."""

    path: str
    what: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}: expected {self.expected}, found {self.found}"


@dataclass
class Report:
    runs: int = 0
    blocks: int = 0
    chunks: int = 0
    unverifiable_blocks: int = 0  # markers without checksums (written by an older version)
    notes: list[str] = field(default_factory=list)  # unfinished runs
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    def summary(self, where: str) -> str:
        checked = f"{self.chunks} chunks of {self.blocks} finished blocks in {self.runs} task run(s) under {where}"
        if self.unverifiable_blocks:
            checked += f" ({self.unverifiable_blocks} blocks without checksums, from an older version, not checked)"
        if not self.problems:
            return f"verified {checked}: no problems"
        return f"{len(self.problems)} problem(s) in {checked}"


def find_markers(url: StorageUrl) -> list[DoneMarkers]:
    """The done-marker directories (``<base>/done/<task>/run.json``) under ``url``; chunk trees are not walked."""
    if url.protocol == "file":
        found = []
        for dirpath, dirnames, filenames in os.walk(url.path):
            if os.path.basename(dirpath) == "done":
                found += [DoneMarkers(os.path.dirname(dirpath), task) for task in sorted(dirnames)
                          if os.path.exists(os.path.join(dirpath, task, RUN_FILE))]
                dirnames[:] = []
            elif "zarr.json" in filenames or "info" in filenames:  # a volume: only its markers
                dirnames[:] = [d for d in dirnames if d == "done"]
            else:
                dirnames.sort()
        return found
    fs = filesystem(url)
    paths = sorted(fs.glob(url.join("**", "done", "*", RUN_FILE)))
    prefix = url.path.split("://", 1)[0] + "://" if "://" in url.path else ""
    out = []
    for path in paths:
        parts = path.split("://", 1)[-1].rstrip("/").split("/")  # ... base / done / task / run.json
        location = prefix + "/".join(parts[:-3])
        out.append(DoneMarkers(StorageUrl(url.format, url.protocol, location, url.endpoint), parts[-2]))
    return out


def verify(path: str, repair: bool = False) -> Report:
    """Check every finished block under ``path`` (see the module docstring)."""
    url = parse_url(path)
    if not filesystem(url).exists(url.path):
        raise FileNotFoundError(f"nothing at {path}: expected a volume or a run directory")
    report = Report()
    for markers in find_markers(url):
        _verify_run(markers, report, repair)
    return report


def _verify_run(markers: DoneMarkers, report: Report, repair: bool) -> None:
    plan = markers.plan() or {}
    names = markers.done()
    report.runs += 1
    if markers.completion() is None:
        report.notes.append(f"task {markers.task!r} in {markers.base} is unfinished ({len(names)} blocks done): "
                            "rerun it to finish")
    outputs = _open_outputs(markers, plan, report)
    _check_inputs(markers, plan, report)
    damaged = set()
    for name, record in sorted(markers.records(names).items()):
        if "outputs" not in record:
            report.unverifiable_blocks += 1
            continue
        report.blocks += 1
        write_roi = Roi(*record["write_roi"])
        for output, checksums in record["outputs"].items():
            vol, files = outputs.get(output, (None, None))
            if vol is None:
                continue
            found = _check_block(vol, files, write_roi, checksums, report)
            if found:
                damaged.add(name)
    if repair and damaged:
        markers.forget(damaged)
        hint = repair_hint(plan, markers.task)
        report.repaired.append(f"forgot {len(damaged)} damaged block(s) of task {markers.task!r} in "
                               f"{markers.base}: {hint} to recompute them")


def _open_outputs(markers: DoneMarkers, plan: dict, report: Report) -> dict[str, tuple[Volume, dict | None]]:
    out = {}
    for name, url in (plan.get("outputs") or {}).items():
        # where the markers are now, if the run directory moved or was copied
        location = relocated(url, plan.get("at"), canonical_url(markers.base))
        try:
            vol = open_volume(location)
        except (FileNotFoundError, OSError, ValueError) as exc:
            report.problems.append(Problem(location, f"output {name!r} of task {markers.task!r}",
                                           "a volume", f"none ({exc})"))
            continue
        out[name] = (vol, vol.list_chunks())
    return out


def _check_block(vol: Volume, files: dict | None, write_roi: Roi, checksums: dict, report: Report) -> bool:
    """Compare the chunks of one block with their checksums; True when any is damaged."""
    chunks = {vol.chunk_key(index): roi for index, roi in vol.chunk_rois(write_roi)}
    try:
        block = vol.read(write_roi)
    except Exception:  # noqa: BLE001 - read chunk by chunk below, to name each damaged file
        block = None
    damaged = False
    channel = (slice(None),) if vol.num_channels > 1 else ()
    for key, expected in sorted(checksums.items()):
        report.chunks += 1
        path = vol.chunk_path(key)
        if key not in chunks:
            report.problems.append(Problem(path, "chunk outside its block", f"crc32 {expected}", "a chunk of another block"))
            damaged = True
            continue
        if files is not None and (key not in files or files[key][0] == 0):
            state = "no file" if key not in files else "an empty file"
            report.problems.append(Problem(path, "missing chunk file", f"crc32 {expected}", state))
            damaged = True
            continue
        try:
            roi = chunks[key]
            data = block[(*channel, *roi.to_slices(relative_to=write_roi.begin))] if block is not None \
                else vol.read(roi)
        except Exception as exc:  # noqa: BLE001 - a damaged chunk is reported, the others still checked
            reason = getattr(exc, "reason", "") or f"{type(exc).__name__}: {exc}"
            report.problems.append(Problem(path, "unreadable chunk file", f"crc32 {expected}", reason))
            damaged = True
            continue
        found = crc32(data)
        if found != expected:
            report.problems.append(Problem(path, "checksum mismatch", f"crc32 {expected}", f"crc32 {found}"))
            damaged = True
    return damaged


def _check_inputs(markers: DoneMarkers, plan: dict, report: Report) -> None:
    at = canonical_url(markers.base)
    written = {relocated(url, plan.get("at"), at) for url in (plan.get("outputs") or {}).values()}
    for name, recorded in (plan.get("inputs") or {}).items():
        where = recorded.get("url", "?")
        moved = relocated(where, plan.get("at"), canonical_url(markers.base))
        if moved != where and _exists(moved):
            where, recorded = moved, {**recorded, "url": moved}
        try:
            vol = open_volume(where)
        except (FileNotFoundError, OSError, ValueError):
            # gone (or in another process's memory): what it wrote is still checked
            report.notes.append(f"input {name!r} of task {markers.task!r} in {markers.base} ({where}) is not there "
                                "any more; not compared")
            continue
        current = volume_identity(vol, content="content" in recorded and canonical_url(vol.url) not in written)
        changed = [k for k in recorded if recorded.get(k) != current.get(k)]
        if changed:
            report.problems.append(Problem(
                where, f"input {name!r} of task {markers.task!r} in {markers.base} changed since it ran "
                       "(rerun the task with --overwrite)",
                ", ".join(f"{k} {recorded.get(k)}" for k in changed),
                ", ".join(f"{k} {current.get(k)}" for k in changed)))


def _exists(url: str) -> bool:
    try:
        open_volume(url)
    except (FileNotFoundError, OSError, ValueError):
        return False
    return True
