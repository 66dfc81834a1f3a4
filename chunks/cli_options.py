"""click options of the blockwise engine, the same on every command that runs it."""

from __future__ import annotations

import functools

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


_SCHEDULERS = {
    None: "a local cluster with one worker per core",
    "local": "'local', a local cluster with one worker process per core",
    "threads": "'threads', a local cluster of threads in this process",
    "sync": "'sync', one block after another in this process",
}


def engine_options(fn=None, *, default_scheduler: str | None = None):
    """--scheduler, --workers, --block-shape, --overwrite, --no-progress: the same on every blockwise command.

    ``@engine_options``, or ``@engine_options(default_scheduler="threads")`` for a command whose
    function runs on another scheduler than the engine's default when ``--scheduler`` is not
    given (the option stays None; the help names the command's default).
    """
    if fn is None:
        return functools.partial(engine_options, default_scheduler=default_scheduler)
    options = [
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="dask scheduler: tcp://HOST:PORT for a cluster, 'local', 'threads', 'sync'; "
                          f"default: {_SCHEDULERS.get(default_scheduler, repr(default_scheduler))}"),
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
