"""The ``connecto`` command line.

Every command has ``--help``; errors print one line (``--debug`` shows the traceback);
exit codes: 0 success, 1 error, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from chunks import BlockFailedError
from chunks.cli_options import coordinate_option as _coordinate
from chunks.cli_options import engine_options
from training.cli import memory_limit_option, precision_option

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


class _ConnectoGroup(click.Group):
    """Turns exceptions into one clear line unless ``--debug`` is given.

    Every error, click's usage errors included, is printed with the one prefix ``connecto: error:``.
    """

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
                click.echo(f"Try '{exc.ctx.command_path} {exc.ctx.help_option_names[0]}' for help.\n", err=True)
            click.echo(f"connecto: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"connecto: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("connecto: aborted", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("connecto: interrupted; finished blocks are kept, rerun the command to resume", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            click.echo(f"connecto: error: {_one_line(exc)}", err=True)
            ctx.exit(EXIT_ERROR)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BlockFailedError):
        head = str(exc).splitlines()[0]
        last = [line for line in exc.failures[0][1].splitlines() if line.strip()][-1]
        return f"{head} {last} (--debug shows the traceback)"
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return str(message).splitlines()[0] if str(message) else type(exc).__name__


@click.group(cls=_ConnectoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show full tracebacks on errors")
@click.option("-v", "--verbose", count=True, help="more log output (-v info, -vv debug)")
@click.version_option(package_name="connecto-em", prog_name="connecto")
def cli(debug: bool, verbose: int) -> None:
    """connecto: EM volumes to connectomes.

    Volumes are URLs: a local path or file:// (zarr), precomputed://… (Neuroglancer
    precomputed via cloud-volume), s3://… and gs://… for buckets. Axis order is z,y,x;
    voxel sizes are in nanometres.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # dask logs cluster start/stop at INFO and connection races at shutdown at ERROR:
    # noise on a terminal unless asked for with -vv
    # (dask configures its loggers when first imported, from this setting)
    if verbose < 2:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")


@cli.command()
@click.argument("source")
@click.argument("out")
@click.option("--voxel-size", required=True, callback=_coordinate("voxel size"), metavar="Z,Y,X",
              help="voxel size in nm, z,y,x (e.g. 40,4,4)")
@click.option("--chunk-shape", callback=_coordinate("chunk shape"), default="64,64,64", show_default=True,
              metavar="Z,Y,X", help="chunk shape of the output volume in voxels")
@click.option("--offset", callback=_coordinate("offset"), default=None, metavar="Z,Y,X",
              help="voxel offset of the volume in the world frame (default 0,0,0)")
@engine_options
def ingest(source, out, voxel_size, chunk_shape, offset, scheduler, workers, block_shape, overwrite, progress):
    """Ingest SOURCE into the volume OUT.

    SOURCE is a directory or glob of 2D images (sorted naturally), a multi-page TIFF,
    FILE.h5:/DATASET, or a .npy file. OUT is a volume URL (zarr by default).
    """
    from connecto.ingest import ingest as run

    vol = run(source, out, voxel_size, chunk_shape=chunk_shape, offset=offset or (0, 0, 0),
              block_shape=block_shape, scheduler=scheduler, num_workers=workers, overwrite=overwrite,
              progress=progress)
    click.echo(f"ingested {source} -> {vol}")


@cli.command()
@click.argument("raw")
@click.argument("out")
@click.option("--sigma", "sigma_nm", type=float, required=True, help="Gaussian sigma in nm")
@engine_options
def smooth(raw, out, sigma_nm, scheduler, workers, block_shape, overwrite, progress):
    """Gaussian-smooth the volume RAW into OUT, blockwise (seam-free)."""
    from chunks import open_volume
    from connecto.smooth import smooth_volume

    vol = smooth_volume(open_volume(raw), out, sigma_nm, block_shape=block_shape, scheduler=scheduler,
                        num_workers=workers, overwrite=overwrite, progress=progress)
    click.echo(f"smoothed {raw} -> {vol}")


