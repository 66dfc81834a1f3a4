"""FIB-25 ground truth -> affinities plus noise -> the pipeline recovers the labels (VOI sum < 0.1).

A correctness test independent of any learned model, on ``../shared/data`` (skipped without it).
"""

from pathlib import Path

import numpy as np
import pytest

from connecto.segment.affinities import affinities_from_labels
from connecto.segment.blockwise import SegmentParams, segment_array
from connecto.segment.evaluate import evaluate
from connecto.segment.relabel import relabel

DATA = Path(__file__).parents[2].parent / "shared" / "data" / "fib25" / "training_sample2.h5"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not DATA.exists(), reason=f"needs the FIB-25 sample at {DATA} (../shared/data)"),
]


@pytest.fixture(scope="module")
def ground_truth():
    import h5py

    with h5py.File(DATA, "r") as f:
        return f["labels"][:160]  # the GT covers z < 160


@pytest.fixture(scope="module")
def affinities(ground_truth):
    return affinities_from_labels(ground_truth, noise=0.2, seed=0)


@pytest.mark.parametrize("method", ["mean", "mutex"])
def test_labels_are_recovered_from_noisy_affinities(ground_truth, affinities, method):
    fragments, history = segment_array(affinities, SegmentParams(method=method))
    result = evaluate(relabel(fragments, history.mapping(0.5)), ground_truth)
    assert result.voi_sum < 0.1, result.summary()
    assert result.arand < 0.01, result.summary()
    assert np.unique(fragments).size > 10 * result.num_gt_segments  # the fragments were over-segmented
