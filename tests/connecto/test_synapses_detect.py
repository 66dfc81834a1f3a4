import numpy as np
import pandas as pd
import pytest

from chunks import Roi
from connecto.synapses.detect import DetectParams, detect_synapses, table_columns

SHAPE = (8, 10, 10)
SMALL = DetectParams(min_size=10)  # the hand-made cleft has 36 voxels, below the default min_size


def _polyadic():
    """Fragment 1 (x < 5) synapses onto 2 (x >= 5, y < 5) and 3 (x >= 5, y >= 5) across one cleft."""
    fragments = np.ones(SHAPE, np.uint64)
    fragments[:, :5, 5:] = 2
    fragments[:, 5:, 5:] = 3
    prob = np.zeros(SHAPE, np.uint8)
    prob[2:5, 2:8, 4:6] = 255
    sides = np.zeros((2, *SHAPE), np.float32)
    sides[0][:, :, 2:5] = fragments[:, :, 2:5] == 1
    sides[1][:, :, 5:8] = 1.0
    return prob, sides, fragments


def test_polyadic_synapse_exact():
    prob, sides, fragments = _polyadic()
    table = detect_synapses(prob, sides, fragments, voxel_size_nm=(40, 4, 4), offset_nm=(400, 0, 0),
                            params=DetectParams(dilation_nm=8, min_size=10))
    assert list(table.columns) == table_columns()
    assert table["pre_fragment"].tolist() == [1, 1] and table["post_fragment"].tolist() == [2, 3]
    # id: 1 + linear index of the lowest cleft voxel (2, 2, 4) in an (8, 10, 10) volume
    assert table["id"].tolist() == [225, 225] and table["id"].dtype == np.uint64
    assert table["size"].tolist() == [36, 36] and table["score"].tolist() == [1.0, 1.0]
    # nm = index * voxel size + offset; the cleft point is a cleft voxel, partner points lie in their fragment
    assert table["cleft_z_nm"].iloc[0] == 400 + 3 * 40
    assert (table["pre_x_nm"] < 5 * 4).all() and (table["post_x_nm"] >= 5 * 4).all()
    assert (table["post_y_nm"] < 20).tolist() == [True, False]


def test_weak_post_below_fraction_is_dropped():
    prob, sides, fragments = _polyadic()
    sides[1][:, 5:, 5:] = 0.1  # fragment 3 gets a tenth of fragment 2's post probability
    table = detect_synapses(prob, sides, fragments, params=DetectParams(post_fraction=0.3, min_size=10))
    assert table["post_fragment"].tolist() == [2]


def test_empty_prediction_gives_an_empty_table():
    _, sides, fragments = _polyadic()
    table = detect_synapses(np.zeros(SHAPE, np.float32), sides, fragments)
    assert table.empty and list(table.columns) == table_columns() and table["id"].dtype == np.uint64


def test_small_clefts_and_clefts_without_pre_are_dropped():
    prob, sides, fragments = _polyadic()
    assert detect_synapses(prob, sides, fragments, params=DetectParams(min_size=37)).empty
    assert detect_synapses(prob, np.zeros_like(sides), fragments, params=SMALL).empty


def test_owned_keeps_clefts_by_their_lowest_voxel():
    prob, sides, fragments = _polyadic()
    assert len(detect_synapses(prob, sides, fragments, params=SMALL, owned=Roi((2, 2, 4), (1, 1, 1)))) == 2
    assert detect_synapses(prob, sides, fragments, params=SMALL, owned=Roi((3, 0, 0), (5, 10, 10))).empty


def test_bad_shapes_are_named():
    prob, sides, fragments = _polyadic()
    with pytest.raises(ValueError, match=r"sides \(shape \(8, 10, 10\)\) must have shape \(2, \*\(8, 10, 10\)\)"):
        detect_synapses(prob, sides[0], fragments)
    with pytest.raises(ValueError, match="dtype int64; expected uint8"):
        detect_synapses(prob.astype(np.int64), sides, fragments)
    with pytest.raises(ValueError, match=r"DetectParams: threshold 0.0 must lie in \(0, 1\]"):
        DetectParams(threshold=0)


def test_table_round_trips_parquet(tmp_path):
    prob, sides, fragments = _polyadic()
    table = detect_synapses(prob, sides, fragments, params=SMALL)
    assert len(table) == 2
    table.to_parquet(tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), table)
