from pathlib import Path

import numpy as np
import pytest
import torch

from chunks import IncompatibleVolumeError, create_volume, open_volume
from tests.training.conftest import voronoi_volume
from training.checkpoint import load_checkpoint, model_config_from_checkpoint, save_checkpoint
from training.config import ModelConfig
from training.predict import _cached_model, predict_padded, predict_volume
from training.unet import UNet3d


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(widths=(4, 8, 16), downsample=((1, 2, 2), (2, 2, 2)))
    path = str(tmp_path / "model.pt")
    save_checkpoint(path, UNet3d(config), config, step=0, voxel_size_nm=(8, 8, 8))
    return path


@pytest.fixture
def raw_volume(tmp_path):
    raw, _ = voronoi_volume(shape=(20, 56, 48))
    vol = create_volume(str(tmp_path / "raw.zarr"), raw.shape, "uint8", (8, 8, 8), chunk_shape=(4, 8, 8))
    vol.write(vol.roi, raw)
    return vol


SHIPPED = Path(__file__).resolve().parents[2] / "connecto" / "data" / "synthetic_affinities.pt"


@pytest.mark.parametrize("model", ["random", "trained"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_blockwise_prediction_has_no_seams(tmp_path, checkpoint, raw_volume, precision, model):
    path = checkpoint if model == "random" else str(SHIPPED)
    state = load_checkpoint(path)
    config = model_config_from_checkpoint(state)
    factor = config.total_downsample
    out = predict_volume(path, raw_volume, str(tmp_path / "aff.zarr"), block_shape=(8, 16, 16),
                         scheduler="threads", num_workers=2, progress=False, precision=precision)
    blockwise = open_volume(str(tmp_path / "aff.zarr")).read().astype(np.float64) / 255
    net, device = _cached_model(path, 0.0, None)
    whole = predict_padded(net, device, raw_volume.read(), (0, 0, 0), (0, 0, 0), factor, precision)
    assert blockwise.shape == (3, 20, 56, 48) and out.num_channels == 3
    # uint8 storage rounds by at most 0.5/255; seams would add more
    assert np.abs(blockwise - whole).max() < 1 / 255


def test_too_little_context_leaves_seams(tmp_path, raw_volume):
    """The check above can fail: a trained network sees further than a small context."""
    predict_volume(str(SHIPPED), raw_volume, str(tmp_path / "aff.zarr"), block_shape=(8, 16, 16), context=(4, 4, 4),
                   scheduler="threads", num_workers=2, progress=False)
    blockwise = open_volume(str(tmp_path / "aff.zarr")).read().astype(np.float64) / 255
    net, device = _cached_model(str(SHIPPED), 0.0, None)
    whole = predict_padded(net, device, raw_volume.read(), (0, 0, 0), (0, 0, 0), (4, 4, 4), "fp32")
    assert np.abs(blockwise - whole).max() > 1 / 255


def test_raw_of_other_dtype_or_voxel_size_is_refused(tmp_path, checkpoint):
    other = create_volume(str(tmp_path / "r16.zarr"), (8, 16, 16), "uint16", (8, 8, 8))
    with pytest.raises(ValueError, match=r"raw .*r16.zarr is uint16, but the model in .*model.pt was trained on uint8"):
        predict_volume(checkpoint, other, str(tmp_path / "a.zarr"), scheduler="sync", progress=False)
    coarse = create_volume(str(tmp_path / "r40.zarr"), (8, 16, 16), "uint8", (40, 8, 8))
    with pytest.raises(ValueError, match=r"voxel size \(40, 8, 8\) nm, but the model .* was trained at \(8, 8, 8\) nm"):
        predict_volume(checkpoint, coarse, str(tmp_path / "a.zarr"), scheduler="sync", progress=False)


def test_existing_output_of_other_shape_is_refused(tmp_path, checkpoint, raw_volume):
    create_volume(str(tmp_path / "aff.zarr"), (4, 4, 4), "uint8", (8, 8, 8), num_channels=3)
    with pytest.raises(IncompatibleVolumeError, match="aff.zarr already exists with different properties"):
        predict_volume(checkpoint, raw_volume, str(tmp_path / "aff.zarr"), scheduler="sync", progress=False)


def test_block_shape_must_fit_the_pooling(tmp_path, checkpoint, raw_volume):
    with pytest.raises(ValueError, match=r"block shape \(3, 8, 8\) must be a multiple of the model's pooling factors \(2, 4, 4\)"):
        predict_volume(checkpoint, raw_volume, str(tmp_path / "a.zarr"), block_shape=(3, 8, 8), scheduler="sync",
                       progress=False)


def test_predict_and_train_on_the_command_line(tmp_path, checkpoint, raw_volume, tiny_training_files):
    from click.testing import CliRunner

    from connecto.cli import cli
    from tests.training.conftest import tiny_config_text

    result = CliRunner().invoke(cli, ["predict", checkpoint, raw_volume.url.path, str(tmp_path / "aff.zarr"),
                                      "--scheduler", "sync", "--no-progress", "--block-shape", "8,16,16"])
    assert result.exit_code == 0, result.output
    assert open_volume(str(tmp_path / "aff.zarr")).num_channels == 3
    (tiny_training_files / "c.toml").write_text(tiny_config_text(tiny_training_files / "run", steps=2))
    trained = CliRunner().invoke(cli, ["train", str(tiny_training_files / "c.toml"), "--no-progress"])
    assert trained.exit_code == 0, trained.output
    assert "trained to step 2" in trained.output
    missing = CliRunner().invoke(cli, ["train", str(tmp_path / "none.toml")])
    assert missing.exit_code == 1 and "config file" in missing.output and "does not exist" in missing.output


@pytest.fixture
def valid_checkpoint(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(widths=(4, 8, 16), downsample=((1, 2, 2), (2, 2, 2)), padding="valid")
    path = str(tmp_path / "valid.pt")
    model = UNet3d(config)
    with torch.no_grad():
        model.head.weight *= 300  # a random net's output varies little: make a misplaced block visible
    save_checkpoint(path, model, config, step=0, voxel_size_nm=(8, 8, 8))
    return path


def test_valid_padding_model_predicts_blockwise_as_in_one_block(tmp_path, valid_checkpoint, raw_volume):
    from training.predict import valid_margin

    blocks = predict_volume(valid_checkpoint, raw_volume, str(tmp_path / "blocks.zarr"), block_shape=(8, 16, 16),
                            scheduler="threads", num_workers=2, progress=False, precision="fp32").read()
    whole = predict_volume(valid_checkpoint, raw_volume, str(tmp_path / "whole.zarr"), block_shape=(20, 56, 48),
                           scheduler="sync", progress=False, precision="fp32").read()
    assert blocks.shape == whole.shape == (3, 20, 56, 48)
    assert np.abs(blocks.astype(int) - whole.astype(int)).max() <= 1  # uint8 rounding only
    assert len(np.unique(whole)) > 10  # a real output, not a constant
    config = model_config_from_checkpoint(load_checkpoint(valid_checkpoint))
    with pytest.raises(ValueError, match="reads exactly its margin"):
        predict_volume(valid_checkpoint, raw_volume, str(tmp_path / "x.zarr"), context=(1, 1, 1), progress=False)
    assert valid_margin(config) == (12, 20, 20)
