"""Spatial selections: neurons and synapses inside a Roi (voxels, zyx).

A table position in nm is ``voxel index * voxel size``, so a Roi in voxels covers
``[offset * voxel_size, (offset + shape) * voxel_size)`` nm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from chunks import Roi

from .tables import synapse_locations


def roi_bounds_nm(roi: Roi, voxel_size_nm) -> tuple[np.ndarray, np.ndarray]:
    """[begin, end) of ``roi`` in nm, zyx."""
    if voxel_size_nm is None:
        raise ValueError("this connectome has no voxel size, so a Roi in voxels cannot be placed; "
                         "give voxel_size_nm=(z, y, x) when building it")
    roi = roi if isinstance(roi, Roi) else Roi(*roi)
    if roi.dims != 3:
        raise ValueError(f"Roi {roi} must be 3-dimensional (z, y, x)")
    size = np.asarray(voxel_size_nm, dtype=np.float64)
    return np.asarray(roi.begin, np.float64) * size, np.asarray(roi.end, np.float64) * size


def inside(points: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Rows of ``points`` (n, 3) inside [begin, end); NaN rows are outside."""
    return np.all((points >= begin) & (points < end), axis=1)


def neurons_in_roi(neurons: pd.DataFrame, roi: Roi, voxel_size_nm, mode: str = "centroid") -> pd.DataFrame:
    """Neurons whose centroid lies in ``roi`` (``mode="centroid"``) or whose bounding box
    overlaps it (``mode="bbox"``)."""
    begin, end = roi_bounds_nm(roi, voxel_size_nm)
    if mode == "centroid":
        keep = inside(neurons[["z_nm", "y_nm", "x_nm"]].to_numpy(np.float64), begin, end)
    elif mode == "bbox":
        low = neurons[["bbox_min_z_nm", "bbox_min_y_nm", "bbox_min_x_nm"]].to_numpy(np.float64)
        high = neurons[["bbox_max_z_nm", "bbox_max_y_nm", "bbox_max_x_nm"]].to_numpy(np.float64)
        keep = np.all((low < end) & (high > begin), axis=1)
    else:
        raise ValueError(f"mode={mode!r} is not one of 'centroid', 'bbox'")
    return neurons.loc[keep]


def synapses_in_roi(synapses: pd.DataFrame, roi: Roi, voxel_size_nm, point: str = "location") -> pd.DataFrame:
    """Synapses whose ``point`` (see :func:`~connecto.connectome.tables.synapse_locations`)
    lies in ``roi``."""
    begin, end = roi_bounds_nm(roi, voxel_size_nm)
    return synapses.loc[inside(synapse_locations(synapses, point), begin, end)]
