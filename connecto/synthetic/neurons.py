"""Neuron geometry: skeletons of tubular, branching processes packed into the volume.

Each neuron is a tree of densely sampled nodes (position and core radius, in nm). Nodes of
one neuron are closer than half their radius along a chain, and the cores (balls around the
nodes) of different neurons never overlap; ``labels.LabelField`` then gives every voxel to
the neuron whose core is nearest in the power distance ``|x - p|^2 - r^2``, so neighbours
touch across a shared surface and each neuron is one connected piece (see labels.py).

Cores are packed by random sequential growth: large bodies first, then dendrites (with
spines), then axons (with boutons) until ``density`` of the volume is covered; a process
grows from a free point in both directions until it leaves the volume or would touch another
neuron's core. An occupancy grid (cells of about half the thinnest radius) keeps cores apart.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .config import SynthConfig

logger = logging.getLogger(__name__)

KINDS = ("body", "dendrite", "axon")
CHUNK = 48  # nodes checked at a time while a process grows


@dataclass(frozen=True)
class Skeletons:
    """All nodes of all neurons; neuron ``i`` has id ``i + 1`` and kind ``kinds[i]``."""

    position_nm: np.ndarray  # (n, 3) float64, z,y,x
    radius_nm: np.ndarray    # (n,) float64 core radius
    neuron: np.ndarray       # (n,) int64 neuron id
    parent: np.ndarray       # (n,) int64 index of the parent node, -1 for a root
    chain: np.ndarray        # (n,) int64 unbranched piece the node belongs to
    kinds: tuple[str, ...]

    @property
    def num_neurons(self) -> int:
        return len(self.kinds)


class _Occupancy:
    """A grid of cells over the volume; a cell holds the id of the neuron whose core touches it.

    Cells are about the thinnest core radius: two cores are kept apart when they touch a
    common cell, so they never overlap (and sometimes stay a cell apart, which the labels fill).
    """

    def __init__(self, lo, hi, cell_nm: float, margin_nm: float):
        self.cell = float(cell_nm)
        self.origin = np.asarray(lo, float) - margin_nm
        self.shape = tuple(math.ceil((h - lo_ + 2 * margin_nm) / self.cell) + 1 for lo_, h in zip(lo, hi))
        self.grid = np.zeros(self.shape, dtype=np.int32)
        self.strides = np.array([self.shape[1] * self.shape[2], self.shape[2], 1], dtype=np.int64)
        centres = [(np.arange(n) + 0.5) * self.cell + o for n, o in zip(self.shape, self.origin)]
        inside = [(c >= lo_) & (c <= h) for c, lo_, h in zip(centres, lo, hi)]
        self.in_box = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
        self.box_cells = max(1, int(self.in_box.sum()))
        self.painted = 0
        self._offsets: dict[int, np.ndarray] = {}

    def _ball_offsets(self, k: int):
        """Cell offsets that a ball of radius ``k`` cells centred in cell 0 may touch, with their
        flat-index steps and (float) per-axis coordinates + 0.5."""
        if k not in self._offsets:
            r = np.arange(-k - 1, k + 2)
            cube = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
            off = cube[(np.maximum(np.abs(cube) - 1, 0) ** 2).sum(1) <= k * k]
            self._offsets[k] = (off @ self.strides, [(off[:, a] + 0.5).astype(np.float32) for a in range(3)])
        return self._offsets[k]

    def touched(self, pos: np.ndarray, radius: np.ndarray):
        """(node index, flat cell index) of every cell that a node's core ball intersects."""
        t = (pos - self.origin) / self.cell
        base = np.floor(t).astype(np.int64)
        frac = (t - base).astype(np.float32)
        rr = (radius / self.cell).astype(np.float32)
        k_all = np.ceil(rr).astype(np.int64)
        base_flat = base @ self.strides
        nodes, flats = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for k in np.unique(k_all):
            sel = np.flatnonzero(k_all == k)
            steps, axes = self._ball_offsets(int(k))
            gap2 = None
            for a in range(3):
                g = np.abs(axes[a][None, :] - frac[sel, a, None])
                g -= np.float32(0.5)
                np.maximum(g, 0, out=g)
                g *= g
                gap2 = g if gap2 is None else gap2 + g
            node, which = np.nonzero(gap2 <= (rr[sel] ** 2)[:, None])
            nodes.append(sel[node])
            flats.append(base_flat[sel[node]] + steps[which])
        return np.concatenate(nodes), np.concatenate(flats)

    def blocked(self, pos, radius, own: int) -> np.ndarray:
        """Per node: does its core touch a cell of another neuron? (nodes must lie in the volume)"""
        node, flat = self.touched(pos, radius)
        values = self.grid.flat[flat]
        bad = (values != 0) & (values != own)
        return np.bincount(node[bad], minlength=len(pos)) > 0

    def paint(self, pos, radius, own: int) -> None:
        _, flat = self.touched(pos, radius)
        flat = np.unique(flat)
        self.painted += int(np.count_nonzero((self.grid.flat[flat] == 0) & self.in_box.flat[flat]))
        self.grid.flat[flat] = own

    @property
    def fraction(self) -> float:
        return min(1.0, self.painted / self.box_cells)

    def free_point(self, rng, lo, hi, tries: int = 256):
        """A random point whose cell is empty, or None."""
        pts = rng.uniform(lo, hi, size=(tries, 3))
        cells = np.floor((pts - self.origin) / self.cell).astype(np.int64)
        free = self.grid[tuple(cells.T)] == 0
        return pts[np.argmax(free)] if free.any() else None


