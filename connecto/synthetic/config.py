"""``SynthConfig``: every parameter of a synthetic volume, validated, in one frozen value.

A config plus the generator's code fully determines the volume: the same config gives the
same image, labels, clefts and tables, whatever the block shape or the number of workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from chunks import Coordinate, parse_coordinate

GENERATOR_VERSION = 1  # bump when a change alters the output of a given config


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic EM volume. Lengths are in nm, shapes in voxels, axes z,y,x.

    Parameters
    ----------
    shape : voxels per axis (z, y, x).
    voxel_size_nm : voxel size, e.g. (8, 8, 8) for FIB-SEM-like or (40, 4, 4) for ssTEM-like data.
    seed : random seed; the whole volume is a function of the config.
    density : fraction (0, 0.95] of the volume filled by neurite cores before the neurites
        grow to touch each other; higher means more, thinner-looking processes.
    n_synapses : synapses to place; None: ``synapses_per_um3`` times the volume.
    synapses_per_um3 : synapse density used when ``n_synapses`` is None.
    max_posts : most postsynaptic partners of one synapse (1 = no polyadic synapses).
    axon_radius_nm, dendrite_radius_nm, body_radius_nm : typical core radii.
    axon_fraction : share of the neurite cores that are axons (the rest are dendrites).
    n_bodies : large bodies (cell-body-like spheres with a nucleus); None: one per 8 um^3.
    mitochondria_per_um3 : mitochondria density.
    difficulty : 0 (clean) .. 1 (hard); sets ``noise``, ``membrane_contrast``,
        ``artefact_rate`` and ``blur_nm`` where those are None.
    noise : standard deviation of the pixel noise, in grey levels.
    membrane_contrast : membrane darkening as a fraction of the cytoplasm intensity (0..1).
    artefact_rate : chance per section of an artefact (missing section, shifted section,
        contrast jump), split equally between the three kinds.
    blur_nm : sigma of the Gaussian point spread, in nm.

    >>> cfg = SynthConfig(shape=(32, 64, 64), voxel_size_nm=(40, 4, 4), seed=3)
    >>> cfg.shape, cfg.resolve().artefact_rate
    (Coordinate(32, 64, 64), 0.03)
    """

    shape: Coordinate
    voxel_size_nm: Coordinate = Coordinate(8, 8, 8)  # noqa: RUF009 - an immutable tuple
    seed: int = 0
    density: float = 0.6
    n_synapses: int | None = None
    synapses_per_um3: float = 1.5
    max_posts: int = 4
    axon_radius_nm: float = 50.0
    dendrite_radius_nm: float = 130.0
    body_radius_nm: float = 600.0
    axon_fraction: float = 0.6
    n_bodies: int | None = None
    mitochondria_per_um3: float = 3.0
    difficulty: float = 0.3
    noise: float | None = None
    membrane_contrast: float | None = None
    artefact_rate: float | None = None
    blur_nm: float | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "shape", parse_coordinate(self.shape, name="shape"))
        set_(self, "voxel_size_nm", parse_coordinate(self.voxel_size_nm, name="voxel size"))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed {self.seed!r} must be an integer >= 0")
        _check_range("density", self.density, 0.0, 0.95, low_open=True)
        n = self.n_synapses
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise ValueError(f"n_synapses {n!r} must be an integer >= 0 (the number of synapses)")
        _check_range("synapses_per_um3", self.synapses_per_um3, 0.0, 100.0)
        if not isinstance(self.max_posts, int) or not 1 <= self.max_posts <= 8:
            raise ValueError(f"max_posts {self.max_posts!r} must be an integer in [1, 8] (1 = no polyadic synapses)")
        finest = min(self.voxel_size_nm)
        for name in ("axon_radius_nm", "dendrite_radius_nm", "body_radius_nm"):
            _check_range(name, getattr(self, name), 0.0, 1e5, low_open=True)
            if getattr(self, name) < 1.5 * finest:
                raise ValueError(f"{name} {getattr(self, name)!r} is below one voxel: cores need a radius of at "
                                 f"least {1.5 * finest:g} nm (1.5 voxels) at voxel size {self.voxel_size_nm} nm")
        _check_range("axon_fraction", self.axon_fraction, 0.0, 1.0)
        if self.n_bodies is not None and (not isinstance(self.n_bodies, int) or self.n_bodies < 0):
            raise ValueError(f"n_bodies {self.n_bodies!r} must be an integer >= 0")
        _check_range("mitochondria_per_um3", self.mitochondria_per_um3, 0.0, 1000.0)
        _check_range("difficulty", self.difficulty, 0.0, 1.0)
        if self.noise is not None:
            _check_range("noise", self.noise, 0.0, 255.0)
        if self.membrane_contrast is not None:
            _check_range("membrane_contrast", self.membrane_contrast, 0.0, 1.0)
        if self.artefact_rate is not None:
            _check_range("artefact_rate", self.artefact_rate, 0.0, 1.0)
        if self.blur_nm is not None:
            _check_range("blur_nm", self.blur_nm, 0.0, 1000.0)

    # --- derived values ------------------------------------------------------------
    @property
    def extent_nm(self) -> tuple[float, float, float]:
        """Position (nm) of the last voxel: voxel i sits at ``i * voxel_size_nm``."""
        return tuple(float((s - 1) * v) for s, v in zip(self.shape, self.voxel_size_nm))

    @property
    def volume_um3(self) -> float:
        return math.prod(s * v for s, v in zip(self.shape, self.voxel_size_nm)) * 1e-9

    def resolve(self) -> SynthConfig:
        """The same config with every None replaced by its value from ``difficulty`` or the volume."""
        d = self.difficulty
        n_syn = self.n_synapses if self.n_synapses is not None else round(self.synapses_per_um3 * self.volume_um3)
        n_bodies = self.n_bodies if self.n_bodies is not None else int(self.volume_um3 // 8)
        return dataclasses.replace(
            self,
            n_synapses=n_syn,
            n_bodies=n_bodies,
            noise=self.noise if self.noise is not None else round(3.0 + 15.0 * d, 6),
            membrane_contrast=(self.membrane_contrast if self.membrane_contrast is not None
                               else round(0.5 - 0.3 * d, 6)),
            artefact_rate=self.artefact_rate if self.artefact_rate is not None else round(0.1 * d, 6),
            blur_nm=self.blur_nm if self.blur_nm is not None else round(5.0 + 6.0 * d, 6),
        )

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["shape"], out["voxel_size_nm"] = list(self.shape), list(self.voxel_size_nm)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> SynthConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown synthetic parameters {unknown}; expected some of {sorted(known)}")
        return cls(**values)

    def digest(self) -> str:
        """A short hash of the resolved config and the generator version (names a model in caches)."""
        text = json.dumps({"v": GENERATOR_VERSION, **self.resolve().to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_range(name, value, low, high, low_open=False) -> None:
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    inside = ok_type and (low < value if low_open else low <= value) and value <= high
    if not inside:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} {value!r} must be a number in {bracket}{low}, {high}]")
