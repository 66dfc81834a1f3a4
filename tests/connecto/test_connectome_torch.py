"""Connectome-constrained rate network: sparsity and signs from the connectome, trainable,
and torch imported only when asked for."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from connecto.connectome import Connectome

torch = pytest.importorskip("torch")

GABAERGIC = [f"DD{i}" for i in range(1, 7)] + [f"VD{i}" for i in range(1, 14)] + [
    "RMED", "RMEV", "RMEL", "RMER", "AVL", "DVB", "RIS"]


def test_importing_connectome_does_not_import_torch_or_navis():
    code = ("import sys, connecto, connecto.connectome; "
            "print(sorted(m for m in ('torch', 'navis', 'kimimaro', 'zmesh', 'cloudvolume') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_small_network_weights_signs_and_dynamics():
    syn = pd.DataFrame({"pre_segment": [1, 1, 2, 3], "post_segment": [2, 2, 3, 1], "kind": ["chemical"] * 4})
    neurons = pd.DataFrame({"segment_id": [1, 2, 3], "neurotransmitter": ["acetylcholine", "GABA", "glutamate"]})
    model = Connectome.from_tables(neurons, syn).to_torch(init_gain=0.5, tau=5.0, dt=1.0)
    weights = model.weight_matrix().detach().numpy()
    # rows pre, columns post; neuron 2 is GABAergic (inhibitory); the strongest input sums to 0.5
    assert np.allclose(weights, [[0, 0.5, 0], [0, 0, -0.25], [0.25, 0, 0]])
    rates = model(torch.ones(1, 20, 3))
    assert rates.shape == (1, 20, 3) and torch.all(rates >= 0)
    one_input = Connectome.from_tables(neurons, syn).to_torch(input_neurons=[1])
    assert one_input(torch.zeros(2, 5, 1)).shape == (2, 5, 3)
    with pytest.raises(ValueError, match=r"inputs must be \(batch, time, 1\)"):
        one_input(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="must hold \\+1"):
        Connectome.from_tables(neurons.assign(sign=[1, 0.5, -1]), syn).to_torch()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: torch's thread pool only adds contention (seconds instead of ms on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def worm():
    pytest.importorskip("cect")
    from connecto.connectome.published import celegans

    connectome = celegans()
    connectome.neurons["sign"] = np.where(connectome.neurons["name"].isin(GABAERGIC), -1.0, 1.0)
    return connectome


def test_celegans_network_keeps_sparsity_and_sign_through_training(worm):
    torch.manual_seed(0)
    model = worm.to_torch(input_neurons=["ASHL", "ASHR"], tau=10.0, dt=1.0)
    adjacency = worm.adjacency(kind="chemical").toarray()
    inhibitory = worm.neurons["name"].isin(GABAERGIC).to_numpy()
    before = model.weight_matrix().detach().numpy()
    assert np.array_equal(before != 0, adjacency > 0)
    assert (before[inhibitory] <= 0).all() and (before[~inhibitory] >= 0).all()
    assert len(model.gap_pre) == worm.graph("electrical").num_edges
    x = torch.zeros(4, 30, 2)
    x[:, 5:15] = 1.0
    target = torch.zeros(4, 30, 2)
    target[:, 10:25] = 0.3
    readout = model.index_of(["AVAL", "AVAR"])
    by_id = worm.neurons.set_index("name").loc[["AVAL", "AVAR"], "segment_id"]
    assert readout.tolist() == model.index_of(by_id).tolist()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(8):
        loss = ((model(x)[:, :, readout] - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    after = model.weight_matrix().detach().numpy()
    assert np.array_equal(after != 0, adjacency > 0) and np.array_equal(np.sign(after), np.sign(before))
