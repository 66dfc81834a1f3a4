"""``connecto resample`` and ``connecto predict --resample`` (a model run on data of another voxel size)."""

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from chunks import create_volume, open_volume
from chunks.resample import resample_array
from connecto.cli import cli
from connecto.synthetic import generate_arrays

CHECKPOINT = str(Path(__file__).resolve().parents[2] / "connecto" / "data" / "synthetic_affinities.pt")  # 8 nm


def invoke(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def test_predict_resample_matches_the_prediction_at_the_model_voxel_size(tmp_path):
    raw8 = generate_arrays((32, 64, 64), (8, 8, 8), seed=4, n_bodies=0, n_synapses=1, max_posts=1).raw
    volume = create_volume(str(tmp_path / "raw8.zarr"), raw8.shape, np.uint8, (8, 8, 8), chunk_shape=(32, 32, 32))
    volume.write(volume.roi, raw8)
    down = invoke("resample", tmp_path / "raw8.zarr", tmp_path / "raw16.zarr", "--voxel-size", "16,16,16",
                  "--scheduler", "sync", "--no-progress")
    assert down.exit_code == 0, down.output
    assert "(8,8,8 nm, area)" in down.output
    raw16 = open_volume(str(tmp_path / "raw16.zarr"))
    assert tuple(raw16.shape) == (16, 32, 32) and tuple(raw16.voxel_size_nm) == (16, 16, 16)

    refused = invoke("predict", CHECKPOINT, tmp_path / "raw16.zarr", tmp_path / "plain.zarr", "--no-progress")
    assert refused.exit_code == 1 and "was trained at (8, 8, 8) nm" in refused.output

    result = invoke("predict", CHECKPOINT, tmp_path / "raw16.zarr", tmp_path / "affs16.zarr", "--resample",
                    "--no-progress", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    affs16 = open_volume(str(tmp_path / "affs16.zarr"))
    assert affs16.roi == raw16.roi and tuple(affs16.voxel_size_nm) == (16, 16, 16) and affs16.num_channels == 3

    # the same model on the 8 nm original, area-averaged to 16 nm: the resampled run sees blurrier data,
    # so it agrees closely but not exactly
    direct = invoke("predict", CHECKPOINT, tmp_path / "raw8.zarr", tmp_path / "affs8.zarr", "--no-progress",
                    "--precision", "fp32")
    assert direct.exit_code == 0, direct.output
    affs8 = open_volume(str(tmp_path / "affs8.zarr"))
    expected = resample_array(affs8.read(affs8.roi), affs8.roi, (8, 8, 8), (16, 16, 16), raw16.roi, "area")
    got = affs16.read(affs16.roi)
    correlation = np.corrcoef(got.ravel().astype(float), expected.ravel().astype(float))[0, 1]
    assert correlation > 0.95, correlation  # 0.992 measured
    blank = np.corrcoef(got.ravel().astype(float), np.roll(expected, 7, axis=-1).ravel().astype(float))[0, 1]
    assert blank < correlation - 0.2, (blank, correlation)  # the agreement is spatial, not a global bias
