"""VOI and adapted Rand error: exact hand cases, scikit-image agreement, blocks, errors."""

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error, variation_of_information

from chunks import Roi, create_volume
from connecto.segment.evaluate import contingency_table, evaluate, evaluate_table, merge_tables


def numbers(result):
    return {k: v for k, v in result.to_dict().items() if not isinstance(v, list)}


def test_perfect_match_up_to_renumbering():
    gt = np.array([[1, 1, 2, 2, 3]])
    result = evaluate(gt * 7 + 1, gt)
    assert (result.voi_split, result.voi_merge, result.arand) == (0.0, 0.0, 0.0)
    assert result.num_segments == 3 and result.num_voxels == 5


def test_a_merge_of_two_equal_objects_costs_one_bit():
    gt = np.array([[1, 1, 2, 2]])
    result = evaluate(np.ones_like(gt), gt)
    assert result.voi_split == 0.0 and result.voi_merge == pytest.approx(1.0)
    assert result.worst_merges == [{"seg_id": 1, "size": 4, "gt_objects": 2, "voi_merge": pytest.approx(1.0)}]
    assert result.worst_splits == []


def test_a_split_is_listed_with_its_pieces():
    gt = np.array([[5, 5, 5, 5, 6, 6]])
    seg = np.array([[1, 1, 2, 2, 3, 3]])
    result = evaluate(seg, gt)
    assert result.voi_merge == 0.0
    assert result.voi_split == pytest.approx(4 / 6)  # 4 of 6 voxels split in halves: 1 bit each
    assert result.worst_splits[0]["gt_id"] == 5 and result.worst_splits[0]["pieces"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scikit_image(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 12, size=(10, 20, 30))
    seg = gt // 3 + rng.integers(0, 3, size=gt.shape) * 10  # merges and splits
    result = evaluate(seg.astype(np.uint64), gt.astype(np.uint64))
    # skimage returns (H(seg|gt), H(gt|seg)) for (image0=gt, image1=seg), in bits
    split, merge = variation_of_information(gt, seg, ignore_labels=(0,))
    arand, precision, recall = adapted_rand_error(gt, seg, ignore_labels=(0,))
    assert result.voi_split == pytest.approx(split, abs=1e-10)
    assert result.voi_merge == pytest.approx(merge, abs=1e-10)
    assert result.arand == pytest.approx(arand, abs=1e-12)
    # skimage's code divides by the GT's pair count for what it calls precision (its docstring
    # says the test image's); we follow the docstring (SNEMI3D), so the two come swapped
    assert (result.rand_precision, result.rand_recall) == (pytest.approx(recall), pytest.approx(precision))
    assert result.num_voxels == int((gt != 0).sum())


def test_ignored_gt_labels_are_left_out_and_configurable():
    gt = np.array([[0, 0, 1, 1]])
    seg = np.array([[1, 2, 3, 3]])
    assert evaluate(seg, gt).num_voxels == 2
    assert evaluate(seg, gt).voi_split == 0.0
    everything = evaluate(seg, gt, ignore_gt_labels=())
    assert everything.num_voxels == 4 and everything.voi_split > 0


def test_block_tables_add_up_to_the_whole():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 5, size=(8, 8, 8))
    seg = rng.integers(0, 5, size=(8, 8, 8))
    whole = evaluate_table(contingency_table(seg, gt))
    parts = merge_tables([contingency_table(seg[:3], gt[:3]), contingency_table(seg[3:], gt[3:])])
    assert numbers(evaluate_table(parts)) == pytest.approx(numbers(whole))
    assert [row["gt_id"] for row in evaluate_table(parts).worst_splits] == \
        [row["gt_id"] for row in whole.worst_splits]


def test_volumes_are_read_block_by_block(tmp_path):
    rng = np.random.default_rng(4)
    gt = rng.integers(0, 9, size=(20, 12, 12)).astype(np.uint64)
    seg = (gt // 2).astype(np.uint64)
    for name, data in (("seg", seg), ("gt", gt)):
        create_volume(tmp_path / name, data.shape, data.dtype, (8, 8, 8), chunk_shape=(4, 4, 4)).write(
            Roi((0, 0, 0), data.shape), data)
    from_volumes = evaluate(str(tmp_path / "seg"), str(tmp_path / "gt"), block_shape=(3, 5, 7))
    assert numbers(from_volumes) == pytest.approx(numbers(evaluate(seg, gt)))
    part = evaluate(str(tmp_path / "seg"), str(tmp_path / "gt"), roi=Roi((0, 0, 0), (10, 12, 12)))
    assert numbers(part) == pytest.approx(numbers(evaluate(seg[:10], gt[:10])))


def test_different_shapes_are_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r"shape \(4, 4\).*shape \(4, 5\)"):
        evaluate(np.zeros((4, 4), int), np.zeros((4, 5), int))


def test_volumes_of_different_rois_name_the_way_out(tmp_path):
    create_volume(tmp_path / "a", (4, 4, 4), np.uint64, (1, 1, 1))
    create_volume(tmp_path / "b", (5, 4, 4), np.uint64, (1, 1, 1))
    with pytest.raises(ValueError, match="cover different regions.*roi="):
        evaluate(str(tmp_path / "a"), str(tmp_path / "b"))


def test_everything_ignored_gives_an_empty_result():
    result = evaluate(np.ones((2, 2), int), np.zeros((2, 2), int))
    assert result.num_voxels == 0 and result.voi_sum == 0.0 and result.worst_splits == []
