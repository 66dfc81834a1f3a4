import functools
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from chunks import BlockFailedError, IncompatibleVolumeError, Roi, create_volume, open_volume, run_blockwise
from chunks.blocks import plan_blocks
from connecto.smooth import context_for, smooth, smooth_block


def _raw(url, shape=(24, 40, 40), chunk=(8, 8, 8), seed=0):
    vol = create_volume(url, shape, "uint8", (8, 8, 8), chunk_shape=chunk)
    vol.write(vol.roi, np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8))
    return vol


def _smooth_run(raw, out_url, block_shape, scheduler, workers=None, sigma=(1.0, 1.5, 1.5), **kw):
    out = create_volume(out_url, raw.shape, raw.dtype, raw.voxel_size_nm, chunk_shape=raw.chunk_shape)
    result = run_blockwise(functools.partial(smooth_block, sigma), raw.roi, block_shape, task="smooth",
                           inputs={"raw": raw}, outputs={"smoothed": out}, context=context_for(sigma),
                           scheduler=scheduler, num_workers=workers, progress=False, **kw)
    return out, result


def test_plan_blocks_ids_and_context():
    bounds = Roi((0, 0, 0), (8, 8, 8))
    blocks = plan_blocks(bounds, (4, 4, 4), context=(1, 1, 1), read_bounds=bounds)
    assert [b.block_id for b in blocks] == list(range(8))
    assert blocks[0].read_roi == Roi((0, 0, 0), (5, 5, 5))  # clipped at the volume start
    assert blocks[-1].read_roi == Roi((3, 3, 3), (5, 5, 5))
    before, after = blocks[0].missing_context((1, 1, 1))
    assert before == (1, 1, 1) and after == (0, 0, 0)


def test_blockwise_equals_monolithic_any_block_shape_and_workers(tmp_path):
    raw = _raw(str(tmp_path / "raw.zarr"))
    expected = smooth(raw.read(), (1.0, 1.5, 1.5))
    whole, r1 = _smooth_run(raw, str(tmp_path / "whole.zarr"), raw.shape, "sync")
    small, r2 = _smooth_run(raw, str(tmp_path / "small.zarr"), (8, 8, 8), "threads", workers=1)
    two, r3 = _smooth_run(raw, str(tmp_path / "two.zarr"), (8, 16, 8), "threads", workers=2)
    assert r1.total_blocks == 1 and r2.total_blocks == 3 * 5 * 5
    for out in (whole, small, two):
        assert np.array_equal(out.read(), expected)


def test_local_process_cluster_with_one_and_two_workers(tmp_path):
    raw = _raw(str(tmp_path / "raw.zarr"), shape=(16, 32, 32))
    expected = smooth(raw.read(), (1.0, 1.5, 1.5))
    one, _ = _smooth_run(raw, str(tmp_path / "one.zarr"), (8, 16, 16), "local", workers=1)
    two, result = _smooth_run(raw, str(tmp_path / "two.zarr"), (8, 16, 16), None, workers=2)
    assert result.processed_blocks == 8
    assert np.array_equal(one.read(), expected) and np.array_equal(two.read(), expected)


def test_rerun_skips_done_blocks_and_records_params(tmp_path):
    raw = _raw(str(tmp_path / "raw.zarr"))
    out, first = _smooth_run(raw, str(tmp_path / "out.zarr"), (8, 8, 8), "sync", params={"sigma": 1})
    assert first.processed_blocks == first.total_blocks == 75
    _, second = _smooth_run(raw, str(tmp_path / "out.zarr"), (8, 8, 8), "sync", params={"sigma": 1})
    assert second.skipped_blocks == 75 and second.processed_blocks == 0
    run = open_volume(str(tmp_path / "out.zarr")).attrs["connecto_runs"]["smooth"]
    assert run["params"] == {"sigma": 1} and run["block_shape"] == [8, 8, 8]
    with pytest.raises(IncompatibleVolumeError, match="started with different settings \\(block_shape\\).*--overwrite"):
        _smooth_run(raw, str(tmp_path / "out.zarr"), (8, 16, 16), "sync", params={"sigma": 1})
    _, third = _smooth_run(raw, str(tmp_path / "out.zarr"), (8, 16, 16), "sync", params={"sigma": 1}, overwrite=True)
    assert third.processed_blocks == third.total_blocks == 27