@cli.command()
@click.argument("url")
def info(url):
    """Print what the volume at URL is: format, shape, dtype, voxel size, chunks, runs."""
    import json

    from chunks import open_volume

    vol = open_volume(url)
    click.echo(repr(vol))
    runs = vol.attrs.get("connecto_runs", {})
    for task, run in runs.items():
        click.echo(f"  run {task}: {json.dumps({k: run[k] for k in ('params', 'seconds', 'finished') if k in run})}")


@cli.command()
@click.argument("config_path", metavar="CONFIG")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="dask scheduler: tcp://HOST:PORT for a cluster, 'local' (a worker process per core), 'sync'; "
                   "default: 'threads', a local cluster of threads in this process (faster for these stages)")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="local workers (default: cores)")
@click.option("--progress/--no-progress", default=True, help="show progress bars (default: on)")
@precision_option(default=None)
@memory_limit_option
def reconstruct(config_path, scheduler, workers, progress, precision, memory_limit):
    """Reconstruct a volume as described by CONFIG (.toml or .yaml): ingest, predict, segment, synapses
    (with a synapse_checkpoint), evaluate.

    Every stage resumes; after a parameter change only that stage and the ones after it rerun.
    The run directory's run.json records each stage's parameters, timings and memory.
    """
    from connecto.reconstruct import load_reconstruct_config
    from connecto.reconstruct import reconstruct as run

    config = load_reconstruct_config(config_path, scheduler=scheduler, workers=workers, precision=precision,
                                     memory_limit=memory_limit)
    record = run(config, progress=progress, echo=click.echo)
    for stage, info in record["stages"].items():
        click.echo(f"  {stage:<16} {info.get('seconds', 0):8.1f} s")
    synapses = record["stages"].get("synapses")
    if synapses:
        click.echo(f"{synapses['synapses']} synapses ({synapses['rows']} pre/post pairs) in "
                   f"{os.path.join(config.run_dir, 'synapses.parquet')}")
    evaluation = record["stages"].get("evaluate")
    if evaluation:
        click.echo(f"VOI split {evaluation['voi_split']:.3f}, merge {evaluation['voi_merge']:.3f}, "
                   f"ARAND {evaluation['arand']:.3f}, {evaluation['segments']} segments")
        if "synapses" in evaluation:
            found = evaluation["synapses"]
            click.echo(f"synapses: partner F1 {found['partners']['f1']:.3f} (precision "
                       f"{found['partners']['precision']:.3f}, recall {found['partners']['recall']:.3f}), "
                       f"cleft F1 {found['clefts']['f1']:.3f}")
    click.echo(f"outputs in {config.run_dir}")


@cli.command()
@click.option("--out", "out_dir", default="demo-output", show_default=True, help="directory for the demo's outputs")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="local workers (default: cores)")
@click.option("--overwrite", is_flag=True, help="start again instead of resuming")
@click.option("--progress/--no-progress", default=True, help="show progress bars (default: on)")
@precision_option()
@memory_limit_option
def demo(out_dir, workers, overwrite, progress, precision, memory_limit):
    """Generate a synthetic EM volume, reconstruct it with the shipped model, print its accuracy."""
    from connecto.demo import run_demo

    run_demo(out_dir, num_workers=workers, overwrite=overwrite, progress=progress, precision=precision,
             memory_limit=memory_limit)


def _register_commands() -> None:
    from connecto.connectome.cli import COMMANDS as connectome_commands
    from connecto.resample import resample
    from connecto.segment.cli import evaluate, segment
    from connecto.synapses.cli import COMMANDS as synapse_commands
    from connecto.synthetic.cli import synth
    from connecto.verify import verify
    from proofreading.cli import proofread
    from training.cli import predict, train

    for command in (synth, train, predict, segment, evaluate, *synapse_commands, *connectome_commands, proofread,
                    verify, resample):
        cli.add_command(command)


_register_commands()


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="connecto", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
