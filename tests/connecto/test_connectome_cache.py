"""Connectome.open on a run reads its derived tables back from RUN/connectome-cache; any changed input rebuilds."""

import pandas as pd
import pytest

from connecto.connectome import Connectome
from connecto.connectome import run as run_module

from .precomputed_run import make_small_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_small_run(tmp_path_factory.mktemp("cache"))


def test_second_open_reads_the_cache_and_a_changed_input_rebuilds(run_dir, monkeypatch):
    first = Connectome.open(run_dir)
    assert (run_dir / "connectome-cache" / "cache.json").exists()
    built = run_module._tables_from_run

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt although nothing changed")

    monkeypatch.setattr(run_module, "_tables_from_run", refuse)
    again = Connectome.open(run_dir)
    pd.testing.assert_frame_equal(again.neurons, first.neurons)
    pd.testing.assert_frame_equal(again.synapses, first.synapses)
    assert again.voxel_size_nm == first.voxel_size_nm and again.meta == first.meta

    synapses = pd.read_parquet(run_dir / "synapses.parquet")
    synapses.iloc[: len(synapses) // 2].to_parquet(run_dir / "synapses.parquet", index=False)
    with pytest.raises(AssertionError, match="rebuilt"):
        Connectome.open(run_dir)  # the synapse table changed: the cache is not used
    monkeypatch.setattr(run_module, "_tables_from_run", built)
    fewer = Connectome.open(run_dir)
    assert 0 < len(fewer.synapses) < len(first.synapses)
    pd.testing.assert_frame_equal(Connectome.open(run_dir).synapses, fewer.synapses)
