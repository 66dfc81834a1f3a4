"""The ``proofread`` click group: each edit prints new segment ids and a Neuroglancer state."""

import json
import os

import pytest
from click.testing import CliRunner

from proofreading.cli import EXIT_CONFLICT, proofread

from .synthetic import fragment_id, make_run

W = 6
A, B, C = 101, 107, 113


@pytest.fixture
def run(tmp_path):
    return str(make_run(tmp_path / "run", height=6, width=W, stripe=2))


def invoke(*args, author="ada"):
    return CliRunner().invoke(proofread, [*map(str, args)], env={"PROOFREADING_AUTHOR": author})


def test_merge_split_undo_redo_log_show(run):
    first = invoke("merge", run, A, B, "--threshold", "0.5")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0] == "version 1: merge by ada (base version 0)"
    assert lines[1] == f"removed segments: {A} {B}"
    merged = int(lines[2].split()[2])
    assert lines[2] == f"new segments: {merged} (24 fragments)"
    state = json.loads(lines[3].removeprefix("neuroglancer state: "))
    layer = state["layers"][0]
    assert layer["type"] == "segmentation" and layer["segments"] == [str(A)]
    assert layer["source"].startswith("zarr://file://") and layer["source"].endswith("/run/fragments")
    assert len(layer["equivalences"][0]) == 24

    split = invoke("split", run, "--source-fragment", fragment_id(0, 0, W), "--sink-fragment", fragment_id(5, 0, W),
                   "--json")
    assert split.exit_code == 0, split.output
    record = json.loads(split.output)
    assert (record["version"], record["operation"], record["removed_segments"]) == (2, "split", [merged])
    assert len(record["neuroglancer"]["layers"][0]["segments"]) == 2

    assert invoke("undo", run).output.startswith("version 3: undo of edit 2 by ada (base version 2)\n")
    assert json.loads(invoke("undo", run, "--json").output)["target"] == 1
    redo = invoke("redo", run, "--version", 1, "--ng-prefix", "http://localhost:8080")
    assert redo.exit_code == 0 and "neuroglancer link: http://localhost:8080/#!%7B" in redo.output

    log = invoke("log", run)
    assert log.exit_code == 0
    rows = log.output.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert "undo 2" in rows[2] and "redo 1" in rows[4]
    as_json = json.loads(invoke("log", run, "--json", "--limit", "2").output)
    assert [e["version"] for e in as_json] == [4, 5]

    show = invoke("show", run, "--fragment", fragment_id(0, 4, W), "--version", 0, "--json")
    assert json.loads(show.output)["segment"] == C and len(json.loads(show.output)["fragments"]) == 12
    assert invoke("show", run, C).output.startswith(f"segment {C} at version 5: 12 fragments: {C} ")


def test_errors_print_one_line_and_conflicts_exit_3(run):
    first = invoke("merge", run, A, 999, "--threshold", "0.5")
    assert first.exit_code == 1
    assert "Error: segment 999 does not exist at version 0" in first.output
    assert invoke("merge", run, A, B).exit_code == 0
    conflict = invoke("split", run, "--segment", A, "--source-fragment", fragment_id(0, 0, W), "--sink-fragment",
                      fragment_id(5, 0, W), "--base-version", 0, author="bob")
    assert conflict.exit_code == EXIT_CONFLICT
    assert f"segment {A} was changed by edit 1 (merge by ada)" in conflict.output
    split = invoke("split", run, "--source-fragment", fragment_id(0, 0, W), "--sink-fragment", fragment_id(0, 4, W))
    assert split.exit_code == 1 and "a split acts within one segment" in split.output
    nothing = invoke("redo", run, author="carol")
    assert nothing.exit_code == 1 and "nothing to redo for author 'carol'" in nothing.output
    usage = invoke("show", run)
    assert usage.exit_code == 2 and "give either SEGMENT (an id or a voxel point Z,Y,X) or --fragment" in usage.output
    fresh = invoke("log", run + "-elsewhere")
    assert fresh.exit_code == 1 and "(--threshold)" in fresh.output
    assert not os.path.exists(run + "-elsewhere")  # a refused open leaves no files behind
