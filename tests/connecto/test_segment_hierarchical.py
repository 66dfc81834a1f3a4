"""Hierarchical agglomeration: per-block scores, a streamed global cut, per-block mappings."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chunks import create_volume
from connecto.segment import blockwise, hierarchical
from connecto.segment.affinities import affinities_from_labels
from connecto.segment.blockwise import SegmentParams, read_edges, read_fragments, read_history, segment
from connecto.segment.evaluate import evaluate
from connecto.segment.graph_store import read_block_mapping, write_block_mappings
from connecto.segment.small import absorb_small
from connecto.segment.unionfind import flatten, join_scores, union_pairs

BLOCK = (16, 32, 32)  # 12 blocks of the 48x64x64 volume




def run(affinities, run_dir, mode, block_shape=BLOCK, **kwargs):
    params = SegmentParams(agglomeration=mode, **kwargs.pop("params", {}))
    return segment(affinities, str(run_dir), block_shape=block_shape, scheduler="sync", progress=False,
                   params=params, **kwargs)


def test_join_scores_are_the_merges_that_first_join_each_pair():
    # merges in order: {0,1} at .1, {2,3} at .2, {0,1,2,3} at .3 (named by members), 4 never
    scores = join_scores(5, np.array([0, 2, 1]), np.array([1, 3, 3]), np.array([.1, .2, .3]),
                         np.array([0, 1, 3, 0, 2]), np.array([1, 2, 2, 4, 0]))
    assert scores.tolist() == [.1, .3, .2, np.inf, .3]


def test_union_find_roots_are_the_smallest_index_of_each_component():
    parent = np.arange(7)
    union_pairs(parent, np.array([6, 5, 3]), np.array([2, 6, 4]))
    union_pairs(parent, np.array([4]), np.array([1]))  # a second file of pairs
    assert flatten(parent).tolist() == [0, 1, 2, 1, 1, 2, 2]


@pytest.mark.parametrize("min_size", [0, 500])
def test_hierarchical_is_within_a_small_voi_of_global(affinities, labels, tmp_path, min_size):
    exact = run(affinities, tmp_path / "global", "global", params={"min_size": min_size})
    blocks = run(affinities, tmp_path / "hierarchical", "hierarchical", params={"min_size": min_size})
    assert isinstance(blocks.history, hierarchical.HierarchicalHistory)
    assert (tmp_path / "hierarchical" / "agglomeration" / "hierarchy.json").exists()
    assert not (tmp_path / "hierarchical" / "agglomeration" / "merge_history.parquet").exists()
    a, b = exact.segmentation.read(), blocks.segmentation.read()
    # measured: 0.0 on this volume (the contexts see whole cells)
    assert evaluate(b, a, ignore_gt_labels=()).voi_sum <= 0.02
    assert evaluate(b, labels).voi_sum < 0.2
    if min_size == 0:
        assert blocks.history.num_segments(0.5) == exact.history.num_segments(0.5)
    assert np.array_equal(np.sort(blocks.history.fragment_ids), np.sort(exact.history.fragment_ids))


def test_small_segments_are_absorbed_as_on_the_whole_graph(affinities, tmp_path):
    result = run(affinities, tmp_path, "hierarchical", write_segmentation=False)
    history = read_history(str(tmp_path))
    assert isinstance(history, hierarchical.HierarchicalHistory)
    for threshold in (0.3, 0.5):
        whole = absorb_small(history.mapping(threshold), read_edges(str(tmp_path)), read_fragments(str(tmp_path)),
                             500)
        streamed = history.final_mapping(threshold, 500)
        pd.testing.assert_frame_equal(streamed.reset_index(drop=True), whole.reset_index(drop=True))
        assert streamed["segment"].nunique() < history.num_segments(threshold)  # something was absorbed
    assert result.history.num_fragments == len(read_fragments(str(tmp_path)))


def test_no_process_reads_the_whole_graph(affinities, labels, tmp_path, monkeypatch):
    from connecto.segment.relabel import relabel

    def whole_graph(*args, **kwargs):
        raise AssertionError("the whole region graph was read")

    for name in ("read_edges", "read_fragments", "agglomerate_run"):
        monkeypatch.setattr(blockwise, name, whole_graph)
    monkeypatch.setattr("connecto.segment.sweep.read_edges", whole_graph)
    graphs = []
    real = hierarchical.agglomerate_mean
    monkeypatch.setattr(hierarchical, "agglomerate_mean", lambda edges, *a, **k: graphs.append(len(edges)) or
                        real(edges, *a, **k))
    # 48 blocks: a block's group (itself and its 26 neighbours) is a part of the volume
    swept = run(affinities, tmp_path, "hierarchical", (16, 16, 16), thresholds=[0.3, 0.5], ground_truth=labels,
                params={"min_size": 500})
    total = len(read_edges(str(tmp_path)))  # the real reader, imported before the patch
    # one group graph per block; an inner block's group is 27 of the 48 blocks (measured: 0.61 of the edges)
    assert len(graphs) == 48 and max(graphs) < total * 0.65
    direct = evaluate(relabel(swept.fragments.read(), swept.history.final_mapping(0.5, 500)), labels)
    assert swept.evaluations.loc[1, "voi_sum"] == pytest.approx(direct.voi_sum)


def test_a_rerun_resumes_the_block_agglomeration(affinities, tmp_path, monkeypatch):
    first = run(affinities, tmp_path, "hierarchical").segmentation.read()
    monkeypatch.setattr(hierarchical, "block_scores", lambda *a: (_ for _ in ()).throw(AssertionError("again")))
    assert np.array_equal(run(affinities, tmp_path, "hierarchical").segmentation.read(), first)


def test_other_agglomeration_parameters_recompute_the_scores(affinities, tmp_path):
    first = run(affinities, tmp_path, "hierarchical", write_segmentation=False).history
    before = first.num_segments(0.3), first.num_segments(0.9)  # the history reads the score files when asked
    again = hierarchical.agglomerate_hierarchical(str(tmp_path), SegmentParams(max_score=0.3), affinities.roi,
                                                  block_shape=BLOCK, scheduler="sync")
    assert again.num_segments(0.3) == before[0]
    assert again.num_segments(0.9) > before[1]  # no merge above 0.3 was scored this time


def test_the_mode_switch_reuses_fragments_and_graph(affinities, tmp_path, monkeypatch):
    run(affinities, tmp_path, "hierarchical", write_segmentation=False)
    for name in ("fragments_block", "region_graph_block"):
        monkeypatch.setattr(blockwise, name, lambda *a: (_ for _ in ()).throw(AssertionError("computed again")))
    result = run(affinities, tmp_path, "global", write_segmentation=False)
    assert not isinstance(read_history(str(tmp_path)), hierarchical.HierarchicalHistory)
    assert len(result.history.merges) > 0


def test_block_mappings_hold_each_block_id_range(tmp_path):
    mapping = pd.DataFrame({"fragment": np.array([1, 2, 101, 102, 305], np.uint64),
                            "segment": np.array([1, 1, 1, 102, 1], np.uint64)})
    folder = write_block_mappings(mapping, str(tmp_path), 0.5, id_stride=100)
    assert sorted(p.name for p in (tmp_path / "agglomeration" / "mapping-0.5000").iterdir()) == [
        "block-0.parquet", "block-1.parquet", "block-3.parquet"]
    (tmp_path / "agglomeration" / "mapping-0.5000" / "block-0.parquet").unlink()  # a block never read below
    rows = read_block_mapping(folder, 100, np.array([0, 102, 305], np.uint64))
    assert sorted(rows["fragment"].tolist()) == [101, 102, 305]


def test_auto_picks_global_for_small_volumes_and_bad_values_are_refused():
    from connecto.segment.params import AUTO_HIERARCHICAL_VOXELS

    assert SegmentParams().agglomeration_for(AUTO_HIERARCHICAL_VOXELS - 1) == "global"
    assert SegmentParams().agglomeration_for(AUTO_HIERARCHICAL_VOXELS) == "hierarchical"
    assert SegmentParams(agglomeration="hierarchical").agglomeration_for(10) == "hierarchical"
    with pytest.raises(ValueError, match="agglomeration 'fast' is not one of auto, global, hierarchical"):
        SegmentParams(agglomeration="fast")


def test_cli_and_config_take_the_switch(affinities, tmp_path):
    from connecto.reconstruct import ReconstructConfig
    from training.schema import ConfigError

    out = tmp_path / "run"
    from connecto.segment.cli import segment as command

    result = CliRunner().invoke(command, [str(affinities.url.path), str(out), "--agglomeration",
                                       "hierarchical", "--block-shape", "16,32,32", "--scheduler", "sync",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "hierarchical agglomeration" in result.output
    assert (out / "agglomeration" / "hierarchy.json").exists()
    bad = CliRunner().invoke(command, ["a", "b", "--agglomeration", "fast"])
    assert bad.exit_code == 2 and "'fast' is not one of 'auto', 'global', 'hierarchical'" in bad.output
    with pytest.raises(ConfigError, match="agglomeration"):
        ReconstructConfig(raw="r", run_dir="d", checkpoint="c", agglomeration="fast")


def _chunk_bytes(volume_dir):
    return {p.relative_to(volume_dir): p.read_bytes() for p in sorted((volume_dir / "c").rglob("*")) if p.is_file()}


def test_a_run_killed_mid_agglomeration_resumes_to_the_same_bytes(affinities, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys; from connecto.segment.blockwise import SegmentParams, segment;"
            "segment(sys.argv[1], sys.argv[2], block_shape=(16, 32, 32), scheduler='sync', progress=False,"
            " params=SegmentParams(agglomeration='hierarchical', min_size=500))")
    args = [sys.executable, "-c", code, str(affinities.url.path)]
    subprocess.run([*args, str(tmp_path / "whole")], check=True)
    child = subprocess.Popen([*args, str(tmp_path / "killed")])
    markers = tmp_path / "killed" / "done" / "agglomerate_blocks"
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None and len(list(markers.glob("*_*_*"))) < 2:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = len(list(markers.glob("*_*_*")))
    assert child.returncode == -signal.SIGKILL and 2 <= done < 12, (child.returncode, done)
    assert not (tmp_path / "killed" / "segmentation").exists()
    subprocess.run([*args, str(tmp_path / "killed")], check=True)
    whole, resumed = _chunk_bytes(tmp_path / "whole" / "segmentation"), _chunk_bytes(tmp_path / "killed" / "segmentation")
    assert len(whole) == 12 and whole == resumed
    mapping = "agglomeration/mapping-0.5000.parquet"
    assert (tmp_path / "whole" / mapping).read_bytes() == (tmp_path / "killed" / mapping).read_bytes()


@pytest.fixture(scope="module")
def weak_walls(labels, tmp_path_factory):
    """Cell walls whose affinity varies along them (0 to 0.7): a merge between two cells depends on
    the whole contact, so a block that sees part of it may decide otherwise."""
    affs = affinities_from_labels(labels, noise=0.25, seed=3).astype(np.float32)
    _, y, x = np.indices(labels.shape)
    wave = (0.35 + 0.35 * np.sin(x / 6.0 + y / 9.0)) * 255
    for c in range(3):
        here = [slice(None)] * 3
        there = [slice(None)] * 3
        here[c], there[c] = slice(1, None), slice(None, -1)
        wall = np.zeros(labels.shape, bool)
        wall[tuple(here)] = labels[tuple(here)] != labels[tuple(there)]
        affs[c][wall] = wave[wall]
    path = tmp_path_factory.mktemp("weak") / "affs"
    vol = create_volume(path, labels.shape, np.uint8, (8, 8, 8), chunk_shape=(16, 16, 16), num_channels=3)
    vol.write(vol.roi, np.clip(affs, 0, 255).astype(np.uint8))
    return vol


def test_above_the_blockwise_score_the_cut_goes_on_as_the_global_agglomeration(weak_walls, tmp_path, monkeypatch):
    monkeypatch.setitem(hierarchical.agglomerate_hierarchical.__kwdefaults__, "context", 8)
    exact = run(weak_walls, tmp_path / "global", "global", thresholds=[0.8]).segmentation.read()
    graphs = []
    real = hierarchical.agglomerate_mean
    monkeypatch.setattr(hierarchical, "agglomerate_mean", lambda edges, *a, **k: graphs.append(len(edges)) or
                        real(edges, *a, **k))
    went_on = run(weak_walls, tmp_path / "on", "hierarchical", thresholds=[0.8])
    assert went_on.history.blockwise_up_to == hierarchical.BLOCKWISE_UP_TO < 0.8
    assert evaluate(went_on.segmentation.read(), exact, ignore_gt_labels=()).voi_sum <= 0.01  # measured: 0.0
    # the graph between the segments at BLOCKWISE_UP_TO is a fraction of the fragments' graph
    assert graphs[-1] < len(read_edges(str(tmp_path / "on"))) * 0.25
    monkeypatch.setattr(hierarchical, "BLOCKWISE_UP_TO", 1.0)  # the blocks decide every merge
    blocks_only = run(weak_walls, tmp_path / "blocks", "hierarchical", thresholds=[0.8]).segmentation.read()
    assert evaluate(blocks_only, exact, ignore_gt_labels=()).voi_sum > 0.04  # measured: 0.086
