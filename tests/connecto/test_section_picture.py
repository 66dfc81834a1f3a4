"""The demo's section picture: segments in their best true neuron's colour, merges and splits outlined."""

import numpy as np

from connecto.section_picture import (
    MERGE_COLOUR,
    SPLIT_COLOUR,
    TITLE_HEIGHT,
    match_segments,
    palette,
    section_picture,
    segmentation_panel,
)


def case():
    """Truth: neuron 10 on the left half, 20 on the right. Segment 1 is neuron 10 plus a quarter of
    neuron 20 (a merge); the rest of neuron 20 is segments 2 and 3 (a split)."""
    truth = np.zeros((40, 40), np.uint64)
    truth[:, :20], truth[:, 20:] = 10, 20
    seg = np.zeros((40, 40), np.uint64)
    seg[:, :20] = 1
    seg[:20, 20:30] = 1
    seg[:20, 30:] = 2
    seg[20:, 20:] = 3
    return seg, truth


def test_match_finds_the_merge_and_the_split():
    seg, truth = case()
    best, merged, split = match_segments(seg, truth)
    assert best == {1: 10, 2: 20, 3: 20}
    assert merged == {1} and split == {1, 2, 3}
    # below the thresholds nothing is an error: a 5-pixel sliver is not a merge
    seg_small = seg.copy()
    seg_small[:20, 20:30] = 2
    seg_small[0, 20:25] = 1
    assert match_segments(seg_small, truth)[1] == set()


def test_panel_colours_and_outlines():
    seg, truth = case()
    rgb = segmentation_panel(seg, truth)
    colours = palette(np.unique(truth))
    assert tuple(rgb[30, 5]) == colours[10] and tuple(rgb[30, 35]) == colours[20] and tuple(rgb[5, 36]) == colours[20]
    assert tuple(rgb[19, 35]) == SPLIT_COLOUR and tuple(rgb[20, 35]) == SPLIT_COLOUR  # the line between 2 and 3
    assert tuple(rgb[10, 29]) == MERGE_COLOUR  # segment 1's border with segment 2
    picture = section_picture(np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8), seg, truth)
    assert picture.shape == (40 + 2 * TITLE_HEIGHT, 4 * 40 + 3 * 4, 3)
    assert (picture[2:TITLE_HEIGHT - 2, :40] < 128).any()  # a title is drawn above the first panel
    np.testing.assert_array_equal(picture[TITLE_HEIGHT:TITLE_HEIGHT + 40, 2 * 44:2 * 44 + 40], rgb)
