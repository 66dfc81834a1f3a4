import pytest
import torch

from training.checkpoint import build_model, load_checkpoint, save_checkpoint
from training.config import ModelConfig, load_config
from training.unet import UNet3d, output_shape, valid_input_shape


def test_same_padding_keeps_shape_and_anisotropic_pooling():
    config = ModelConfig(widths=(4, 8, 16), downsample=((1, 2, 2), (1, 2, 2)))
    model = UNet3d(config)
    out = model(torch.zeros(1, 1, 5, 16, 24))
    assert out.shape == (1, 3, 5, 16, 24)


def test_valid_padding_output_shape_matches_prediction():
    config = ModelConfig(widths=(4, 8), downsample=((2, 2, 2),), padding="valid")
    shape = valid_input_shape(config, (8, 8, 8))
    out = UNet3d(config)(torch.zeros(1, 1, *shape))
    assert tuple(out.shape[2:]) == output_shape(config, shape)
    assert all(o >= 8 for o in out.shape[2:])


def test_long_range_offsets_add_channels():
    config = ModelConfig(widths=(4, 8), downsample=((2, 2, 2),),
                         offsets=((-1, 0, 0), (0, -1, 0), (0, 0, -1), (-3, 0, 0), (0, -9, 0), (0, 0, -9)))
    assert UNet3d(config)(torch.zeros(1, 1, 4, 8, 8)).shape[1] == 6


def test_bad_model_config_messages():
    with pytest.raises(ValueError, match="ModelConfig: downsample has 1 factors but widths has 3 levels"):
        ModelConfig(widths=(4, 8, 16), downsample=((2, 2, 2),))
    with pytest.raises(ValueError, match="ModelConfig: padding = 'full': expected one of 'same', 'valid'"):
        ModelConfig(padding="full")


def test_checkpoint_roundtrip_weights_only(tmp_path):
    config = ModelConfig(widths=(4, 8), downsample=((2, 2, 2),))
    model = UNet3d(config)
    save_checkpoint(str(tmp_path / "c.pt"), model, config, step=7, voxel_size_nm=(8, 8, 8))
    state = load_checkpoint(str(tmp_path / "c.pt"), expected_config=config)
    again = build_model(state)
    x = torch.rand(1, 1, 4, 8, 8)
    assert torch.equal(again(x), model(x)) and state["step"] == 7


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    config = ModelConfig(widths=(4, 8), downsample=((2, 2, 2),))
    save_checkpoint(str(tmp_path / "c.pt"), UNet3d(config), config, step=1)
    other = ModelConfig(widths=(4, 16), downsample=((2, 2, 2),))
    with pytest.raises(ValueError, match=r"trained with another model \(widths: checkpoint \(4, 8\) != config \(4, 16\)\)"):
        load_checkpoint(str(tmp_path / "c.pt"), expected_config=other)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a connecto model checkpoint"):
        load_checkpoint(str(tmp_path / "other.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot load checkpoint .*junk.pt': it is not a torch checkpoint, or it is "
                                         "truncated or corrupt") as junk:
        load_checkpoint(str(tmp_path / "junk.pt"))
    good = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt") as cut:
        load_checkpoint(str(tmp_path / "cut.pt"))
    for error in (junk, cut):  # never torch's advice to load with weights_only=False (it would run the file)
        assert "weights_only" not in str(error.value) and "\n" not in str(error.value)


class _Code:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_checkpoint_holding_code_is_refused_without_running_it(tmp_path, capsys):
    torch.save({"format": "connecto-affinities-v1", "x": _Code()}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match=r"holds Python objects \(print\) that no model file needs, and was "
                                         "not run") as error:
        load_checkpoint(str(tmp_path / "code.pt"))
    assert "weights_only" not in str(error.value) and "this ran" not in capsys.readouterr().out


def test_config_files_toml_and_yaml(tmp_path):
    (tmp_path / "c.toml").write_text('[model]\nwidths = [4, 8]\ndownsample = [[1, 2, 2]]\n[train]\nsteps = 3\n'
                                     '[[train.volumes]]\nraw = "a.h5:/raw"\nlabels = "a.h5:/labels"\nvoxel_size_nm = [40, 4, 4]\n')
    c = load_config(str(tmp_path / "c.toml"))
    assert c.model.downsample == ((1, 2, 2),) and c.train.steps == 3
    assert c.train.volumes[0].raw == f"{tmp_path}/a.h5:/raw"
    (tmp_path / "c.yaml").write_text("model:\n  widths: [4, 8]\n  downsample: [[1, 2, 2]]\n  colour: red\n")
    with pytest.raises(ValueError, match=r"c\.yaml: unknown key 'model\.colour'"):
        load_config(str(tmp_path / "c.yaml"))
    with pytest.raises(FileNotFoundError, match="config file .*nope.toml' does not exist"):
        load_config(str(tmp_path / "nope.toml"))
