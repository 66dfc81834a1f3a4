"""Fault injection: lost, damaged and changed chunks never read as a silent wrong result."""

import functools
import json
import os

import numpy as np
import pytest

from chunks import IncompatibleVolumeError, create_volume, open_volume, run_blockwise
from chunks.errors import CorruptChunkError, IncompleteVolumeError, MissingChunkError
from chunks.integrity import crc32
from chunks.verify import verify
from connecto.smooth import context_for, smooth, smooth_block

SIGMA = (1.0, 1.0, 1.0)


def copy_block(block, inputs):
    return {"out": inputs["raw"][block.write_slices()]}


def _raw(url, seed=0, shape=(16, 16, 16)):
    vol = create_volume(url, shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    vol.write(vol.roi, np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8))
    return vol


def _written_raw(tmp_path, name="raw.zarr", seed=0):
    """A raw volume written by the engine (a copy stage), as `connecto ingest` writes one."""
    source = _raw(f"memory://integrity-source-{seed}", seed)
    out = create_volume(str(tmp_path / name), source.shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    run_blockwise(copy_block, source.roi, (8, 8, 8), task="copy", inputs={"raw": source}, outputs={"out": out},
                  scheduler="threads", num_workers=1, progress=False)
    return out


def _smooth(raw, out_url, **kw):
    out = create_volume(out_url, raw.shape, "uint8", (8, 8, 8), chunk_shape=raw.chunk_shape)
    result = run_blockwise(functools.partial(smooth_block, SIGMA), raw.roi, (8, 8, 8), task="smooth",
                           inputs={"raw": raw}, outputs={"smoothed": out}, context=context_for(SIGMA),
                           scheduler="sync", progress=False, **kw)
    return out, result


def test_markers_record_chunk_checksums_inputs_and_completion(tmp_path):
    raw = _written_raw(tmp_path)
    out, _ = _smooth(raw, str(tmp_path / "out.zarr"))
    done = tmp_path / "out.zarr" / "done" / "smooth"
    marker = json.loads((done / "1_0_1").read_text())
    data = out.read()
    assert marker["outputs"] == {"smoothed": {"c/1/0/1": crc32(data[8:, :8, 8:])}}
    plan = json.loads((done / "run.json").read_text())
    assert plan["inputs"]["raw"] == {
        "url": str(tmp_path / "raw.zarr"), "shape": [16, 16, 16], "dtype": "uint8", "voxel_size_nm": [8.0, 8.0, 8.0],
        "offset": [0, 0, 0], "chunk_shape": [8, 8, 8], "channels": 1,
        "content": plan["inputs"]["raw"]["content"]}
    assert plan["inputs"]["raw"]["content"].startswith("blocks:")  # the digest of the copy stage's checksums
    assert json.loads((done / "complete.json").read_text())["blocks"] == 8


def test_chunks_of_fill_value_are_written_as_files(tmp_path):
    vol = create_volume(str(tmp_path / "z.zarr"), (8, 8, 16), "uint64", (8, 8, 8), chunk_shape=(8, 8, 8))
    vol.write(vol.roi, np.zeros((8, 8, 16), np.uint64))
    assert sorted(vol.list_chunks()) == ["c/0/0/0", "c/0/0/1"]


def test_deleted_output_chunk_is_recomputed_by_the_rerun(tmp_path):
    raw = _written_raw(tmp_path)
    out, _ = _smooth(raw, str(tmp_path / "out.zarr"))
    clean = out.read()
    os.remove(tmp_path / "out.zarr" / "c" / "1" / "0" / "1")
    assert [str(p) for p in verify(str(tmp_path / "out.zarr")).problems] == [
        f"{tmp_path}/out.zarr/c/1/0/1: missing chunk file: expected crc32 {crc32(clean[8:, :8, 8:])}, found no file"]
    _, rerun = _smooth(raw, str(tmp_path / "out.zarr"))
    assert (rerun.processed_blocks, rerun.skipped_blocks) == (1, 7)
    assert np.array_equal(open_volume(str(tmp_path / "out.zarr")).read(), clean)
    assert not verify(str(tmp_path)).problems


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_chunk_names_its_file_when_read_and_in_verify(tmp_path, damage):
    raw = _written_raw(tmp_path)
    out, _ = _smooth(raw, str(tmp_path / "out.zarr"))
    clean = out.read()
    chunk = tmp_path / "out.zarr" / "c" / "0" / "1" / "0"
    content = chunk.read_bytes()
    chunk.write_bytes({"truncated": content[: len(content) // 2], "garbage": b"\x00garbage" * 20, "empty": b""}[damage])
    with pytest.raises(CorruptChunkError, match=f"cannot read chunk file {chunk} of .*verify --repair"):
        open_volume(str(tmp_path / "out.zarr")).read()
    report = verify(str(tmp_path))
    expected = crc32(clean[:8, 8:, :8])
    problem = ("missing chunk file: expected crc32 " + expected + ", found an empty file" if damage == "empty" else
               "unreadable chunk file: expected crc32 " + expected + ", found RuntimeError: Zstd decompression error")
    assert len(report.problems) == 1 and str(report.problems[0]).startswith(f"{chunk}: {problem}")
    # --repair forgets the damaged block, so the rerun recomputes it and nothing else
    verify(str(tmp_path / "out.zarr"), repair=True)
    _, rerun = _smooth(raw, str(tmp_path / "out.zarr"))
    assert (rerun.processed_blocks, rerun.skipped_blocks) == (1, 7)
    assert np.array_equal(open_volume(str(tmp_path / "out.zarr")).read(), clean)
    assert not verify(str(tmp_path)).problems


def test_verify_finds_a_chunk_rewritten_with_other_values(tmp_path):
    import zarr

    raw = _written_raw(tmp_path)
    out, _ = _smooth(raw, str(tmp_path / "out.zarr"))
    expected = crc32(out.read()[8:, 8:, 8:])
    zarr.open_array(str(tmp_path / "out.zarr"), mode="r+")[8:, 8:, 8:] = 7  # a valid chunk, other bytes
    report = verify(str(tmp_path / "out.zarr"))
    found = crc32(np.full((8, 8, 8), 7, np.uint8))
    assert [str(p) for p in report.problems] == [
        f"{tmp_path}/out.zarr/c/1/1/1: checksum mismatch: expected crc32 {expected}, found crc32 {found}"]
    assert report.summary("out.zarr") == "1 problem(s) in 8 chunks of 8 finished blocks in 1 task run(s) under out.zarr"


def test_rerun_with_another_or_changed_input_is_refused_naming_it(tmp_path):
    raw = _written_raw(tmp_path)
    other = _written_raw(tmp_path, "other.zarr", seed=1)
    _smooth(raw, str(tmp_path / "out.zarr"))
    with pytest.raises(IncompatibleVolumeError, match=(
            f"task 'smooth' in {tmp_path}/out.zarr was started with another input 'raw' \\(url {tmp_path}/raw.zarr, "
            f"now {tmp_path}/other.zarr\\); .*--overwrite")):
        _smooth(other, str(tmp_path / "out.zarr"))
    out, result = _smooth(other, str(tmp_path / "out.zarr"), overwrite=True)
    assert result.processed_blocks == 8
    assert np.array_equal(out.read(), smooth(other.read(), SIGMA))

    # the same URL, written again with other content: the digest of its checksums changed
    create_volume(str(tmp_path / "other.zarr"), other.shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8), overwrite=True)
    changed = _written_raw(tmp_path, "other.zarr", seed=2)
    with pytest.raises(IncompatibleVolumeError, match="input 'raw' .*other.zarr\\) before its content changed "
                                                      "\\(content token blocks:.*, now blocks:"):
        _smooth(changed, str(tmp_path / "out.zarr"))


def test_an_input_not_written_by_the_engine_is_identified_by_its_chunk_listing(tmp_path):
    raw = _raw(str(tmp_path / "raw.zarr"))
    _smooth(raw, str(tmp_path / "out.zarr"))
    _, again = _smooth(raw, str(tmp_path / "out.zarr"))
    assert again.skipped_blocks == 8
    raw.write(raw.roi, np.zeros((16, 16, 16), np.uint8))
    with pytest.raises(IncompatibleVolumeError, match="before its content changed \\(content token files:"):
        _smooth(raw, str(tmp_path / "out.zarr"))


def test_a_changed_memory_input_is_refused():
    raw = _raw("memory://integrity-changed")
    out = create_volume("memory://integrity-changed-out", raw.shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    run = functools.partial(run_blockwise, copy_block, raw.roi, (8, 8, 8), task="copy", inputs={"raw": raw},
                            outputs={"out": out}, scheduler="threads", num_workers=1, progress=False)
    run()
    raw.write(raw.roi, np.ones((16, 16, 16), np.uint8))
    with pytest.raises(IncompatibleVolumeError, match="content token data:"):
        run()


def test_input_with_a_lost_chunk_or_unfinished_is_refused_naming_it(tmp_path):
    raw = _written_raw(tmp_path)
    os.remove(tmp_path / "raw.zarr" / "c" / "1" / "1" / "0")
    with pytest.raises(MissingChunkError, match=(
            f"input 'raw' \\({tmp_path}/raw.zarr\\) is missing chunk file {tmp_path}/raw.zarr/c/1/1/0 that task "
            "'copy' wrote; rerun the stage that wrote it \\(task 'copy'\\) with the same settings to recompute it")):
        _smooth(raw, str(tmp_path / "out.zarr"))
    assert not (tmp_path / "out.zarr" / "done" / "smooth" / "run.json").exists(), "refused before any work"
    # its own stage recomputes the lost block; then the downstream stage runs
    raw = _written_raw(tmp_path)
    out, _ = _smooth(raw, str(tmp_path / "out.zarr"))
    assert np.array_equal(out.read(), smooth(raw.read(), SIGMA))
    # an input whose stage did not finish
    os.remove(tmp_path / "raw.zarr" / "done" / "copy" / "0_0_1")
    os.remove(tmp_path / "raw.zarr" / "done" / "copy" / "complete.json")
    with pytest.raises(IncompleteVolumeError, match="input 'raw' .* is unfinished: task 'copy' has done 7 of 8 blocks"):
        _smooth(raw, str(tmp_path / "out2.zarr"))


def test_a_lost_chunk_outside_what_the_stage_reads_is_no_concern(tmp_path):
    from chunks import Roi

    raw = _written_raw(tmp_path)
    os.remove(tmp_path / "raw.zarr" / "c" / "1" / "1" / "1")
    out = create_volume(str(tmp_path / "out.zarr"), raw.shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    result = run_blockwise(copy_block, Roi((0, 0, 0), (8, 16, 16)), (8, 8, 8), task="copy", inputs={"raw": raw},
                           outputs={"out": out}, scheduler="sync", progress=False)
    assert result.processed_blocks == 4


def test_precomputed_output_lost_and_damaged_chunks(tmp_path):
    raw = _written_raw(tmp_path)
    url = f"precomputed://file://{tmp_path}/out"
    out = create_volume(url, raw.shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    run = functools.partial(run_blockwise, copy_block, raw.roi, (8, 8, 8), task="copy", inputs={"raw": raw},
                            outputs={"out": out}, scheduler="sync", progress=False)
    run()
    chunk = tmp_path / "out" / "8_8_8" / "8-16_0-8_0-8.gz"
    chunk.unlink()
    assert run().processed_blocks == 1
    assert np.array_equal(open_volume(url).read(), raw.read())
    chunk.write_bytes(b"junk")
    with pytest.raises(CorruptChunkError, match=f"cannot read chunk file {chunk} "):
        open_volume(url).read()
    assert [p.path for p in verify(str(tmp_path / "out")).problems] == [str(chunk)]


def test_a_copied_run_directory_resumes_and_verifies_where_it_is(tmp_path):
    import shutil

    raw = _written_raw(tmp_path / "a")
    _smooth(raw, str(tmp_path / "a" / "out.zarr"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _, again = _smooth(open_volume(str(tmp_path / "b" / "raw.zarr")), str(tmp_path / "b" / "out.zarr"))
    assert again.skipped_blocks == 8, "its input moved with it: the same input"
    shutil.rmtree(tmp_path / "a")
    report = verify(str(tmp_path / "b"))
    assert not report.problems and report.runs == 2 and report.chunks == 16
