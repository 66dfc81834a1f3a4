"""The reconstruct config: a typed schema at load, cross-stage checks before the first stage (issue #18)."""

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from chunks import create_volume
from connecto.cli import cli
from connecto.demo import shipped_checkpoint, shipped_synapse_checkpoint
from connecto.reconstruct import ReconstructConfig, check_run, load_reconstruct_config, reconstruct
from training.schema import ConfigError

HEAD = 'raw = "raw.zarr"\nrun_dir = "run"\ncheckpoint = "model.pt"\n'


def _write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _raw_volume(tmp_path, shape=(48, 128, 128), voxel_size_nm=(8, 8, 8)):
    return create_volume(str(tmp_path / "raw.zarr"), shape, np.uint8, voxel_size_nm)


def _no_stage_ran(run_dir):
    """Nothing written: no run directory, or (a rerun) no stage recorded in its run.json."""
    run_json = run_dir / "run.json"
    return not run_dir.exists() or not json.loads(run_json.read_text()).get("stages")


# --- at load: types, ranges, unknown keys, syntax ---------------------------------------

def test_a_threshold_given_as_text_is_refused_at_load_and_nothing_is_written(tmp_path):
    path = _write(tmp_path, HEAD + 'threshold = "high"\n')
    with pytest.raises(ValueError, match=r"run\.toml: threshold = 'high': expected a number in \[0, 1\] "
                                         r"\(text is not a number\)$"):
        load_reconstruct_config(path)
    result = CliRunner().invoke(cli, ["reconstruct", path])
    assert result.exit_code == 1
    assert result.output.strip() == f"connecto: error: {path}: threshold = 'high': expected a number in [0, 1] " \
                                    "(text is not a number)"
    assert not (tmp_path / "run").exists()


def test_a_threshold_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"run\.toml: threshold = 7: expected a number in \[0, 1\] "
                                         r"\(input should be less than or equal to 1\)"):
        load_reconstruct_config(_write(tmp_path, HEAD + "threshold = 7\n"))
    with pytest.raises(ValueError, match=r"thresholds = \[0\.3, -0\.1\]: expected a list, each item a number in "
                                         r"\[0, 1\]"):
        load_reconstruct_config(_write(tmp_path, HEAD + "thresholds = [0.3, -0.1]\n"))
    with pytest.raises(ValueError, match=r"threshold = True: expected a number in \[0, 1\] \(true/false is not a "
                                         r"number\)"):
        load_reconstruct_config(_write(tmp_path, HEAD + "threshold = true\n"))


def test_voxel_sizes_are_kept_as_floats(tmp_path):
    config = load_reconstruct_config(_write(tmp_path, HEAD + "voxel_size_nm = [8.5, 8, 8]\n"))
    assert config.voxel_size_nm == (8.5, 8.0, 8.0)
    assert all(isinstance(v, float) for v in config.voxel_size_nm)
    whole = load_reconstruct_config(_write(tmp_path, HEAD + "voxel_size_nm = [8, 8, 8]\n"))
    assert whole.voxel_size_nm == (8, 8, 8)  # 8.0 == 8: integer sizes compare equal to volumes' integers
    assert ReconstructConfig(raw="r", run_dir="d", checkpoint="m", voxel_size_nm=(4.6, 4.6, 50)).voxel_size_nm \
        == (4.6, 4.6, 50.0)


def test_block_shapes_are_integers_and_positive(tmp_path):
    with pytest.raises(ValueError, match=r"segment_block_shape = \[32, 64\.5, 64\]: expected 3 integers > 0, "
                                         r"voxels \(z, y, x\) \(input should be a valid integer, got a number with "
                                         r"a fractional part\)"):
        load_reconstruct_config(_write(tmp_path, HEAD + "segment_block_shape = [32, 64.5, 64]\n"))
    with pytest.raises(ValueError, match=r"chunk_shape = \[0, 64, 64\]: expected 3 integers > 0"):
        load_reconstruct_config(_write(tmp_path, HEAD + "chunk_shape = [0, 64, 64]\n"))
    with pytest.raises(ValueError, match=r"voxel_size_nm = \[8, 8\]: expected 3 numbers > 0, nm \(z, y, x\) "
                                         r"\(item 2 is missing\)"):
        load_reconstruct_config(_write(tmp_path, HEAD + "voxel_size_nm = [8, 8]\n"))


