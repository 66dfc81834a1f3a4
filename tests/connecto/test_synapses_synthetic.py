"""Detection + evaluation on synthetic volumes with perfect (and noisy) predictions from the truth."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from chunks import create_volume
from connecto.synapses.detect import DetectParams, detect_synapses, detect_synapses_blockwise
from connecto.synapses.evaluate import evaluate_synapses
from connecto.synthetic import generate_arrays
from training.targets import synapse_targets

VOXEL = (8, 8, 8)


@pytest.fixture(scope="module")
def volume():
    vol = generate_arrays((48, 96, 96), VOXEL, seed=1, n_synapses=12)
    assert vol.tables["synapses"]["synapse_id"].nunique() >= 4
    return vol


def perfect_predictions(clefts: np.ndarray, labels: np.ndarray, truth: pd.DataFrame, reach: float = 4.0):
    """Cleft probability = clefts > 0; pre/post side = the true pre/post neuron's voxels within ``reach`` voxels
    of its cleft (each voxel belongs to its nearest cleft): the synapse model's training targets."""
    partners = truth[["synapse_id", "pre_id", "post_id"]].to_numpy(np.int64)
    target, _ = synapse_targets(labels, clefts, partners, VOXEL, side_nm=reach * VOXEL[0])
    return target[0], target[1:]


def test_perfect_predictions_give_partner_f1_above_0_9(volume):
    truth = volume.tables["synapses"]
    prob, sides = perfect_predictions(volume.clefts, volume.labels, truth)
    table = detect_synapses(prob, sides, volume.labels, voxel_size_nm=VOXEL)
    result = evaluate_synapses(table, truth, tolerance_nm=100)
    assert result["partners"]["f1"] >= 0.9, result
    assert result["clefts"]["f1"] >= 0.9, result


@pytest.mark.parametrize("noise, at_least", [(0.1, 0.9), (0.3, 0.0)])
def test_noisy_predictions_degrade_gracefully(volume, noise, at_least):
    truth = volume.tables["synapses"]
    prob, sides = perfect_predictions(volume.clefts, volume.labels, truth)
    rng = np.random.default_rng(0)
    noisy_prob = np.clip(ndimage.gaussian_filter(prob, 1.0) + rng.normal(0, noise, prob.shape), 0, 1)
    noisy_sides = np.clip(sides + rng.normal(0, noise, sides.shape), 0, 1).astype(np.float32)
    table = detect_synapses((noisy_prob * 255).astype(np.uint8), noisy_sides, volume.labels, voxel_size_nm=VOXEL)
    result = evaluate_synapses(table, truth, tolerance_nm=100)
    for metric in ("clefts", "partners"):
        assert at_least <= result[metric]["f1"] <= 1.0, result


def _memory_volume(name, array, channels=1, offset=(0, 0, 0)):
    shape = array.shape[-3:]
    vol = create_volume(f"memory://{name}", shape, array.dtype, VOXEL, offset=offset, chunk_shape=(16, 32, 32),
                        num_channels=channels, overwrite=True)
    vol.write(vol.roi, array)
    return vol


def test_blockwise_equals_single_block(volume, tmp_path):
    truth = volume.tables["synapses"]
    prob, sides = perfect_predictions(volume.clefts, volume.labels, truth)
    params = DetectParams(max_extent_nm=320)
    offset = (2, 0, 5)  # voxels: the tables are in world nm, ids count from the volume's first voxel
    single = detect_synapses(prob, sides, volume.labels, voxel_size_nm=VOXEL, params=params,
                             offset_nm=(16, 0, 40))
    vols = (_memory_volume("syn-prob", prob, offset=offset), _memory_volume("syn-sides", sides, 2, offset),
            _memory_volume("syn-frags", volume.labels, offset=offset))
    blockwise = detect_synapses_blockwise(*vols, str(tmp_path / "synapses"), params=params, block_shape=(16, 32, 32),
                                          scheduler="threads", num_workers=2, progress=False)
    assert len(list((tmp_path / "synapses").glob("synapses-*.parquet"))) == 3 * 3 * 3
    assert len(single) == len(truth)
    pd.testing.assert_frame_equal(blockwise, single)
    # a rerun resumes from the done-markers and gives the same table
    again = detect_synapses_blockwise(*vols, str(tmp_path / "synapses"), params=params, block_shape=(16, 32, 32),
                                      scheduler="threads", progress=False)
    pd.testing.assert_frame_equal(again, single)


