"""Training targets: affinities from label volumes, masks, and class-balancing weights."""

from __future__ import annotations

import numpy as np

from .config import NEIGHBOUR_OFFSETS


def _shifted_pairs(shape, offset):
    """Slices (here, there) so that ``a[here]`` and ``a[there]`` are voxel pairs at ``offset``."""
    here, there = [], []
    for size, o in zip(shape, offset):
        if o <= 0:
            here.append(slice(-o, size))
            there.append(slice(0, size + o))
        else:
            here.append(slice(0, size - o))
            there.append(slice(o, size))
    return tuple(here), tuple(there)


def affinities_from_labels(labels: np.ndarray, offsets=NEIGHBOUR_OFFSETS, background_is_boundary: bool = False):
    """Affinity targets and mask for ``labels`` (zyx, 0 = unlabelled).

    ``aff[c, p] = 1`` when voxel p and p + offsets[c] carry the same non-zero label.
    The mask is 1 where both voxels are labelled (and the neighbour exists); with
    ``background_is_boundary`` label 0 is a real boundary (membrane maps, e.g. ISBI)
    and counts as labelled with affinity 0. The one implementation: connecto's test affinities
    (:func:`connecto.segment.affinities.affinities_from_labels`) are these as uint8.

    >>> labels = np.array([[[1, 1, 2]]])
    >>> aff, mask = affinities_from_labels(labels)
    >>> aff[2, 0, 0].tolist(), mask[2, 0, 0].tolist()
    ([0.0, 1.0, 0.0], [0.0, 1.0, 1.0])
    """
    aff = np.zeros((len(offsets),) + labels.shape, dtype=np.float32)
    mask = np.zeros_like(aff)
    labelled = np.ones(labels.shape, bool) if background_is_boundary else labels != 0
    for c, offset in enumerate(offsets):
        here, there = _shifted_pairs(labels.shape, offset)
        a, b = labels[here], labels[there]
        aff[c][here] = (a == b) & (a != 0)
        mask[c][here] = labelled[here] & labelled[there]
    return aff, mask


def balance_weights(target: np.ndarray, mask: np.ndarray, clip: float = 20.0) -> np.ndarray:
    """Per-voxel weights that give positive and negative affinities equal total weight (within the mask).

    Boundaries (affinity 0) are rare; without balancing a network learns to predict
    "connected" everywhere. Weights are clipped so a patch with a handful of boundary
    voxels does not dominate.
    """
    weights = np.zeros_like(target, dtype=np.float32)
    for c in range(target.shape[0]):
        m = mask[c] > 0
        n = m.sum()
        if n == 0:
            continue
        pos = (target[c] > 0.5) & m
        neg = m & ~pos
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos:
            weights[c][pos] = min(clip, n / (2.0 * n_pos))
        if n_neg:
            weights[c][neg] = min(clip, n / (2.0 * n_neg))
    return weights


def membranes_to_labels(membrane: np.ndarray) -> np.ndarray:
    """Instance labels from a binary membrane map (1 = membrane): 2D connected components per section.

    Sections of ssTEM stacks are far apart (e.g. 50 nm), so components are found per
    section; labels are unique across sections, membrane voxels get 0.
    """
    import cc3d

    out = np.zeros(membrane.shape, dtype=np.uint64)
    next_id = 0
    for z in range(membrane.shape[0]):
        cc = cc3d.connected_components((membrane[z] == 0).astype(np.uint8), connectivity=4).astype(np.uint64)
        cc[cc > 0] += next_id
        next_id = int(cc.max()) if cc.max() > 0 else next_id
        out[z] = cc
    return out


