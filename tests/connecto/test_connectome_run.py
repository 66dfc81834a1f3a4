"""``Connectome.open(run_dir, version=...)``: a connectome built from a real (small) run directory.

The run is made for real: synthetic neurons -> noisy affinities -> blockwise fragments,
region graph, agglomeration (``segment``) at an offset, plus a hand-made synapse table
in the detector's format at contacts between fragments. Every expected number is
recomputed from the voxels.
"""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chunks import create_volume, open_volume
from connecto.connectome import Connectome
from connecto.connectome.cli import export, query
from connecto.segment.affinities import affinities_from_labels
from connecto.segment.blockwise import SegmentParams, segment
from connecto.segment.fragments import fragment_table
from connecto.segment.relabel import relabel
from connecto.synapses.detect import table_columns
from connecto.synthetic import generate_arrays
from proofreading import Proofreader

VOXEL = (8, 8, 8)
OFFSET = (4, 0, 8)  # voxels: tables are in the world frame, arrays start at 0
THRESHOLD = 0.5


def contact_synapses(fragments: np.ndarray, segments: np.ndarray, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` clefts at contacts between fragments (most across segments, some inside one), in the
    format of ``connecto.synapses.detect``: one row per (cleft, post partner), a second post
    where the pre voxel touches a third fragment (polyadic)."""
    rng = np.random.default_rng(seed)
    pre_side = fragments[:, :, :-1]
    post_side = fragments[:, :, 1:]
    contact = (pre_side != post_side) & (pre_side != 0) & (post_side != 0)
    across = np.argwhere(contact & (segments[:, :, :-1] != segments[:, :, 1:]))
    inside = np.argwhere(contact & (segments[:, :, :-1] == segments[:, :, 1:]))
    picks = np.concatenate([across[rng.choice(len(across), n - n // 10, replace=False)],
                            inside[rng.choice(len(inside), n // 10, replace=False)]])
    voxel, offset = np.asarray(VOXEL, float), np.asarray(OFFSET, float)
    rows = []
    for i, pre in enumerate(picks):
        posts = [pre + (0, 0, 1)]
        for step in ((0, 1, 0), (1, 0, 0)):
            other = pre + step
            if (other < fragments.shape).all() and fragments[tuple(other)] not in (0, fragments[tuple(pre)],
                                                                                    fragments[tuple(posts[0])]):
                posts.append(other)
                break
        for post in posts:
            rows.append((i + 1, *((pre + offset) * voxel), *((pre + offset) * voxel), *((post + offset) * voxel),
                         fragments[tuple(pre)], fragments[tuple(post)], rng.random(), int(rng.integers(10, 50))))
    table = pd.DataFrame(rows, columns=table_columns())
    return table.astype({"id": np.uint64, "pre_fragment": np.uint64, "post_fragment": np.uint64, "size": np.int64})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("connectome_run")
    labels = generate_arrays((32, 64, 64), VOXEL, seed=1, density=0.9, axon_radius_nm=30.0, dendrite_radius_nm=60.0,
                             n_bodies=0, n_synapses=1, max_posts=1).labels
    affs = create_volume(str(root / "affinities"), labels.shape, np.uint8, VOXEL, offset=OFFSET,
                         chunk_shape=(16, 32, 32), num_channels=3)
    affs.write(affs.roi, affinities_from_labels(labels, noise=0.2, seed=3))
    run = root / "run"
    segment(affs, str(run), thresholds=[THRESHOLD], params=SegmentParams(min_size=20), block_shape=(16, 32, 32),
            scheduler="sync", progress=False)
    (run / "run.json").write_text(json.dumps({"config": {"threshold": THRESHOLD, "min_size": 20}, "stages": {}}))
    fragments = open_volume(str(run / "fragments")).read()
    segments = open_volume(str(run / "segmentation")).read()
    contact_synapses(fragments, segments, n=120).to_parquet(run / "synapses.parquet", index=False)
    return run


@pytest.fixture
def proofread(run_dir, tmp_path):
    """A copy of the run with an edit log started from the run's mapping, and one merge of the
    two neurons with the most synapses: (run, merged segments, new segment)."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    mapping = pd.read_parquet(run / "agglomeration" / f"mapping-{THRESHOLD:.4f}.parquet")
    base = Connectome.open(run)
    busiest = base.neurons.assign(n=base.neurons.n_pre + base.neurons.n_post).nlargest(2, "n")["segment_id"]
    a, b = (int(s) for s in busiest)
    with Proofreader.open(run, "ada", initial_mapping=(mapping["fragment"], mapping["segment"])) as pr:
        edit = pr.merge(a, b)
    return run, (a, b), edit.new_segments[0]


def segmentation_at(run, version=None) -> np.ndarray:
    """The run's segmentation recomputed from the fragment voxels at ``version``."""
    fragments = open_volume(str(run / "fragments")).read()
    if version is None:
        return open_volume(str(run / "segmentation")).read()
    with Proofreader.open(run, "reader") as pr:
        mapping = pr.mapping(version)
    return relabel(fragments, pd.DataFrame({"fragment": mapping.fragment_ids, "segment": mapping.segment_ids}))


def assert_matches_voxels(c: Connectome, segmentation: np.ndarray, fragments: np.ndarray) -> None:
    ids, counts = np.unique(segmentation[segmentation != 0], return_counts=True)
    neurons = c.neurons.sort_values("segment_id", ignore_index=True)
    assert neurons["segment_id"].tolist() == ids.tolist()
    assert neurons["size_voxels"].tolist() == np.bincount(segmentation.ravel())[ids].tolist()
    assert neurons["size_voxels"].sum() == np.count_nonzero(fragments)
    np.testing.assert_allclose(neurons["size_um3"], counts * np.prod(VOXEL) / 1e9)
    truth = fragment_table(segmentation, offset=OFFSET, voxel_size_nm=VOXEL).sort_values("id", ignore_index=True)
    np.testing.assert_allclose(neurons[["z_nm", "y_nm", "x_nm"]], truth[["z_nm", "y_nm", "x_nm"]], rtol=1e-12)
    for i, axis in enumerate("zyx"):
        assert (neurons[f"bbox_min_{axis}_nm"] == truth[f"bbox_{axis}0"] * VOXEL[i]).all()
        assert (neurons[f"bbox_max_{axis}_nm"] == truth[f"bbox_{axis}1"] * VOXEL[i]).all()
    for side in ("pre", "post"):
        nm = c.synapses[[f"{side}_z_nm", f"{side}_y_nm", f"{side}_x_nm"]].to_numpy()
        index = tuple((np.rint(nm / VOXEL).astype(int) - OFFSET).T)
        assert (c.synapses[f"{side}_fragment"].to_numpy() == fragments[index]).all()
        assert (c.synapses[f"{side}_segment"].to_numpy() == segmentation[index]).all()
        counted = c.synapses.groupby(f"{side}_segment")["weight"].sum()
        assert (neurons.set_index("segment_id")[f"n_{side}"] == counted.reindex(neurons["segment_id"],
                                                                                 fill_value=0).to_numpy()).all()


def test_run_connectome_matches_the_segmentation_voxels(run_dir):
    c = Connectome.open(run_dir)
    fragments = open_volume(str(run_dir / "fragments")).read()
    assert_matches_voxels(c, segmentation_at(run_dir), fragments)
    assert c.voxel_size_nm == VOXEL and len(c) > 5
    table = pd.read_parquet(run_dir / "synapses.parquet")
    # one row per (cleft, pre segment, post segment): posts in two fragments of one segment count once
    mapping = pd.read_parquet(run_dir / "agglomeration" / f"mapping-{THRESHOLD:.4f}.parquet")
    segments = dict(zip(mapping["fragment"], mapping["segment"]))
    keys = {(i, segments.get(p, p), segments.get(q, q)) for i, p, q in
            zip(table["id"], table["pre_fragment"], table["post_fragment"])}
    assert len(c.synapses) == len(keys) > table["id"].nunique()  # some clefts have two posts
    assert len(keys) < len(table)  # and some posts were cut into two fragments
    assert c.synapses["synapse_id"].is_monotonic_increasing and c.synapses["synapse_id"].is_unique
    assert set(c.synapses["cleft_id"]) == set(table["id"]) and c.kinds == ["chemical"]
    autapses = c.synapses["pre_segment"] == c.synapses["post_segment"]
    assert c.meta["n_autapses"] == int(autapses.sum()) >= 12  # contacts inside one segment are kept
    assert c.meta["version"] is None and c.meta["threshold"] == THRESHOLD


def test_merge_makes_a_version_with_one_neuron_fewer(proofread):
    run, (a, b), new = proofread
    before, after = Connectome.open(run, version=0), Connectome.open(run, version=1)
    base = Connectome.open(run)
    pd.testing.assert_frame_equal(before.neurons, base.neurons)
    pd.testing.assert_frame_equal(before.synapses, base.synapses)

    assert len(after) == len(before) - 1
    fragments = open_volume(str(run / "fragments")).read()
    assert_matches_voxels(after, segmentation_at(run, 1), fragments)
    parts = before.neurons.set_index("segment_id").loc[[a, b]]
    merged = after.neuron(new)
    assert merged["size_voxels"] == parts["size_voxels"].sum()
    assert merged["n_pre"] == parts["n_pre"].sum() and merged["n_post"] == parts["n_post"].sum()
    untouched = before.neurons[~before.neurons.segment_id.isin([a, b])].reset_index(drop=True)
    pd.testing.assert_frame_equal(after.neurons[after.neurons.segment_id != new].reset_index(drop=True),
                                  untouched, check_exact=False)

    # edge weights add up: the edges of a and b, renamed to the merged segment and summed
    renamed = before.edges().replace({"pre": {a: new, b: new}, "post": {a: new, b: new}})
    expected = renamed.groupby(["pre", "post"], as_index=False)["weight"].sum().astype({"pre": np.uint64,
                                                                                         "post": np.uint64})
    pd.testing.assert_frame_equal(after.edges(), expected)
    between = int(before.edges().query("(pre == @a and post == @b) or (pre == @b and post == @a)")["weight"].sum())
    assert after.meta["n_autapses"] == before.meta["n_autapses"] + between

    head = Connectome.open(run, version="head")
    assert head.meta["version"] == 1 and head.neurons.equals(after.neurons)
    with pytest.raises(ValueError, match=r"version 2 does not exist in the edit log .* versions 0\.\.1"):
        Connectome.open(run, version=2)


def test_run_skeletons_come_along_for_the_segments_a_version_keeps(run_dir, proofread, tmp_path, caplog):
    from connecto.connectome.skeleton_stage import skeletonize_volume

    run, (a, b), new = proofread
    assert Connectome.open(run).skeletons is None
    table = skeletonize_volume(open_volume(str(run / "segmentation")), run, min_voxels=100, scheduler="sync",
                               progress=False)
    skeletonised = set(table["segment_id"].tolist())
    assert {a, b} <= skeletonised and len(skeletonised) > 4
    base = Connectome.open(run)
    assert set(base.skeletons["segment_id"].tolist()) == skeletonised <= set(base.neuron_ids.tolist())
    # after the merge, a and b are gone and the merged neuron has no skeleton yet; the rest keep theirs
    after = Connectome.open(run, version=1)
    assert set(after.skeletons["segment_id"].tolist()) == skeletonised - {a, b}
    assert "2 left out, changed" in after.meta["skeletons"]
    assert len(list(Path(after.to_swc(tmp_path / "swc")).glob("*.swc"))) == len(skeletonised) - 2
    # the run segmented again at another threshold: the skeletons belong to the old segmentation
    segment(str(run_dir.parent / "affinities"), str(run), thresholds=[0.95],
            params=SegmentParams(min_size=20), block_shape=(16, 32, 32), scheduler="sync", progress=False)
    record = json.loads((run / "run.json").read_text())
    record["config"]["threshold"] = 0.95
    (run / "run.json").write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING):
        again = Connectome.open(run)
    assert len(again) < len(base)
    assert again.skeletons is None and "made from another segmentation" in caplog.text


def test_versions_without_an_edit_log_or_malformed_raise(run_dir, tmp_path):
    with pytest.raises(ValueError, match="version 0 does not exist: .* has no proofreading edit log"):
        Connectome.open(run_dir, version=0)
    with pytest.raises(ValueError, match="version 'latest' is not a proofreading version"):
        Connectome.open(run_dir, version="latest")
    assert not (run_dir / "proofreading.sqlite").exists()  # looking never starts a log
    with pytest.raises(ValueError, match="only a run directory has"):
        Connectome.open(tmp_path, database=tmp_path / "log.sqlite")


def test_a_log_started_elsewhere_warns_that_version_0_is_not_the_run(run_dir, tmp_path, caplog):
    same, other = tmp_path / "same.sqlite", tmp_path / "other.sqlite"
    Proofreader.open(run_dir, "ada", threshold=THRESHOLD, database=same).close()
    Proofreader.open(run_dir, "ada", threshold=0.05, database=other).close()
    with caplog.at_level(logging.WARNING, logger="connecto.connectome.run"):
        assert len(Connectome.open(run_dir, version=0, database=same)) == len(Connectome.open(run_dir))
        assert not caplog.text  # here no segment was below min_size at the threshold: the same segments
        c = Connectome.open(run_dir, version="0", database=other)
    assert "differs from the run's agglomeration at threshold 0.5" in caplog.text
    assert len(c) > len(Connectome.open(run_dir)) and c.meta["version"] == 0


def test_run_without_synapses_has_neurons_and_no_synapses(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("synapses.parquet"))
    c, full = Connectome.open(run), Connectome.open(run_dir)
    assert len(c.synapses) == 0 and c.edges().empty and c.meta["n_autapses"] == 0
    assert c.neurons["size_voxels"].tolist() == full.neurons["size_voxels"].tolist()
    assert (c.neurons[["n_pre", "n_post"]] == 0).all().all()


def test_fragment_statistics_come_from_the_volume_when_the_tables_lack_them(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    for path in (run / "graph").glob("fragments-*.parquet"):
        pd.read_parquet(path, columns=["id", "size", "anchor"]).to_parquet(path, index=False)
    pd.testing.assert_frame_equal(Connectome.open(run).neurons, Connectome.open(run_dir).neurons, check_exact=False,
                                  rtol=1e-12)


def test_cli_queries_and_exports_a_run_at_a_version(proofread, tmp_path):
    run, (a, _), new = proofread
    summary = CliRunner().invoke(query, ["summary", str(run), "--version", "1"])
    assert summary.exit_code == 0, summary.output
    assert f"{len(Connectome.open(run, version=1))} neurons" in summary.output
    upstream = CliRunner().invoke(query, ["upstream", str(run), str(new), "--version", "1", "--format", "json"])
    assert upstream.exit_code == 0, upstream.output
    expected = Connectome.open(run, version=1).upstream(new)
    assert json.loads(upstream.output) == json.loads(expected.to_json(orient="records"))
    gone = CliRunner().invoke(query, ["upstream", str(run), str(a), "--version", "1"])
    assert gone.exit_code != 0 and f"neuron {a}" in str(gone.exception)
    out = tmp_path / "exported"
    result = CliRunner().invoke(export, [str(run), str(out), "--version", "1"])
    assert result.exit_code == 0, result.output
    again, built = Connectome.open(out), Connectome.open(run, version=1)
    pd.testing.assert_frame_equal(again.neurons, built.neurons)
    pd.testing.assert_frame_equal(again.synapses, built.synapses)


def test_a_log_opened_at_the_run_threshold_starts_from_the_written_segmentation(run_dir, tmp_path):
    """Version 0 is the segmentation the run wrote, small segments absorbed, not the bare merge history."""
    from connecto.segment.blockwise import SegmentParams, read_history, write_mapping

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    history = read_history(str(run))
    path = write_mapping(str(run), history, THRESHOLD, SegmentParams(min_size=20000))  # absorbs a lot
    written = pd.read_parquet(path)
    assert written["segment"].nunique() < history.mapping(THRESHOLD)["segment"].nunique()
    with Proofreader.open(run, "ada", threshold=THRESHOLD) as pr:
        version_zero = pr.mapping(0)
    fragments = written["fragment"].to_numpy(np.uint64)
    assert np.array_equal(version_zero.segment_of(fragments), written["segment"].to_numpy(np.uint64))
