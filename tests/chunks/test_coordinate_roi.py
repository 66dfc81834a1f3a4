import pytest

from chunks import Coordinate, Roi, parse_coordinate


def test_coordinate_arithmetic():
    shape = Coordinate(10, 20, 30)
    voxel_size = Coordinate(40, 4, 4)
    assert shape * voxel_size == Coordinate(400, 80, 120)
    assert shape // 4 == Coordinate(2, 5, 7)
    assert shape.ceil_div(4) == Coordinate(3, 5, 8)
    assert Coordinate((1, 2, 3)) + 1 == Coordinate(2, 3, 4)
    assert -Coordinate(1, 2, 3) == Coordinate(-1, -2, -3)
    assert isinstance(shape - 1, Coordinate)


def test_coordinate_is_immutable_and_validates():
    c = Coordinate(1, 2, 3)
    with pytest.raises(TypeError):
        c[0] = 5
    with pytest.raises(TypeError, match="integers"):
        Coordinate(1.5, 2, 3)
    with pytest.raises(ValueError, match="different dimensions"):
        Coordinate(1, 2, 3) + Coordinate(1, 2)


@pytest.mark.parametrize(
    "text, message",
    [("8,8", "has 2 values; expected 3"), ("8,8,8,8", "has 4 values"), ("8,0,8", "must be > 0"),
     ("8,-4,8", "must be > 0"), ("a,b,c", "must be 3 integers")],
)
def test_parse_coordinate_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_coordinate(text, name="voxel size")


def test_roi_grow_intersect_union_contains():
    roi = Roi((0, 0, 0), (10, 20, 20))
    assert roi.grow(2) == Roi((-2, -2, -2), (14, 24, 24))
    assert roi.grow((1, 0, 0), (0, 0, 3)) == Roi((-1, 0, 0), (11, 20, 23))
    assert roi.intersect(Roi((5, 5, 5), (10, 10, 10))) == Roi((5, 5, 5), (5, 10, 10))
    assert roi.intersect(Roi((50, 0, 0), (1, 1, 1))).empty()
    assert roi.union(Roi((5, 5, 5), (10, 10, 10))) == Roi((0, 0, 0), (15, 20, 20))
    assert roi.contains(Roi((1, 1, 1), (2, 2, 2)))
    assert not roi.contains(Roi((9, 1, 1), (2, 2, 2)))
    assert roi.size == 4000
    assert roi.to_slices(relative_to=(0, 0, 10))[2] == slice(-10, 10)


def test_roi_snap_to_grid():
    roi = Roi((3, 5, 7), (10, 10, 10))
    assert roi.snap_to_grid((4, 4, 4)) == Roi((0, 4, 4), (16, 12, 16))
    assert roi.snap_to_grid((4, 4, 4), mode="shrink") == Roi((4, 8, 8), (8, 4, 8))
    assert roi.snap_to_grid((4, 4, 4)).is_aligned((4, 4, 4))
    with pytest.raises(ValueError, match="snap mode 'round'"):
        roi.snap_to_grid(4, mode="round")


def test_roi_blocks_tile_exactly():
    roi = Roi((1, 2, 3), (10, 7, 5))
    blocks = list(roi.blocks((4, 4, 4)))
    assert len(blocks) == 3 * 2 * 2
    assert sum(b.size for b in blocks) == roi.size
    assert all(roi.contains(b) for b in blocks)
    assert blocks[0] == Roi((1, 2, 3), (4, 4, 4)) and blocks[-1] == Roi((9, 6, 7), (2, 3, 1))
    with pytest.raises(ValueError, match="block shape"):
        list(roi.blocks((0, 4, 4)))
