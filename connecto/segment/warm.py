"""Load the segment stage's compiled kernels in this process (a worker's warm-up hook).

numba loads each cached kernel, and its own machinery, on the first call in a process:
about 0.8 s on the 2-core development machine, paid inside a stage's first block by every
worker otherwise. :func:`chunks.cluster.connect` runs :func:`warm_up` once per worker when
a segmentation connects (see :mod:`chunks.worker_setup`).
"""

from __future__ import annotations

import numpy as np


def warm_up() -> None:
    """Run every compiled kernel of the segment stage once on a tiny volume."""
    from .blockwise import SegmentParams, segment_array
    from .unionfind import flatten, join_scores, union_pairs

    affs = np.full((3, 6, 6, 6), 230, np.uint8)
    affs[:, :, :, 3] = 20  # two regions across a wall: fragments, absorption, a region graph edge, merges
    segment_array(affs, SegmentParams(fragment_absorb=50))
    parent = np.arange(3, dtype=np.int64)
    union_pairs(parent, np.array([0]), np.array([1]))
    flatten(parent)
    join_scores(3, np.array([0]), np.array([1]), np.array([0.5]), np.array([0]), np.array([1]))
