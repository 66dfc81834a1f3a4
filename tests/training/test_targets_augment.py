import numpy as np
import pytest

from training import augment as aug
from training.targets import affinities_from_labels, balance_weights, membranes_to_labels


def test_affinities_exact_on_a_tiny_volume():
    labels = np.array([[[1, 1, 2], [1, 0, 2]], [[1, 1, 2], [3, 3, 2]]], dtype=np.uint64)  # (2, 2, 3)
    aff, mask = affinities_from_labels(labels)
    # z affinity at (1, 0, 0): labels[1,0,0]=1 vs labels[0,0,0]=1 -> 1
    assert aff[0, 1, 0, 0] == 1 and aff[0, 1, 1, 0] == 0 and aff[0, 1, 1, 2] == 1
    # y affinity at (0, 1, 1): label 0 -> masked, affinity 0
    assert aff[1, 0, 1, 1] == 0 and mask[1, 0, 1, 1] == 0
    # x affinity at (0, 0, 2): 2 vs 1 -> boundary, labelled
    assert aff[2, 0, 0, 2] == 0 and mask[2, 0, 0, 2] == 1
    # the first slice along each axis has no neighbour: masked
    assert mask[0, 0].sum() == 0 and mask[1, :, 0].sum() == 0 and mask[2, :, :, 0].sum() == 0


def test_background_as_boundary_is_labelled():
    labels = np.array([[[1, 0, 1]]], dtype=np.uint64)
    aff, mask = affinities_from_labels(labels, background_is_boundary=True)
    assert mask[2, 0, 0].tolist() == [0, 1, 1] and aff[2, 0, 0].tolist() == [0, 0, 0]


def test_balance_weights_give_equal_totals():
    target = np.zeros((1, 4, 4, 4), np.float32)
    target[0, :, :, :1] = 0  # boundaries
    target[0, :, :, 1:] = 1
    mask = np.ones_like(target)
    w = balance_weights(target, mask)
    assert w[target > 0.5].sum() == pytest.approx(w[target < 0.5].sum())


def test_membranes_to_labels_per_section():
    membrane = np.zeros((2, 5, 5), np.uint8)
    membrane[:, 2, :] = 1  # a horizontal membrane splits each section in two
    labels = membranes_to_labels(membrane)
    assert labels[0, 2].max() == 0
    assert len(np.unique(labels[0])) == 3 and len(np.unique(labels)) == 5  # 0 + 2 per section
    assert labels[0, 0, 0] != labels[1, 0, 0]


@pytest.fixture
def patch():
    rng = np.random.default_rng(0)
    raw = rng.random((6, 16, 16)).astype(np.float32)
    labels = np.arange(6 * 16 * 16, dtype=np.uint64).reshape(6, 16, 16)
    return raw, labels, rng


def _pairs_preserved(raw0, labels0, raw1, labels1):
    """Geometric augmentations move raw and labels together: each label keeps its raw value."""
    lookup = dict(zip(labels0.ravel().tolist(), raw0.ravel().tolist()))
    return all(lookup[lab] == val for lab, val in zip(labels1.ravel().tolist(), raw1.ravel().tolist()))


def test_flip_transpose_moves_raw_and_labels_together(patch):
    raw, labels, rng = patch
    for _ in range(5):
        r, lab = aug.flip_transpose(raw, labels, rng)
        assert r.shape == raw.shape and _pairs_preserved(raw, labels, r, lab)


def test_misalign_shifts_sections_from_some_z(patch):
    raw, labels, _ = patch
    r, lab = aug.misalign(raw, labels, np.random.default_rng(1), max_shift=3)
    assert _pairs_preserved(raw, labels, r, lab)
    assert np.array_equal(r[0], raw[0]) and not np.array_equal(r, raw)


def test_elastic_keeps_labels_labels_and_shape(patch):
    raw, labels, rng = patch
    r, lab = aug.elastic(raw, labels, rng, control_spacing=8, max_displacement=2)
    assert r.shape == raw.shape and lab.shape == labels.shape
    assert set(np.unique(lab)) <= set(np.unique(labels)), "nearest-neighbour: no new label values"
    assert not np.array_equal(lab, labels)


def test_intensity_noise_blur_missing_section(patch):
    raw, labels, rng = patch
    for fn in (aug.intensity, aug.gaussian_noise, aug.gaussian_blur):
        r, lab = fn(raw, labels, rng)
        assert r.dtype == np.float32 and 0 <= r.min() and r.max() <= 1 and lab is labels
    r, _ = aug.missing_section(raw, labels, rng)
    assert sum(int(not r[z].any()) for z in range(r.shape[0])) == 1
    blurred, _ = aug.gaussian_blur(raw, labels, np.random.default_rng(5), max_sigma=2.0)
    assert blurred.std() < raw.std()


def test_augment_is_deterministic_by_seed(patch):
    raw, labels, _ = patch
    a = aug.augment(raw, labels, np.random.default_rng(7))
    b = aug.augment(raw, labels, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
