"""Shared by the benchmarks: write the measured figures as JSON."""

from __future__ import annotations

import json
import os


def write_json(path: str | None, figures: dict) -> None:
    """Write ``figures`` to ``path`` (no-op when None), creating its directory."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(figures, f, indent=1, default=str)
    print(f"wrote {path}")
