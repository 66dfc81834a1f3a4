"""Fault injection through the command line: no silent wrong result (issue #18)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from chunks import create_volume, open_volume
from connecto.cli import cli
from connecto.smooth import sigma_in_voxels, smooth

ENGINE = ["--scheduler", "sync", "--no-progress"]


def _lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.fixture
def run(tmp_path):
    """tmp_path with raw.zarr and other.zarr ingested and raw smoothed into out.zarr."""
    runner = CliRunner()
    for name, seed in (("raw", 0), ("other", 1)):
        np.save(tmp_path / f"{name}.npy", np.random.default_rng(seed).integers(0, 256, (16, 32, 32)).astype(np.uint8))
        result = runner.invoke(cli, ["ingest", str(tmp_path / f"{name}.npy"), str(tmp_path / f"{name}.zarr"),
                                     "--voxel-size", "8,8,8", "--chunk-shape", "8,16,16", *ENGINE])
        assert result.exit_code == 0, result.output
    assert _smooth(tmp_path, "raw").exit_code == 0
    return tmp_path


def _smooth(tmp_path, raw, out="out", *extra):
    return CliRunner().invoke(cli, ["smooth", str(tmp_path / f"{raw}.zarr"), str(tmp_path / f"{out}.zarr"),
                                    "--sigma", "8", *ENGINE, *extra])


def _expected(tmp_path, raw):
    vol = open_volume(str(tmp_path / f"{raw}.zarr"))
    return smooth(vol.read(), sigma_in_voxels(8, vol.voxel_size_nm))


def test_a_deleted_output_chunk_is_recomputed_by_the_rerun(run, caplog):
    (run / "out.zarr" / "c" / "1" / "0" / "1").unlink()
    rerun = _smooth(run, "raw")
    assert rerun.exit_code == 0, rerun.output
    assert (f"smooth: 1 finished block(s) have missing or damaged chunk files (block 1_0_1: missing chunk file "
            f"{run}/out.zarr/c/1/0/1); computing them again") in caplog.messages
    assert np.array_equal(open_volume(str(run / "out.zarr")).read(), _expected(run, "raw"))
    verified = CliRunner().invoke(cli, ["verify", str(run)])
    assert verified.exit_code == 0
    assert _lines(verified) == [f"verified 24 chunks of 12 finished blocks in 3 task run(s) under {run}: no problems"]


def test_a_damaged_output_chunk_is_reported_by_verify_and_named_when_read(run):
    chunk = run / "out.zarr" / "c" / "0" / "1" / "0"
    expected = open_volume(str(run / "out.zarr")).read()
    chunk.write_bytes(chunk.read_bytes()[:10])  # truncated
    verified = CliRunner().invoke(cli, ["verify", str(run / "out.zarr")])
    assert verified.exit_code == 1
    from chunks.integrity import crc32

    assert _lines(verified) == [
        (f"{chunk}: unreadable chunk file: expected crc32 {crc32(expected[:8, 16:, :16])}, found RuntimeError: "
        "Zstd decompression error: invalid input data"),
        f"1 problem(s) in 8 chunks of 8 finished blocks in 1 task run(s) under {run / 'out.zarr'}"]
    # reading it names the file, instead of reading the fill value; a stage refuses before reading
    from chunks import CorruptChunkError

    with pytest.raises(CorruptChunkError, match=f"cannot read chunk file {chunk} of "):
        open_volume(str(run / "out.zarr")).read()
    downstream = _smooth(run, "out", "next")
    assert downstream.exit_code == 1
    assert f"has a damaged chunk file {chunk} that task 'smooth' wrote" in downstream.output
    # the way out: --repair forgets the block, the rerun recomputes it
    repaired = CliRunner().invoke(cli, ["verify", "--repair", str(run / "out.zarr")])
    assert repaired.exit_code == 1 and "forgot 1 damaged block(s) of task 'smooth'" in repaired.output
    assert _smooth(run, "raw").exit_code == 0
    assert np.array_equal(open_volume(str(run / "out.zarr")).read(), expected)
    assert CliRunner().invoke(cli, ["verify", str(run)]).exit_code == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other valid bytes"])
def test_an_unchanged_rerun_recomputes_a_damaged_output_chunk_and_a_reader_names_it(run, caplog, damage):
    chunk, neighbour = run / "out.zarr" / "c" / "0" / "1" / "0", run / "out.zarr" / "c" / "1" / "1" / "0"
    expected = open_volume(str(run / "out.zarr")).read()
    data = chunk.read_bytes()
    chunk.write_bytes({"truncated": data[: len(data) // 2],
                       "garbage": bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8)),
                       "other valid bytes": neighbour.read_bytes()}[damage])
    if damage == "other valid bytes":  # decodes fine: only the checksum tells
        assert not np.array_equal(open_volume(str(run / "out.zarr")).read(), expected)
    # a stage reading it refuses, naming the file and the command that recomputes it
    downstream = _smooth(run, "out", "next")
    assert downstream.exit_code == 1
    assert _lines(downstream) == [
        f"connecto: error: input 'raw' ({run}/out.zarr) has a damaged chunk file {chunk} that task 'smooth' wrote; "
        "rerun the stage that wrote it (task 'smooth') with the same settings to recompute it, then run this "
        "stage again"]
    assert not (run / "next.zarr" / "done").exists() or not any((run / "next.zarr" / "done").rglob("*_*_*"))
    # the unchanged rerun of the stage that wrote it finds the chunk and recomputes its block only
    rerun = _smooth(run, "raw")
    assert rerun.exit_code == 0, rerun.output
    assert (f"smooth: 1 finished block(s) have missing or damaged chunk files (block 0_1_0: damaged chunk file "
            f"{chunk}); computing them again") in caplog.messages
    assert np.array_equal(open_volume(str(run / "out.zarr")).read(), expected)
    assert _smooth(run, "out", "next").exit_code == 0


def test_a_chunk_rewritten_with_its_own_bytes_is_read_once_then_trusted(run, caplog):
    from chunks.integrity import damage_at

    chunk = run / "out.zarr" / "c" / "0" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes())  # newer than its marker, same content (as a copy would be)
    assert damage_at(str(run / "out.zarr")) == []
    marker = run / "out.zarr" / "done" / "smooth" / "0_1_0"
    assert marker.stat().st_mtime_ns >= chunk.stat().st_mtime_ns, "verified once: the marker is stamped again"
    assert _smooth(run, "raw").exit_code == 0
    assert not [m for m in caplog.messages if "damaged" in m]


def test_another_input_into_the_same_output_is_refused_in_one_line_then_overwritten(run):
    refused = _smooth(run, "other")
    assert refused.exit_code == 1
    assert _lines(refused) == [
        (f"connecto: error: task 'smooth' in {run}/out.zarr was started with another input 'raw' "
        f"(url {run}/raw.zarr, now {run}/other.zarr); rerun with the same settings and inputs to resume, "
        "or pass overwrite=True (--overwrite) to start again")]
    assert np.array_equal(open_volume(str(run / "out.zarr")).read(), _expected(run, "raw")), "nothing mixed in"
    assert _smooth(run, "other", "out", "--overwrite").exit_code == 0
    assert np.array_equal(open_volume(str(run / "out.zarr")).read(), _expected(run, "other"))


def test_a_deleted_input_chunk_is_refused_naming_it_and_the_command_that_repairs_it(run):
    # ingest from a real command line, so its markers record the command that repairs its output
    exe = Path(sys.executable).parent / "connecto"
    ingest = [str(exe), "ingest", "raw.npy", "again.zarr", "--voxel-size", "8,8,8", "--chunk-shape", "8,16,16",
              *ENGINE]
    subprocess.run(ingest, cwd=run, check=True, capture_output=True)
    (run / "again.zarr" / "c" / "1" / "1" / "0").unlink()
    refused = _smooth(run, "again", "downstream")
    assert refused.exit_code == 1
    assert _lines(refused) == [
        (f"connecto: error: input 'raw' ({run}/again.zarr) is missing chunk file {run}/again.zarr/c/1/1/0 that task "
        f"'ingest' wrote; rerun `{' '.join(['connecto', *ingest[1:]])}` in {run} to recompute it, then run this "
        "stage again")]
    subprocess.run(ingest, cwd=run, check=True, capture_output=True)
    assert _smooth(run, "again", "downstream").exit_code == 0
    assert np.array_equal(open_volume(str(run / "downstream.zarr")).read(), _expected(run, "raw"))


def test_reconstruct_recomputes_what_a_finished_stage_lost(tmp_path):
    from chunks.verify import verify
    from connecto.demo import shipped_checkpoint
    from connecto.reconstruct import ReconstructConfig, reconstruct
    from connecto.synthetic import generate

    generate(str(tmp_path / "synthetic"), (32, 64, 64), (8, 8, 8), seed=3, scheduler="threads", progress=False)
    config = ReconstructConfig(raw=str(tmp_path / "synthetic" / "raw.zarr"), run_dir=str(tmp_path / "run"),
                               checkpoint=shipped_checkpoint(), threshold=0.5, predict_block_shape=(16, 32, 32),
                               segment_block_shape=(32, 32, 32), scheduler="threads", workers=2)
    reconstruct(config, progress=False)
    segmentation = open_volume(str(tmp_path / "run" / "segmentation")).read()
    lost = [tmp_path / "run" / "affinities.zarr" / "c" / "0" / "1" / "0" / "1",
            tmp_path / "run" / "segmentation" / "c" / "0" / "1" / "0"]
    for chunk in lost:
        chunk.unlink()
    truncated = tmp_path / "run" / "segmentation" / "c" / "0" / "0" / "1"
    truncated.write_bytes(truncated.read_bytes()[:20])
    messages = []
    reconstruct(config, progress=False, echo=messages.append)
    assert f"predict: missing chunk file {lost[0]}; running it again" in messages
    assert f"segment: damaged chunk file {truncated} (and 1 more); running it again" in messages
    assert np.array_equal(open_volume(str(tmp_path / "run" / "segmentation")).read(), segmentation)
    assert all(chunk.exists() for chunk in lost)
    report = verify(str(tmp_path / "run"))
    assert not report.problems and report.blocks > 0, [str(p) for p in report.problems]


def test_verify_of_nothing_is_an_error_and_of_a_volume_without_markers_says_so(tmp_path):
    missing = CliRunner().invoke(cli, ["verify", str(tmp_path / "nothing")])
    assert missing.exit_code == 1
    assert _lines(missing) == [f"connecto: error: nothing at {tmp_path}/nothing: expected a volume or a run directory"]
    create_volume(str(tmp_path / "plain.zarr"), (4, 4, 4), "uint8", (8, 8, 8))
    plain = CliRunner().invoke(cli, ["verify", str(tmp_path / "plain.zarr")])
    assert plain.exit_code == 0 and _lines(plain) == [f"nothing to verify: no done-markers under {tmp_path}/plain.zarr"]


def test_ingest_rerun_after_its_source_changed_is_refused_naming_what_changed(run):
    runner = CliRunner()
    args = ["ingest", str(run / "raw.npy"), str(run / "raw.zarr"), "--voxel-size", "8,8,8",
            "--chunk-shape", "8,16,16", *ENGINE]
    assert runner.invoke(cli, args).exit_code == 0  # unchanged: resumes, nothing to do
    np.save(run / "raw.npy", np.zeros((16, 32, 32), np.uint8))
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 1
    assert _lines(refused)[0].startswith(
        f"connecto: error: task 'ingest' in {run}/raw.zarr was started with different settings "
        "(params.source_content); rerun with the same settings")
    assert open_volume(str(run / "raw.zarr")).read().any(), "the old content is kept, not mixed"
    assert runner.invoke(cli, [*args, "--overwrite"]).exit_code == 0
    assert not open_volume(str(run / "raw.zarr")).read().any()
