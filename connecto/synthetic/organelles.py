"""Mitochondria (tubes along a neurite's skeleton) and nuclei (in large bodies).

A mitochondrion follows a run of consecutive nodes of one unbranched chain with a radius
of at most 0.55 of the thinnest core along it; since chain nodes are closer than half a
radius, it stays inside its neuron's core, hence inside the neuron.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mitochondria:
    neuron: np.ndarray      # (m,) int64
    first_node: np.ndarray  # (m,) int64 index of the first node of the run
    last_node: np.ndarray   # (m,) int64 index of the last node (inclusive)
    radius_nm: np.ndarray   # (m,) float

    def __len__(self) -> int:
        return len(self.neuron)


@dataclass(frozen=True)
class Nuclei:
    neuron: np.ndarray      # (k,) int64
    centre_nm: np.ndarray   # (k, 3)
    radius_nm: np.ndarray   # (k,)


def place_mitochondria(cfg, skeletons, rng, avoid_nm: np.ndarray | None = None) -> Mitochondria:
    """About ``mitochondria_per_um3`` per um^3, in chains thick enough to hold one.

    ``avoid_nm``: points (synapse centres) that mitochondria keep 250 nm away from.
    """
    sk = skeletons
    min_r = max(22.0, 1.2 * float(min(cfg.voxel_size_nm)))
    target = int(rng.poisson(cfg.mitochondria_per_um3 * cfg.volume_um3))
    rows: list[tuple] = []
    used = np.zeros(len(sk.neuron), dtype=bool)
    starts = np.flatnonzero(np.r_[True, sk.chain[1:] != sk.chain[:-1]])
    ends = np.r_[starts[1:], len(sk.chain)]
    thick = [(s, e) for s, e in zip(starts, ends) if e - s >= 4 and 0.55 * sk.radius_nm[s:e].max() >= min_r]
    if not thick or target == 0:
        return Mitochondria(*(np.zeros(0, np.int64),) * 3, np.zeros(0))
    weights = np.array([(sk.radius_nm[s:e] ** 2).sum() for s, e in thick])
    for _ in range(target * 10):
        if len(rows) == target:
            break
        s, e = thick[rng.choice(len(thick), p=weights / weights.sum())]
        first = int(rng.integers(s, e - 2))
        steps = np.linalg.norm(np.diff(sk.position_nm[first:e], axis=0), axis=1)
        length = rng.uniform(250.0, 1000.0)
        last = first + 1 + int(np.searchsorted(np.cumsum(steps), length))
        last = min(last, e - 1)
        radius = 0.55 * float(sk.radius_nm[first:last + 1].min()) * rng.uniform(0.75, 1.0)
        if radius < min_r or used[max(first - 3, s):last + 4].any():
            continue
        if avoid_nm is not None and len(avoid_nm):
            pts = sk.position_nm[first:last + 1]
            if np.min(np.linalg.norm(pts[:, None, :] - avoid_nm[None], axis=-1)) < 250.0:
                continue
        used[first:last + 1] = True
        rows.append((int(sk.neuron[first]), first, last, radius))
    if not rows:
        return Mitochondria(*(np.zeros(0, np.int64),) * 3, np.zeros(0))
    cols = list(zip(*rows))
    return Mitochondria(*(np.asarray(c, np.int64) for c in cols[:3]), np.asarray(cols[3], float))


def find_nuclei(skeletons) -> Nuclei:
    """One nucleus per body, centred on its root node."""
    sk = skeletons
    roots = np.flatnonzero((sk.parent < 0) & (np.asarray(sk.kinds)[sk.neuron - 1] == "body"))
    return Nuclei(sk.neuron[roots].astype(np.int64), sk.position_nm[roots], 0.55 * sk.radius_nm[roots])