def failing_stage(bad_roi_begin, block, inputs):
    if tuple(block.write_roi.begin) == bad_roi_begin:
        raise RuntimeError("simulated bad block")
    return {"out": inputs["raw"][block.write_slices()]}


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_failed_blocks_are_reported_with_roi_and_traceback_and_finished_blocks_kept(tmp_path, scheduler):
    raw = _raw(str(tmp_path / "raw.zarr"), shape=(16, 16, 16))
    out = create_volume(str(tmp_path / "out.zarr"), raw.shape, "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    stage = functools.partial(failing_stage, (8, 0, 8))
    with pytest.raises(BlockFailedError, match=r"1 of 8 blocks of 'copy' failed after 1 retries.*\[\(8, 0, 8\):\(16, 8, 16\)\]") as info:
        run_blockwise(stage, raw.roi, (8, 8, 8), task="copy", inputs={"raw": raw}, outputs={"out": out},
                      scheduler=scheduler, num_workers=2, retries=1, progress=False)
    assert "simulated bad block" in info.value.failures[0][1]
    done = open_volume(str(tmp_path / "out.zarr")).read()
    assert np.array_equal(done[:8], raw.read()[:8]), "finished blocks must be kept"
    # the rerun (problem fixed) processes only the failed block
    result = run_blockwise(functools.partial(failing_stage, None), raw.roi, (8, 8, 8), task="copy",
                           inputs={"raw": raw}, outputs={"out": out}, scheduler="sync", progress=False)
    assert result.processed_blocks == 1 and result.skipped_blocks == 7
    assert np.array_equal(open_volume(str(tmp_path / "out.zarr")).read(), raw.read())


def test_memory_volumes_need_the_in_process_scheduler():
    raw = create_volume("memory://engine-mem", (8, 8, 8), "uint8", (8, 8, 8))
    with pytest.raises(ValueError, match="memory:// volumes live in this process only; use scheduler='threads'"):
        run_blockwise(lambda b, i: None, raw.roi, (4, 4, 4), task="t", outputs={"o": raw}, progress=False)


def test_block_shape_off_the_output_grid_is_refused(tmp_path):
    out = create_volume(str(tmp_path / "o.zarr"), (16, 16, 16), "uint8", (8, 8, 8), chunk_shape=(8, 8, 8))
    with pytest.raises(ValueError, match="block shape does not fit output 'o'.*not aligned to its chunk grid"):
        run_blockwise(lambda b, i: None, out.roi, (4, 8, 8), task="t", outputs={"o": out}, scheduler="sync",
                      progress=False)


KILLABLE_RUN = textwrap.dedent("""
    import sys, time, functools
    from chunks import open_volume, create_volume, run_blockwise

    def slow_copy(delay, block, inputs):
        time.sleep(delay)
        return {"out": 255 - inputs["raw"][block.write_slices()]}

    raw = open_volume(sys.argv[1])
    out = create_volume(sys.argv[2], raw.shape, raw.dtype, raw.voxel_size_nm, chunk_shape=raw.chunk_shape)
    result = run_blockwise(functools.partial(slow_copy, float(sys.argv[3])), raw.roi, raw.chunk_shape, task="copy",
                           inputs={"raw": raw}, outputs={"out": out}, scheduler="sync", progress=False)
    print(result.processed_blocks, result.skipped_blocks)
""")


def test_kill_9_mid_run_then_resume_gives_identical_output(tmp_path):
    raw = _raw(str(tmp_path / "raw.zarr"), shape=(16, 32, 32))
    script = tmp_path / "run.py"
    script.write_text(KILLABLE_RUN)
    out_url = str(tmp_path / "out.zarr")
    proc = subprocess.Popen([sys.executable, str(script), raw.url.path, out_url, "0.15"])
    marker_dir = tmp_path / "out.zarr" / "done" / "copy"
    deadline = time.time() + 60
    while time.time() < deadline:
        done = [p for p in marker_dir.glob("*_*_*")] if marker_dir.exists() else []
        if len(done) >= 5:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = len(list(marker_dir.glob("*_*_*")))
    assert 5 <= killed_after < 32, "the run must have been killed mid-way"
    rerun = subprocess.run([sys.executable, str(script), raw.url.path, out_url, "0"], capture_output=True,
                           text=True, check=True)
    processed, skipped = map(int, rerun.stdout.split())
    assert skipped == killed_after and processed == 32 - killed_after
    assert np.array_equal(open_volume(out_url).read(), 255 - raw.read())


def test_process_cluster_from_stdin_explains_the_way_out(tmp_path):
    code = (f"from chunks import create_volume, run_blockwise\n"
            f"v = create_volume({str(tmp_path / 'v.zarr')!r}, (8, 8, 8), 'uint8', (8, 8, 8), chunk_shape=(4, 4, 4))\n"
            "run_blockwise(lambda b, i: None, v.roi, (4, 4, 4), task='t', outputs={'o': v}, progress=False)\n")
    result = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "without `if __name__ == \"__main__\":` cannot start them: add that guard, or use scheduler='threads'" in result.stderr