def test_blockwise_empty_prediction_and_bad_inputs(volume, tmp_path):
    zeros = np.zeros(volume.labels.shape, np.float32)
    prob = _memory_volume("syn-empty", zeros)
    sides = _memory_volume("syn-empty-sides", np.zeros((2, *zeros.shape), np.float32), 2)
    frags = _memory_volume("syn-empty-frags", volume.labels)
    table = detect_synapses_blockwise(prob, sides, frags, str(tmp_path / "out"), scheduler="threads",
                                      block_shape=(16, 32, 32), progress=False)
    assert table.empty
    with pytest.raises(ValueError, match="have 1 channel\\(s\\); expected 2"):
        detect_synapses_blockwise(prob, prob, frags, str(tmp_path / "bad"), scheduler="threads")
    small = _memory_volume("syn-small-frags", volume.labels[:16])
    with pytest.raises(ValueError, match="must cover the cleft probability's Roi"):
        detect_synapses_blockwise(prob, sides, small, str(tmp_path / "bad"), scheduler="threads")


def test_blockwise_limit_clefts_wider_than_max_extent_are_cut(volume, tmp_path):
    """The documented limit: clefts here span up to 28 voxels; 5 voxels of context cut them at block faces."""
    truth = volume.tables["synapses"]
    prob, sides = perfect_predictions(volume.clefts, volume.labels, truth)
    params = DetectParams(max_extent_nm=40)
    single = detect_synapses(prob, sides, volume.labels, voxel_size_nm=VOXEL, params=params)
    vols = (_memory_volume("syn-cut-prob", prob), _memory_volume("syn-cut-sides", sides, 2),
            _memory_volume("syn-cut-frags", volume.labels))
    blockwise = detect_synapses_blockwise(*vols, str(tmp_path / "cut"), params=params, block_shape=(16, 32, 32),
                                          scheduler="threads", progress=False)
    assert not blockwise.reset_index(drop=True).equals(single)


def test_cleft_volume_labels_each_detected_cleft_with_its_id(volume, tmp_path):
    from connecto.synapses.detect import write_cleft_volume

    truth = volume.tables["synapses"]
    prob, sides = perfect_predictions(volume.clefts, volume.labels, truth)
    params = DetectParams(max_extent_nm=320, threshold=0.5, min_size=10)
    prediction = _memory_volume("syn-pred", np.concatenate([prob[None], sides]).astype(np.float32), 3)
    prediction.update_attrs({"channels": ["cleft", "pre_side", "post_side"]})
    frags = _memory_volume("syn-pred-frags", volume.labels)
    table = detect_synapses_blockwise(prediction, None, frags, str(tmp_path / "det"), params=params,
                                      block_shape=(16, 32, 32), scheduler="threads", progress=False)
    dropped = table["id"].iloc[0]
    subset = table[table["id"] != dropped]
    clefts = write_cleft_volume(prediction, subset, "memory://syn-clefts", params=params,
                                block_shape=(16, 32, 32), scheduler="threads", progress=False).read()
    kept = {int(i) for i in subset["id"]}
    assert {int(i) for i in np.unique(clefts)} - {0} == kept and int(dropped) not in kept  # only the given ones
    for row in subset.itertuples():
        point = tuple(round(getattr(row, f"cleft_{a}_nm") / 8) for a in "zyx")
        assert clefts[point] == row.id
    assert (prob[clefts > 0] >= 0.5).all()
    # the true clefts, relabelled: the same voxels as the truth's clefts of the kept synapses
    true_ids = {int(volume.clefts[tuple(round(getattr(r, f"cleft_{a}_nm") / 8) for a in "zyx")])
                for r in subset.itertuples()}
    assert np.array_equal(clefts > 0, np.isin(volume.clefts, list(true_ids)))
