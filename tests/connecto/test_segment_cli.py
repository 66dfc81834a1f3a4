"""``connecto segment`` and ``connecto evaluate`` on a small synthetic volume."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from chunks import create_volume
from connecto.segment.affinities import affinities_from_labels
from connecto.segment.cli import evaluate, parse_thresholds, segment


@pytest.fixture
def volumes(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.kron(rng.permutation(8).reshape(2, 2, 2) + 1, np.ones((8, 16, 16), int)).astype(np.uint64)
    affs = create_volume(tmp_path / "affs", labels.shape, np.uint8, (8, 8, 8), chunk_shape=(8, 16, 16),
                         num_channels=3)
    affs.write(affs.roi, affinities_from_labels(labels, noise=0.2))
    np.save(tmp_path / "gt.npy", labels)
    return tmp_path


def test_segment_sweeps_thresholds_and_prints_a_table(volumes):
    out = volumes / "run"
    result = CliRunner().invoke(segment, [str(volumes / "affs"), str(out), "--thresholds", "0.3:0.7:0.2",
                                          "--gt", str(volumes / "gt.npy"), "--scheduler", "sync", "--no-progress",
                                          "--json", str(volumes / "sweep.json")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "VOI split" in lines[1] and len(lines) == 5
    assert [row["threshold"] for row in json.loads((volumes / "sweep.json").read_text())["results"]] == [0.3, 0.5, 0.7]
    assert not (out / "segmentation").exists()


def test_segment_then_evaluate_writes_json(volumes):
    out = volumes / "run"
    result = CliRunner().invoke(segment, [str(volumes / "affs"), str(out), "--threshold", "0.5", "--block-shape",
                                          "8,16,16", "--scheduler", "sync", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "segmentation ->" in result.output
    report = volumes / "eval.json"
    result = CliRunner().invoke(evaluate, [str(out / "segmentation"), str(volumes / "gt.npy"), "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("VOI split 0.0000  merge 0.0000")
    values = json.loads(report.read_text())
    assert values["voi_sum"] == 0.0 and values["num_gt_segments"] == 8 and values["num_segments"] == 8


def test_evaluate_lists_the_worst_objects(volumes):
    merged = np.ones((16, 32, 32), np.uint64)
    np.save(volumes / "one.npy", merged)
    result = CliRunner().invoke(evaluate, [str(volumes / "one.npy"), str(volumes / "gt.npy"), "--top", "1",
                                           "--json", "-"])
    assert result.exit_code == 0, result.output
    assert "merge: segment 1 (16384 voxels) covers 8 GT objects, VOI merge 3.0000" in result.output
    assert json.loads(result.output[result.output.index("{"):])["voi_merge"] == pytest.approx(3.0)


def test_threshold_and_thresholds_exclude_each_other(volumes):
    result = CliRunner().invoke(segment, [str(volumes / "affs"), str(volumes / "run"), "--threshold", "0.5",
                                          "--thresholds", "0.1:0.2:0.1"])
    assert result.exit_code == 2 and "not both" in result.output


@pytest.mark.parametrize("text, expected", [("0.5", [0.5]), ("0.3,0.6", [0.3, 0.6]),
                                            ("0.1:0.9:0.2", [0.1, 0.3, 0.5, 0.7, 0.9])])
def test_threshold_lists(text, expected):
    assert parse_thresholds(text) == expected


def test_a_bad_threshold_list_says_what_is_expected():
    import click

    with pytest.raises(click.BadParameter, match="START:STOP:STEP"):
        parse_thresholds("0.9:0.1:0.1")


def test_segment_takes_the_threshold_the_model_recommends_and_runs_on_threads(volumes, monkeypatch):
    from chunks.cluster import connect
    from connecto.segment import blockwise

    schedulers = []
    monkeypatch.setattr(blockwise, "connect", lambda scheduler, workers, warm_up=(): schedulers.append(scheduler) or
                        connect("sync", workers))
    create_volume(volumes / "affs", (16, 32, 32), np.uint8, (8, 8, 8), chunk_shape=(8, 16, 16),
                  num_channels=3).update_attrs({"threshold": 0.3})  # as `connecto predict` records it
    result = CliRunner().invoke(segment, [str(volumes / "affs"), str(volumes / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "threshold 0.3000: 8 segments" in result.output
    assert schedulers == ["threads"]
    result = CliRunner().invoke(segment, [str(volumes / "affs"), str(volumes / "run2"), "--threshold", "0.6",
                                          "--scheduler", "sync", "--no-progress"])
    assert "threshold 0.6000: 8 segments" in result.output and schedulers == ["threads", "sync"]


def test_segment_without_a_recommendation_uses_the_default_threshold(volumes):
    result = CliRunner().invoke(segment, [str(volumes / "affs"), str(volumes / "run"), "--scheduler", "sync",
                                          "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "threshold 0.5000: 8 segments" in result.output


def test_a_bad_recommended_threshold_in_the_affinities_is_named(volumes):
    create_volume(volumes / "affs", (16, 32, 32), np.uint8, (8, 8, 8), chunk_shape=(8, 16, 16),
                  num_channels=3).update_attrs({"threshold": 3})
    result = CliRunner().invoke(segment, [str(volumes / "affs"), str(volumes / "run"), "--scheduler", "sync",
                                          "--no-progress"])
    assert result.exit_code != 0
    assert "recommended threshold 3 ('threshold') must be a number in [0, 1]" in str(result.exception)
    assert "affs" in str(result.exception)


def test_segment_help_names_its_defaults():
    text = CliRunner().invoke(segment, ["--help"], terminal_width=200).output
    assert "default: 'threads', a local cluster of threads in this process" in " ".join(text.split())
    assert "[default: 0.0001]" in text and "[default: mean]" in text