@pytest.mark.parametrize("line, message", [
    ("aff_low = 0.9\naff_high = 0.1\n", r"aff_low \(0\.9\) <= aff_high \(0\.1\)"),
    ('method = "max"\n', r"method = 'max': expected one of 'mean', 'mutex'"),
    ("min_size = -1\n", r"min_size = -1: expected an integer >= 0"),
    ("treshold = 0.5\n", r"run\.toml: unknown key 'treshold' \(did you mean 'threshold'\?\)$"),
    ('colour = "red"\n', r"unknown key 'colour' \(known keys: raw, run_dir, checkpoint, "),
    ("synapse_params = { dilation = 8 }\n", r"unknown key 'synapse_params\.dilation' \(did you mean 'dilation_nm'\?\)"),
])
def test_values_and_keys_are_checked_at_load(tmp_path, line, message):
    with pytest.raises(ValueError, match=message):
        load_reconstruct_config(_write(tmp_path, HEAD + line))


def test_a_toml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = _write(tmp_path, HEAD + "threshold = = 0.5\n")
    with pytest.raises(ValueError, match=r"run\.toml, line 4, column 13: not valid TOML: Invalid value$"):
        load_reconstruct_config(path)


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = _write(tmp_path, "raw: raw.zarr\nrun_dir: [run\ncheckpoint: model.pt\n", "run.yaml")
    with pytest.raises(ValueError, match=r"run\.yaml, line 3, column 11: not valid YAML: expected ',' or ']', but "
                                         "got ':'$"):
        load_reconstruct_config(path)
    with pytest.raises(ValueError, match=r"run\.yaml: holds list \['raw'\]; expected keys and values"):
        load_reconstruct_config(_write(tmp_path, "- raw\n", "run.yaml"))


def test_errors_in_python_name_the_class(tmp_path):
    with pytest.raises(ConfigError, match=r"^ReconstructConfig: threshold = 'high': expected a number in \[0, 1\]"):
        ReconstructConfig(raw="r", run_dir="d", checkpoint="m", threshold="high")


# --- before the first stage: the config against its inputs -----------------------------------

def test_a_segment_block_shape_the_clefts_cannot_be_written_in_is_refused_before_any_stage(tmp_path):
    from connecto.synapses.detect import empty_table, write_cleft_volume

    _raw_volume(tmp_path)  # 48 x 128 x 128: chunks of 48 x 64 x 64
    config = ReconstructConfig(raw=str(tmp_path / "raw.zarr"), run_dir=str(tmp_path / "run"),
                               checkpoint=shipped_checkpoint(), synapse_checkpoint=shipped_synapse_checkpoint(),
                               segment_block_shape=(32, 64, 64), scheduler="sync")
    message = (r"segment_block_shape = \[32, 64, 64\] does not fit the synapse prediction's chunks \[48, 64, 64\] "
               r"\(chunk_shape \[64, 64, 64\]\), in which the cleft volume is written block by block; expected a "
               r"multiple of \[48, 64, 64\] on every axis the block does not cover whole, such as \[48, 64, 64\]")
    with pytest.raises(ValueError, match=message):
        reconstruct(config, progress=False)
    assert _no_stage_ran(tmp_path / "run")
    # the rule is the cleft stage's: it fails there with these blocks, and not with the suggested ones
    prediction = create_volume("memory://config-schema-prediction", (48, 128, 128), np.uint8, (8, 8, 8),
                               num_channels=3)
    with pytest.raises(ValueError, match="block shape does not fit output 'clefts'"):
        write_cleft_volume(prediction, empty_table(), "memory://config-schema-clefts", block_shape=(32, 64, 64),
                           scheduler="sync", progress=False)
    check_run(dataclasses.replace(config, segment_block_shape=(48, 64, 64)))
    write_cleft_volume(prediction, empty_table(), "memory://config-schema-clefts", block_shape=(48, 64, 64),
                       scheduler="sync", progress=False, overwrite=True)


