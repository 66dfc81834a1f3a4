"""``connecto resample IN OUT --voxel-size Z,Y,X``: a volume at another voxel size (chunks.resample)."""

from __future__ import annotations

import click

from chunks.cli_options import coordinate_option as _coordinate
from chunks.cli_options import engine_options


@click.command()
@click.argument("source")
@click.argument("out")
@click.option("--voxel-size", required=True, callback=_coordinate("voxel size"), metavar="Z,Y,X",
              help="the new voxel size in nm, z,y,x (e.g. 16,16,16)")
@click.option("--method", type=click.Choice(["auto", "area", "linear", "nearest"]), default="auto", show_default=True,
              help="area: mean of the voxels a new voxel covers (whole-number downsampling); linear: trilinear "
                   "interpolation; nearest: for labels (the only method for them); auto: nearest for labels, "
                   "else area where the factors allow it, else linear")
@click.option("--chunk-shape", callback=_coordinate("chunk shape"), default=None, metavar="Z,Y,X",
              help="chunk shape of OUT in voxels (default: SOURCE's)")
@engine_options
def resample(source, out, voxel_size, method, chunk_shape, scheduler, workers, block_shape, overwrite, progress):
    """Resample the volume SOURCE to another voxel size into OUT (blockwise; images by area averaging or
    linear interpolation, labels by nearest neighbour). OUT covers SOURCE's extent."""
    from chunks import open_volume
    from chunks.resample import choose_method, resample_volume

    volume = open_volume(source)
    chosen = choose_method(volume.dtype, volume.voxel_size_nm, voxel_size, method)
    out_volume = resample_volume(volume, out, voxel_size, method=chosen, chunk_shape=chunk_shape,
                                 block_shape=block_shape, scheduler=scheduler, num_workers=workers,
                                 overwrite=overwrite, progress=progress)
    click.echo(f"resampled {source} ({','.join(map(str, volume.voxel_size_nm))} nm, {chosen}) -> {out_volume}")
