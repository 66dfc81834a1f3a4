"""``connecto demo``: the embedded default run on generated data.

Generates a small EM-like volume, writes it as a PNG stack (as microscopes deliver
data), ingests it into zarr and Neuroglancer precomputed, smooths it blockwise on a
local dask cluster, and prints where everything is.
"""

from __future__ import annotations

import os
import time

import click
import numpy as np

DEMO_SHAPE = (64, 256, 256)
DEMO_VOXEL_SIZE_NM = (8, 8, 8)


def generate_demo_raw(shape=DEMO_SHAPE, seed: int = 0) -> np.ndarray:
    """Cells as Voronoi regions of random seeds, dark membranes between them, noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, dtype=np.int32)
    n = max(8, int(np.prod(shape) / 32**3))
    points = tuple(rng.integers(0, s, n) for s in shape)
    seeds[points] = np.arange(1, n + 1)
    _, (iz, iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[iz, iy, ix]
    boundary = np.zeros(shape, dtype=bool)
    for axis in range(3):
        diff = np.diff(labels, axis=axis) != 0
        sl = [slice(None)] * 3
        sl[axis] = slice(1, None)
        boundary[tuple(sl)] |= diff
        boundary[tuple(slice(None) if a != axis else slice(None, -1) for a in range(3))] |= diff
    image = np.where(boundary, 60.0, 170.0) + rng.normal(0, 12, shape)
    image = ndimage.gaussian_filter(image, 0.8)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_png_stack(volume: np.ndarray, directory: str) -> None:
    from PIL import Image

    os.makedirs(directory, exist_ok=True)
    for z, section in enumerate(volume):
        Image.fromarray(section).save(os.path.join(directory, f"section_{z}.png"))


def run_demo(out_dir: str, num_workers: int | None = None, overwrite: bool = False) -> dict:
    from chunks import open_volume
    from chunks.cluster import connect
    from connecto.ingest import ingest
    from connecto.stages.smooth import smooth_volume

    start = time.perf_counter()
    out_dir = os.path.abspath(out_dir)
    stack_dir = os.path.join(out_dir, "sections")
    if overwrite or not os.path.isdir(stack_dir):
        click.echo(f"generating a {DEMO_SHAPE} EM-like volume as a PNG stack in {stack_dir}")
        write_png_stack(generate_demo_raw(), stack_dir)
    raw_url = os.path.join(out_dir, "raw.zarr")
    precomputed_url = "precomputed://file://" + os.path.join(out_dir, "raw_precomputed")
    with connect(None, num_workers) as client:  # one local cluster for every stage
        click.echo("ingesting the stack into zarr and Neuroglancer precomputed")
        raw = ingest(stack_dir, raw_url, DEMO_VOXEL_SIZE_NM, chunk_shape=(32, 64, 64),
                     scheduler=client, overwrite=overwrite)
        ingest(stack_dir, precomputed_url, DEMO_VOXEL_SIZE_NM, chunk_shape=(32, 64, 64),
               scheduler=client, overwrite=overwrite)
        click.echo("smoothing blockwise (sigma 12 nm) on the local dask cluster")
        smoothed = smooth_volume(raw, os.path.join(out_dir, "smoothed.zarr"), 12.0,
                                 scheduler=client, overwrite=overwrite)
    same = bool(np.array_equal(open_volume(precomputed_url).read(), raw.read()))
    seconds = time.perf_counter() - start
    click.echo("")
    click.echo(f"raw (zarr):          {raw}")
    click.echo(f"raw (precomputed):   {precomputed_url}  (identical to zarr: {same})")
    click.echo(f"smoothed (zarr):     {smoothed}")
    click.echo(f"done in {seconds:.1f} s; rerun to see every block skipped, or view the precomputed layer "
               "in Neuroglancer with a local file server")
    return {"raw": raw_url, "precomputed": precomputed_url, "seconds": seconds, "zarr_equals_precomputed": same}
