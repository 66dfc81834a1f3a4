"""Noise keyed by global position: the same voxel gets the same value in any block.

Every random value of the image is a hash of (seed, stream, global integer position), so a
block computes exactly the values the whole volume would have at its voxels; no random
state is carried between blocks. ``value_noise`` interpolates hashed lattice values for
smooth textures, separably (three small matrix products per call).
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PRIMES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array."""
    h ^= h >> np.uint64(30)
    h *= _M1
    h ^= h >> np.uint64(27)
    h *= _M2
    h ^= h >> np.uint64(31)
    return h


def _key(seed: int, stream: int) -> np.uint64:
    h = np.array([(seed * 0x9E3779B1 + stream * 0x85EBCA77 + 0x27D4EB2F) % 2**64], dtype=np.uint64)
    return _mix(_mix(h))[0]


def hash_grid(seed: int, stream: int, *coords: np.ndarray) -> np.ndarray:
    """uint64 hashes of the integer grid spanned by 1-D coordinate arrays (one per axis)."""
    dims = len(coords)
    h = np.full((1,) * dims, _key(seed, stream), dtype=np.uint64)
    for axis, c in enumerate(coords):
        shape = [1] * dims
        shape[axis] = len(c)
        term = _mix(np.asarray(c, dtype=np.int64).astype(np.uint64) * _PRIMES[axis % 3] + np.uint64(axis + 1))
        h = h ^ term.reshape(shape)
    return _mix(h)


def uniform_grid(seed: int, stream: int, *coords: np.ndarray) -> np.ndarray:
    """Uniform float32 values in [0, 1) on the grid spanned by ``coords``."""
    h = hash_grid(seed, stream, *coords)
    return ((h >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24))


def normal_grid(seed: int, stream: int, *coords: np.ndarray) -> np.ndarray:
    """Approximately standard-normal float32 values (sum of two uniforms, unit variance)."""
    h = hash_grid(seed, stream, *coords)
    a = (h >> np.uint64(40)).astype(np.float32)
    b = ((h >> np.uint64(8)) & np.uint64(0xFFFFFF)).astype(np.float32)
    return (a + b) * np.float32(2.0**-24 * 6**0.5) - np.float32(6**0.5)


def roi_coords(begin, shape) -> list[np.ndarray]:
    """Global integer voxel coordinates of a box, one array per axis."""
    return [np.arange(b, b + s, dtype=np.int64) for b, s in zip(begin, shape)]


def _weights(pos: np.ndarray, spacing: float):
    """Per position: lattice index (relative to the first), and the weights of it and the next."""
    t = pos / spacing
    i0 = np.floor(t).astype(np.int64)
    f = t - i0
    f = (f * f * (3.0 - 2.0 * f)).astype(np.float32)  # smoothstep: continuous gradients across cells
    first = int(i0.min())
    return i0 - first, np.float32(1.0) - f, f, first, int(i0.max()) - first + 2


def value_noise(seed: int, stream: int, begin, shape, voxel_size_nm, spacing_nm: float) -> np.ndarray:
    """Smooth noise (unit variance at lattice points) with features ``spacing_nm`` apart.

    The lattice is fixed in the world (multiples of ``spacing_nm``) and every output value
    is computed element-wise in a fixed order, so any box gets bit-identical values to the
    whole volume there.
    """
    axes = [_weights(np.arange(b, b + s) * float(v), float(spacing_nm)) for b, s, v in zip(begin, shape, voxel_size_nm)]
    lattice = normal_grid(seed, stream, *[np.arange(a[3], a[3] + a[4]) for a in axes])
    (iz, wz0, wz1, _, _), (iy, wy0, wy1, _, _), (ix, wx0, wx1, _, _) = axes
    t = lattice[:, :, ix] * wx0 + lattice[:, :, ix + 1] * wx1                              # (a, b, x)
    t = t[:, iy, :] * wy0[None, :, None] + t[:, iy + 1, :] * wy1[None, :, None]           # (a, y, x)
    return t[iz] * wz0[:, None, None] + t[iz + 1] * wz1[:, None, None]                    # (z, y, x)


def section_values(seed: int, stream: int, z: np.ndarray) -> np.ndarray:
    """One uniform value in [0, 1) per global section index."""
    return uniform_grid(seed, stream, np.asarray(z, dtype=np.int64))
