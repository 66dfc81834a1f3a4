"""How big a prediction block may be: the memory a block needs, and the block shape a budget allows.

A block's peak memory is set by the network's activations over the block's *read* Roi
(write Roi plus context). :func:`block_bytes` estimates it from the architecture and the
precision; :func:`plan_block_shape` picks the block shape that does the least total work
(context is computed twice where blocks meet) among those whose largest block fits the
budget. The default budget is 1 GiB per worker; the volume's size never enters it.

Streamed along z (:mod:`training.stream_forward`, same-padding models), a block needs its
uint8 input and output (:data:`STREAMED_BYTES_PER_VOXEL`) plus windows of activations in
proportion to its y-x area, not its depth: measured on 2 cores for the default model
(widths 12, 24, 48), 10.8 KB per y-x pixel in fp32 and 7.0 KB in bf16 (from the growth of
the peak between 96^2 and 192^2 pixels at 128 planes; 4 times the depth added 10 bytes
per voxel). The plain forward (valid-padding models) holds everything at
once: 414 bytes per voxel in fp32 and 238 in bf16 (128^3). Estimates err on the safe side
of measured peaks (``tests/training/test_predict_memory.py`` and ``benchmarks/predict.py``),
plus a reserve of 160 MiB (measured: a 256 MiB limit grew a worker by 316 MiB with 96 reserved).
"""

from __future__ import annotations

from math import lcm, prod

import numpy as np

from chunks import Coordinate

DEFAULT_MEMORY_LIMIT = 1024**3  # bytes per worker
# plain forward, per read voxel outside the network's channels: raw (uint8), its float32 normalised copies, the
# uint8 output and its copies on the way to storage, pooling indices; calibrated on measured peaks
FIXED_BYTES_PER_VOXEL = 56
# streamed, per read voxel: the raw block and its mirrored copy, the uint8 output, its slice and the engine's
# copies on the way to storage (measured: 5 per voxel in the forward alone)
STREAMED_BYTES_PER_VOXEL = 16
# streamed, per y-x pixel, for the default model (its "effective width", the widths each divided by the pooled
# area of their level, is 21; other models scale with theirs): activation values in the precision, plus bytes
# that stay fp32 (the first convolution, the logits on their way to uint8). Measured on 2 cores, from the
# growth of the peak between 96^2 and 192^2 pixels at 128 planes: 10.8 KB in fp32, 7.0 KB in bf16
STREAMED_VALUES_PER_PIXEL = 1900
STREAMED_FP32_BYTES_PER_PIXEL = 3200
DEFAULT_EFFECTIVE_WIDTH = 21
SAFETY = 1.2  # allocator slack: freed buffers are not all returned to the system at once
RESERVED_BYTES = 160 * 2**20  # of the budget: dask's cluster and buffers, oneDNN's kernels and scratch pad, zarr
MAX_CANDIDATES_PER_AXIS = 64


def parse_memory_limit(value) -> int:
    """Bytes from an int or a string such as ``"1 GiB"``, ``"512MiB"``, ``"2GB"``; > 0."""
    from dask.utils import parse_bytes

    if value is None:
        return DEFAULT_MEMORY_LIMIT
    try:
        limit = int(value) if isinstance(value, (int, np.integer)) else parse_bytes(str(value))
    except (ValueError, TypeError):
        raise ValueError(f"memory limit {value!r} is not a size such as 1GiB, 512MiB or 2000000000") from None
    if limit <= 0:
        raise ValueError(f"memory limit {value!r} must be more than 0 bytes")
    return limit


def element_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


def bytes_per_voxel(config, precision: str, depth: int | None = None) -> float:
    """Peak bytes per read voxel of predicting with a model of ``config`` in ``precision``.

    ``depth``: the read depth of a block streamed along z (its activations per y-x pixel are
    spread over its planes); None: the plain forward, which holds everything at once and
    whose full-resolution decoder level dominates: skip path, upsampled deep features, their
    concatenation and two convolution outputs (4 w0 + 2 w1 channels).
    """
    e = element_bytes(precision)
    if depth is None:
        w = list(config.widths) + [0]
        return SAFETY * (e * (4 * w[0] + 2 * w[1]) + FIXED_BYTES_PER_VOXEL + 4 * config.out_channels)
    return SAFETY * (STREAMED_BYTES_PER_VOXEL + streamed_bytes_per_pixel(config, e) / depth)


