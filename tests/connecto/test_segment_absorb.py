"""Fewer, larger fragments without seams: small fragments join their strongest neighbour (``fragment_absorb``)."""

import numpy as np
import pytest

from chunks import create_volume
from connecto.segment.absorb import absorb, absorb_in_block
from connecto.segment.affinities import affinities_from_labels
from connecto.segment.blockwise import SegmentParams, _block_params, compute_fragments, segment, segment_array
from connecto.segment.evaluate import contingency_table, evaluate
from connecto.segment.fragments import background_mask, components, link_mask
from connecto.segment.relabel import relabel

from .test_segment_blockwise import voronoi_labels


@pytest.fixture(scope="module")
def noisy():
    """Voronoi cells and noisy affinities: the watershed leaves many tiny fragments."""
    labels = voronoi_labels()
    return labels, affinities_from_labels(labels, noise=0.25, seed=3)


@pytest.fixture
def noisy_volume(noisy, tmp_path):
    labels, data = noisy
    affs = create_volume(tmp_path / "affs", labels.shape, np.uint8, (8, 8, 8), chunk_shape=(16, 16, 16),
                         num_channels=3)
    affs.write(affs.roi, data)
    return affs


def test_a_small_fragment_joins_across_its_strongest_contact_and_two_rounds_join_chains():
    labels = np.array([[[1, 2, 3, 4, 4, 4, 5, 5, 5]]], np.uint32)
    affs = np.zeros((3, 1, 1, 9), np.uint8)
    # contacts (x affinity at the + voxel): 1-2: 200, 2-3: 100, 3-4: 150, 5-4: 10
    affs[2] = [0, 200, 100, 150, 255, 255, 10, 255, 255]
    one = absorb(labels, affs, 2, rounds=1)
    # 1 -> 2 (its only contact), 2 -> 1 (200 > 100), 3 -> 4 (150 > 100); 4 and 5 are not small
    assert one.tolist() == [[[1, 1, 2, 2, 2, 2, 3, 3, 3]]]
    # round 2: the set {1, 2} (2 voxels) is not below 2 voxels: it stays; with size 3 it joins 3 -> 4
    assert absorb(labels, affs, 2).tolist() == one.tolist()
    assert absorb(labels, affs, 3).tolist() == [[[1, 1, 1, 1, 1, 1, 2, 2, 2]]]
    assert absorb(labels, affs, 0) is labels


def test_a_block_leaves_alone_what_it_cannot_see_whole():
    # a line of 16 voxels whose right end is a cut face (the volume goes on there)
    labels = np.array([[[1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4]]], np.uint32)
    affs = np.full((3, 1, 1, 16), 255, np.uint8)
    affs[2, 0, 0, [6, 7, 13]] = [100, 90, 200]  # contacts 1-2: 100, 2-3: 90, 3-4: 200
    cut = ((False, False), (False, False), (False, True))
    inside = {"origin": (0, 0, 0), "volume_shape": (1, 1, 64)}
    # 4 touches the cut face: its size is unknown, so it does not move; 2 (complete) joins 1
    assert absorb_in_block(labels, affs, 4, cut, **inside).tolist() == [[[1] * 7 + [2] * 6 + [3] * 3]]
    # seen as a whole volume, 4 (3 voxels) would join 3
    assert absorb(labels, affs, 4).tolist() == [[[1] * 7 + [2] * 9]]
    # round 2: the set {1, 2} is small for size 8, but 3, a neighbour of 2, is near the cut face:
    # a pointer from 4 into 3 may be unknown, so the set does not move either
    assert absorb_in_block(labels, affs, 8, cut, **inside).tolist() == [[[1] * 7 + [2] * 6 + [3] * 3]]
    assert absorb(labels, affs, 8).tolist() == [[[1] * 16]]


def test_absorbing_cuts_the_fragments_tenfold_and_keeps_the_accuracy(noisy):
    labels, affs = noisy
    plain, _ = components(link_mask(affs), background_mask(affs))
    fewer = absorb(plain, affs, 200)
    assert fewer.max() * 10 < plain.max()  # measured: 1332 -> 56 fragments (60 cells)
    # joins across cell boundaries: hardly more than the watershed's own (measured: 0.186 -> 0.189)
    merge = evaluate(plain.astype(np.uint64), labels).voi_merge
    assert evaluate(fewer.astype(np.uint64), labels).voi_merge < merge + 0.01
    before = segment_array(affs, SegmentParams())
    after = segment_array(affs, SegmentParams(fragment_absorb=200))
    for t in (0.5, 0.7):
        a = relabel(before[0], before[1].mapping(t))
        b = relabel(after[0], after[1].mapping(t))
        assert evaluate(b, labels).voi_sum <= evaluate(a, labels).voi_sum + 0.05


def test_blocks_only_take_decisions_the_whole_volume_takes(noisy, noisy_volume, tmp_path):
    data, affs = noisy[1], noisy_volume
    params = SegmentParams(fragment_absorb=200)
    whole, _ = segment_array(data, params)
    pieces = compute_fragments(affs, str(tmp_path / "run"), params=params, block_shape=(16, 32, 32),
                               scheduler="sync", progress=False).read()
    # each piece written by a block lies inside one fragment of the whole-volume run: a block never joins
    # what the whole volume keeps apart, so the pieces' links can only rebuild whole-volume fragments
    table = contingency_table(pieces, whole, ignore_gt_labels=())
    assert table.groupby("seg")["gt"].nunique().max() == 1
    plain = compute_fragments(affs, str(tmp_path / "plain"), params=SegmentParams(), block_shape=(16, 32, 32),
                              scheduler="sync", progress=False).read()
    assert len(np.unique(pieces)) * 4 < len(np.unique(plain))  # measured: 168 against 2576 pieces


def test_a_blockwise_run_with_absorbing_is_close_to_the_whole_volume_one(noisy, noisy_volume, tmp_path):
    labels, affs = noisy[0], noisy_volume
    params = SegmentParams(fragment_absorb=200)
    blocks = segment(affs, str(tmp_path / "blocks"), thresholds=[0.5], block_shape=(16, 32, 32), scheduler="sync",
                     progress=False, params=params).segmentation.read()
    one = segment(affs, str(tmp_path / "one"), thresholds=[0.5], block_shape=labels.shape, scheduler="sync",
                  progress=False, params=params).segmentation.read()
    assert evaluate(blocks, one, ignore_gt_labels=()).voi_sum < 0.05
    assert evaluate(blocks, labels).voi_sum < 0.2


def test_the_option_is_recorded_only_when_on():
    assert "fragment_absorb" not in _block_params(SegmentParams())
    assert _block_params(SegmentParams(fragment_absorb=500))["fragment_absorb"] == 500
    with pytest.raises(ValueError, match=r"fragment_absorb -1 must be >= 0"):
        SegmentParams(fragment_absorb=-1)


def test_a_mistyped_config_value_or_key_is_refused_in_one_line(tmp_path):
    from connecto.reconstruct import load_reconstruct_config
    from training.schema import ConfigError

    path = tmp_path / "run.toml"
    for line, message in (("fragment_absorb = -5", r"fragment_absorb = -5: expected an integer >= 0"),
                          ("fragment_absorbb = 5", r"unknown key 'fragment_absorbb' \(did you mean 'fragment_absorb'\?\)")):
        path.write_text(f'raw = "x.zarr"\nrun_dir = "run"\ncheckpoint = "c.pt"\n{line}\n')
        with pytest.raises(ConfigError, match=message):
            load_reconstruct_config(str(path))
