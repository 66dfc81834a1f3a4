"""A Neuroglancer state snippet to check an edit: the fragment volume with the segments selected.

The volume holds fragment ids, so each segment is shown through an ``equivalences`` group
(its fragments) and selected by its smallest fragment id.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import numpy as np

MAX_EQUIVALENCE_FRAGMENTS = 20_000  # beyond this a group would make the link unwieldy


def segmentation_layer(fragments_by_segment: dict[int, np.ndarray], source: str, name: str = "segments") -> dict:
    """A segmentation layer over ``source`` that shows each segment's fragments as one object."""
    selected, equivalences = [], []
    for fragments in fragments_by_segment.values():
        fragments = np.sort(np.asarray(fragments, dtype=np.uint64))
        if not len(fragments):
            continue
        selected.append(str(int(fragments[0])))
        if 1 < len(fragments) <= MAX_EQUIVALENCE_FRAGMENTS:
            equivalences.append([str(int(f)) for f in fragments])
    layer = {"type": "segmentation", "source": source, "name": name, "segments": selected}
    if equivalences:
        layer["equivalences"] = equivalences
    return layer


def state(fragments_by_segment: dict[int, np.ndarray], source: str, name: str = "segments") -> dict:
    return {"layers": [segmentation_layer(fragments_by_segment, source, name)], "layout": "xy-3d"}


def link(state_json: dict, prefix: str) -> str:
    """``prefix#!<state>`` for a Neuroglancer host of the user's choosing."""
    return f"{prefix.rstrip('/')}/#!{quote(json.dumps(state_json, separators=(',', ':')))}"
