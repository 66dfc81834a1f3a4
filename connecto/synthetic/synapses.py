"""Synapses: where two neurons touch, a cleft, a presynaptic vesicle cloud and a postsynaptic density.

A synapse is placed at a presynaptic node (preferably an axonal bouton) whose core nearly
touches the cores of other neurons. Each partner ``q`` gives a contact point ``m`` on the
power-diagram face between the two nodes and a normal ``n`` pointing from pre to post. The
cleft (truth) is the set of voxels of the pre or post neuron within ``radius`` of ``m`` that
lie at the contact (a 6-neighbour of the partner) or within ``half_thickness`` of the face.
Several partners of one presynaptic site share one synapse id (polyadic synapses).

Every placed synapse is checked on the voxel grid before it is kept: its cleft must hold
voxels of both neurons, and the reported pre, post and cleft points must lie in the pre
neuron, the post neuron and the cleft.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .labels import LabelField, contact_mask

logger = logging.getLogger(__name__)

VESICLE_RADIUS_NM = 19.0
MIN_CLEFT_VOXELS = 4  # of each partner, in every cleft
POLYADIC_SINGLE = 0.4  # chance that a synapse has one partner when several are allowed


@dataclass(frozen=True)
class SynapseSet:
    """One row per (synapse, postsynaptic partner); positions in nm, points on voxels."""

    synapse_id: np.ndarray   # (n,) int64, also the cleft label
    pre_id: np.ndarray       # (n,) int64
    post_id: np.ndarray      # (n,) int64
    pre_nm: np.ndarray       # (n, 3) a voxel of the pre neuron near the cleft
    post_nm: np.ndarray      # (n, 3) a voxel of the post neuron near the cleft
    cleft_nm: np.ndarray     # (n, 3) a voxel of the cleft
    centre_nm: np.ndarray    # (n, 3) contact point on the face between the two cores
    normal: np.ndarray       # (n, 3) unit vector from pre to post
    radius_nm: np.ndarray    # (n,) cleft radius
    half_thickness_nm: float
    vesicles_nm: np.ndarray  # (v, 3) vesicle centres
    vesicle_synapse: np.ndarray  # (v,) synapse id of each vesicle

    def __len__(self) -> int:
        return len(np.unique(self.synapse_id))

    @classmethod
    def empty(cls, half_thickness_nm: float) -> SynapseSet:
        z3, z1 = np.zeros((0, 3)), np.zeros(0, np.int64)
        return cls(z1, z1, z1, z3, z3, z3, z3, z3, np.zeros(0), half_thickness_nm, z3, z1)


def cleft_half_thickness(voxel_size_nm) -> float:
    """Half the cleft band: about 12 nm, at least half a voxel along every axis."""
    return max(12.0, 0.5 * float(max(voxel_size_nm)) + 1.0)


def cleft_mask(labels: np.ndarray, origin_nm, voxel_size_nm, pre: int, post: int, centre, normal,
               radius: float, half_thickness: float) -> np.ndarray:
    """Cleft voxels of one partner in a labels box whose first voxel sits at ``origin_nm``."""
    vs = np.asarray(voxel_size_nm, float)
    axes = [origin_nm[a] + np.arange(labels.shape[a]) * vs[a] - centre[a] for a in range(3)]
    rel = np.meshgrid(*axes, indexing="ij", sparse=True)
    dist2 = rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2
    across = np.abs(rel[0] * normal[0] + rel[1] * normal[1] + rel[2] * normal[2])
    band = (across <= half_thickness) & ((labels == pre) | (labels == post))
    return (dist2 <= radius**2) & (band | contact_mask(labels, pre, post))


class _Placer:
    def __init__(self, cfg, skeletons, field: LabelField, rng):
        from scipy.spatial import cKDTree

        self.cfg, self.sk, self.field, self.rng = cfg, skeletons, field, rng
        self.vs = np.asarray(cfg.voxel_size_nm, float)
        self.shape = np.asarray(cfg.shape)
        self.tree = cKDTree(skeletons.position_nm)
        self.r_max = float(skeletons.radius_nm.max())
        self.half = cleft_half_thickness(cfg.voxel_size_nm)
        self.offset = max(30.0, 1.5 * float(self.vs.max()))  # pre/post points: this far from the face
        self.rows: list[tuple] = []
        self.centres: list[np.ndarray] = []
        self.radii: list[float] = []
        self.vesicles: list[np.ndarray] = []
        self.vesicle_ids: list[np.ndarray] = []

    def snap(self, point) -> np.ndarray | None:
        idx = np.rint(np.asarray(point) / self.vs)
        if np.any(idx < 0) or np.any(idx > self.shape - 1):
            return None
        return idx * self.vs

    def solid(self, point, neuron: int) -> bool:
        """The voxel and its six neighbours all belong to ``neuron`` (so it is no stray voxel)."""
        steps = np.vstack([np.zeros(3), np.diag(self.vs), -np.diag(self.vs)])
        return bool(np.all(self.field.label_points(point + steps) == neuron))

    def partners(self, p: int):
        """Other neurons whose cores nearly touch node ``p``: [(surface gap, neuron, node)], closest first."""
        sk = self.sk
        pos, r = sk.position_nm[p], sk.radius_nm[p]
        near = np.asarray(self.tree.query_ball_point(pos, r + self.r_max + 40.0), dtype=np.int64)
        near = near[sk.neuron[near] != sk.neuron[p]]
        gap = np.linalg.norm(sk.position_nm[near] - pos, axis=1) - r - sk.radius_nm[near]
        keep = gap <= 40.0
        best: dict[int, tuple] = {}
        for g, q in zip(gap[keep], near[keep]):
            n = int(sk.neuron[q])
            if n not in best or g < best[n][0]:
                best[n] = (float(g), n, int(q))
        return sorted(best.values())

    def contact(self, p: int, q: int, synapse_id: int, radius: float):
        """Geometry of the contact between nodes p and q if it checks out on the voxel grid, else None."""
        sk = self.sk
        a, b = sk.position_nm[p], sk.position_nm[q]
        pre, post = int(sk.neuron[p]), int(sk.neuron[q])
        d = b - a
        dd = float(d @ d)
        normal = d / np.sqrt(dd)
        centre = a + d * (dd + sk.radius_nm[p] ** 2 - sk.radius_nm[q] ** 2) / (2 * dd)
        pre_pt, post_pt = self.snap(centre - self.offset * normal), self.snap(centre + self.offset * normal)
        cleft_pt = self.snap(centre)
        if pre_pt is None or post_pt is None or cleft_pt is None:
            return None
        if not (self.solid(pre_pt, pre) and self.solid(post_pt, post)):
            return None
        # the definitive check: the cleft as the volume will have it, on a box around the contact
        k = np.ceil((radius + 2 * self.vs) / self.vs).astype(np.int64)
        centre_idx = np.rint(centre / self.vs).astype(np.int64)
        lo = np.maximum(centre_idx - k, 0)
        hi = np.minimum(centre_idx + k + 1, self.shape)
        labels = self.field.label_box(lo, hi - lo, self.vs)
        mask = cleft_mask(labels, lo * self.vs, self.vs, pre, post, centre, normal, radius, self.half)
        inside = labels[mask]
        if np.count_nonzero(inside == pre) < MIN_CLEFT_VOXELS or np.count_nonzero(inside == post) < MIN_CLEFT_VOXELS:
            return None
        cidx = np.rint(cleft_pt / self.vs).astype(np.int64) - lo
        if not mask[tuple(cidx)]:
            return None
        return (synapse_id, pre, post, pre_pt, post_pt, cleft_pt, centre, normal, radius)

    def crowded(self, p: int, q: int, radius: float) -> bool:
        """Would a cleft between nodes p and q come within reach of another synapse's cleft?"""
        if not self.centres:
            return False
        sk = self.sk
        centre = 0.5 * (sk.position_nm[p] + sk.position_nm[q])
        reach = np.linalg.norm(np.asarray(self.centres) - centre, axis=1) - np.asarray(self.radii)
        return bool(np.min(reach) < radius + 0.5 * np.linalg.norm(sk.position_nm[q] - sk.position_nm[p]) + 20.0)

    def try_site(self, p: int, synapse_id: int) -> bool:
        found = self.partners(p)
        if not found:
            return False
        radius = float(self.rng.uniform(70.0, 130.0))
        # polyadic (one pre, several posts) more often than not where the config allows it
        single = self.cfg.max_posts == 1 or self.rng.random() < POLYADIC_SINGLE
        n_posts = 1 if single else int(self.rng.integers(2, self.cfg.max_posts + 1))
        rows = []
        for _gap, _neuron, q in found:
            if len(rows) == n_posts:
                break
            if self.crowded(p, q, radius):
                continue
            row = self.contact(p, q, synapse_id, radius)
            if row is not None:
                rows.append(row)
        if not rows:
            return False
        self.rows.extend(rows)
        self.centres.extend(r[6] for r in rows)
        self.radii.extend(r[8] for r in rows)
        self.add_vesicles(p, rows, synapse_id)
        return True

    def add_vesicles(self, p: int, rows, synapse_id: int) -> None:
        """A cloud of vesicles inside the presynaptic cores near the cleft(s), clear of the cleft."""
        sk, rng, rv = self.sk, self.rng, VESICLE_RADIUS_NM
        centre = np.mean([r[6] for r in rows], axis=0)
        normal = np.mean([r[7] for r in rows], axis=0)
        normal /= np.linalg.norm(normal) or 1.0
        near = np.asarray(self.tree.query_ball_point(sk.position_nm[p], 350.0), dtype=np.int64)
        near = near[(sk.neuron[near] == sk.neuron[p]) & (sk.radius_nm[near] > rv + 12)]
        if len(near) == 0:
            return
        which = rng.choice(near, size=600)
        u = rng.normal(size=(600, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        depth = (sk.radius_nm[which] - rv - 6) * rng.random(600) ** (1 / 3)
        cand = sk.position_nm[which] + u * depth[:, None]
        from_cleft = (cand - centre) @ normal
        dist = np.linalg.norm(cand - centre, axis=1)
        ok = (from_cleft < -(self.half + rv + 6)) & (rng.random(600) < np.exp(-dist / 160.0))
        target = int(rng.integers(25, 70))
        chosen: list[np.ndarray] = []
        for c in cand[ok]:
            if len(chosen) == target:
                break
            if not chosen or np.min(np.linalg.norm(np.asarray(chosen) - c, axis=1)) >= 2 * rv + 3:
                chosen.append(c)
        if chosen:
            self.vesicles.append(np.asarray(chosen))
            self.vesicle_ids.append(np.full(len(chosen), synapse_id, np.int64))

    def result(self) -> SynapseSet:
        if not self.rows:
            return SynapseSet.empty(self.half)
        cols = list(zip(*self.rows))
        return SynapseSet(
            np.asarray(cols[0], np.int64), np.asarray(cols[1], np.int64), np.asarray(cols[2], np.int64),
            np.asarray(cols[3]), np.asarray(cols[4]), np.asarray(cols[5]), np.asarray(cols[6]),
            np.asarray(cols[7]), np.asarray(cols[8], float), self.half,
            np.concatenate(self.vesicles) if self.vesicles else np.zeros((0, 3)),
            np.concatenate(self.vesicle_ids) if self.vesicle_ids else np.zeros(0, np.int64),
        )


def place_synapses(cfg, skeletons, field: LabelField, rng) -> SynapseSet:
    """Place ``cfg.n_synapses`` synapses (fewer, with a warning, where the neurons leave no room)."""
    cfg = cfg.resolve()
    placer = _Placer(cfg, skeletons, field, rng)
    if cfg.n_synapses == 0:
        return placer.result()
    kinds = np.asarray(skeletons.kinds)[skeletons.neuron - 1]
    r = skeletons.radius_nm
    # boutons first (thick axon nodes), then any axon node, then any node
    tiers = [np.flatnonzero((kinds == "axon") & (r >= 1.6 * cfg.axon_radius_nm)),
             np.flatnonzero(kinds == "axon"), np.arange(len(r))]
    tried: set[int] = set()
    placed = 0
    for tier in tiers:
        for p in rng.permutation(tier):
            if placed == cfg.n_synapses or len(tried) > 20 * cfg.n_synapses + 100:
                break
            if int(p) in tried:
                continue
            tried.add(int(p))
            if placer.try_site(int(p), placed + 1):
                placed += 1
    if placed < cfg.n_synapses:
        logger.warning("placed %d of %d synapses: the neurons leave no room for more contacts "
                       "(try a larger volume or a higher density)", placed, cfg.n_synapses)
    return placer.result()
