"""Clefts on anisotropic EM: objects, metrics on hand-built masks, the 2.5D network, the sanity statistics."""

import numpy as np
import pandas as pd
import pytest

from connecto.synapses.cleft_metrics import cremi_distances, evaluate_clefts, match_objects
from connecto.synapses.clefts import cleft_objects, objects_3d, predict_clefts, profiles, synapse_table
from connecto.synapses.sanity import cleft_sides_share, partner_sides_share

VOXEL = (50.0, 4.6, 4.6)


def _truth_and_prediction():
    """Section 0: true profiles A, B, C; predicted: one overlapping A, two pieces of B, one far from all."""
    truth = np.zeros((2, 40, 60), np.uint8)
    truth[0, 2:6, 2:12] = 1  # A
    truth[0, 20:24, 2:20] = 1  # B
    truth[0, 30:34, 40:50] = 1  # C: missed
    pred = np.zeros_like(truth)
    pred[0, 3:7, 4:14] = 1  # overlaps A
    pred[0, 20:24, 2:8] = 1  # B, first piece
    pred[0, 20:24, 12:20] = 1  # B, second piece
    pred[0, 10:14, 40:50] = 1  # nothing there
    return truth, pred


def test_profile_matching_is_one_to_one():
    truth, pred = _truth_and_prediction()
    result = match_objects(profiles(pred), profiles(truth))
    assert (result["matched"], result["predicted"], result["true"]) == (2, 4, 3)
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_profiles_link_into_3d_objects_only_across_adjacent_sections():
    mask = np.zeros((4, 20, 20), np.uint8)
    mask[0, 2:5, 2:5] = 1
    mask[1, 5:8, 5:8] = 1  # touches section 0's profile diagonally: one 26-connected object
    mask[3, 2:5, 2:5] = 1  # two sections further: another object
    assert int(profiles(mask).max()) == 3
    assert int(objects_3d(mask).max()) == 2
    scores = evaluate_clefts(mask, mask, VOXEL)
    assert scores["profiles_2d"]["f1"] == 1.0 and scores["objects_3d"]["true"] == 2


def test_cremi_distances_are_in_nm_with_the_anisotropic_voxel():
    truth = np.zeros((3, 10, 20), np.uint8)
    truth[1, 5, 5] = 1
    pred = np.zeros_like(truth)
    pred[1, 5, 15] = 1  # 10 pixels away in x: 46 nm
    pred[2, 5, 5] = 1  # one section away: 50 nm
    d = cremi_distances(pred, truth, VOXEL, tolerance_nm=48.0)
    assert d["false_positive_distance_mean_nm"] == pytest.approx((46.0 + 50.0) / 2)
    assert d["false_negative_distance_mean_nm"] == pytest.approx(46.0)
    assert d["false_positive_count_beyond_tolerance"] == 1
    assert cremi_distances(truth, truth, VOXEL)["false_negative_distance_mean_nm"] == 0.0


def test_cleft_objects_filter_small_profiles_and_the_table_is_in_nm():
    probability = np.zeros((3, 40, 40), np.float32)
    probability[1:3, 10:20, 10:30] = 0.9  # 200 px per section: 4232 nm^2
    probability[0, 30:33, 30:33] = 0.8  # 9 px: 190 nm^2, dropped
    objects = cleft_objects(probability, VOXEL, threshold=0.5, min_area_nm2=2000.0)
    assert objects.dtype == np.uint64 and int(objects.max()) == 1 and objects[0].max() == 0
    table = synapse_table(objects, probability, VOXEL, offset_nm=(0.0, 0.0, 100.0))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["z_nm"], row["size"], row["sections"]) == (75.0, 400, 2)
    assert row["y_nm"] == pytest.approx(14.5 * 4.6) and row["x_nm"] == pytest.approx(19.5 * 4.6 + 100.0)
    assert row["score"] == pytest.approx(0.9)
    assert len(synapse_table(np.zeros_like(objects), probability, VOXEL)) == 0


def test_section_unet_sees_exactly_its_neighbouring_sections():
    import torch

    from training.config import ModelConfig
    from training.unet2d import build_network

    config = ModelConfig(network="unet2d", z_context=1, widths=(4, 8), downsample=((1, 2, 2),), outputs=("clefts",))
    model = build_network(config).eval()
    x = torch.rand(1, 1, 5, 32, 32)
    changed = x.clone()
    changed[0, 0, 0] += 1.0  # alter section 0 only
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (1, 1, 5, 32, 32)
    differs = [(a[0, 0, z] - b[0, 0, z]).abs().max().item() > 0 for z in range(5)]
    assert differs == [True, True, False, False, False]
    # tiled prediction equals the whole-section forward (same padding, enough margin)
    raw = (np.random.default_rng(0).random((5, 64, 64)) * 255).astype(np.uint8)
    whole = predict_clefts(model, raw, tile=64, margin=0)
    tiled = predict_clefts(model, raw, tile=32, margin=16, z_chunk=2)
    assert np.abs(whole - tiled).max() < 1e-4


def test_a_unet2d_needs_z_pooling_of_one():
    from training.config import ModelConfig
    from training.unet2d import build_network

    with pytest.raises(ValueError, match="z pooling factors of 1"):
        build_network(ModelConfig(network="unet2d", downsample=((2, 2, 2), (1, 2, 2))))


def test_sides_share_tells_clefts_between_cells_from_blobs_inside_one():
    segments = np.zeros((1, 60, 60), np.uint64)
    segments[0, :, :29] = 1
    segments[0, :, 31:] = 2  # a membrane at x = 29..30
    objects = np.zeros((1, 60, 60), np.uint64)
    objects[0, 10:20, 27:33] = 1  # on the membrane, between cells 1 and 2
    objects[0, 40:46, 5:12] = 2  # inside cell 1
    share = cleft_sides_share(objects, segments, VOXEL, ring_nm=30.0)
    assert (share["clefts"], share["distinct_sides"], share["share"]) == (2, 1, 0.5)
    table = pd.DataFrame({"id": [1, 1, 2], "pre_segment": [5, 5, 7], "post_segment": [5, 6, 7]})
    assert partner_sides_share(table)["share"] == 0.5
