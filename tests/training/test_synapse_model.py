"""The synapse head: targets from synthetic truth, augmentation that keeps clefts on their neurons,
training, prediction into a named 3-channel volume, and the refusals around it."""

import json

import numpy as np
import pandas as pd
import pytest

from chunks import create_volume, open_volume
from connecto.synthetic import generate_arrays
from training.config import ModelConfig, load_config
from training.data import _augment_with_clefts, load_volume
from training.targets import synapse_targets

VOXEL = (8, 8, 8)


@pytest.fixture(scope="module")
def synthetic():
    return generate_arrays((48, 96, 96), VOXEL, seed=1, n_synapses=12)


def _partners(table: pd.DataFrame) -> np.ndarray:
    return table[["synapse_id", "pre_id", "post_id"]].to_numpy(np.int64)


def test_synapse_targets_put_each_side_on_its_neuron(synthetic):
    table = synthetic.synapses
    assert table["synapse_id"].nunique() >= 4
    target, mask = synapse_targets(synthetic.labels, synthetic.clefts, _partners(table), VOXEL, side_nm=40.0)
    assert target.shape == (3, *synthetic.labels.shape)
    np.testing.assert_array_equal(target[0] > 0, synthetic.clefts > 0)
    labels = synthetic.labels
    for row in table.itertuples():
        pre = tuple(round(getattr(row, f"pre_{a}_nm") / 8) for a in "zyx")
        post = tuple(round(getattr(row, f"post_{a}_nm") / 8) for a in "zyx")
        # the truth's points sit 30 nm from the face: inside the 40 nm side band
        assert target[1][pre] == 1 and target[2][pre] == 0, row
        assert target[2][post] == 1 and target[1][post] == 0, row
    # every pre-side voxel belongs to some synapse's pre neuron, every post-side voxel to a post neuron
    assert set(np.unique(labels[target[1] > 0])) <= set(table["pre_id"])
    assert set(np.unique(labels[target[2] > 0])) <= set(table["post_id"])
    far = synapse_targets(labels, synthetic.clefts, _partners(table), VOXEL, side_nm=8.0)[0]
    assert far[1].sum() < target[1].sum() and far[2].sum() < target[2].sum()
    # side channels count in the band around clefts only: every side voxel, and nothing far away
    assert mask[0].all() and (mask[1:][target[1:] > 0] > 0).all()
    assert not far[1:][:, mask[1] == 0].any() and 0 < mask[1].mean() < 0.5


def test_no_clefts_means_empty_side_targets(synthetic):
    target, _ = synapse_targets(synthetic.labels, np.zeros_like(synthetic.clefts), np.zeros((0, 3)), VOXEL)
    assert not target.any()


def test_augmentation_moves_clefts_with_their_neurons(synthetic):
    rng = np.random.default_rng(0)
    raw = synthetic.raw.astype(np.float32) / 255
    before = set(zip(synthetic.labels[synthetic.clefts > 0], synthetic.clefts[synthetic.clefts > 0]))
    moved = 0
    for _ in range(8):
        _, labels, clefts = _augment_with_clefts(raw, synthetic.labels, synthetic.clefts, rng)
        assert labels.shape == clefts.shape == synthetic.labels.shape
        assert set(zip(labels[clefts > 0], clefts[clefts > 0])) <= before
        moved += not np.array_equal(clefts, synthetic.clefts)
    assert moved > 0


def _write_volume(tmp_path, synthetic):
    paths = {}
    for name in ("raw", "labels", "clefts"):
        array = getattr(synthetic, name)
        vol = create_volume(str(tmp_path / f"{name}.zarr"), array.shape, array.dtype, VOXEL, chunk_shape=(48, 96, 96))
        vol.write(vol.roi, array)
        paths[name] = str(tmp_path / f"{name}.zarr")
    paths["synapses"] = str(tmp_path / "synapses.parquet")
    synthetic.synapses.to_parquet(paths["synapses"])
    return paths


def _config_text(paths, out_dir, outputs='["synapses"]', with_clefts=True):
    synapse_lines = f'clefts = "{paths["clefts"]}"\nsynapses = "{paths["synapses"]}"\n' if with_clefts else ""
    return f"""
[model]
widths = [4, 8]
downsample = [[2, 2, 2]]
outputs = {outputs}

[train]
out_dir = "{out_dir}"
voxel_size_nm = [8, 8, 8]
steps = 4
patch_shape = [16, 32, 32]
learning_rate = 0.01
checkpoint_every = 2
validate_every = 2
threads = 1

[[train.volumes]]
raw = "{paths['raw']}"
labels = "{paths['labels']}"
{synapse_lines}voxel_size_nm = [8, 8, 8]
validation_slab_z = [32, 48]
"""


