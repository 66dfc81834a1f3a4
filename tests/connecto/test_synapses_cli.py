import json

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chunks import create_volume
from connecto.synapses.cli import evaluate_synapses_command, synapses
from connecto.synapses.cremi import write_cremi
from connecto.synthetic import generate_arrays

from .test_synapses_synthetic import VOXEL, perfect_predictions


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Synthetic volume, perfect predictions as zarr volumes, and `connecto synapses` run on them."""
    tmp = tmp_path_factory.mktemp("synapses_cli")
    vol = generate_arrays((48, 96, 96), VOXEL, seed=1, n_synapses=12)
    truth = vol.tables["synapses"]
    prob, sides = perfect_predictions(vol.clefts, vol.labels, truth)
    paths = {}
    for name, array, channels in (("prob", (prob * 255).astype(np.uint8), 1), ("sides", sides, 2),
                                  ("frags", vol.labels, 1)):
        paths[name] = str(tmp / f"{name}.zarr")
        out = create_volume(paths[name], array.shape[-3:], array.dtype, VOXEL, chunk_shape=(16, 32, 32),
                            num_channels=channels)
        out.write(out.roi, array)
    truth_path = tmp / "truth.parquet"
    truth.to_parquet(truth_path)
    table_path = str(tmp / "synapses.parquet")
    result = CliRunner().invoke(synapses, [paths["prob"], paths["sides"], paths["frags"], table_path,
                                           "--block-shape", "16,32,32", "--scheduler", "sync", "--no-progress"])
    return tmp, vol, truth_path, table_path, result


def test_synapses_command_writes_the_table(run):
    tmp, vol, _, table_path, result = run
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    table = pd.read_parquet(table_path)
    assert summary == {"table": table_path, "synapses": table["id"].nunique(), "rows": len(table),
                       "work_dir": str(tmp / "synapses.blocks"), "clefts": None}
    assert len(table) == len(vol.tables["synapses"])


def test_synapses_command_takes_a_synapse_prediction_and_writes_clefts(run):
    tmp, _, _, table_path, _ = run
    from chunks import open_volume

    prob, sides = open_volume(str(tmp / "prob.zarr")).read(), open_volume(str(tmp / "sides.zarr")).read()
    prediction = create_volume(str(tmp / "pred.zarr"), prob.shape, np.uint8, VOXEL, chunk_shape=(16, 32, 32),
                               num_channels=3)
    prediction.write(prediction.roi, np.concatenate([prob[None], (sides * 255).astype(np.uint8)]))
    prediction.update_attrs({"channels": ["cleft", "pre_side", "post_side"]})
    out = str(tmp / "from_prediction.parquet")
    result = CliRunner().invoke(synapses, [str(tmp / "pred.zarr"), str(tmp / "frags.zarr"), out, "--clefts-out",
                                           str(tmp / "clefts.zarr"), "--scheduler", "sync", "--no-progress"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    pd.testing.assert_frame_equal(table, pd.read_parquet(table_path))
    clefts = open_volume(str(tmp / "clefts.zarr")).read()
    assert {int(i) for i in np.unique(clefts)} - {0} == {int(i) for i in table["id"]}
    result = CliRunner().invoke(synapses, [str(tmp / "prob.zarr"), str(tmp / "sides.zarr"), str(tmp / "frags.zarr"),
                                           str(tmp / "two.parquet"), "--clefts-out", str(tmp / "c2.zarr"),
                                           "--scheduler", "sync", "--no-progress"])
    assert result.exit_code == 2 and "--clefts-out needs a synapse model's PREDICTION" in result.output
    assert not (tmp / "two.parquet").exists()  # refused before any work
    result = CliRunner().invoke(synapses, [str(tmp / "pred.zarr"), out, "--scheduler", "sync"])
    assert result.exit_code == 2 and "expected PREDICTION FRAGMENTS OUT_TABLE" in result.output


def test_evaluate_against_parquet_and_cremi_truth(run, tmp_path):
    _, vol, truth_path, table_path, _ = run
    result = CliRunner().invoke(evaluate_synapses_command, [table_path, str(truth_path), "--tolerance-nm", "100",
                                                            "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["partners"]["f1"] >= 0.9 and scores["pred_neurons"] == "columns"
    assert json.loads((tmp_path / "eval.json").read_text()) == scores
    cremi = tmp_path / "truth.h5"
    write_cremi(cremi, labels=vol.labels, clefts=vol.clefts, voxel_size_nm=VOXEL, partners=vol.tables["synapses"])
    result = CliRunner().invoke(evaluate_synapses_command, [table_path, str(cremi)])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["pred_neurons"] == "truth-labels" and scores["partners"]["f1"] >= 0.9


def test_bad_inputs_are_named(run, tmp_path):
    _, _, truth_path, table_path, _ = run
    result = CliRunner().invoke(evaluate_synapses_command, [table_path, str(tmp_path / "truth.csv")])
    assert result.exit_code != 0 and "neither Parquet (.parquet) nor CREMI HDF5" in result.output
    result = CliRunner().invoke(evaluate_synapses_command, [table_path, str(truth_path),
                                                            "--pred-neurons", "truth-labels"])
    assert result.exit_code != 0 and "needs TRUTH to be a CREMI file" in result.output
    assert isinstance(synapses, click.Command)
