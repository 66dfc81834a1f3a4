"""Edits by voxel point through ``connecto proofread``: version 0 from run.json, one error prefix."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from chunks import Roi, create_volume
from connecto.cli import cli
from proofreading.points import parse_point

from .synthetic import fragment_id, make_run, stripe_segment

H, W, STRIPE, CELL = 6, 6, 2, 4  # fragment (y, x) fills voxels [y*CELL, (y+1)*CELL) x [x*CELL, (x+1)*CELL)


@pytest.fixture
def run(tmp_path):
    path = make_run(tmp_path / "run", height=H, width=W, stripe=STRIPE)
    labels = np.zeros((2, H * CELL, W * CELL), np.uint64)
    for y in range(H):
        for x in range(W):
            labels[:, y * CELL:(y + 1) * CELL, x * CELL:(x + 1) * CELL] = fragment_id(y, x, W)
    labels[:, 0, 0] = 0  # one background voxel
    volume = create_volume(str(path / "fragments"), labels.shape, np.uint64, (40, 8, 8), chunk_shape=(2, 8, 8))
    volume.write(Roi((0, 0, 0), labels.shape), labels)
    (path / "run.json").write_text(json.dumps({"config": {"threshold": 0.5, "raw": str(tmp_path / "raw.zarr")}}))
    return str(path)


def point(y: int, x: int) -> str:
    """A voxel inside fragment (y, x), as Z,Y,X."""
    return f"1,{y * CELL + 1},{x * CELL + 2}"


def invoke(*args):
    return CliRunner().invoke(cli, ["proofread", *map(str, args)], env={"PROOFREADING_AUTHOR": "ada"})


def show(run, where, *extra):
    result = invoke("show", run, where, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_merge_by_two_points_without_threshold_joins_them(run):
    a, b = point(0, 0), point(5, 4)  # stripes 0 and 2
    assert show(run, a)["segment"] != show(run, b)["segment"]
    merged = invoke("merge", run, a, b)
    assert merged.exit_code == 0, merged.output
    assert merged.output.splitlines()[0] == "version 1: merge by ada (base version 0)"
    assert merged.output.splitlines()[1] == f"removed segments: {stripe_segment(0, STRIPE, W)} {stripe_segment(2, STRIPE, W)}"
    after_a, after_b = show(run, a), show(run, b)
    assert after_a["segment"] == after_b["segment"] and after_a["version"] == 1
    assert after_a["fragment"] == fragment_id(0, 0, W) and after_a["point_zyx"] == [1, 1, 2]
    assert len(after_a["fragments"]) == 2 * H * STRIPE
    # the state an edit prints: the raw image and the merged segment, centred on the first point
    state = json.loads(merged.output.splitlines()[3].removeprefix("neuroglancer state: "))
    assert [layer["name"] for layer in state["layers"]] == ["raw", "segments v1"]
    assert state["layers"][0]["source"].endswith("/raw.zarr")
    assert len(state["layers"][1]["equivalences"][0]) == 2 * H * STRIPE
    assert state["position"] == [2.5, 1.5, 1.5] and state["dimensions"]["z"] == [40e-9, "m"]
    # version 0 was made from run.json's threshold, and naming another one is refused
    refused = invoke("log", run, "--threshold", "0.3")
    assert refused.exit_code == 1
    assert "was started from threshold 0.5, not threshold 0.3" in refused.output


def test_split_by_points_and_ids_still_work(run):
    segment = stripe_segment(1, STRIPE, W)
    split = invoke("split", run, "--source", point(0, 2), "--sink", point(5, 3), "--json")
    assert split.exit_code == 0, split.output
    record = json.loads(split.output)
    assert record["removed_segments"] == [segment] and record["operation"] == "split"
    top, bottom = show(run, point(0, 2)), show(run, point(5, 3))
    assert top["segment"] != bottom["segment"]
    assert sorted(top["fragments"] + bottom["fragments"]) == sorted(
        fragment_id(y, x, W) for y in range(H) for x in (2, 3))
    by_id = invoke("merge", run, top["segment"], bottom["segment"])
    assert by_id.exit_code == 0, by_id.output
    assert show(run, point(0, 2))["segment"] == show(run, point(5, 3))["segment"]
    mixed = invoke("merge", run, point(0, 0), show(run, point(0, 2))["segment"])  # a point and an id
    assert mixed.exit_code == 0, mixed.output
    assert show(run, point(0, 0))["segment"] == show(run, point(3, 3))["segment"]


@pytest.mark.parametrize("args, code, message", [
    (("show", "{run}", "1,0,0"), 1, "connecto: error: point 1,0,0 is background in {run}/fragments (no fragment there)"),
    (("show", "{run}", "2,0,0"), 1, ("connecto: error: point 2,0,0 is outside {run}/fragments (voxels z,y,x from "
                                    "0,0,0 to 1,23,23)")),
    (("merge", "{run}", "1,2", "3"), 2, ("connecto: error: Invalid value for 'A': A '1,2' is not a voxel position "
                                       "Z,Y,X (three non-negative integers, e.g. 10,200,300)")),
    (("merge", "{run}", "x", "3"), 2, ("connecto: error: Invalid value for 'A': 'x' is not a segment id, or a voxel "
                                     "point Z,Y,X (the segment there)")),
    (("split", "{run}", "--source", "1,1,1"), 2, ("connecto: error: give at least one source (--source Z,Y,X or "
                                                "--source-fragment ID) and one sink")),
    (("merge", "{run}", "101", "999"), 1, "connecto: error: segment 999 does not exist at version 0"),
])
def test_errors_have_one_prefix_and_name_the_value(run, args, code, message):
    result = invoke(*(a.format(run=run) for a in args))
    assert result.exit_code == code, result.output
    assert message.format(run=run) in result.output
    assert "Error:" not in result.output and "threshold=" not in result.output


def test_no_threshold_anywhere_names_the_flag(tmp_path):
    run = make_run(tmp_path / "bare")
    result = invoke("merge", run, 101, 107)
    assert result.exit_code == 1
    assert result.output.strip().endswith("give the agglomeration threshold that defines version 0 (--threshold), "
                                          "or a mapping to start from")


def test_parse_point():
    assert parse_point(" 3,4 ,5") == (3, 4, 5)
    with pytest.raises(ValueError, match="'3,-4,5' is not a voxel position Z,Y,X"):
        parse_point("3,-4,5")
