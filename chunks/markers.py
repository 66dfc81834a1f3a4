"""Done-markers: one small file per finished block, stored next to the output.

They live at ``<output>/done/<task>/<z>_<y>_<x>`` (local disk or the same bucket), so
workers on other machines see them. A marker is written last and records a crc32 of
every chunk its block wrote (``{"outputs": {name: {chunk key: crc32}}}``), which
``connecto verify`` checks against the data.

Beside the markers:

- ``run.json``: the plan they belong to (Roi, block shape, context, parameters and the
  identity of every input volume) plus what a resume does not depend on (the outputs'
  URLs, the command that ran it). A rerun with a different plan is refused instead of
  mixing blocks, naming what changed.
- ``complete.json``: written when every block of the plan is done, with a digest of all
  their checksums: a downstream stage reads it as the content token of this output, and
  an output without it is unfinished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

from .blocks import Block
from .errors import IncompatibleVolumeError
from .fs import filesystem
from .urls import StorageUrl, canonical_url, parse_url, relocated

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
COMPLETE_FILE = "complete.json"
FORMAT = 2  # run.json of markers that record checksums and input identities
# recorded in run.json, but a resume does not depend on them
NOT_COMPARED = ("outputs", "markers_of", "command", "cwd", "at", "format")
IDENTITY_KEYS = ("url", "shape", "dtype", "voxel_size_nm", "offset", "chunk_shape", "channels", "content")


class DoneMarkers:
    def __init__(self, location: str | StorageUrl, task: str):
        self.base = location if isinstance(location, StorageUrl) else parse_url(location)
        self.task = task
        self.dir = self.base.join("done", task)

    def __reduce__(self):
        return (DoneMarkers, (self.base, self.task))

    def _fs(self):
        return filesystem(self.base)

    def done(self) -> set[str]:
        """Names of finished blocks (one listing, not one request per block)."""
        fs = self._fs()
        fs.invalidate_cache(self.dir)
        if not fs.exists(self.dir):
            return set()
        names = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(self.dir, detail=False)}
        return {n for n in names if not n.endswith((".json", ".tmp"))}

    def mark(self, block: Block, outputs: dict | None = None) -> dict:
        """Record ``block`` as done, with ``{output name: {chunk key: crc32}}`` of what it wrote."""
        record = {"write_roi": [list(block.write_roi.begin), list(block.write_roi.shape)], "outputs": outputs or {}}
        with self._fs().open(f"{self.dir}/{block.name}", "w") as f:
            json.dump(record, f)
        return record

    def stamps(self) -> dict[str, int] | None:
        """``{block name: modification time in ns}`` of the markers on local disk (one listing); None
        elsewhere. A chunk file modified after its block's marker was written is suspect."""
        if self.base.protocol != "file":
            return None  # an object is replaced whole, never left truncated: listings are enough there
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return {}
        return {e.name: e.stat().st_mtime_ns for e in entries if not e.name.endswith((".json", ".tmp"))}

    def restamp(self, names) -> None:
        """Mark the markers of ``names`` as newer than their chunks again (their chunks were verified)."""
        if self.base.protocol == "file":
            for name in names:
                try:
                    os.utime(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass

    def records(self, names) -> dict[str, dict]:
        """The markers of ``names`` (one batched read); an unreadable marker reads as ``{}``."""
        names = sorted(names)
        if not names:
            return {}
        paths = [f"{self.dir}/{name}" for name in names]
        raw = self._fs().cat(paths, on_error="return")
        by_name = {key.rstrip("/").rsplit("/", 1)[-1]: value for key, value in raw.items()}
        out = {}
        for name in names:
            data = by_name.get(name)
            try:
                out[name] = json.loads(data) if isinstance(data, (bytes, str)) else {}
            except ValueError:
                out[name] = {}
        return out

    def forget(self, names) -> None:
        """Delete the markers of ``names`` (their blocks run again) and the completion record."""
        fs = self._fs()
        self.set_incomplete()
        paths = [f"{self.dir}/{name}" for name in names]
        if paths:
            fs.rm(paths)

    def clear(self) -> None:
        fs = self._fs()
        if fs.exists(self.dir):
            fs.rm(self.dir, recursive=True)

    # --- the plan and its completion ---------------------------------------------
    def plan(self) -> dict | None:
        """run.json, or None when no run was started here."""
        return self._read(RUN_FILE)

    def completion(self) -> dict | None:
        """complete.json (``{"blocks": n, "digest": ...}``), or None while the run is unfinished."""
        return self._read(COMPLETE_FILE)

    def _read(self, name: str) -> dict | None:
        fs = self._fs()
        path = f"{self.dir}/{name}"
        try:
            with fs.open(path, "r") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def set_incomplete(self) -> None:
        fs = self._fs()
        path = f"{self.dir}/{COMPLETE_FILE}"
        if fs.exists(path):
            fs.rm(path)

    def set_complete(self, records: dict[str, dict]) -> dict:
        """Write complete.json: the number of blocks and a digest of every block's checksums."""
        value = {"blocks": len(records), "digest": digest(records)}
        with self._fs().open(f"{self.dir}/{COMPLETE_FILE}", "w") as f:
            json.dump(value, f, sort_keys=True)
        return value

    def check_plan(self, plan: dict, overwrite: bool, extra: dict | None = None) -> None:
        """Record ``plan`` (and ``extra``, which is not compared); refuse markers of a different plan,
        naming what changed, or with ``overwrite`` clear them."""
        fs = self._fs()
        path = f"{self.dir}/{RUN_FILE}"
        if overwrite:
            self.clear()
        else:
            old = self.plan()
            if old is not None:
                self._refuse_changes(old, plan)
        with fs.open(path, "w") as f:
            json.dump({**plan, **(extra or {}), "at": canonical_url(self.base), "format": FORMAT}, f, sort_keys=True)

    def _refuse_changes(self, recorded: dict, plan: dict) -> None:
        old = {k: v for k, v in recorded.items() if k not in NOT_COMPARED}
        new = dict(plan)
        if isinstance(old.get("inputs"), dict):
            # a run directory moved or copied with its inputs: they are where they were relative to it
            at, now = canonical_url(self.base), new.get("inputs") or {}
            for name, value in list(old["inputs"].items()):
                url = now.get(name, {}).get("url")
                if url and relocated(value.get("url", ""), recorded.get("at"), at) == url:
                    old["inputs"][name] = {**value, "url": url}
        if "inputs" not in old:  # started by a version that did not record its inputs
            new.pop("inputs", None)
            logger.warning("task %r in %s was started by an older version that did not record its inputs; "
                           "they are recorded from now on", self.task, self.base)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if not changed:
            return
        settings = [k for k in changed if k not in ("inputs", "params")]
        if "params" in changed:
            before, after = old.get("params") or {}, new.get("params") or {}
            settings += [f"params.{k}" for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)] \
                if isinstance(before, dict) and isinstance(after, dict) else ["params"]
        what = []
        if settings:
            what.append(f"different settings ({', '.join(settings)})")
        if "inputs" in changed:
            what.append(describe_input_change(old.get("inputs") or {}, new.get("inputs") or {}))
        raise IncompatibleVolumeError(
            f"task {self.task!r} in {self.base} was started with {' and '.join(what)}; rerun with the same "
            "settings and inputs to resume, or pass overwrite=True (--overwrite) to start again"
        )