def test_a_model_raw_voxel_size_mismatch_is_refused_before_any_stage(tmp_path):
    np.save(tmp_path / "stack.npy", np.zeros((8, 16, 16), np.uint8))
    config = ReconstructConfig(raw=str(tmp_path / "stack.npy"), run_dir=str(tmp_path / "run"),
                               checkpoint=shipped_checkpoint(), voxel_size_nm=(8.5, 8, 8), scheduler="sync")
    with pytest.raises(ValueError, match=r"stack\.npy has voxel size \(8\.5, 8, 8\) nm, but the model in .*"
                                         r"synthetic_affinities\.pt was trained at \(8, 8, 8\) nm; resample the raw "
                                         r"volume \(`connecto resample`, or `connecto predict --resample`\) or use a "
                                         "matching model"):
        reconstruct(config, progress=False)
    assert _no_stage_ran(tmp_path / "run")


def test_a_volume_whose_voxel_size_the_config_contradicts_is_refused(tmp_path):
    _raw_volume(tmp_path, voxel_size_nm=(8, 8, 8))
    config = ReconstructConfig(raw=str(tmp_path / "raw.zarr"), run_dir=str(tmp_path / "run"),
                               checkpoint=shipped_checkpoint(), voxel_size_nm=(10, 8, 8))
    with pytest.raises(ValueError, match=r"voxel_size_nm = \[10\.0, 8\.0, 8\.0\], but raw .*raw\.zarr is a volume of "
                                         r"voxel size \[8, 8, 8\] nm; voxel_size_nm is for ingesting an image source"):
        check_run(config)
    check_run(dataclasses.replace(config, voxel_size_nm=(8.0, 8.0, 8.0)))  # 8.0 == 8


def test_models_and_inputs_that_fail_later_are_refused_before_any_stage(tmp_path):
    _raw_volume(tmp_path)
    base = {"raw": str(tmp_path / "raw.zarr"), "run_dir": str(tmp_path / "run"), "checkpoint": shipped_checkpoint()}
    with pytest.raises(ValueError, match=r"checkpoint .*synthetic_synapses\.pt predicts \['cleft', 'pre_side', "
                                         r"'post_side'\]; expected a model with model\.outputs = \['affinities'\] "
                                         r"and 3 offsets"):
        check_run(ReconstructConfig(**{**base, "checkpoint": shipped_synapse_checkpoint()}))
    with pytest.raises(ValueError, match=r"synapse_checkpoint .*synthetic_affinities\.pt predicts \['affinity_-1_0_0'"
                                         r".*expected a model with model\.outputs = \['synapses'\]"):
        check_run(ReconstructConfig(**base, synapse_checkpoint=shipped_checkpoint()))
    with pytest.raises(ValueError, match=r"block shape \(18, 32, 32\) must be a multiple of the model's pooling "
                                         r"factors \(4, 4, 4\)"):
        check_run(ReconstructConfig(**base, predict_block_shape=(18, 32, 32)))
    with pytest.raises(ValueError, match=r"ground_truth .*labels\.zarr cannot be read"):
        check_run(ReconstructConfig(**base, ground_truth=str(tmp_path / "labels.zarr")))
    create_volume(str(tmp_path / "labels.zarr"), (48, 128, 96), np.uint64, (8, 8, 8))
    with pytest.raises(ValueError, match=r"ground_truth .*labels\.zarr covers .*shape \(48, 128, 96\).*evaluation "
                                         "needs the same region"):
        check_run(ReconstructConfig(**base, ground_truth=str(tmp_path / "labels.zarr")))
    assert not (tmp_path / "run").exists()
