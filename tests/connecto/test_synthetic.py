"""connecto.synthetic: synthetic EM volumes whose neurons and synapses are known exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import cc3d
import numpy as np
import pytest
from click.testing import CliRunner

from chunks import open_volume
from connecto.synthetic import SynthConfig, generate, generate_arrays, image_statistics, read_tables
from connecto.synthetic.cli import synth
from connecto.synthetic.labels import LabelField, boundary_mask, remove_islands

# small neurites so that a 32x48x48 volume at 8 nm (256 x 384 x 384 nm) holds a dozen neurons
SMALL = {"axon_radius_nm": 30.0, "dendrite_radius_nm": 70.0, "n_synapses": 4}


@pytest.fixture(scope="module")
def small():
    return generate_arrays((32, 48, 48), (8, 8, 8), seed=5, **SMALL)


@pytest.fixture(scope="module")
def sstem():
    """ssTEM-like: 40 nm sections, 4 nm pixels."""
    return generate_arrays((12, 96, 96), (40, 4, 4), seed=2, axon_radius_nm=45.0, dendrite_radius_nm=100.0,
                           n_synapses=3)


def _components_per_label(labels: np.ndarray) -> dict[int, int]:
    cc = cc3d.connected_components(labels, connectivity=6, out_dtype=np.uint64)
    pairs = np.unique(np.stack([labels.ravel(), cc.ravel()]), axis=1)
    ids, counts = np.unique(pairs[0], return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist()))


# --- determinism and blockwise equality ---------------------------------------------------

def test_same_seed_same_volume_other_seed_other_volume(small):
    again = generate_arrays((32, 48, 48), (8, 8, 8), seed=5, **SMALL)
    for name in ("raw", "labels", "clefts"):
        np.testing.assert_array_equal(getattr(again, name), getattr(small, name))
    assert again.synapses.equals(small.synapses)
    other = generate_arrays((32, 48, 48), (8, 8, 8), seed=6, **SMALL)
    assert not np.array_equal(other.labels, small.labels)
    assert not np.array_equal(other.raw, small.raw)


def test_block_shape_does_not_change_a_voxel(tmp_path):
    params = dict(seed=11, artefact_rate=0.6, **SMALL)  # artefacts: shifted and missing sections too
    whole = generate_arrays((24, 40, 48), (8, 8, 8), **params)
    urls = {name: f"memory://synth-blocks/{name}" for name in ("raw", "labels", "clefts")}
    result = generate({**urls, "tables": str(tmp_path)}, (24, 40, 48), (8, 8, 8), chunk_shape=(8, 8, 16),
                      block_shape=(8, 16, 16), scheduler="sync", progress=False, overwrite=True, **params)
    for name in ("raw", "labels", "clefts"):
        np.testing.assert_array_equal(open_volume(result.volumes[name]).read(), getattr(whole, name))
    # in memory, odd block shapes that cut through labelling cells and membranes
    odd = generate_arrays((24, 40, 48), (8, 8, 8), block_shape=(7, 13, 29), **params)
    for name in ("raw", "labels", "clefts"):
        np.testing.assert_array_equal(getattr(odd, name), getattr(whole, name))


def test_block_shape_does_not_change_a_voxel_of_anisotropic_data():
    params = {"seed": 2, "axon_radius_nm": 45.0, "dendrite_radius_nm": 100.0, "n_synapses": 3, "artefact_rate": 0.5}
    whole = generate_arrays((12, 96, 96), (40, 4, 4), **params)
    blocks = generate_arrays((12, 96, 96), (40, 4, 4), block_shape=(5, 37, 41), **params)
    for name in ("raw", "labels", "clefts"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))


def test_worker_processes_give_the_same_volume(tmp_path, small):
    """Through a local dask cluster of processes (the model travels pickled) into zarr."""
    result = generate(tmp_path / "out", (32, 48, 48), (8, 8, 8), seed=5, chunk_shape=(16, 24, 24),
                      num_workers=2, progress=False, **SMALL)
    for name in ("raw", "labels", "clefts"):
        np.testing.assert_array_equal(open_volume(result.volumes[name]).read(), getattr(small, name))
    tables = read_tables(result.tables_url)
    assert tables["synapses"].equals(small.synapses)
    summary = json.loads((tmp_path / "out" / "synthetic.json").read_text())
    assert summary["config"]["seed"] == 5 and summary["counts"]["neurons"] == len(small.neurons)


# --- labels -------------------------------------------------------------------------------

def test_labels_are_dense_uint64_and_match_the_neuron_table(small):
    assert small.labels.dtype == np.uint64
    assert (small.labels > 0).all(), "no background inside neuropil"
    ids = np.unique(small.labels)
    assert len(ids) >= 8
    assert set(ids.tolist()) == set(small.neurons["neuron_id"].tolist())


@pytest.mark.parametrize("which", ["small", "sstem"])
def test_every_neuron_is_one_6_connected_component(which, request):
    vol = request.getfixturevalue(which)
    components = _components_per_label(vol.labels)
    split = {k: v for k, v in components.items() if v != 1}
    assert not split, f"neurons in several pieces: {split}"


def test_labels_equal_the_exact_power_diagram():
    """The cell-wise fast path agrees with a plain nearest-node lookup at every voxel."""
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 400, (300, 3))
    radius = rng.uniform(10, 80, 300)
    field = LabelField(pos, radius, np.arange(1, 301) % 37 + 1)
    box = field.label_box((3, -2, 5), (20, 24, 28), (16, 12, 8))
    grid = np.stack(np.meshgrid(*[np.arange(b, b + s) for b, s in zip((3, -2, 5), (20, 24, 28))], indexing="ij"), -1)
    expected = field.label_points(grid.reshape(-1, 3) * np.array([16, 12, 8])).reshape(box.shape)
    np.testing.assert_array_equal(box, expected)


def test_remove_islands_gives_a_stray_voxel_to_its_surroundings():
    labels = np.full((5, 5, 5), 7, np.uint64)
    labels[:, :, :2] = 3
    labels[2, 2, 3] = 3   # a lone voxel of 3 inside the 7s
    labels[0, 0, 4] = 9   # on the box face: may continue outside, kept
    out = remove_islands(labels, (2, 2, 2))
    assert out[2, 2, 3] == 7 and out[0, 0, 4] == 9
    assert (out == 3).sum() == 50
    # on the volume's edge a face is closed: the piece cannot continue outside
    closed = remove_islands(labels, (2, 2, 2), open_faces=((False, True), (False, True), (True, False)))
    assert closed[0, 0, 4] == 7


# --- synapses ------------------------------------------------------------------------------

def test_every_synapse_touches_both_partners(small, sstem):
    for vol in (small, sstem):
        syn = vol.synapses
        assert len(syn) >= 1
        assert set(np.unique(vol.clefts[vol.clefts > 0]).tolist()) == set(syn["synapse_id"].tolist())
        vs = np.asarray(vol.config.voxel_size_nm)
        for row in syn.itertuples():
            in_cleft = vol.labels[vol.clefts == row.synapse_id]
            assert row.pre_id in in_cleft and row.post_id in in_cleft, row
            assert row.pre_id != row.post_id
            for prefix, expected in (("pre", row.pre_id), ("post", row.post_id)):
                idx = tuple(np.rint(np.array([getattr(row, f"{prefix}_{a}_nm") for a in "zyx"]) / vs).astype(int))
                assert vol.labels[idx] == expected, (prefix, row)
            idx = tuple(np.rint(np.array([row.cleft_z_nm, row.cleft_y_nm, row.cleft_x_nm]) / vs).astype(int))
            assert vol.clefts[idx] == row.synapse_id


def test_polyadic_synapse_one_pre_several_posts(monkeypatch):
    """A bouton touched by four dendrites: one synapse, one pre, several posts, one cleft id."""
    from connecto.synthetic import synapses
    from connecto.synthetic.neurons import Skeletons

    monkeypatch.setattr(synapses, "POLYADIC_SINGLE", 0.0)
    cfg = SynthConfig(shape=(48, 64, 64), axon_radius_nm=30.0, dendrite_radius_nm=50.0, n_synapses=1,
                      max_posts=4).resolve()
    x = np.arange(20.0, 500.0, 20.0)
    centre = np.array([188.0, 256.0])
    chains = [(centre, np.where(np.abs(x - 256) <= 60, 120.0, 40.0))]  # the axon, a bouton in the middle
    for dz, dy in ((0, 180), (0, -180), (180, 0), (-180, 0)):
        chains.append((centre + [dz, dy], np.full(len(x), 50.0)))
    pos = np.vstack([np.column_stack([np.full(len(x), zy[0]), np.full(len(x), zy[1]), x]) for zy, _ in chains])
    radius = np.concatenate([r for _, r in chains])
    neuron = np.repeat(np.arange(1, 6), len(x))
    parent = np.where(np.arange(len(pos)) % len(x) == 0, -1, np.arange(len(pos)) - 1)
    sk = Skeletons(pos, radius, neuron, parent, neuron - 1, ("axon",) + ("dendrite",) * 4)
    found = synapses.place_synapses(cfg, sk, LabelField(pos, radius, neuron), np.random.default_rng(0))
    assert len(found) == 1 and set(found.synapse_id) == {1}
    assert set(found.pre_id) == {1}
    assert 2 <= len(found.post_id) == len(set(found.post_id)) and set(found.post_id) <= {2, 3, 4, 5}
    assert np.all(found.normal @ np.array([0.0, 0.0, 1.0]) == 0)  # contacts face the dendrites


def test_max_posts_1_means_one_partner_per_synapse():
    vol = generate_arrays((32, 64, 64), (8, 8, 8), seed=3, axon_radius_nm=30.0, dendrite_radius_nm=70.0,
                          n_synapses=6, max_posts=1)
    assert len(vol.synapses) >= 3 and vol.synapses["synapse_id"].is_unique


def test_vesicles_lie_in_the_presynaptic_neuron(small):
    ves, syn = small.tables["vesicles"], small.synapses
    assert len(ves) > 0
    pre = dict(zip(syn["synapse_id"], syn["pre_id"]))
    vs = np.asarray(small.config.voxel_size_nm)
    idx = np.rint(ves[["z_nm", "y_nm", "x_nm"]].to_numpy() / vs).astype(int)
    inside = np.all((idx >= 0) & (idx < small.labels.shape), axis=1)
    found = small.labels[tuple(idx[inside].T)]
    expected = ves["synapse_id"].map(pre).to_numpy()[inside]
    assert (found == expected).mean() > 0.95


# --- image ------------------------------------------------------------------------------------

def test_membranes_are_darker_than_interiors(small, sstem):
    # measured 2026-12-03, within 3%: contrast 0.263 and 0.433 (FIB-25: 0.23, 98 vs 127 grey levels),
    # interior mean 125.3 and 152.2 grey levels
    for vol, contrast, interior in ((small, 0.263, 125.3), (sstem, 0.433, 152.2)):
        stats = image_statistics(vol.raw, vol.labels)
        assert stats["contrast"] == pytest.approx(contrast, rel=0.03), stats
        assert stats["interior_mean"] == pytest.approx(interior, rel=0.03), stats
    faint = generate_arrays((32, 48, 48), (8, 8, 8), seed=5, membrane_contrast=0.1, **SMALL)
    assert image_statistics(faint.raw, faint.labels)["contrast"] < image_statistics(small.raw, small.labels)["contrast"]


def test_difficulty_adds_noise_and_artefacts():
    easy = generate_arrays((24, 48, 48), (8, 8, 8), seed=3, difficulty=0.0, **SMALL)
    hard = generate_arrays((24, 48, 48), (8, 8, 8), seed=3, difficulty=1.0, artefact_rate=0.9, **SMALL)
    np.testing.assert_array_equal(easy.labels, hard.labels)  # the same neurons, a harder image
    assert easy.config.artefact_rate == 0.0 and hard.config.noise > easy.config.noise
    flat = [z for z in range(24) if hard.raw[z].std() < 0.5 * hard.config.noise + 1]
    assert flat, "expected at least one missing (flat) section at artefact rate 0.9"
    assert all(easy.raw[z].std() > 10 for z in range(24))


@pytest.mark.shared_data
def test_image_statistics_close_to_fib25(shared_data):
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared_data / "fib25" / "training_sample2.h5") as f:
        real = image_statistics(f["raw"][:64, :96, :96], f["labels"][:64, :96, :96])
    vol = generate_arrays((48, 96, 96), (10, 10, 10), seed=0)  # FIB-25 is 10 nm isotropic
    synthetic = image_statistics(vol.raw, vol.labels)
    # measured 2026-12-03: contrast 0.263 vs 0.224, mean 124.4 vs 125.8 grey levels, spectrum slope
    # -2.595 vs -2.660; bounds: the measured differences plus about 3% of each value
    assert abs(synthetic["contrast"] - real["contrast"]) < 0.05, (synthetic, real)
    assert abs(synthetic["mean"] - real["mean"]) < 5, (synthetic, real)
    assert abs(synthetic["spectrum_slope"] - real["spectrum_slope"]) < 0.15, (synthetic, real)


# --- parameters, CLI and import ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"shape": (64, 64)}, r"shape \(64, 64\) has 2 values; expected 3"),
    ({"shape": (8, 8, 8), "n_synapses": -1}, "n_synapses -1 must be an integer >= 0"),
    ({"shape": (8, 8, 8), "voxel_size_nm": (0, 4, 4)}, "voxel size .* must be > 0"),
    ({"shape": (8, 8, 8), "density": 1.5}, r"density 1.5 must be a number in \(0.0, 0.95\]"),
    ({"shape": (8, 8, 8), "difficulty": -0.1}, r"difficulty -0.1 must be a number in \[0.0, 1.0\]"),
    ({"shape": (8, 8, 8), "axon_radius_nm": 2.0}, "axon_radius_nm 2.0 is below one voxel"),
])
def test_bad_parameters_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


def test_cli_generates_a_tiny_volume(tmp_path):
    out = tmp_path / "synth"
    result = CliRunner().invoke(synth, [str(out), "--shape", "16,32,32", "--voxel-size", "8,8,8", "--seed", "4",
                                        "--synapses", "1", "--scheduler", "sync", "--no-progress",
                                        "--chunk-shape", "16,16,16"])
    assert result.exit_code == 0, result.output
    assert "neurons" in result.output and "raw.zarr" in result.output
    raw = open_volume(out / "raw.zarr")
    assert raw.shape == (16, 32, 32) and raw.dtype == np.uint8 and raw.voxel_size_nm == (8, 8, 8)
    assert open_volume(out / "labels.zarr").dtype == np.uint64
    assert set(read_tables(str(out))) == {"neurons", "synapses", "skeletons", "mitochondria", "vesicles"}


@pytest.mark.parametrize("args, message", [
    (["--shape", "16,32"], "shape '16,32' has 2 values; expected 3"),
    (["--shape", "16,32,32", "--synapses", "-1"], "-1 is not in the range x>=0"),
])
def test_cli_rejects_bad_parameters(tmp_path, args, message):
    result = CliRunner().invoke(synth, [str(tmp_path / "x"), *args, "--scheduler", "sync"])
    assert result.exit_code == 2
    assert message in result.output


def test_rerun_with_other_parameters_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "v"
    generate(out, (8, 16, 16), (8, 8, 8), seed=1, scheduler="sync", progress=False, n_synapses=0)
    with pytest.raises(ValueError, match="different settings"):
        generate(out, (8, 16, 16), (8, 8, 8), seed=2, scheduler="sync", progress=False, n_synapses=0)
    assert json.loads((out / "synthetic.json").read_text())["config"]["seed"] == 1
    generate(out, (8, 16, 16), (8, 8, 8), seed=2, scheduler="sync", progress=False, n_synapses=0, overwrite=True)
    assert json.loads((out / "synthetic.json").read_text())["config"]["seed"] == 2


def test_import_is_cheap():
    code = ("import sys, connecto.synthetic; "
            "print(','.join(m for m in ('scipy.spatial', 'pandas', 'distributed', 'cc3d') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_boundary_mask_marks_both_sides():
    labels = np.ones((1, 1, 6), np.uint64)
    labels[..., 3:] = 2
    assert boundary_mask(labels)[0, 0].tolist() == [False, False, True, True, False, False]
