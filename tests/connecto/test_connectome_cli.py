"""`connecto query | export | skeletonize | mesh`, through the connecto group as registered."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from chunks import create_volume
from connecto.cli import cli as connecto_cli
from connecto.connectome import Connectome
from connecto.connectome.cli import COMMANDS

from .test_connectome_tables import small_neurons, small_synapses


@pytest.fixture(scope="module")
def cli():
    group = copy.copy(connecto_cli)
    group.commands = dict(connecto_cli.commands)
    for command in COMMANDS:
        group.add_command(command)
    return group


@pytest.fixture
def saved(tmp_path):
    c = Connectome.from_tables(small_neurons(), small_synapses(), voxel_size_nm=(40, 8, 8))
    return c, c.save(tmp_path / "conn")


def run(cli, *args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("command", [["query"], ["query", "upstream"], ["query", "path"], ["query", "neurons"],
                                     ["export"], ["skeletonize"], ["mesh"]])
def test_help(cli, command):
    result = run(cli, *command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_queries(cli, saved):
    _, path = saved
    result = run(cli, "query", "upstream", path, "2", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"segment_id": 1, "weight": 3, "name": "a"},
                                         {"segment_id": 3, "weight": 1, "name": "c"}]
    assert json.loads(run(cli, "query", "upstream", path, "b", "--kind", "chemical", "--format", "json").output) == [
        {"segment_id": 1, "weight": 3, "name": "a"}]
    down = run(cli, "query", "downstream", path, "a", "--min-weight", "2", "--format", "csv")
    assert down.output.splitlines() == ["segment_id,weight,name", "2,3,b"]
    assert "1 (a) -> 2 (b) -> 3 (c)" in run(cli, "query", "path", path, "a", "c").output
    paths = run(cli, "query", "path", path, "a", "c", "--max-length", "3", "--format", "csv").output
    assert paths.splitlines()[1:] == ["2,1 (a) -> 2 (b) -> 3 (c)"]
    motifs = json.loads(run(cli, "query", "motifs", path, "--kind", "chemical", "--format", "json").output)
    assert {m["motif"]: m["count"] for m in motifs}["edges"] == 3
    assert "Connectome(3 neurons" in run(cli, "query", "summary", path).output
    neurons = run(cli, "query", "neurons", path, "--roi", "0,0,0:11,11,11", "--format", "csv").output
    assert [line.split(",")[0] for line in neurons.splitlines()[1:]] == ["1", "2"]  # centroid of 3 at z voxel 20
    synapses = run(cli, "query", "synapses", path, "--roi", "0,0,0:2,2,2", "--point", "pre", "--format", "csv").output
    assert len(synapses.splitlines()) == 1 + 3


def test_bad_input_gives_one_clear_line(cli, saved, tmp_path):
    _, path = saved
    result = run(cli, "query", "upstream", path, "99999999")
    assert result.exit_code == 1 and "neuron 99999999 is not in this connectome" in result.output
    assert "Traceback" not in result.output
    result = run(cli, "query", "upstream", path, "1", "--version", "3")
    assert result.exit_code == 1 and "version '3' does not exist" in result.output
    result = run(cli, "query", "neurons", path, "--roi", "0,0,0")
    assert result.exit_code == 2 and "OFFSET:SHAPE" in result.output
    result = run(cli, "export", path, tmp_path / "g.graphml", "--format", "graphml")
    assert result.exit_code == 0, result.output
    again = run(cli, "export", path, tmp_path / "g.graphml", "--format", "graphml")
    assert again.exit_code == 1 and "exists; pass overwrite=True (CLI: --overwrite)" in again.output
    assert run(cli, "export", path, tmp_path / "g.graphml", "--format", "graphml", "--overwrite").exit_code == 0


def test_export_formats(cli, saved, tmp_path):
    c, path = saved
    for fmt in ("parquet", "neuprint", "graphml"):
        result = run(cli, "export", path, tmp_path / f"out-{fmt}", "--format", fmt)
        assert result.exit_code == 0, result.output
    assert Connectome.open(tmp_path / "out-parquet").edges().equals(c.edges())
    assert pd.read_csv(tmp_path / "out-neuprint" / "Neuprint_Neurons.csv")["bodyId:long"].tolist() == [1, 2, 3]
    result = run(cli, "export", path, tmp_path / "out-swc", "--format", "swc")
    assert result.exit_code == 1 and "has no skeletons" in result.output


def test_skeletonize_and_mesh_commands(cli, tmp_path):
    labels = np.zeros((16, 16, 48), np.uint32)
    labels[6:10, 6:10, 2:46] = 3
    labels[1:3, 1:3, 1:3] = 4  # 8 voxels: below --min-voxels
    url = f"precomputed://file://{tmp_path}/seg"
    volume = create_volume(url, labels.shape, labels.dtype, (8, 8, 8), chunk_shape=(16, 16, 16),
                           layer_type="segmentation")
    volume.write(volume.roi, labels)
    result = run(cli, "skeletonize", url, tmp_path / "conn", "--min-voxels", "100", "--scheduler", "sync",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    skeletons = pd.read_parquet(tmp_path / "conn" / "skeletons.parquet")
    assert skeletons["segment_id"].unique().tolist() == [3]
    result = run(cli, "mesh", url, tmp_path / "seg" / "mesh", "--scheduler", "sync", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "meshed 2 segments" in result.output and "linked" in result.output
    assert json.loads((tmp_path / "seg" / "info").read_text())["mesh"] == "mesh"
    assert json.loads((tmp_path / "seg" / "mesh" / "3:0").read_text())["fragments"] == ["3:0:0_0_0", "3:0:0_0_1",
                                                                                       "3:0:0_0_2"]
    bad = run(cli, "mesh", url, tmp_path / "m2", "--ids", "3,x", "--scheduler", "sync", "--no-progress")
    assert bad.exit_code == 2 and "comma-separated" in bad.output