def test_train_and_predict_a_synapse_model(tmp_path, synthetic):
    from connecto.segment.affinities import AffinityError
    from connecto.segment.blockwise import segment
    from connecto.synapses.detect import detect_synapses_blockwise
    from training.predict import predict_volume
    from training.train import train

    paths = _write_volume(tmp_path, synthetic)
    (tmp_path / "c.toml").write_text(_config_text(paths, tmp_path / "run"))
    record = train(load_config(str(tmp_path / "c.toml")), progress=False)
    assert np.isfinite(record["train_loss"])
    assert {"val_cleft_f1", "val_pre_side_f1", "val_post_side_f1"} <= set(record)
    assert "val_affinity_f1" not in record
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert [r["step"] for r in log] == [2, 4]

    out = predict_volume(str(tmp_path / "run" / "model.pt"), open_volume(paths["raw"]), str(tmp_path / "pred.zarr"),
                         scheduler="sync", progress=False)
    assert out.num_channels == 3 and out.attrs["channels"] == ["cleft", "pre_side", "post_side"]
    assert "affinity_offsets" not in out.attrs
    with pytest.raises(AffinityError, match="not affinities"):
        segment(out, str(tmp_path / "seg"), scheduler="sync", progress=False)
    # an affinity volume is no synapse prediction
    affs = create_volume(str(tmp_path / "affs.zarr"), (48, 96, 96), "uint8", VOXEL, num_channels=3,
                         chunk_shape=(48, 96, 96))
    affs.update_attrs({"channels": ["affinity_-1_0_0", "affinity_0_-1_0", "affinity_0_0_-1"]})
    with pytest.raises(ValueError, match="a synapse prediction has 3"):
        detect_synapses_blockwise(affs, None, open_volume(paths["labels"]), str(tmp_path / "det"), scheduler="sync")


def test_synapse_model_needs_clefts_and_a_partner_table(tmp_path, synthetic):
    paths = _write_volume(tmp_path, synthetic)
    (tmp_path / "c.toml").write_text(_config_text(paths, tmp_path / "run", with_clefts=False))
    config = load_config(str(tmp_path / "c.toml"))
    with pytest.raises(ValueError, match="gives no clefts and synapses"):
        load_volume(config.train.volumes[0], synapses=True)
    pd.DataFrame({"synapse_id": [1]}).to_parquet(tmp_path / "bad.parquet")
    (tmp_path / "d.toml").write_text(_config_text({**paths, "synapses": str(tmp_path / "bad.parquet")},
                                                  tmp_path / "run"))
    with pytest.raises(ValueError, match=r"lacks the columns \['post_id', 'pre_id'\]"):
        load_volume(load_config(str(tmp_path / "d.toml")).train.volumes[0], synapses=True)


def test_a_checkpoint_of_another_head_is_refused(tmp_path, synthetic):
    from training.checkpoint import load_checkpoint
    from training.train import train

    paths = _write_volume(tmp_path, synthetic)
    (tmp_path / "c.toml").write_text(_config_text(paths, tmp_path / "run"))
    train(load_config(str(tmp_path / "c.toml")), progress=False)
    (tmp_path / "a.toml").write_text(_config_text(paths, tmp_path / "run", outputs='["affinities"]'))
    expected = load_config(str(tmp_path / "a.toml")).model
    with pytest.raises(ValueError, match=r"outputs: checkpoint \('synapses',\) != config \('affinities',\)"):
        load_checkpoint(str(tmp_path / "run" / "checkpoint_4.pt"), expected_config=expected)


def test_model_outputs_name_their_channels():
    both = ModelConfig(outputs=["affinities", "synapses"])
    assert both.out_channels == 6
    assert both.channel_names[3:] == ("cleft", "pre_side", "post_side")
    assert both.channels_of("synapses") == slice(3, 6)
    with pytest.raises(ValueError, match="distinct heads"):
        ModelConfig(outputs=["synapses", "synapses"])
    with pytest.raises(ValueError, match="distinct heads"):
        ModelConfig(outputs=["lsd"])


def test_init_from_copies_the_matching_tensors_of_another_model(tmp_path):
    import torch

    from training.checkpoint import save_checkpoint
    from training.train import initialise_from
    from training.unet import UNet3d

    boundary = ModelConfig(widths=(4, 8), downsample=((2, 2, 2),))
    source = UNet3d(boundary)
    save_checkpoint(str(tmp_path / "b.pt"), source, boundary, step=0)
    target = UNet3d(ModelConfig(widths=(4, 8), downsample=((2, 2, 2),), outputs=["synapses"]))
    assert initialise_from(target, str(tmp_path / "b.pt")) == len(source.state_dict())
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    other = UNet3d(ModelConfig(widths=(6, 10), downsample=((2, 2, 2),)))
    with pytest.raises(ValueError, match="has another trunk"):
        initialise_from(other, str(tmp_path / "b.pt"))


def test_one_network_with_both_heads_trains_and_predicts_six_channels(tmp_path, synthetic):
    from training.predict import predict_volume
    from training.train import train

    paths = _write_volume(tmp_path, synthetic)
    (tmp_path / "j.toml").write_text(_config_text(paths, tmp_path / "joint", outputs='["affinities", "synapses"]'))
    record = train(load_config(str(tmp_path / "j.toml")), progress=False)
    assert {"val_affinity_f1", "val_cleft_f1", "val_pre_side_f1", "val_post_side_f1"} <= set(record)
    out = predict_volume(str(tmp_path / "joint" / "model.pt"), open_volume(paths["raw"]), str(tmp_path / "p.zarr"),
                         scheduler="sync", progress=False)
    assert out.num_channels == 6 and out.attrs["channels"][3:] == ["cleft", "pre_side", "post_side"]
    assert out.attrs["affinity_offsets"] == [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
