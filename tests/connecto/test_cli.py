import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from chunks import open_volume
from connecto.cli import cli


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("command", [()] + list(_commands(cli)))
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_ingest_and_info_and_smooth(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (8, 16, 16)).astype(np.uint8)
    np.save(tmp_path / "v.npy", data)
    runner = CliRunner()
    out = str(tmp_path / "v.zarr")
    result = runner.invoke(cli, ["ingest", str(tmp_path / "v.npy"), out, "--voxel-size", "40,4,4",
                                 "--chunk-shape", "4,8,8", "--scheduler", "sync", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(open_volume(out).read(), data)
    info = runner.invoke(cli, ["info", out])
    assert "voxel_size_nm=(40, 4, 4)" in info.output and "run ingest" in info.output
    smoothed = runner.invoke(cli, ["smooth", out, str(tmp_path / "s.zarr"), "--sigma", "8", "--scheduler", "threads",
                                   "--workers", "2", "--block-shape", "4,8,8", "--no-progress"])
    assert smoothed.exit_code == 0, smoothed.output
    assert open_volume(str(tmp_path / "s.zarr")).shape == (8, 16, 16)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--voxel-size", "8,8"], "voxel size '8,8' has 2 values; expected 3"),
        (["--voxel-size", "8,0,8"], "voxel size '8,0,8' must be > 0"),
        (["--voxel-size", "8,8,8", "--chunk-shape", "a,b,c"], "chunk shape 'a,b,c' must be 3 integers"),
    ],
)
def test_bad_option_values_are_usage_errors(tmp_path, args, message):
    np.save(tmp_path / "v.npy", np.zeros((2, 2, 2), np.uint8))
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "v.npy"), str(tmp_path / "o.zarr"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_errors_are_one_line_without_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "nothing" / "*.png"), str(tmp_path / "o.zarr"),
                                      "--voxel-size", "8,8,8"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"connecto: error: no images match '{tmp_path}/nothing/*.png' "
                     "(looked for .png, .tif, .tiff, .jpg, .jpeg, .bmp files)"]


def test_existing_different_output_is_refused_then_overwritten(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 4, 4), np.uint8))
    np.save(tmp_path / "b.npy", np.ones((4, 4, 8), np.uint8))
    runner = CliRunner()
    base = ["--voxel-size", "8,8,8", "--scheduler", "sync", "--no-progress"]
    assert runner.invoke(cli, ["ingest", str(tmp_path / "a.npy"), str(tmp_path / "o.zarr"), *base]).exit_code == 0
    refused = runner.invoke(cli, ["ingest", str(tmp_path / "b.npy"), str(tmp_path / "o.zarr"), *base])
    assert refused.exit_code == 1 and "already exists with different properties" in refused.output
    assert "--overwrite" in refused.output
    ok = runner.invoke(cli, ["ingest", str(tmp_path / "b.npy"), str(tmp_path / "o.zarr"), *base, "--overwrite"])
    assert ok.exit_code == 0 and open_volume(str(tmp_path / "o.zarr")).read().min() == 1


def test_console_script_exit_codes_and_debug(tmp_path):
    exe = Path(sys.executable).parent / "connecto"
    if not exe.exists():
        pytest.skip("the connecto console script is not installed in this environment (pip install -e .)")
    missing = str(tmp_path / "missing.npy")
    plain = subprocess.run([str(exe), "ingest", missing, str(tmp_path / "o.zarr"), "--voxel-size", "8,8,8"],
                           capture_output=True, text=True)
    assert plain.returncode == 1
    assert plain.stderr.strip() == f"connecto: error: ingest source '{missing}' does not exist"
    debug = subprocess.run([str(exe), "--debug", "ingest", missing, str(tmp_path / "o.zarr"), "--voxel-size", "8,8,8"],
                           capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    usage = subprocess.run([str(exe), "no-such-command"], capture_output=True, text=True)
    assert usage.returncode == 2
