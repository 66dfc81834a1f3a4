"""``synthesize``: raw image, labels and clefts of any box of the volume, from the model.

The pure function behind every block. It computes what it needs around the box (the
context: blur, misalignment, membrane reach, stray-voxel clean-up) itself, from the
model, which is defined everywhere in space; so the result for a voxel never depends on
which box it was computed in.
"""

from __future__ import annotations

import math

import numpy as np

from . import render, sections
from .labels import boundary_mask, remove_islands
from .synapses import cleft_mask

ISLAND_NM = 48.0  # stray slivers of a neuron up to this extent join their surroundings


def island_extent(cfg) -> tuple[int, ...]:
    """Largest stray piece, in voxels per axis (neurons themselves are far larger)."""
    return tuple(max(2, math.ceil(ISLAND_NM / v)) for v in cfg.voxel_size_nm)


def contexts(cfg) -> dict[str, tuple[int, ...]]:
    """Voxels of context per axis for each step (see ``synthesize``)."""
    s = sections.max_shift(cfg)
    reach = render.membrane_reach_nm(cfg.voxel_size_nm)
    return {
        "image": tuple(b + m for b, m in zip(render.blur_radius(cfg), (0, s, s))),
        "membrane": tuple(math.ceil(reach / v) for v in cfg.voxel_size_nm),
        "islands": tuple(e + 2 for e in island_extent(cfg)),  # + 1 for the clefts' neighbours
    }


def _grow(begin, shape, by):
    return tuple(b - g for b, g in zip(begin, by)), tuple(s + 2 * g for s, g in zip(shape, by))


def _crop(array, array_begin, begin, shape):
    return array[tuple(slice(b - a, b - a + s) for a, b, s in zip(array_begin, begin, shape))]


def synthesize(model, begin, shape) -> dict[str, np.ndarray]:
    """``{"raw": uint8, "labels": uint64, "clefts": uint64}`` for the box ``begin .. begin + shape``.

    The image is drawn from the labels as the power diagram gives them; the labels written
    have stray slivers cleaned up (a few voxels differ; the membranes do not notice).
    """
    from scipy import ndimage

    cfg = model.config
    vs = cfg.voxel_size_nm
    ctx = contexts(cfg)
    img_begin, img_shape = _grow(begin, shape, ctx["image"])              # image before blur and shifts
    lab_begin, lab_shape = _grow(img_begin, img_shape, ctx["membrane"])   # labels that the image needs
    clean_begin, clean_shape = _grow(begin, shape, ctx["islands"])        # labels that the clean-up needs
    all_begin, all_shape = _grow(begin, shape, tuple(
        max(a + b, c) for a, b, c in zip(ctx["image"], ctx["membrane"], ctx["islands"])))
    labels = model.field.label_box(all_begin, all_shape, vs)

    # the truth: cleaned labels of the box and one voxel around it (for the clefts)
    cleaned = _clean(_crop(labels, all_begin, clean_begin, clean_shape), clean_begin, cfg.shape,
                     island_extent(cfg))
    ring_begin, ring_shape = _grow(begin, shape, (1, 1, 1))
    ring = _crop(cleaned, clean_begin, ring_begin, ring_shape)
    clefts = render_clefts(model, ring, ring_begin)[1:-1, 1:-1, 1:-1]
    out_labels = np.ascontiguousarray(ring[1:-1, 1:-1, 1:-1])

    # the image
    labels = _crop(labels, all_begin, lab_begin, lab_shape)
    reach = render.membrane_reach_nm(vs)
    boundary = boundary_mask(labels)
    if boundary.any():
        distance = ndimage.distance_transform_edt(~boundary, sampling=tuple(float(v) for v in vs))
        distance = np.minimum(distance, reach).astype(np.float32)
    else:
        distance = np.full(lab_shape, reach, np.float32)
    img_labels = _crop(labels, lab_begin, img_begin, img_shape)
    img = render.cytoplasm(model, img_labels, img_begin)
    render.membranes(img, _crop(distance, lab_begin, img_begin, img_shape), cfg.membrane_contrast, vs)
    render.nuclei(model, img, img_begin)
    render.mitochondria(model, img, img_begin)
    render.vesicles(model, img, img_begin)
    render.synapses(model, img, img_labels, img_begin)
    img = render.blur(img, cfg)
    s = sections.max_shift(cfg)
    shifted_begin, shifted_shape = _grow(begin, shape, (0, s, s))
    raw = sections.finish(cfg, _crop(img, img_begin, shifted_begin, shifted_shape), begin)
    return {"raw": raw, "labels": out_labels, "clefts": np.ascontiguousarray(clefts)}


def _clean(labels, begin, volume_shape, max_extent):
    """Stray-sliver clean-up of the part of ``labels`` inside the volume (outside: left as is).

    Connectivity counts inside the volume only: a piece that meets the rest of its neuron
    only beyond the volume's edge is a stray piece.
    """
    lo = [max(0, -b) for b in begin]
    hi = [min(s, v - b) for s, b, v in zip(labels.shape, begin, volume_shape)]
    if any(h <= a for a, h in zip(lo, hi)):
        return labels
    inside = tuple(slice(a, h) for a, h in zip(lo, hi))
    open_faces = tuple((b + a > 0, b + h < v) for a, h, b, v in zip(lo, hi, begin, volume_shape))
    part = labels[inside]
    cleaned = remove_islands(part, max_extent, open_faces)
    if cleaned is part:
        return labels
    out = labels.copy()
    out[inside] = cleaned
    return out


def render_clefts(model, labels, begin) -> np.ndarray:
    """uint64 cleft labels (synapse ids) of a labels box; the first synapse wins where two overlap."""
    syn = model.synapses
    vs = np.asarray(model.config.voxel_size_nm, float)
    clefts = np.zeros(labels.shape, np.uint64)
    lo_box, hi_box = np.asarray(begin) * vs, (np.asarray(begin) + labels.shape - 1) * vs
    for i in np.argsort(syn.synapse_id, kind="stable"):
        c, r = syn.centre_nm[i], float(syn.radius_nm[i])
        lo = np.maximum(np.ceil((np.maximum(c - r, lo_box)) / vs).astype(np.int64) - 1, begin)
        hi = np.minimum(np.floor((np.minimum(c + r, hi_box)) / vs).astype(np.int64) + 2,
                        np.asarray(begin) + labels.shape)
        if np.any(hi - lo < 1):
            continue
        sl = tuple(slice(a - b, e - b) for a, b, e in zip(lo, begin, hi))
        mask = cleft_mask(labels[sl], lo * vs, vs, syn.pre_id[i], syn.post_id[i], c, syn.normal[i], r,
                          syn.half_thickness_nm)
        target = clefts[sl]
        target[mask & (target == 0)] = syn.synapse_id[i]
    return clefts
