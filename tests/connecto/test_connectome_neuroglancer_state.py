"""The hand-written Neuroglancer state is what the ``neuroglancer`` package's own state classes read
and write (see the module docstring of connecto.connectome.neuroglancer for why we do not use them).

Runs where the ``neuroglancer`` package is installed; skipped elsewhere.
"""

import json

import numpy as np
import pandas as pd
import pytest

from connecto.connectome.neuroglancer import neuroglancer_state, state_url

ng = pytest.importorskip("neuroglancer")


def synapses() -> pd.DataFrame:
    nan = np.nan
    return pd.DataFrame({
        "synapse_id": [1, 2], "pre_segment": [3, 0], "post_segment": [4, 5],
        "pre_z_nm": [30.0, nan], "pre_y_nm": [20.0, nan], "pre_x_nm": [10.0, nan],  # the second: post point only
        "post_z_nm": [32.0, 34.0], "post_y_nm": [22.0, 24.0], "post_x_nm": [12.0, 14.0],
    })


def test_the_state_round_trips_through_neuroglancers_viewer_state():
    state = neuroglancer_state((40, 4, 4), raw="zarr://gs://b/raw.zarr", segmentation="precomputed://gs://b/seg",
                               meshes="precomputed://gs://b/mesh", synapses=synapses(), segments=[3, 4])
    parsed = ng.ViewerState(state)
    assert json.dumps(parsed.to_json(), sort_keys=True) == json.dumps(state, sort_keys=True)
    assert [layer.name for layer in parsed.layers] == ["raw", "segmentation", "synapses"]
    annotations = parsed.layers["synapses"].annotations
    assert [type(a).__name__ for a in annotations] == ["LineAnnotation", "PointAnnotation"]
    assert ng.parse_url(state_url(state)).to_json() == parsed.to_json()
