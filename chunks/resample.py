"""Resample a Volume to another voxel size, blockwise: area averaging or linear interpolation for
images, nearest neighbour for labels.

Voxel ``i`` of a volume spans ``[i, i + 1) * voxel size`` nm (offset included), so a resampled
voxel takes its value from the source around its centre ``(i + 0.5) * new size``. The output
covers the source's extent, rounded outwards to whole new voxels (the edge repeats where
the new grid reaches past the source).

- ``nearest``: the source voxel under the centre; the only method for labels (ids are kept).
- ``linear``: trilinear interpolation at the centre (``scipy.ndimage.map_coordinates``).
- ``area``: the mean of the source voxels a new voxel covers; needs each new size to be a
  whole multiple of the old one (downsampling by integer factors).

``auto`` picks ``nearest`` for label volumes (integers of 4 bytes or more), else ``area``
where the factors allow it and ``linear`` otherwise.

:func:`run_resampled` runs any volume-to-volume step (a model's prediction) at another voxel
size and brings its output back to the input's grid.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

from .coordinate import Coordinate
from .roi import Roi
from .volume import Volume, create_volume

METHODS = ("auto", "area", "linear", "nearest")


def is_labels(dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind in "ui" and dtype.itemsize >= 4


def area_factors(source_nm, target_nm) -> tuple[int, ...] | None:
    """Integer factors target / source per axis, or None where one is not a whole number >= 1."""
    factors = []
    for s, t in zip(source_nm, target_nm):
        ratio = float(t) / float(s)
        if ratio < 1 or not math.isclose(ratio, round(ratio), rel_tol=1e-9):
            return None
        factors.append(round(ratio))
    return tuple(factors)


def choose_method(dtype, source_nm, target_nm, method: str = "auto") -> str:
    """The method to use; refuses what cannot work (area on labels or on non-integer factors)."""
    if method not in METHODS:
        raise ValueError(f"resampling method {method!r} is not one of {', '.join(METHODS)}")
    labels = is_labels(dtype)
    if method == "auto":
        return "nearest" if labels else ("area" if area_factors(source_nm, target_nm) else "linear")
    if labels and method != "nearest":
        raise ValueError(f"a label volume ({np.dtype(dtype)}) is resampled by nearest neighbour only, not {method} "
                         "(interpolating ids makes ids that do not exist)")
    if method == "area" and area_factors(source_nm, target_nm) is None:
        raise ValueError(f"area averaging needs each new voxel size ({_nm(target_nm)} nm) to be a whole multiple of "
                         f"the old one ({_nm(source_nm)} nm); use linear")
    return method


def target_roi(source_roi: Roi, source_nm, target_nm) -> Roi:
    """The source's extent on the new grid, rounded outwards to whole new voxels."""
    begin = [math.floor(b * s / t + 1e-9) for b, s, t in zip(source_roi.begin, source_nm, target_nm)]
    end = [math.ceil(e * s / t - 1e-9) for e, s, t in zip(source_roi.end, source_nm, target_nm)]
    return Roi(begin, [e - b for b, e in zip(begin, end)])


def source_roi_for(roi: Roi, source_nm, target_nm, method: str, bounds: Roi) -> Roi:
    """The source voxels that the new voxels of ``roi`` read (clipped to ``bounds``)."""
    begin, end = [], []
    for b, e, s, t in zip(roi.begin, roi.end, source_nm, target_nm):
        lo, hi = b * t / s, e * t / s  # the new voxels' extent in source voxel units
        pad = 1 if method == "linear" else 0
        begin.append(math.floor(lo + 1e-9) - pad)
        end.append(math.ceil(hi - 1e-9) + pad)
    wanted = Roi(begin, [e - b for b, e in zip(begin, end)])
    clipped = wanted.intersect(bounds)
    if clipped.empty():
        raise ValueError(f"new voxels {roi} lie outside the source {bounds}")
    return clipped