def _unit(rng, n=None) -> np.ndarray:
    v = rng.normal(size=(3,) if n is None else (n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _smooth(e: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise along axis 0, rescaled to about unit variance."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(e, sigma, axis=0, mode="nearest") * math.sqrt(2 * math.sqrt(math.pi) * sigma)


class _Path:
    """A random process path (positions and core radii of ``n`` nodes after ``start``).

    The randomness is drawn at once; ``prefix(L)`` evaluates only the first L nodes, so a
    path that soon runs into another neuron costs little. A longer prefix extends a shorter
    one exactly (the filters see enough of the noise beyond the prefix).
    """

    DIRECTION_SIGMA, RADIUS_SIGMA = 6.0, 15.0

    def __init__(self, rng, start, direction, step: float, n: int, wiggle: float, r0: float,
                 boutons: bool = False, head: float = 0.0):
        self.start, self.direction, self.step, self.n = start, direction, step, n
        self.wiggle, self.r0, self.head = wiggle, r0, head
        self.e_dir = rng.normal(size=(n, 3))
        self.e_rad = rng.normal(size=n)
        self.bumps: list[tuple[float, float]] = []
        if boutons:
            at = np.cumsum(rng.uniform(700.0, 1800.0, size=int(n * step // 700) + 2))
            self.bumps = [(float(c), float(rng.uniform(2.0, 2.8))) for c in at[at < n * step]]

    def prefix(self, length: int):
        pad = int(4 * self.RADIUS_SIGMA) + 1
        m = min(self.n, length + pad)
        d = self.direction[None, :] + self.wiggle * _smooth(self.e_dir[:m], self.DIRECTION_SIGMA)[:length]
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pos = self.start + np.cumsum(self.step * d, axis=0)
        r = self.r0 * np.clip(np.exp(0.12 * _smooth(self.e_rad[:m], self.RADIUS_SIGMA)[:length]), 0.72, 1.4)
        s = np.arange(1, length + 1) * self.step
        for centre, size in self.bumps:
            width = 0.7 * size * self.r0
            r = np.maximum(r, self.r0 * (1 + (size - 1) * np.exp(-0.5 * ((s - centre) / width) ** 2)))
        if self.head:  # nodes within ``head`` of the tip carry the radii of a ball centred on the tip
            r = np.maximum(r, np.sqrt(np.maximum(self.head**2 - (self.n * self.step - s) ** 2, 0.0)))
        return pos, r


class _Grower:
    def __init__(self, cfg: SynthConfig, rng):
        self.cfg, self.rng = cfg, rng
        vs = np.asarray(cfg.voxel_size_nm, float)
        self.lo = -0.5 * vs
        self.hi = (np.asarray(cfg.shape) - 0.5) * vs
        self.min_radius = 0.7 * min(cfg.axon_radius_nm, cfg.dendrite_radius_nm)
        self.neck_radius = max(0.3 * cfg.dendrite_radius_nm, self.min_radius)
        cell = max(0.5 * self.min_radius, (float(np.prod(self.hi - self.lo)) / 40e6) ** (1 / 3))
        # the largest core any node can get (boutons on the thickest axons, bodies, spine heads):
        # the occupancy grid reaches this far beyond the volume
        self.max_radius = max(5.1 * cfg.axon_radius_nm, 1.9 * cfg.dendrite_radius_nm, 1.2 * cfg.body_radius_nm,
                              1.8 * self.neck_radius)
        self.occ = _Occupancy(self.lo, self.hi, cell, self.max_radius + 3 * cell)
        self.diag = float(np.linalg.norm(self.hi - self.lo))
        self.pos, self.rad, self.neuron, self.parent, self.chain = [], [], [], [], []
        self.kinds: list[str] = []
        self.count = 0  # nodes so far

    # --- bookkeeping -------------------------------------------------------------------
    def _inside(self, pos):
        return np.all((pos >= self.lo) & (pos <= self.hi), axis=-1)

    def _add(self, pos, rad, neuron: int, first_parent: int) -> np.ndarray:
        n = len(pos)
        idx = np.arange(self.count, self.count + n)
        parent = idx - 1
        parent[0] = first_parent
        self.pos.append(pos)
        self.rad.append(rad)
        self.neuron.append(np.full(n, neuron, np.int64))
        self.parent.append(parent)
        self.chain.append(np.full(n, len(self.chain), np.int64))
        self.count += n
        self.occ.paint(pos, rad, neuron)
        return idx

    def _extent(self, pos, rad, own: int) -> int:
        """How many leading nodes are inside the volume and free of other neurons."""
        for start in range(0, len(pos), CHUNK):
            p, r = pos[start:start + CHUNK], rad[start:start + CHUNK]
            inside = self._inside(p)
            n_in = len(p) if inside.all() else int(np.argmin(inside))
            bad = self.occ.blocked(p[:n_in], r[:n_in], own)
            if bad.any():
                return start + int(np.argmax(bad))
            if n_in < len(p):
                return start + n_in
        return len(pos)

    # --- process shapes ------------------------------------------------------------------
    def _grow(self, path: _Path, own: int):
        """The longest leading part of ``path`` inside the volume and clear of other neurons."""
        length, checked = min(CHUNK, path.n), 0
        while True:
            pos, rad = path.prefix(length)
            keep = checked + self._extent(pos[checked:], rad[checked:], own)
            if keep < length or length == path.n:
                return pos[:keep], rad[:keep]
            checked, length = length, min(2 * length, path.n)

    def grow_process(self, neuron: int, r0: float, wiggle: float, boutons: bool, min_len: float):
        """A process through a free point, grown both ways; returns its node indices or None."""
        start = self.occ.free_point(self.rng, self.lo, self.hi)
        if start is None:
            return None
        step = 0.5 * 0.72 * r0
        n = int(self.diag / step) + 2
        direction = _unit(self.rng)
        r_start = np.array([r0])
        if self.occ.blocked(start[None], r_start, neuron)[0]:
            return None
        fp, fr = self._grow(_Path(self.rng, start, direction, step, n, wiggle, r0, boutons), neuron)
        bp, br = self._grow(_Path(self.rng, start, -direction, step, n, wiggle, r0, boutons), neuron)
        pos = np.concatenate([bp[::-1], start[None], fp])
        rad = np.concatenate([br[::-1], r_start, fr])
        if (len(pos) - 1) * step < min_len:
            return None
        return self._add(pos, rad, neuron, -1)

    def grow_branch(self, neuron: int, parent: int, direction, r0: float, length: float,
                    wiggle: float, head: float = 0.0, boutons: bool = False):
        """A process starting at node ``parent``; a spine when ``head`` (a head radius) is given."""
        step = 0.5 * 0.72 * r0
        n = max(2, int(length / step))
        origin = self.pos_of(parent)
        pos, rad = self._grow(_Path(self.rng, origin, direction, step, n, wiggle, r0, boutons, head), neuron)
        keep = len(pos)
        clear = self.rad_of(parent) + r0
        if keep == 0 or np.linalg.norm(pos[keep - 1] - origin) < clear:
            return None
        return self._add(pos, rad, neuron, parent)

    def pos_of(self, index: int) -> np.ndarray:
        return self._flat("pos")[index]

    def rad_of(self, index: int) -> float:
        return float(self._flat("rad")[index])

    def _flat(self, name):
        parts = getattr(self, name)
        if len(parts) > 1:
            parts[:] = [np.concatenate(parts)]
        return parts[0]

    # --- neurons -------------------------------------------------------------------------
    def new_neuron(self, kind: str) -> int:
        self.kinds.append(kind)
        return len(self.kinds)

    def drop_last_neuron(self) -> None:
        self.kinds.pop()

    def add_body(self) -> bool:
        cfg, rng = self.cfg, self.rng
        radius = cfg.body_radius_nm * rng.uniform(0.8, 1.2)
        radius = min(radius, 0.45 * float(np.max(self.hi - self.lo)))
        centre = rng.uniform(self.lo, self.hi)
        neuron = len(self.kinds) + 1
        if self.occ.blocked(centre[None], np.array([radius]), neuron)[0]:
            return False
        neuron = self.new_neuron("body")
        root = int(self._add(centre[None], np.array([radius]), neuron, -1)[0])
        for _ in range(rng.integers(1, 4)):
            r0 = 1.2 * cfg.dendrite_radius_nm
            nodes = self.grow_branch(neuron, root, _unit(rng), r0, self.diag, 0.3)
            if nodes is not None:
                self.add_spines(neuron, nodes, r0)
        return True

    def add_dendrite(self) -> bool:
        r0 = self.cfg.dendrite_radius_nm * self.rng.uniform(0.75, 1.3)
        neuron = self.new_neuron("dendrite")
        nodes = self.grow_process(neuron, r0, 0.45, False, min_len=4 * r0)
        if nodes is None:
            self.drop_last_neuron()
            return False
        self.add_spines(neuron, nodes, r0)
        return True

    def add_axon(self, filler: bool = False) -> bool:
        """An axon with boutons; a ``filler`` is a thin, possibly short one for the gaps left."""
        a = self.cfg.axon_radius_nm
        r0 = a * (self.rng.uniform(0.7, 0.9) if filler else float(np.clip(self.rng.lognormal(0.0, 0.3), 0.7, 1.8)))
        neuron = self.new_neuron("axon")
        nodes = self.grow_process(neuron, r0, 0.3, True, min_len=max(150.0, 4 * r0) if filler else max(300.0, 6 * r0))
        if nodes is None:
            self.drop_last_neuron()
            return False
        for node in self._branch_points(nodes, r0, per_um=0.0 if filler else 0.12):
            self.grow_branch(neuron, node, self._side(node, nodes), r0, self.rng.uniform(600, 2500), 0.3,
                             boutons=True)
        return True

    def add_spines(self, neuron: int, nodes: np.ndarray, r0: float) -> None:
        head_radius = max(0.6 * r0, 1.5 * self.neck_radius)
        for node in self._branch_points(nodes, r0, per_um=1.2):
            length = self.rng.uniform(350, 1100) + r0
            self.grow_branch(neuron, node, self._side(node, nodes), self.neck_radius, length, 0.25,
                             head=head_radius * self.rng.uniform(0.8, 1.2))

    def _branch_points(self, nodes, r0, per_um: float) -> np.ndarray:
        length_um = len(nodes) * 0.5 * 0.72 * r0 / 1000.0
        count = self.rng.poisson(per_um * length_um)
        return np.sort(self.rng.choice(nodes, size=min(count, len(nodes)), replace=False)) if count else nodes[:0]

    def _side(self, node: int, nodes: np.ndarray) -> np.ndarray:
        """A unit direction roughly perpendicular to the chain at ``node``."""
        pos = self._flat("pos")
        i = int(np.searchsorted(nodes, node))
        a, b = pos[nodes[max(i - 1, 0)]], pos[nodes[min(i + 1, len(nodes) - 1)]]
        t = b - a
        t = t / (np.linalg.norm(t) or 1.0)
        d = _unit(self.rng)
        d = d - 0.9 * np.dot(d, t) * t
        return d / np.linalg.norm(d)

    def result(self) -> Skeletons:
        if not self.kinds:  # nothing fitted: one neuron fills the volume
            neuron = self.new_neuron("body")
            self._add(((self.lo + self.hi) / 2)[None], np.array([self.min_radius]), neuron, -1)
        return Skeletons(self._flat("pos"), self._flat("rad"), self._flat("neuron"),
                         self._flat("parent"), self._flat("chain"), tuple(self.kinds))


def grow_neurons(cfg: SynthConfig, rng: np.random.Generator) -> Skeletons:
    """Pack bodies, dendrites and axons into the volume of ``cfg`` (lengths in nm)."""
    cfg = cfg.resolve()
    g = _Grower(cfg, rng)
    for _ in range(cfg.n_bodies):
        for _attempt in range(20):
            if g.add_body():
                break
    dendrite_share = cfg.density * (1.0 - cfg.axon_fraction)
    phases = (("dendrite", dendrite_share, g.add_dendrite, 40),
              ("axon", cfg.density, g.add_axon, 120),
              ("filler", cfg.density, lambda: g.add_axon(filler=True), 150))
    for phase, share, add, patience in phases:
        failures = attempts = 0
        while g.occ.fraction < share and failures < patience and attempts < 20000:
            attempts += 1
            failures = 0 if add() else failures + 1
        logger.debug("%s phase: %d attempts, cores cover %.2f of the volume", phase, attempts, g.occ.fraction)
    return g.result()
