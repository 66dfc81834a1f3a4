"""benchmarks/synapses.py on a CREMI-layout file the test writes, and the detection gallery."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from connecto.demo import shipped_synapse_checkpoint
from connecto.synapses.cremi import write_cremi
from connecto.synapses.detect import DetectParams, detect_synapses
from connecto.synapses.gallery import top_synapses, write_gallery
from connecto.synthetic import generate_arrays

from .test_synapses_synthetic import VOXEL, perfect_predictions

MIN_CREMI_PARTNER_F1 = 0.75  # measured 0.92: the shipped synapse model on an unseen synthetic volume written as CREMI


def _benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "synapses.py"
    spec = importlib.util.spec_from_file_location("synapse_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def volume():
    return generate_arrays((48, 96, 96), VOXEL, seed=11, n_synapses=20)


def test_benchmark_evaluates_a_cremi_file(volume, tmp_path):
    assert volume.synapses["synapse_id"].nunique() >= 4
    cremi = tmp_path / "sample.h5"
    write_cremi(cremi, raw=volume.raw, labels=volume.labels, clefts=volume.clefts, voxel_size_nm=VOXEL,
                partners=volume.synapses)
    figures = _benchmark().main(["--difficulties", "", "--cremi", str(cremi), "--checkpoint",
                                 shipped_synapse_checkpoint(), "--json", str(tmp_path / "b.json")])
    result = figures["cremi"]
    assert result["true_pairs"] == len(volume.synapses)
    assert result["partner_f1"] >= MIN_CREMI_PARTNER_F1, result
    assert json.loads((tmp_path / "b.json").read_text())["cremi"] == result


def test_gallery_shows_the_strongest_detections(volume, tmp_path):
    prob, sides = perfect_predictions(volume.clefts, volume.labels, volume.synapses)
    prob = prob * np.linspace(0.6, 1.0, prob.shape[0])[:, None, None]  # scores differ by depth
    table = detect_synapses(prob, sides, volume.labels, voxel_size_nm=VOXEL, params=DetectParams(threshold=0.5))
    top = top_synapses(table, 3)
    assert top["id"].nunique() == 3
    assert top.groupby("id")["score"].first().min() >= table.groupby("id")["score"].first().nlargest(3).min()
    path = write_gallery(volume.raw, prob, table, str(tmp_path / "g.png"), voxel_size_nm=VOXEL, n=3)
    from PIL import Image

    assert Image.open(path).size[0] > 500
    empty = write_gallery(volume.raw, prob, table.iloc[:0], str(tmp_path / "e.png"), voxel_size_nm=VOXEL)
    assert Path(empty).stat().st_size > 1000