def resample_array(data: np.ndarray, data_roi: Roi, source_nm, target_nm, roi: Roi, method: str) -> np.ndarray:
    """Resample ``data`` (zyx, or c z y x; the source voxels ``data_roi``) onto the new voxels ``roi``."""
    if data.ndim == 4:
        return np.stack([resample_array(c, data_roi, source_nm, target_nm, roi, method) for c in data])
    # continuous source index (relative to data) of each new voxel's centre, per axis
    centres = [((np.arange(b, e) + 0.5) * t / s) - d for b, e, s, t, d in
               zip(roi.begin, roi.end, source_nm, target_nm, data_roi.begin)]
    if method == "nearest":
        index = [np.clip(np.floor(c).astype(np.int64), 0, n - 1) for c, n in zip(centres, data.shape)]
        return data[np.ix_(*index)]
    if method == "linear":
        from scipy.ndimage import map_coordinates

        grid = np.meshgrid(*[c - 0.5 for c in centres], indexing="ij")
        out = map_coordinates(data.astype(np.float32), grid, order=1, mode="nearest")
        return _cast(out, data.dtype)
    factors = area_factors(source_nm, target_nm)
    starts = [round(b * f) - d for b, f, d in zip(roi.begin, factors, data_roi.begin)]
    wanted = [(st, st + n * f) for st, n, f in zip(starts, roi.shape, factors)]
    pad = [(max(0, -lo), max(0, hi - n)) for (lo, hi), n in zip(wanted, data.shape)]
    padded = np.pad(data, pad, mode="edge") if any(p != (0, 0) for p in pad) else data
    region = padded[tuple(slice(lo + p[0], hi + p[0]) for (lo, hi), p in zip(wanted, pad))]
    shape = []
    for n, f in zip(roi.shape, factors):
        shape += [n, f]
    return _cast(region.reshape(shape).mean(axis=(1, 3, 5), dtype=np.float64), data.dtype)


def _cast(values: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype)


def resample_volume(source: Volume, out_url: str, voxel_size_nm, *, method: str = "auto", roi: Roi | None = None,
                    chunk_shape=None, block_shape=None, scheduler=None, num_workers: int | None = None,
                    overwrite: bool = False, progress: bool = True) -> Volume:
    """Resample ``source`` to ``voxel_size_nm`` (z, y, x) into a new volume at ``out_url``, blockwise.

    ``roi``: the new volume's voxels (on the new grid); default the source's extent, rounded outwards.
    """
    from .engine import run_blockwise

    target_nm = Coordinate(voxel_size_nm)
    method = choose_method(source.dtype, source.voxel_size_nm, target_nm, method)
    roi = roi if roi is not None else target_roi(source.roi, source.voxel_size_nm, target_nm)
    chunks = Coordinate(chunk_shape) if chunk_shape is not None else source.chunk_shape
    out = create_volume(out_url, roi.shape, source.dtype, target_nm, offset=roi.offset, chunk_shape=chunks,
                        num_channels=source.num_channels, overwrite=overwrite)
    stage = functools.partial(_resample_block, source, tuple(source.voxel_size_nm), tuple(target_nm), method)
    block = Coordinate(block_shape) if block_shape is not None else out.chunk_shape
    run_blockwise(stage, out.roi, block, task="resample", outputs={"out": out},
                  params={"method": method, "voxel_size_nm": list(target_nm), "source": str(source.url)},
                  scheduler=scheduler, num_workers=num_workers, overwrite=overwrite, progress=progress)
    return out


def _resample_block(source: Volume, source_nm, target_nm, method, block, inputs) -> dict:
    read = source_roi_for(block.write_roi, source_nm, target_nm, method, source.roi)
    return {"out": resample_array(source.read(read), read, source_nm, target_nm, block.write_roi, method)}


def run_resampled(source: Volume, voxel_size_nm, out_url: str, step, *, work_dir: str, method: str = "auto",
                  back_method: str = "auto", **engine) -> Volume:
    """Run ``step(resampled source, url) -> Volume`` at ``voxel_size_nm`` and resample its result back to
    the source's voxel size and extent at ``out_url``. The intermediate volumes stay in ``work_dir``
    (a rerun resumes them)."""
    os.makedirs(work_dir, exist_ok=True)
    resampled = resample_volume(source, os.path.join(work_dir, "input"), voxel_size_nm, method=method, **engine)
    result = step(resampled, os.path.join(work_dir, "output"))
    return resample_volume(result, out_url, source.voxel_size_nm, method=back_method, roi=source.roi,
                           chunk_shape=source.chunk_shape, **engine)


def run_at_voxel_size(source: Volume, voxel_size_nm, out_url: str, step, *, work_dir: str, what: str = "the model",
                      **engine) -> Volume:
    """``step(volume, url) -> Volume`` run at ``voxel_size_nm`` (what ``what`` needs), its output written at
    ``out_url`` at the source's voxel size and extent (:func:`run_resampled`); run directly where the
    sizes agree."""
    if voxel_size_nm is None:
        raise ValueError(f"{what} records no voxel size, so there is nothing to resample to; run without --resample")
    if any(not float(v).is_integer() for v in voxel_size_nm):
        raise ValueError(f"{what} works at {_nm(voxel_size_nm)} nm; resampling needs whole-nm voxel sizes")
    target = Coordinate(int(v) for v in voxel_size_nm)
    if target == source.voxel_size_nm:
        return step(source, out_url)
    return run_resampled(source, target, out_url, step, work_dir=work_dir, **engine)


def _nm(values) -> str:
    return ",".join(f"{float(v):g}" for v in values)
