"""``VolumeMeta``: what every volume knows about itself, whatever stores it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coordinate import Coordinate
from .roi import Roi


@dataclass(frozen=True)
class VolumeMeta:
    """Shape, offset and chunk shape in voxels (zyx); voxel size in nm (zyx)."""

    shape: Coordinate
    dtype: np.dtype
    voxel_size_nm: Coordinate
    offset: Coordinate
    chunk_shape: Coordinate
    num_channels: int = 1

    def __post_init__(self):
        for name in ("shape", "voxel_size_nm", "offset", "chunk_shape"):
            value = Coordinate(getattr(self, name))
            if len(value) != 3:
                raise ValueError(f"{name} {value} must have 3 values (z,y,x)")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if any(v <= 0 for v in self.voxel_size_nm):
            raise ValueError(f"voxel size {self.voxel_size_nm} nm must be > 0 in every axis (z,y,x)")
        if any(v <= 0 for v in self.chunk_shape):
            raise ValueError(f"chunk shape {self.chunk_shape} must be > 0 in every axis (z,y,x)")
        if any(v <= 0 for v in self.shape):
            raise ValueError(f"volume shape {self.shape} must be > 0 in every axis (z,y,x)")
        if self.num_channels < 1:
            raise ValueError(f"num_channels {self.num_channels} must be >= 1")

    @property
    def roi(self) -> Roi:
        return Roi(self.offset, self.shape)

    def differences(self, other: VolumeMeta) -> list[str]:
        """Human-readable list of fields that differ (empty when compatible)."""
        out = []
        for name in ("shape", "dtype", "voxel_size_nm", "offset", "chunk_shape", "num_channels"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                out.append(f"{name} {a} (existing) != {b} (requested)")
        return out
