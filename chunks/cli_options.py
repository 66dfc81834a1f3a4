"""click options of the blockwise engine, the same on every command that runs it."""

from __future__ import annotations

import click

from .coordinate import parse_coordinate


def coordinate_option(name: str):
    """A click callback parsing Z,Y,X into a Coordinate, with a usage error naming the option."""
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return parse_coordinate(value, name=name)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def engine_options(fn):
    """--scheduler, --workers, --block-shape, --overwrite, --no-progress: the same on every blockwise command."""
    options = [
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="dask scheduler: tcp://HOST:PORT for a cluster, 'threads', 'sync'; "
                          "default: a local cluster with one worker per core"),
        click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="workers of the local cluster (default: number of cores)"),
        click.option("--block-shape", callback=coordinate_option("block shape"), default=None, metavar="Z,Y,X",
                     help="voxels per block (a multiple of the output chunk shape)"),
        click.option("--overwrite", is_flag=True, help="replace an existing, different output and redo all blocks"),
        click.option("--progress/--no-progress", default=True, help="show a progress bar (default: on)"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
