"""Render the EM-like image of a box: cytoplasm, membranes, organelles, synapses, blur.

Intensities are in [0, 1] (1 = white) until ``sections.finish`` maps them to grey levels.
Every function takes the box as (``begin``, ``shape``) in global voxels and draws only
what lies inside it, so any tiling of the volume gives the same picture.
"""

from __future__ import annotations

import itertools

import numpy as np

from .noise import value_noise
from .synapses import VESICLE_RADIUS_NM

MEMBRANE_SIGMA_NM = 10.0  # the dark band across a contact has a FWHM of about 24 nm before blur
PSD_NM = 35.0             # postsynaptic density thickness
TRUNCATE = 3.0            # Gaussian blur kernel radius in sigmas


def membrane_reach_nm(voxel_size_nm) -> float:
    """Beyond this distance from a boundary voxel the membrane darkening is zero."""
    return 2.5 * MEMBRANE_SIGMA_NM + 0.5 * float(min(voxel_size_nm))


def blur_sigma(cfg) -> tuple[float, ...]:
    """Blur sigma in voxels per axis (0 where below a quarter voxel)."""
    return tuple(s if s >= 0.25 else 0.0 for s in (cfg.blur_nm / v for v in cfg.voxel_size_nm))


def blur_radius(cfg) -> tuple[int, ...]:
    """Voxels that the blur kernel reaches (as scipy computes it)."""
    return tuple(int(TRUNCATE * s + 0.5) if s > 0 else 0 for s in blur_sigma(cfg))


def _positions(begin, shape, vs):
    return [(np.arange(b, b + s) * float(v)) for b, s, v in zip(begin, shape, vs)]


def _sub_box(begin, shape, vs, lo_nm, hi_nm):
    """The part of the box between lo_nm and hi_nm: (slices into the box, its begin) or None."""
    lo = np.maximum(np.ceil(np.asarray(lo_nm) / vs).astype(np.int64), begin)
    hi = np.minimum(np.floor(np.asarray(hi_nm) / vs).astype(np.int64) + 1, np.asarray(begin) + shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(a - b, c - b) for a, b, c in zip(lo, begin, hi)), lo


def _dot(points: np.ndarray, v) -> np.ndarray:
    """Row-wise dot product, element-wise (no BLAS: bit-identical for a point in any box)."""
    return points[:, 0] * v[0] + points[:, 1] * v[1] + points[:, 2] * v[2]


def _norm(points: np.ndarray) -> np.ndarray:
    return np.sqrt(_dot(points, points.T))


def _points(sub_begin, sub_shape, vs) -> np.ndarray:
    axes = _positions(sub_begin, sub_shape, vs)
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def cytoplasm(model, labels, begin) -> np.ndarray:
    """Neuron brightness with a textured, multi-scale grain."""
    cfg = model.config
    vs, seed = cfg.voxel_size_nm, cfg.seed
    texture = (0.07 * value_noise(seed, 11, begin, labels.shape, vs, 250.0)
               + 0.06 * value_noise(seed, 12, begin, labels.shape, vs, 80.0)
               + 0.045 * value_noise(seed, 13, begin, labels.shape, vs, 30.0))
    return model.brightness[labels] * (1.0 + texture)


def membranes(img, distance_nm, contrast: float, voxel_size_nm) -> None:
    """Darken near label boundaries; ``distance_nm`` is the distance to the nearest boundary voxel."""
    d = distance_nm + 0.5 * float(min(voxel_size_nm))  # boundary voxels sit about half a voxel off the face
    img *= 1.0 - contrast * np.exp(-0.5 * (d / MEMBRANE_SIGMA_NM) ** 2)


def mitochondria(model, img, begin) -> None:
    """Dark tubes with a darker rim and striped cristae."""
    from scipy.spatial import cKDTree

    mito, sk = model.mitochondria, model.skeletons
    vs = np.asarray(model.config.voxel_size_nm, float)
    rim = 4.0 + 0.3 * float(vs.min())
    for i in range(len(mito)):
        nodes = sk.position_nm[mito.first_node[i]:mito.last_node[i] + 1]
        r = float(mito.radius_nm[i])
        reach = r + 3 * rim
        box = _sub_box(begin, img.shape, vs, nodes.min(0) - reach, nodes.max(0) + reach)
        if box is None:
            continue
        sl, sub_begin = box
        sub_shape = tuple(s.stop - s.start for s in sl)
        pts = _points(sub_begin, sub_shape, vs)
        # distance to the axis: to points 1 nm apart along it (a k-d tree, exact per voxel)
        dist, _ = cKDTree(_resample(nodes, 1.0)).query(pts, distance_upper_bound=reach)
        near = np.isfinite(dist)
        if not near.any():
            continue
        axis = nodes[-1] - nodes[0]
        axis = axis / (np.linalg.norm(axis) or 1.0)
        tilt = np.cross(axis, [0.31, 0.55, 0.77])
        phase = _dot(pts[near], axis + 0.35 * tilt) * (2 * np.pi / 38.0) + i
        cristae = np.maximum(np.cos(phase), 0.0) ** 4
        d = dist[near]
        factor = np.where(d <= r, 0.7 - 0.18 * cristae, 1.0) * (1.0 - 0.4 * np.exp(-0.5 * ((d - r) / rim) ** 2))
        flat = np.ones(len(pts), np.float32)
        flat[near] = factor
        img[sl] *= flat.reshape(sub_shape)