def describe_input_change(old: dict, new: dict) -> str:
    """What changed between two ``{input name: identity}`` records, in a few words.

    >>> describe_input_change({"raw": {"url": "/a.zarr", "content": "1"}}, {"raw": {"url": "/b.zarr", "content": "1"}})
    "another input 'raw' (url /a.zarr, now /b.zarr)"
    """
    parts = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            parts.append(f"no input {name!r} (now {new[name].get('url')})")
            continue
        if name not in new:
            parts.append(f"an input {name!r} ({old[name].get('url')}) that is not given now")
            continue
        diffs = [k for k in IDENTITY_KEYS if old[name].get(k) != new[name].get(k)]
        if diffs == ["content"]:
            parts.append(f"input {name!r} ({new[name].get('url')}) before its content changed "
                         f"(content token {old[name].get('content')}, now {new[name].get('content')})")
        elif diffs:
            shown = [k for k in diffs if k != "content"]
            parts.append(f"another input {name!r} (" + ", ".join(
                f"{k} {_show(old[name].get(k))}, now {_show(new[name].get(k))}" for k in shown) + ")")
    return " and ".join(parts) or "other inputs"


def _show(value) -> str:
    return "(" + ", ".join(str(v) for v in value) + ")" if isinstance(value, list) else str(value)


def digest(records: dict[str, dict]) -> str:
    """A short hash of every block's recorded checksums: it changes when any written chunk does."""
    items = sorted((name, record.get("outputs", {})) for name, record in records.items())
    return hashlib.blake2b(json.dumps(items, sort_keys=True).encode(), digest_size=10).hexdigest()
