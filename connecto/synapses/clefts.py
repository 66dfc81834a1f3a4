"""Clefts on anisotropic EM: a cleft model's probability map, cleft objects, and the synapse table.

- :func:`predict_clefts`: cleft probability (float32, z y x) of a uint8 stack with a cleft model
  (``model.outputs = ["clefts"]``; a section-wise 2D U-Net, ``training.unet2d``), in
  overlapping y-x tiles (the centre of each tile kept) and z-chunks with the model's section context;
- :func:`cleft_objects`: threshold, 2D profiles per section (8-connected) with at least
  ``min_area_nm2``, then 3D objects: profiles of adjacent sections that touch (26-connectivity:
  with 50 nm sections, nothing farther apart in z links), each object a uint64 id;
- :func:`synapse_table`: one row per object: ``id``, centroid ``z_nm``/``y_nm``/``x_nm``,
  ``size`` (voxels), ``sections``, ``score`` (mean probability).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

TILE = 512
TILE_MARGIN = 64  # >= the receptive-field radius of configs/vnc-clefts.toml's network (58 px), on its pooling grid
Z_CHUNK = 8


def load_cleft_model(checkpoint: str):
    """(model in eval mode, on a GPU when there is one; loaded checkpoint state) of a cleft checkpoint; a ValueError
    for any other model."""
    import torch

    from training.checkpoint import build_model, load_checkpoint, model_config_from_checkpoint

    state = load_checkpoint(checkpoint)
    config = model_config_from_checkpoint(state)
    if "clefts" not in config.outputs:
        raise ValueError(f"{checkpoint} has no cleft head (its heads: {list(config.outputs)}); train one with "
                         "model.outputs = [\"clefts\"]")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return build_model(state).eval().to(device), state


def predict_clefts(model, raw: np.ndarray, *, tile: int = TILE, margin: int = TILE_MARGIN, z_chunk: int = Z_CHUNK,
                   precision: str = "fp32", device=None, flips: bool = False) -> np.ndarray:
    """Cleft probability (float32, raw's shape) of ``raw`` (z, y, x; uint8 or normalised float).

    Tiles of ``tile`` x ``tile`` pixels read ``margin`` pixels of context on each side (with a margin at
    least the network's receptive-field radius and a multiple of its pooling, tiles equal a whole-section
    forward up to rounding),
    z-chunks of ``z_chunk`` sections read the model's ``z_context`` sections on each side.
    ``flips``: the mean over the four in-plane flips (test-time augmentation, 4x the work)."""
    if flips:
        total = np.zeros(raw.shape, np.float32)
        for axes in ((), (1,), (2,), (1, 2)):
            flipped = np.flip(raw, axes) if axes else raw
            prob = predict_clefts(model, np.ascontiguousarray(flipped), tile=tile, margin=margin, z_chunk=z_chunk,
                                  precision=precision, device=device)
            total += np.flip(prob, axes) if axes else prob
        return total / 4
    import torch

    from training.data import normalize_raw

    if raw.ndim != 3:
        raise ValueError(f"raw of shape {raw.shape} must be 3D (z, y, x)")
    config = model.config
    device = device or next(model.parameters()).device
    factor = int(np.prod([f[1] for f in config.downsample])), int(np.prod([f[2] for f in config.downsample]))
    channel = config.channels_of("clefts").start
    data = normalize_raw(raw)
    out = np.zeros(raw.shape, np.float32)
    depth, height, width = raw.shape
    k = config.z_context
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for z0 in range(0, depth, z_chunk):
            z1 = min(depth, z0 + z_chunk)
            a, b = max(0, z0 - k), min(depth, z1 + k)
            for y0 in range(0, height, tile):
                for x0 in range(0, width, tile):
                    y1, x1 = min(height, y0 + tile), min(width, x0 + tile)
                    ry0, rx0 = max(0, y0 - margin), max(0, x0 - margin)
                    ry1, rx1 = min(height, y1 + margin), min(width, x1 + margin)
                    block = data[a:b, ry0:ry1, rx0:rx1]
                    pad = [(0, 0), (0, -block.shape[1] % factor[0]), (0, -block.shape[2] % factor[1])]
                    block = np.pad(block, pad, mode="reflect") if any(p[1] for p in pad) else block
                    x = torch.from_numpy(np.ascontiguousarray(block))[None, None].to(device)
                    prob = torch.sigmoid(model(x)[0, channel].float()).cpu().numpy()
                    out[z0:z1, y0:y1, x0:x1] = prob[z0 - a:z1 - a, y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
    return out


def profiles(mask: np.ndarray, min_area_px: int = 0) -> np.ndarray:
    """2D connected components (8-connected) of each section of ``mask``, ids unique over the stack
    (uint64, 0 = background); components smaller than ``min_area_px`` pixels are dropped."""
    import cc3d

    out = np.zeros(mask.shape, np.uint64)
    next_id = 0
    for z in range(mask.shape[0]):
        cc = cc3d.connected_components(np.ascontiguousarray(mask[z] > 0), connectivity=8).astype(np.uint64)
        if min_area_px > 1 and cc.max():
            sizes = np.bincount(cc.ravel())
            cc[sizes[cc] < min_area_px] = 0
        ids, cc = np.unique(cc, return_inverse=True)
        cc = cc.reshape(mask.shape[1:]).astype(np.uint64)
        if ids[0] != 0:
            cc += 1
        cc[cc > 0] += next_id
        next_id = int(cc.max()) if cc.max() else next_id
        out[z] = cc
    return out


def objects_3d(mask: np.ndarray) -> np.ndarray:
    """3D objects (uint64 ids from 1): 26-connected components of ``mask``; with thick sections
    that links a profile only to touching profiles in the adjacent sections."""
    import cc3d

    return cc3d.connected_components(np.ascontiguousarray(mask > 0), connectivity=26).astype(np.uint64)


def cleft_objects(probability: np.ndarray, voxel_size_nm, *, threshold: float = 0.5,
                  min_area_nm2: float = 2000.0) -> np.ndarray:
    """Cleft objects (uint64, 0 = none) from a cleft probability map (see the module docstring)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} must be in [0, 1]")
    pixel_nm2 = float(voxel_size_nm[1]) * float(voxel_size_nm[2])
    kept = profiles(probability >= threshold, min_area_px=int(np.ceil(min_area_nm2 / pixel_nm2))) > 0
    return objects_3d(kept)