def _resample(nodes: np.ndarray, spacing: float) -> np.ndarray:
    """Points along the polyline through ``nodes``, at most ``spacing`` apart."""
    if len(nodes) == 1:
        return nodes
    pieces = []
    for a, b in itertools.pairwise(nodes):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / spacing)))
        pieces.append(a + (b - a) * (np.arange(n) / n)[:, None])
    return np.vstack(pieces + [nodes[-1:]])


def nuclei(model, img, begin) -> None:
    """A lighter nucleus with chromatin patches and a dark envelope, in each large body."""
    nuc = model.nuclei
    vs = np.asarray(model.config.voxel_size_nm, float)
    for c, r in zip(nuc.centre_nm, nuc.radius_nm):
        box = _sub_box(begin, img.shape, vs, c - r - 30, c + r + 30)
        if box is None:
            continue
        sl, sub_begin = box
        sub_shape = tuple(s.stop - s.start for s in sl)
        dist = _norm(_points(sub_begin, sub_shape, vs) - c).reshape(sub_shape)
        chromatin = np.clip(value_noise(model.config.seed, 21, sub_begin, sub_shape, vs, 90.0) - 0.5, 0, 1)
        factor = np.where(dist <= r, 1.1 * (1.0 - 0.35 * chromatin), 1.0)
        factor *= 1.0 - 0.45 * np.exp(-0.5 * ((dist - r) / 7.0) ** 2)
        img[sl] *= factor.astype(np.float32)


def vesicles(model, img, begin) -> None:
    """Small dark rings (vesicle membranes) stamped at each vesicle centre."""
    centres = model.synapses.vesicles_nm
    if len(centres) == 0:
        return
    vs = np.asarray(model.config.voxel_size_nm, float)
    rv = VESICLE_RADIUS_NM
    w = max(3.5, 0.35 * float(vs.min()))
    reach = rv + 3 * w
    lo_nm, hi_nm = np.asarray(begin) * vs - reach, (np.asarray(begin) + img.shape - 1) * vs + reach
    centres = centres[np.all((centres >= lo_nm) & (centres <= hi_nm), axis=1)]
    if len(centres) == 0:
        return
    k = np.ceil(reach / vs).astype(np.int64)
    offs = np.stack(np.meshgrid(*[np.arange(-a, a + 1) for a in k], indexing="ij"), -1).reshape(-1, 3)
    vox = np.rint(centres / vs).astype(np.int64)[:, None, :] + offs[None]
    rel = vox * vs - centres[:, None, :]
    dist = np.sqrt(rel[..., 0] ** 2 + rel[..., 1] ** 2 + rel[..., 2] ** 2)
    ring = np.exp(-0.5 * ((dist - rv) / w) ** 2) * (dist < reach)
    local = vox - np.asarray(begin)
    ok = np.all((local >= 0) & (local < np.asarray(img.shape)), axis=-1) & (ring > 1e-3)
    dark = np.zeros(img.size, np.float32)
    np.maximum.at(dark, np.ravel_multi_index(tuple(local[ok].T), img.shape), ring[ok].astype(np.float32))
    img *= (1.0 - 0.65 * dark).reshape(img.shape)


def synapses(model, img, labels, begin) -> None:
    """Postsynaptic densities, a denser cleft and a presynaptic dense body at every contact."""
    syn = model.synapses
    vs = np.asarray(model.config.voxel_size_nm, float)
    drawn_body: set[int] = set()
    for i in range(len(syn.synapse_id)):
        c, n, r = syn.centre_nm[i], syn.normal[i], float(syn.radius_nm[i])
        reach = r + PSD_NM + 20.0
        box = _sub_box(begin, img.shape, vs, c - reach, c + reach)
        if box is None:
            continue
        sl, sub_begin = box
        sub_shape = tuple(s.stop - s.start for s in sl)
        rel = _points(sub_begin, sub_shape, vs) - c
        s = _dot(rel, n).reshape(sub_shape)
        lateral2 = _dot(rel, rel.T).reshape(sub_shape) - s**2
        lab = labels[sl]
        pre, post = syn.pre_id[i], syn.post_id[i]
        disc = lateral2 <= r * r
        psd = disc & (lab == post) & (s >= 0) & (s <= PSD_NM)
        dark = np.where(psd, 0.55 * np.sqrt(np.clip(1.0 - s / PSD_NM, 0, 1)), 0.0)
        cleft = disc & (np.abs(s) <= syn.half_thickness_nm) & ((lab == pre) | (lab == post))
        dark = np.maximum(dark, np.where(cleft, 0.3, 0.0))
        sid = int(syn.synapse_id[i])
        if sid not in drawn_body:  # one dense body per (polyadic) synapse, on the pre side
            drawn_body.add(sid)
            body = c - n * (syn.half_thickness_nm + 24.0)
            dist = _norm(rel + (c - body)).reshape(sub_shape)
            dark = np.maximum(dark, np.where(lab == pre, 0.5 * np.exp(-0.5 * (dist / 16.0) ** 2), 0.0))
        img[sl] *= (1.0 - dark).astype(np.float32)


def blur(img, cfg) -> np.ndarray:
    from scipy import ndimage

    sigma = blur_sigma(cfg)
    if not any(sigma):
        return img
    return ndimage.gaussian_filter(img, sigma=sigma, truncate=TRUNCATE, mode="nearest")