def streamed_bytes_per_pixel(config, element: int) -> float:
    """Bytes a streamed forward holds per y-x pixel of its block, whatever its depth (see the constants)."""
    width, area = 0.0, 1.0
    for level, w in enumerate(config.widths):
        width += w / area
        if level < len(config.downsample):
            area *= float(config.downsample[level][1] * config.downsample[level][2])
    scale = width / DEFAULT_EFFECTIVE_WIDTH
    return scale * (element * STREAMED_VALUES_PER_PIXEL + STREAMED_FP32_BYTES_PER_PIXEL)


def block_bytes(config, precision: str, read_shape, streamed: bool) -> float:
    """Peak bytes of predicting one block whose read Roi has ``read_shape`` (with the reserve)."""
    depth = int(read_shape[0]) if streamed and config.padding == "same" else None
    return bytes_per_voxel(config, precision, depth) * float(prod(int(s) for s in read_shape)) + RESERVED_BYTES


def plan_block_shape(shape, chunk_shape, factor, context, memory_limit: int, per_voxel) -> Coordinate:
    """The write block shape with the least total work whose largest read block needs at most ``memory_limit``
    bytes, at ``per_voxel(read_depth)`` bytes per read voxel (streamed, a block's activations spread over its depth).

    Block sizes are multiples of the chunk shape and the pooling factors (or the whole axis).
    Work counts every read voxel, so context recomputed between blocks counts against a shape;
    among shapes of equal work the one with more blocks wins (finer progress, earlier resume).
    """
    shape, context = Coordinate(shape), Coordinate(context)
    unit = Coordinate(lcm(int(c), int(f)) for c, f in zip(chunk_shape, factor))
    axes = [_axis_candidates(s, u, c) for s, u, c in zip(shape, unit, context)]
    sizes = [a[0] for a in axes]
    work, largest, count = ([np.asarray(a[i], dtype=float) for a in axes] for i in (1, 2, 3))
    grid = np.ix_(range(len(sizes[0])), range(len(sizes[1])), range(len(sizes[2])))
    total_work = work[0][grid[0]] * work[1][grid[1]] * work[2][grid[2]]
    depth_cost = np.asarray([per_voxel(int(d)) for d in largest[0]], dtype=float)
    need = largest[0][grid[0]] * depth_cost[grid[0]] * largest[1][grid[1]] * largest[2][grid[2]]
    blocks = count[0][grid[0]] * count[1][grid[1]] * count[2][grid[2]]
    fits = need <= memory_limit - RESERVED_BYTES
    if not fits.any():
        smallest = Coordinate(a[0][0] for a in axes)
        raise ValueError(f"a prediction block of {tuple(smallest)} voxels with context {tuple(context)} needs about "
                         f"{(need.min() + RESERVED_BYTES) / 2**20:.0f} MiB, more than the memory limit of {memory_limit / 2**20:.0f} MiB; "
                         "raise --memory-limit (memory_limit) or use a smaller chunk shape")
    cost = np.where(fits, total_work, np.inf)
    best = np.flatnonzero(cost == cost.min())
    best = best[np.lexsort((need.flat[best], -blocks.flat[best]))][0]
    i, j, k = np.unravel_index(best, cost.shape)
    return Coordinate((sizes[0][i], sizes[1][j], sizes[2][k]))


def _axis_candidates(extent: int, unit: int, context: int):
    """Block sizes along one axis; the read extent they cost in total and in the largest block; block counts."""
    # multiples of the unit; the last reaches past the volume's end (blocks there are clipped)
    sizes = [unit * k for k in range(1, -(-extent // unit) + 1)]
    if len(sizes) > MAX_CANDIDATES_PER_AXIS:  # a huge axis: sizes up to the candidate limit, and the whole
        sizes = sizes[:MAX_CANDIDATES_PER_AXIS - 1] + [sizes[-1]]
    work, largest, count = [], [], []
    for size in sizes:
        reads = _axis_reads(extent, size, context)
        work.append(sum(reads))
        largest.append(max(reads))
        count.append(len(reads))
    return sizes, work, largest, count


def _axis_reads(extent: int, size: int, context: int) -> list[int]:
    """The read extent of each block along one axis (context clipped at the volume's faces)."""
    return [min(extent, b + size + context) - max(0, b - context) for b in range(0, extent, size)]


def largest_read_shape(shape, block_shape, context) -> tuple[int, int, int]:
    """The read shape of the largest block of a plan, per axis, without listing the blocks."""
    return tuple(max(_axis_reads(int(e), int(b), int(c))) for e, b, c in zip(shape, block_shape, context))
