"""A connectome-constrained recurrent rate network (torch), for structure -> function models.

Each neuron i has a voltage v_i and a rate r_i = f(v_i)::

    tau_i dv_i/dt = -v_i + sum_j W_ji r_j + sum_j g_ji (v_j - v_i) + b_i + x_i(t)

``W_ji = sign_j * scale_ji * n_ji``: only connections in the connectome exist (sparsity),
the sign is the presynaptic neuron's (Dale's law; from a ``sign`` or ``neurotransmitter``
column, excitatory by default), ``n_ji`` is the synapse count and ``scale_ji > 0`` a
learnable factor per connection (or one shared factor). Electrical synapses, when the
connectome has them, couple voltages with learnable positive conductances ``g``.
Training changes scales, conductances, biases and time constants, never which
connections exist or their signs (as in Lappalainen et al. 2024).

This module imports torch; :meth:`Connectome.to_torch` imports it on use.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch
from torch import nn

INHIBITORY = ("gaba", "glycine")
NONLINEARITIES = {"relu": torch.relu, "tanh": torch.tanh, "softplus": nn.functional.softplus}


def neuron_signs(neurons, sign_column: str = "sign", neurotransmitter_column: str = "neurotransmitter",
                 inhibitory=INHIBITORY) -> np.ndarray:
    """+1/-1 per neuron: the ``sign`` column if present (NaN -> +1), else -1 where the
    ``neurotransmitter`` is one of ``inhibitory`` (case-insensitive), else all +1."""
    if sign_column in neurons:
        values = np.asarray(neurons[sign_column], dtype=np.float64)
        if np.any(~np.isnan(values) & ~np.isin(values, (-1.0, 1.0))):
            raise ValueError(f"column {sign_column!r} must hold +1 (excitatory), -1 (inhibitory) or NaN")
        return np.where(np.isnan(values), 1.0, values)
    if neurotransmitter_column in neurons:
        lowered = neurons[neurotransmitter_column].astype(str).str.lower()
        return np.where(lowered.isin([s.lower() for s in inhibitory]), -1.0, 1.0)
    return np.ones(len(neurons))


class ConnectomeRNN(nn.Module):
    """The rate network above over ``n`` neurons (see the module docstring).

    Parameters
    ----------
    n : number of neurons.
    pre, post, counts : chemical connections (indices 0..n-1 and synapse counts).
    signs : (n,) +1/-1 per presynaptic neuron.
    gap_pre, gap_post, gap_counts : electrical connections (optional); each listed pair
        drives ``post`` by ``g (v_pre - v_post)``; list both directions for symmetry.
    tau, dt : time constant (initial, learnable per neuron) and Euler step, same units.
    per_edge : one learnable scale per connection (True) or one for all (False).
    init_gain : initial scale so that the summed absolute input weight of the most
        strongly innervated neuron is ``init_gain``.
    input_index : neurons that receive the external input ``x`` (default: all).
    ids, names : segment ids and names of the neurons (for :meth:`index_of`).
    """

    def __init__(self, n: int, pre, post, counts, signs, *, gap_pre=None, gap_post=None, gap_counts=None,
                 tau: float = 10.0, dt: float = 1.0, nonlinearity: str = "relu", per_edge: bool = True,
                 init_gain: float = 0.5, input_index=None, ids=None, names=None):
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity {nonlinearity!r} is not one of {sorted(NONLINEARITIES)}")
        if not 0 < dt <= tau:
            raise ValueError(f"dt ({dt}) must be > 0 and at most tau ({tau}) for a stable Euler step")
        self.n, self.dt, self.nonlinearity = int(n), float(dt), nonlinearity
        self.register_buffer("pre", torch.as_tensor(np.asarray(pre), dtype=torch.long))
        self.register_buffer("post", torch.as_tensor(np.asarray(post), dtype=torch.long))
        self.register_buffer("counts", torch.as_tensor(np.asarray(counts), dtype=torch.float32))
        self.register_buffer("signs", torch.as_tensor(np.asarray(signs), dtype=torch.float32))
        self.log_scale = nn.Parameter(torch.full((len(self.pre) if per_edge else 1,),
                                                 _init_log_scale(self.post, self.counts, n, init_gain)))
        gap = gap_pre is not None and len(gap_pre) > 0
        self.register_buffer("gap_pre", torch.as_tensor(np.asarray(gap_pre if gap else []), dtype=torch.long))
        self.register_buffer("gap_post", torch.as_tensor(np.asarray(gap_post if gap else []), dtype=torch.long))
        self.register_buffer("gap_counts", torch.as_tensor(np.asarray(gap_counts if gap else []), dtype=torch.float32))
        self.log_gap_scale = nn.Parameter(torch.full((len(self.gap_pre) if per_edge else 1,),
                                                     _init_log_scale(self.gap_post, self.gap_counts, n, init_gain)))
        self.bias = nn.Parameter(torch.zeros(n))
        self.log_tau = nn.Parameter(torch.full((n,), math.log(tau)))
        index = torch.arange(n) if input_index is None else torch.as_tensor(np.asarray(input_index), dtype=torch.long)
        self.register_buffer("input_index", index)
        self.ids = None if ids is None else np.asarray(ids, dtype=np.uint64)
        self.names = None if names is None else [str(n) for n in names]

    @classmethod
    def from_connectome(cls, connectome, *, kind: str | None = "chemical", electrical: str | None = "electrical",
                        min_weight: int = 1, input_neurons=None, sign_column: str = "sign",
                        neurotransmitter_column: str = "neurotransmitter", inhibitory=INHIBITORY,
                        **options) -> ConnectomeRNN:
        """Build from a Connectome: chemical connections of ``kind`` (None: all kinds,
        or all but ``electrical`` when that kind is present), gap junctions of kind
        ``electrical`` (None: none); ``input_neurons``: ids or names receiving input."""
        kinds = connectome.kinds
        if kind is not None and kind not in kinds:
            kind = None  # a connectome without kinds other than its default
        chemical = kind if kind is not None else [k for k in kinds if k != electrical] or kinds
        ids = connectome.neuron_ids
        graph = connectome.graph(chemical).thresholded(min_weight).tocoo()
        gap = {}
        if electrical is not None and electrical in kinds:
            coo = connectome.graph(electrical).thresholded(min_weight).tocoo()
            gap = {"gap_pre": coo.row, "gap_post": coo.col, "gap_counts": coo.data}
        signs = neuron_signs(connectome.neurons, sign_column, neurotransmitter_column, inhibitory)
        input_index = None
        if input_neurons is not None:
            input_index = connectome.graph().index(connectome.segment_ids(list(input_neurons)))
        names = connectome.neurons["name"].tolist() if "name" in connectome.neurons else None
        return cls(len(ids), graph.row, graph.col, graph.data, signs, input_index=input_index, ids=ids,
                   names=names, **gap, **options)

    def edge_weights(self) -> torch.Tensor:
        """Signed weight per chemical connection (pre -> post)."""
        return self.signs[self.pre] * torch.exp(self.log_scale) * self.counts

    def weight_matrix(self) -> torch.Tensor:
        """Dense (n, n) signed weights, rows pre and columns post (as Connectome.adjacency)."""
        matrix = torch.zeros(self.n, self.n, dtype=self.counts.dtype, device=self.counts.device)
        return matrix.index_put((self.pre, self.post), self.edge_weights(), accumulate=True)

    @property
    def tau(self) -> torch.Tensor:
        return torch.exp(self.log_tau)

    def step(self, v: torch.Tensor, x: torch.Tensor, weights: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
        """One Euler step of the voltages ``v`` (batch, n) with external drive ``x`` (batch, n)."""
        rate = NONLINEARITIES[self.nonlinearity](v)
        drive = torch.zeros_like(v).index_add(1, self.post, rate[:, self.pre] * weights)
        if len(self.gap_pre):
            drive = drive.index_add(1, self.gap_post, (v[:, self.gap_pre] - v[:, self.gap_post]) * gap)
        return v + self.dt / self.tau * (-v + drive + self.bias + x)

    def forward(self, inputs: torch.Tensor, v0: torch.Tensor | None = None) -> torch.Tensor:
        """Rates (batch, time, n) for external ``inputs`` (batch, time, len(input_index))."""
        if inputs.ndim != 3 or inputs.shape[-1] != len(self.input_index):
            raise ValueError(f"inputs must be (batch, time, {len(self.input_index)}), got {tuple(inputs.shape)}")
        batch, steps, _ = inputs.shape
        v = torch.zeros(batch, self.n, dtype=inputs.dtype, device=inputs.device) if v0 is None else v0
        weights = self.edge_weights()
        gap = torch.exp(self.log_gap_scale) * self.gap_counts
        drive = torch.zeros(batch, steps, self.n, dtype=inputs.dtype, device=inputs.device)
        drive[:, :, self.input_index] = inputs
        rates = []
        for t in range(steps):
            v = self.step(v, drive[:, t], weights, gap)
            rates.append(NONLINEARITIES[self.nonlinearity](v))
        return torch.stack(rates, dim=1)

    def index_of(self, neurons) -> np.ndarray:
        """Column indices in the rates of ``neurons`` (segment ids or names)."""
        if self.ids is None:
            raise ValueError("this network was built without segment ids")
        lookup = {int(s): i for i, s in enumerate(self.ids)}
        if self.names is not None:
            shared = {n for n, c in Counter(self.names).items() if c > 1}  # ambiguous names are no key
            lookup.update({n: i for i, n in enumerate(self.names) if n not in shared})
        out = []
        for neuron in neurons:
            key = neuron if isinstance(neuron, str) else int(neuron)
            if key not in lookup:
                raise KeyError(f"neuron {neuron!r} is not in this network")
            out.append(lookup[key])
        return np.asarray(out)


def _init_log_scale(post: torch.Tensor, counts: torch.Tensor, n: int, gain: float) -> float:
    if len(counts) == 0:
        return 0.0
    strength = torch.zeros(n).index_add(0, post, counts).max().item()
    return math.log(gain / strength)