def synapse_table(objects: np.ndarray, probability: np.ndarray | None, voxel_size_nm,
                  offset_nm=(0.0, 0.0, 0.0)) -> pd.DataFrame:
    """One row per cleft object: id, centroid (nm), size (voxels), sections, mean score."""
    columns = ["id", "z_nm", "y_nm", "x_nm", "size", "sections", "score"]
    ids, inverse, sizes = np.unique(objects.ravel(), return_inverse=True, return_counts=True)
    if ids.size == 0 or (ids.size == 1 and ids[0] == 0):
        return pd.DataFrame({c: pd.Series(dtype=np.uint64 if c == "id" else np.float64) for c in columns})
    grid = np.indices(objects.shape).reshape(3, -1)
    sums = [np.bincount(inverse, weights=g, minlength=ids.size) for g in grid]
    score = (np.bincount(inverse, weights=probability.ravel(), minlength=ids.size) / sizes
             if probability is not None else np.full(ids.size, np.nan))
    inside = objects > 0
    pairs = np.unique(np.stack([objects[inside], np.nonzero(inside)[0].astype(np.uint64)]), axis=1)
    sections = np.bincount(np.searchsorted(ids, pairs[0]), minlength=ids.size)
    keep = ids > 0
    table = pd.DataFrame({"id": ids[keep].astype(np.uint64)})
    for axis, name in enumerate(("z_nm", "y_nm", "x_nm")):
        table[name] = sums[axis][keep] / sizes[keep] * float(voxel_size_nm[axis]) + float(offset_nm[axis])
    table["size"] = sizes[keep].astype(np.int64)
    table["sections"] = sections[keep].astype(np.int64)
    table["score"] = score[keep]
    return table[columns]


