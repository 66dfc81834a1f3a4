"""A small real run directory (raw, fragments, agglomeration, segmentation, synapses, run.json) for the
precomputed export and viewer tests: synthetic neurons -> affinities -> ``segment`` (sync) -> synapses
at fragment contacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from chunks import create_volume, open_volume
from connecto.segment.affinities import affinities_from_labels
from connecto.segment.blockwise import SegmentParams, segment
from connecto.synthetic import generate_arrays

from .test_connectome_run import OFFSET, contact_synapses  # synapse positions in the world frame (OFFSET)

VOXEL = (8, 8, 8)
SHAPE = (32, 96, 96)
THRESHOLD = 0.5


def make_small_run(root: Path) -> Path:
    root = Path(root)
    arrays = generate_arrays(SHAPE, VOXEL, seed=2, density=0.9, axon_radius_nm=40.0, dendrite_radius_nm=80.0,
                             n_bodies=0, n_synapses=1, max_posts=1)
    raw = create_volume(str(root / "raw.zarr"), SHAPE, np.uint8, VOXEL, offset=OFFSET, chunk_shape=(32, 32, 32))
    raw.write(raw.roi, arrays.raw)
    affs = create_volume(str(root / "affinities"), SHAPE, np.uint8, VOXEL, offset=OFFSET, chunk_shape=(32, 32, 32),
                         num_channels=3)
    affs.write(affs.roi, affinities_from_labels(arrays.labels, noise=0.1, seed=3))
    run = root / "run"
    segment(affs, str(run), thresholds=[THRESHOLD], params=SegmentParams(min_size=20), block_shape=(32, 64, 64),
            scheduler="sync", progress=False)
    (run / "run.json").write_text(json.dumps({"config": {"threshold": THRESHOLD, "min_size": 20,
                                                         "raw": str(root / "raw.zarr")}, "stages": {}}))
    fragments = open_volume(str(run / "fragments")).read()
    segments = open_volume(str(run / "segmentation")).read()
    contact_synapses(fragments, segments, n=40).to_parquet(run / "synapses.parquet", index=False)
    return run
