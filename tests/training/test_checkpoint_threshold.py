"""A model carries its recommended merge threshold: checkpoint ``extra`` -> affinity volume attributes."""

import numpy as np
import pytest
import torch

from chunks import create_volume, open_volume
from training.checkpoint import THRESHOLD_KEY, recommended_threshold, save_checkpoint
from training.config import ModelConfig
from training.predict import predict_volume
from training.unet import UNet3d


def _checkpoint(path, extra=None):
    torch.manual_seed(0)
    config = ModelConfig(widths=(2, 4), downsample=((1, 2, 2),))
    save_checkpoint(str(path), UNet3d(config), config, step=0, voxel_size_nm=(8, 8, 8), extra=extra)
    return str(path)


def test_recommended_threshold_is_read_and_checked():
    assert recommended_threshold({THRESHOLD_KEY: 0.6}, where="m.pt") == 0.6
    assert recommended_threshold({}, where="m.pt") is None
    assert recommended_threshold(None, where="m.pt") is None
    with pytest.raises(ValueError, match=r"m\.pt: recommended threshold 1\.5 \('threshold'\) must be a number in "
                                         r"\[0, 1\]"):
        recommended_threshold({THRESHOLD_KEY: 1.5}, where="m.pt")
    with pytest.raises(ValueError, match="'high'"):
        recommended_threshold({THRESHOLD_KEY: "high"}, where="m.pt")


@pytest.mark.parametrize("extra, expected", [({THRESHOLD_KEY: 0.7}, 0.7), (None, None)])
def test_prediction_records_the_models_threshold(tmp_path, extra, expected):
    raw = create_volume(str(tmp_path / "raw.zarr"), (4, 16, 16), "uint8", (8, 8, 8), chunk_shape=(4, 16, 16))
    raw.write(raw.roi, np.random.default_rng(0).integers(0, 255, (4, 16, 16), dtype=np.uint8))
    out = str(tmp_path / "aff.zarr")
    predict_volume(_checkpoint(tmp_path / "m.pt", extra), raw, out, scheduler="sync", progress=False,
                   precision="fp32")
    assert open_volume(out).attrs[THRESHOLD_KEY] == expected


def test_a_bad_recommended_threshold_is_refused_before_predicting(tmp_path):
    raw = create_volume(str(tmp_path / "raw.zarr"), (4, 16, 16), "uint8", (8, 8, 8), chunk_shape=(4, 16, 16))
    with pytest.raises(ValueError, match="must be a number in"):
        predict_volume(_checkpoint(tmp_path / "m.pt", {THRESHOLD_KEY: -1}), raw, str(tmp_path / "aff.zarr"),
                       scheduler="sync", progress=False, precision="fp32")
    assert not (tmp_path / "aff.zarr").exists()
