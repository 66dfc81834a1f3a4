import json

import numpy as np
import pandas as pd
import pytest

from connecto.synapses.evaluate import evaluate_synapses, match


def _table(rows, id_column="id"):
    cols = [id_column, "pre_id", "post_id", "cleft_z_nm", "cleft_y_nm", "cleft_x_nm"]
    table = pd.DataFrame(rows, columns=cols)
    for side in ("pre", "post"):
        for a in "zyx":
            table[f"{side}_{a}_nm"] = table[f"cleft_{a}_nm"]
    return table.astype({id_column: np.uint64, "pre_id": np.uint64, "post_id": np.uint64})


TRUTH = _table([(1, 10, 20, 0, 0, 0), (1, 10, 21, 0, 0, 100), (2, 30, 40, 1000, 0, 0)], "synapse_id")
PRED = _table([
    (7, 10, 20, 0, 0, 30),      # right pair, 30 nm away: true positive
    (7, 10, 22, 0, 0, 30),      # wrong post neuron: false positive
    (8, 30, 40, 1000, 0, 150),  # right pair, 150 nm away: a match only at 200 nm
    (9, 10, 20, 0, 0, 10),      # the same true pair again: only one of rows 0 and 3 matches
])


def test_exact_scores_at_100_nm():
    result = evaluate_synapses(PRED, TRUTH, tolerance_nm=100)
    assert result["partners"] == {"tp": 1, "fp": 3, "fn": 2, "n_pred": 4, "n_true": 3, "precision": 0.25,
                                  "recall": pytest.approx(1 / 3), "f1": pytest.approx(2 / 7)}
    # clefts: pred 7 at x=30 and 9 at x=10 both lie near true 1 (mean x=50); pred 8 is 150 nm from true 2
    assert result["clefts"] == {"tp": 1, "fp": 2, "fn": 1, "n_pred": 3, "n_true": 2,
                                "precision": pytest.approx(1 / 3), "recall": 0.5, "f1": pytest.approx(0.4)}
    assert json.loads(json.dumps(result)) == result


def test_exact_scores_at_200_nm():
    result = evaluate_synapses(PRED, TRUTH, tolerance_nm=200)
    assert (result["partners"]["tp"], result["partners"]["f1"]) == (2, pytest.approx(4 / 7))
    assert (result["clefts"]["tp"], result["clefts"]["f1"]) == (2, pytest.approx(0.8))


def test_perfect_and_empty():
    assert evaluate_synapses(TRUTH, TRUTH)["partners"]["f1"] == 1.0
    empty = PRED.iloc[:0]
    result = evaluate_synapses(empty, TRUTH)
    assert result["partners"] == {"tp": 0, "fp": 0, "fn": 3, "n_pred": 0, "n_true": 3, "precision": 0.0,
                                  "recall": 0.0, "f1": 0.0}
    assert evaluate_synapses(empty, TRUTH.iloc[:0])["clefts"]["f1"] == 1.0


def test_matching_is_optimal_not_greedy():
    # greedy nearest would pair p0-t0 (10 nm) and leave p1 unmatched; the assignment finds two matches
    pred = np.array([[0, 0, 10.0], [0, 0, -50.0]])
    true = np.array([[0, 0, 0.0], [0, 0, 100.0]])
    assert match(pred, true, 100.0) == [(0, 1), (1, 0)]


def test_truth_labels_give_the_predicted_neurons():
    labels = np.zeros((1, 1, 40), np.uint64)
    labels[..., :20], labels[..., 20:] = 10, 20
    pred = PRED.iloc[:1].drop(columns=["pre_id", "post_id"]).assign(pre_x_nm=8.0, post_x_nm=200.0)
    result = evaluate_synapses(pred, TRUTH, 100, truth_labels=labels, voxel_size_nm=(8, 8, 8))
    assert result["partners"]["tp"] == 1


def test_missing_neuron_columns_are_named():
    with pytest.raises(KeyError, match="none of pre_id/post_id, pre_segment/post_segment, pre_fragment"):
        evaluate_synapses(PRED.drop(columns=["pre_id", "post_id"]), TRUTH)


def test_segments_come_from_a_fragment_mapping():
    from connecto.synapses.evaluate import with_segments

    pred = PRED.iloc[:1].drop(columns=["pre_id", "post_id"]).assign(
        pre_fragment=np.uint64(101), post_fragment=np.uint64(201))
    mapping = pd.DataFrame({"fragment": np.array([101, 201], np.uint64), "segment": np.array([10, 20], np.uint64)})
    assert evaluate_synapses(pred, TRUTH)["partners"]["tp"] == 0
    mapped = with_segments(pred, mapping)
    assert mapped[["pre_segment", "post_segment"]].values.tolist() == [[10, 20]]
    assert evaluate_synapses(mapped, TRUTH)["partners"]["tp"] == 1