def read_stack(spec: str):
    """(array, voxel size in nm or None) of a volume URL or ``FILE.h5:DATASET``; an HDF5 dataset's voxel size comes
    from its (or its file's) ``voxel_size_nm`` or ``resolution`` attribute."""
    import re

    from chunks.sources import open_readable

    match = re.match(r"^(.*\.(?:h5|hdf5?)):/?(.+)$", str(spec), flags=re.IGNORECASE)
    if match:
        import h5py

        path, dataset = match.groups()
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist")
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise ValueError(f"{path} has no dataset {dataset!r} (it has {', '.join(f)})")
            for attrs in (f[dataset].attrs, f.attrs):
                for key in ("voxel_size_nm", "resolution"):
                    if key in attrs:
                        return f[dataset][:], [float(v) for v in np.asarray(attrs[key]).reshape(-1)]
            return f[dataset][:], None
    source = open_readable(spec)
    voxel = getattr(source, "voxel_size_nm", None)
    return source.read(source.roi), [float(v) for v in voxel] if voxel is not None else None


def is_volume_spec(spec: str) -> bool:
    """Whether ``spec`` names a volume (``FILE.h5:DATASET``, zarr, a URL) rather than a table file."""
    import re

    text = str(spec)
    return bool(re.search(r"\.(h5|hdf5?):", text, flags=re.IGNORECASE)) or "://" in text or \
        text.rstrip("/").endswith((".zarr", ".n5")) or text.lower().endswith(".npy")


def detect_to_h5(model, state: dict, spec: str, out: str, *, threshold: float = 0.5, min_area_nm2: float = 2000.0,
                 force: bool = False, objects_of=None, method: str = "threshold") -> dict:
    """Detect clefts in the stack ``spec`` (FILE.h5:DATASET or a volume URL) with a cleft model and write ``out``
    (HDF5): dataset ``clefts`` (uint64 object ids, the input's shape) and ``synapses`` (the table), and the table
    as ``<out without .h5>.synapses.csv``. The model card is checked first: another voxel size is refused
    unless ``force``, far intensities warn. ``objects_of(raw, probability, voxel_size_nm)``, when given, makes the
    cleft objects instead of :func:`cleft_objects` (``method`` names it in the file). Returns a summary."""
    import time

    import h5py

    from training.data import normalize_raw
    from training.model_card import card_of, check_data

    raw, voxel = read_stack(spec)
    if raw.ndim != 3:
        raise ValueError(f"{spec} has shape {raw.shape}; expected a 3D stack (z, y, x)")
    if voxel is not None:
        check_data(state, voxel_size_nm=voxel, where="the cleft model", force=force)
    check_data(state, raw=normalize_raw(raw), where="the cleft model", force=True)  # intensities: a warning
    voxel = voxel or card_of(state).get("voxel_size_nm")
    started = time.perf_counter()
    probability = predict_clefts(model, raw)
    if objects_of is None:
        objects = cleft_objects(probability, voxel, threshold=threshold, min_area_nm2=min_area_nm2)
        attrs = {"method": method, "threshold": threshold, "min_area_nm2": min_area_nm2}
    else:
        objects, attrs = objects_of(raw, probability, voxel), {"method": method}
    table = synapse_table(objects, probability, voxel)
    with h5py.File(out, "w") as f:
        ds = f.create_dataset("clefts", data=objects, compression="gzip", chunks=True)
        ds.attrs.update({"voxel_size_nm": voxel, **attrs})
        f.create_dataset("synapses", data=table.to_records(index=False))
    table.to_csv(os.path.splitext(out)[0] + ".synapses.csv", index=False)
    return {"input": spec, "shape": list(raw.shape), "voxel_size_nm": voxel, "clefts_out": out,
            "clefts": len(table), "seconds": round(time.perf_counter() - started, 1)}
