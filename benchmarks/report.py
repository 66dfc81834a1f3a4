"""Shared by the benchmarks: the machine's CPU name, and the measured figures written as JSON."""

from __future__ import annotations

import json
import os
import platform


def write_json(path: str | None, figures: dict) -> None:
    """Write ``figures`` to ``path`` (no-op when None), creating its directory."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(figures, f, indent=1, default=str)
    print(f"wrote {path}")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
