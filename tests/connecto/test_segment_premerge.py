"""Fewer, larger fragments: in-block agglomeration of the watershed fragments (``fragment_merge``)."""

import numpy as np
import pytest

from chunks import create_volume
from connecto.segment.affinities import affinities_from_labels
from connecto.segment.blockwise import SegmentParams, _block_params, segment
from connecto.segment.evaluate import evaluate
from connecto.segment.fragments import components, link_mask
from connecto.segment.premerge import merge_in_block

from .test_segment_blockwise import voronoi_labels


def test_fragments_join_along_strong_contacts_only():
    local = np.array([[[1, 1, 2, 2, 3, 4]]], np.uint32)
    affs = np.zeros((3, 1, 1, 6), np.uint8)
    affs[2] = [0, 255, 240, 255, 100, 250]  # contacts 1-2: 240, 2-3: 100, 3-4: 250 (x affinity at the + voxel)
    merged = merge_in_block(local, affs, np.zeros(affs.shape, bool), max_score=0.1)
    assert merged.tolist() == [[[1, 1, 1, 1, 2, 2]]]
    assert merge_in_block(local, affs, np.zeros(affs.shape, bool), max_score=0.0) is local


def test_fragment_merge_gives_fewer_fragments_and_the_same_accuracy(tmp_path):
    labels = voronoi_labels()
    affs = create_volume(tmp_path / "affs", labels.shape, np.uint8, (8, 8, 8), chunk_shape=(16, 16, 16),
                         num_channels=3)
    data = affinities_from_labels(labels, noise=0.25, seed=3)
    affs.write(affs.roi, data)
    watershed, _ = components(link_mask(data))
    runs = {}
    for merge in (0.0, 0.2):
        runs[merge] = segment(affs, str(tmp_path / str(merge)), block_shape=(16, 32, 32), scheduler="sync",
                              progress=False, params=SegmentParams(fragment_merge=merge))
    few, many = runs[0.2].history.fragment_ids.size, runs[0.0].history.fragment_ids.size
    assert few < many * 0.6 and many >= watershed.max()  # measured: 1336 of 2576; blockwise pieces >= watershed
    a, b = runs[0.0].segmentation.read(), runs[0.2].segmentation.read()
    assert evaluate(b, a, ignore_gt_labels=()).voi_sum <= 0.05  # measured: 0.0
    assert evaluate(b, labels).voi_sum < 0.2


def test_the_option_off_keeps_the_recorded_block_parameters():
    assert "fragment_merge" not in _block_params(SegmentParams())
    assert "agglomeration" not in _block_params(SegmentParams(agglomeration="hierarchical"))
    assert _block_params(SegmentParams(fragment_merge=0.1))["fragment_merge"] == 0.1
    with pytest.raises(ValueError, match=r"fragment_merge 1.5 must be in \[0, 1\)"):
        SegmentParams(fragment_merge=1.5)
