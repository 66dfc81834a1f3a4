"""One default per parameter: ``connecto segment``, ``connecto reconstruct`` and the Python API agree."""

import dataclasses

import pytest
import torch

from connecto.defaults import DEFAULT_SCHEDULER, DEFAULT_THRESHOLD
from connecto.demo import shipped_checkpoint
from connecto.reconstruct import ReconstructConfig, model_threshold
from connecto.segment.cli import segment as segment_command
from connecto.segment.params import SegmentParams, default


def test_the_reconstruct_config_shares_the_segmentation_defaults():
    config = ReconstructConfig(raw="raw.zarr", run_dir="run", checkpoint="model.pt")
    for name in ("aff_low", "aff_high", "method", "min_size"):
        assert getattr(config, name) == getattr(SegmentParams(), name) == default(name), name
    assert config.threshold is None and config.scheduler is None  # resolved in one place each


def test_the_segment_command_shares_the_segmentation_defaults():
    options = {p.name: p.default for p in segment_command.params}
    for name in ("aff_low", "aff_high", "method", "bias", "min_size"):
        assert options[name] == default(name), name
    assert options["threshold"] is None and options["scheduler"] is None  # resolved by segment()


def test_the_values_of_the_defaults():
    assert (DEFAULT_THRESHOLD, DEFAULT_SCHEDULER) == (0.5, "threads")
    assert default("min_size") == 0
    with pytest.raises(KeyError, match="no field 'threshold'"):
        default("threshold")


def test_reconstruct_takes_the_threshold_the_checkpoint_recommends(tmp_path):
    import json

    from connecto.reconstruct import reconstruct

    assert model_threshold(shipped_checkpoint()) == DEFAULT_THRESHOLD  # the shipped models recommend none
    state = torch.load(shipped_checkpoint(), weights_only=True)
    path = tmp_path / "recommending.pt"
    torch.save({**state, "extra": {"threshold": 0.65}}, path)
    assert model_threshold(str(path)) == 0.65
    # run.json records the threshold used (connecto.connectome reads it); the run stops at ingest
    config = ReconstructConfig(raw=str(tmp_path / "missing.h5:/raw"), run_dir=str(tmp_path / "run"),
                               checkpoint=str(path), voxel_size_nm=(8, 8, 8), scheduler="sync")
    with pytest.raises(FileNotFoundError, match="missing.h5' does not exist"):
        reconstruct(config, progress=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["threshold"] == 0.65
    with pytest.raises(FileNotFoundError, match="missing.h5' does not exist"):
        reconstruct(dataclasses.replace(config, threshold=0.4), progress=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["threshold"] == 0.4
