"""Fixtures shared by the segmentation tests: a small Voronoi volume and its noisy affinities on disk.

A test module that means other ``labels`` or ``affinities`` defines its own fixture of that name
(``test_segment_fib25.py`` does).
"""

import numpy as np
import pytest

from chunks import create_volume
from connecto.segment.affinities import affinities_from_labels

from .test_segment_blockwise import voronoi_labels


@pytest.fixture(scope="module")
def labels():
    return voronoi_labels()


@pytest.fixture(scope="module")
def affinities(labels, tmp_path_factory):
    path = tmp_path_factory.mktemp("affs") / "affs"
    vol = create_volume(path, labels.shape, np.uint8, (8, 8, 8), chunk_shape=(16, 16, 16), num_channels=3)
    vol.write(vol.roi, affinities_from_labels(labels, noise=0.25, seed=3))
    return vol
