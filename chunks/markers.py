"""Done-markers: one small file per finished block, stored next to the output.

They live at ``<output>/done/<task>/<z>_<y>_<x>`` (local disk or the same bucket), so
workers on other machines see them; ``<output>/done/<task>/run.json`` holds the plan
they belong to, and a rerun with a different plan is refused instead of mixing blocks.
"""

from __future__ import annotations

import json

from .blocks import Block
from .errors import IncompatibleVolumeError
from .fs import filesystem
from .urls import StorageUrl, parse_url

RUN_FILE = "run.json"


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
        if not fs.exists(self.dir):
            return set()
        names = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(self.dir, detail=False)}
        names.discard(RUN_FILE)
        return names

    def mark(self, block: Block) -> None:
        record = {"write_roi": [list(block.write_roi.begin), list(block.write_roi.shape)]}
        with self._fs().open(f"{self.dir}/{block.name}", "w") as f:
            json.dump(record, f)

    def clear(self) -> None:
        fs = self._fs()
        if fs.exists(self.dir):
            fs.rm(self.dir, recursive=True)

    def check_plan(self, plan: dict, overwrite: bool) -> None:
        """Record ``plan``; refuse (or with ``overwrite`` clear) markers of a different plan."""
        fs = self._fs()
        path = f"{self.dir}/{RUN_FILE}"
        if overwrite:
            self.clear()
        elif fs.exists(path):
            with fs.open(path, "r") as f:
                old = json.load(f)
            if old != plan:
                changed = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
                raise IncompatibleVolumeError(
                    f"task {self.task!r} in {self.base} was started with different settings "
                    f"({', '.join(changed)}); rerun with the same settings to resume, "
                    "or pass overwrite=True (--overwrite) to start again"
                )
        with fs.open(path, "w") as f:
            json.dump(plan, f, sort_keys=True)