def synapse_targets(labels: np.ndarray, clefts: np.ndarray, partners, voxel_size_nm, side_nm: float = 40.0):
    """Targets (3, z, y, x) and mask for the synapse head: cleft, pre side, post side.

    ``clefts`` holds synapse ids (0 elsewhere); ``partners`` is an (n, 3) integer array of
    (synapse_id, pre_id, post_id) rows, one per postsynaptic partner, with neuron ids as in
    ``labels``. A voxel is on the pre (post) side when it lies within ``side_nm`` of a
    cleft voxel and belongs to that cleft's pre (a post) neuron: the network learns which
    side of a cleft each neuron is on, so polarity comes from the image (vesicles, density).
    Cleft targets count everywhere; side targets only within ``side_nm`` of a cleft (where
    detection reads them) and where ``labels`` is non-zero. Outside that band a side channel
    has nothing to learn, and counting it there made class balancing pay a side error only
    half a voxel's weight: the network then marked both sides of every cleft as both.

    >>> labels = np.array([[[1, 1, 2, 2]]]); clefts = np.array([[[0, 7, 7, 0]]])
    >>> target, _ = synapse_targets(labels, clefts, np.array([[7, 1, 2]]), (8, 8, 8), side_nm=8)
    >>> target[:, 0, 0].astype(int).tolist()
    [[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]]
    """
    from scipy import ndimage

    partners = np.asarray(partners, dtype=np.int64).reshape(-1, 3)
    target = np.zeros((3,) + labels.shape, dtype=np.float32)
    mask = np.zeros_like(target)
    mask[0] = 1
    is_cleft = clefts != 0
    target[0] = is_cleft
    if not is_cleft.any():
        return target, mask
    distance, nearest = ndimage.distance_transform_edt(~is_cleft, sampling=voxel_size_nm, return_indices=True)
    near = distance <= side_nm
    mask[1:] = near & (labels != 0)
    synapse = clefts[tuple(nearest)][near].astype(np.int64)
    neuron = labels[near].astype(np.int64)
    # pre: one neuron per synapse id
    ids, first = np.unique(partners[:, 0], return_index=True)
    pre_of = partners[first, 1]
    where = np.clip(np.searchsorted(ids, synapse), 0, max(len(ids) - 1, 0))
    known = (ids[where] == synapse) if len(ids) else np.zeros(synapse.shape, bool)
    target[1][near] = known & (neuron == pre_of[where]) & (neuron != 0)
    # post: any (synapse, neuron) pair listed as a partner
    target[2][near] = _pair_member(synapse, neuron, partners[:, [0, 2]]) & (neuron != 0)
    return target, mask


def _pair_member(first: np.ndarray, second: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Whether each (first[i], second[i]) is a row of ``pairs`` (vectorised through a shared numbering)."""
    values, inverse = np.unique(np.concatenate([first, second, pairs[:, 0], pairs[:, 1]]), return_inverse=True)
    n, k = len(first), len(pairs)
    key = inverse[:n] * len(values) + inverse[n:2 * n]
    pair_key = inverse[2 * n:2 * n + k] * len(values) + inverse[2 * n + k:]
    return np.isin(key, pair_key)


# the channels of :func:`lsd_targets`, in the order of Sheridan et al. 2022 (lsd, lsd_lite)
LSD_CHANNELS = ("offset_z", "offset_y", "offset_x", "variance_z", "variance_y", "variance_x",
                "pearson_zy", "pearson_zx", "pearson_yx", "size")


def lsd_targets(labels: np.ndarray, voxel_size_nm, sigma_nm: float, downsample: int = 2):
    """Local shape descriptors (10, z, y, x) in [0, 1] and their mask (labelled voxels) for ``labels`` (0 = unlabelled).

    Per label, statistics of the label's voxels under a Gaussian window of ``sigma_nm`` centred on each
    of its voxels (Sheridan et al. 2022): the mean offset to the window's centre of mass (3, divided
    by sigma, 0.5 = none), the variances (3, divided by sigma^2), the Pearson correlations (3, 0.5 =
    none) and the window's mass inside the label (1). Computed by funkelab's ``lsd_lite.get_lsds``;
    it takes integer voxel sizes only (4.6 nm would become 4), so it gets sigma in voxels per axis and
    unit voxels, which gives the same descriptors (offsets and variances are in units of sigma).
    ``downsample`` 2 computes the statistics on every second voxel (7x faster: 0.35 s instead of 2.3 s
    for a 32x80x80 FIB-25 patch; a window of several voxels changes little between neighbours); a patch
    whose shape it does not divide is computed at full resolution. Objects are cut at the patch faces:
    the network sees the faces too (zero padding), and the descriptors are an auxiliary target.

    >>> labels = np.zeros((1, 1, 9), np.uint64); labels[..., 2:] = 1
    >>> lsds, mask = lsd_targets(labels, (10, 10, 10), sigma_nm=20, downsample=1)
    >>> bool(lsds[2, 0, 0, 2] > 0.5 > lsds[2, 0, 0, 8]), mask[:, 0, 0, :2].max().item()
    (True, 0.0)
    """
    from lsd_lite import get_lsds

    voxel_size_nm = tuple(float(v) for v in voxel_size_nm)
    if labels.ndim != 3 or len(voxel_size_nm) != 3:
        raise ValueError(f"local shape descriptors need a 3D label patch and 3 voxel sizes; got shape "
                         f"{labels.shape} and voxel size {voxel_size_nm}")
    factor = downsample if all(s % downsample == 0 for s in labels.shape) else 1
    sigma_voxels = tuple(sigma_nm / v for v in voxel_size_nm)
    lsds = get_lsds(np.ascontiguousarray(labels), sigma=sigma_voxels, voxel_size=(1, 1, 1), downsample=factor)
    mask = np.broadcast_to(labels != 0, lsds.shape).astype(np.float32)
    return lsds.astype(np.float32, copy=False), mask
