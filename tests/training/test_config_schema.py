"""The training config: a typed schema, one line per error naming the file, the key, the value (issue #18)."""

import dataclasses

import pytest

from training.config import Config, ModelConfig, TrainConfig, VolumeSpec, config_from_dict, load_config
from training.schema import ConfigError

VOLUME = '[[train.volumes]]\nraw = "raw.npy"\nlabels = "labels.npy"\nvoxel_size_nm = [8, 8, 8]\n'


def _load(tmp_path, text, name="c.toml"):
    (tmp_path / name).write_text(text)
    return load_config(str(tmp_path / name))


def test_a_good_config_loads_into_the_frozen_dataclasses(tmp_path):
    config = _load(tmp_path, "[model]\nwidths = [4, 8]\ndownsample = [[1, 2, 2]]\n[train]\nsteps = 3\n" + VOLUME)
    assert isinstance(config, Config) and isinstance(config.model, ModelConfig)
    assert isinstance(config.train, TrainConfig) and isinstance(config.train.volumes[0], VolumeSpec)
    assert config.model.downsample == ((1, 2, 2),) and config.train.steps == 3
    assert config.train.volumes[0].raw == f"{tmp_path}/raw.npy"
    assert dataclasses.asdict(config)["model"]["widths"] == (4, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.steps = 4
    assert dataclasses.replace(config.train, steps=5).steps == 5


def test_voxel_sizes_are_kept_as_floats(tmp_path):
    config = _load(tmp_path, "[train]\nvoxel_size_nm = [8.5, 8, 8]\n" + VOLUME.replace("[8, 8, 8]", "[8.5, 8, 8]"))
    assert config.train.voxel_size_nm == config.train.volumes[0].voxel_size_nm == (8.5, 8.0, 8.0)
    assert all(isinstance(v, float) for v in config.train.voxel_size_nm)
    assert _load(tmp_path, "[train]\n" + VOLUME).train.volumes[0].voxel_size_nm == (8, 8, 8)


def test_a_wrong_type_names_the_file_the_key_the_value_and_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match=r"c\.toml: train\.steps = 'many': expected an integer > 0 \(text is not a "
                                         r"number\)$"):
        _load(tmp_path, '[train]\nsteps = "many"\n' + VOLUME)
    with pytest.raises(ValueError, match=r"c\.toml: train\.volumes\[0\]\.voxel_size_nm = \[8, -8, 8\]: expected 3 "
                                         r"numbers > 0, nm \(z, y, x\) \(input should be greater than 0\)$"):
        _load(tmp_path, "[train]\n" + VOLUME.replace("[8, 8, 8]", "[8, -8, 8]"))
    with pytest.raises(ValueError, match=r"train\.learning_rate = 0: expected a number > 0"):
        _load(tmp_path, "[train]\nlearning_rate = 0\n" + VOLUME)
    with pytest.raises(ValueError, match=r"train\.min_labelled_fraction = 1\.5: expected a number in \[0, 1\]"):
        _load(tmp_path, "[train]\nmin_labelled_fraction = 1.5\n" + VOLUME)
    with pytest.raises(ValueError, match=r"train\.precision = 'half': expected one of 'auto', 'fp32', 'bf16', 'fp16'"):
        _load(tmp_path, '[train]\nprecision = "half"\n' + VOLUME)


def test_an_unknown_key_is_refused_with_a_suggestion(tmp_path):
    with pytest.raises(ValueError, match=r"c\.toml: unknown key 'train\.volumes\[0\]\.voxel_size' \(did you mean "
                                         r"'voxel_size_nm'\?\)$"):
        _load(tmp_path, "[train]\n" + VOLUME.replace("voxel_size_nm = [8, 8, 8]", "voxel_size_nm = [8, 8, 8]\n"
                                                     "voxel_size = [8, 8, 8]"))
    with pytest.raises(ValueError, match=r"c\.yaml: unknown key 'model\.colour' \(known keys: in_channels, widths, "
                                         "downsample, offsets, padding, outputs, network, z_context, lsd_head\\)$"):
        _load(tmp_path, "model:\n  widths: [4, 8]\n  downsample: [[1, 2, 2]]\n  colour: red\n", "c.yaml")
    with pytest.raises(ValueError, match=r"unknown key 'trian' \(did you mean 'train'\?\)"):
        _load(tmp_path, "[trian]\nsteps = 3\n")


def test_syntax_errors_name_the_file_and_the_line(tmp_path):
    with pytest.raises(ValueError, match=r"c\.toml, line 3, column 8: not valid TOML: Invalid value$"):
        _load(tmp_path, "[train]\nsteps = 3\nseed = \nthreads = 1\n")
    with pytest.raises(ValueError, match=r"c\.toml, at the end: not valid TOML: Unclosed array$"):
        _load(tmp_path, "[train]\nsteps = 3\nseed = [1\n")
    with pytest.raises(ValueError, match=r"c\.yaml, line 3, column 10: not valid YAML: expected ',' or ']', "
                                         "but got ':'$"):
        _load(tmp_path, "model:\n  widths: [4, 8\n  padding: same\n", "c.yaml")


def test_checks_across_fields(tmp_path):
    with pytest.raises(ValueError, match=r"c\.toml: model: downsample has 1 factors but widths has 3 levels"):
        _load(tmp_path, "[model]\nwidths = [4, 8, 16]\ndownsample = [[2, 2, 2]]\n")
    with pytest.raises(ValueError, match=r"train\.volumes = \[\]: expected at least one \[\[train\.volumes\]\] with "
                                         "raw and labels"):
        _load(tmp_path, "[train]\nvolumes = []\n")
    with pytest.raises(ValueError, match=r"missing key 'train\.volumes'"):
        _load(tmp_path, "[train]\nsteps = 3\n")
    with pytest.raises(ValueError, match=r"train\.volumes\[0\]: validation_slab_z \[24, 16\] is empty"):
        _load(tmp_path, "[train]\n" + VOLUME + "validation_slab_z = [24, 16]\n")


def test_configs_made_in_python_are_checked_the_same_way():
    with pytest.raises(ConfigError, match=r"^ModelConfig: padding = 'full': expected one of 'same', 'valid'"):
        ModelConfig(padding="full")
    with pytest.raises(ConfigError, match=r"^VolumeSpec: missing key 'voxel_size_nm'"):
        VolumeSpec(raw="r.npy", labels="l.npy")
    with pytest.raises(ConfigError, match=r"^config: unknown key 'train\.colour'"):
        config_from_dict({"train": {"colour": 1}}, source="config")
