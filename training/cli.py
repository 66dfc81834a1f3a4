"""``connecto train`` and ``connecto predict`` (registered by connecto.cli)."""

from __future__ import annotations

import click

PRECISION_HELP = ("numeric precision: 'auto' (bf16 on a GPU that has it, or on a CPU with native bf16 where a "
                  "one-off probe finds it faster; fp32 otherwise), 'fp32', 'bf16', 'fp16'")


def precision_option(default: str | None = "auto"):
    """--precision, the same on predict, train, reconstruct and demo."""
    return click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=default,
                        show_default=default is not None, help=PRECISION_HELP)


def memory_limit_option(fn):
    """--memory-limit: what one worker may use for a prediction block; the block shape follows from it."""
    return click.option("--memory-limit", default=None, metavar="SIZE",
                        help="memory per worker for a prediction block, e.g. 1GiB or 512MiB (default 1GiB); "
                             "sets the block shape")(fn)


@click.command()
@click.argument("config_path", metavar="CONFIG")
@click.option("--progress/--no-progress", default=True, help="show a progress bar (default: on)")
@precision_option(default=None)
def train(config_path, progress, precision):
    """Train (or resume) the affinity model described by CONFIG (.toml or .yaml).

    Checkpoints, log.csv/log.json and curve.png go to the config's train.out_dir;
    rerunning the same command resumes from the latest checkpoint. --precision overrides the
    config's train.precision (default auto).
    """
    import dataclasses

    from training.config import load_config
    from training.train import train as run

    config = load_config(config_path)
    if precision is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, precision=precision))
    record = run(config, progress=progress)
    click.echo(f"trained to step {record.get('step')}: " + ", ".join(
        f"{k} {v:.4f}" for k, v in record.items() if isinstance(v, float)))
    click.echo(f"checkpoints and curve in {config.train.out_dir}")


def _predict_options(fn):
    from chunks.cli_options import coordinate_option as _coordinate
    from chunks.cli_options import engine_options

    fn = click.option("--context", callback=_coordinate("context"), default=None, metavar="Z,Y,X",
                      help="voxels of context read around each block (default: the model's receptive field, "
                           "seam-free; less is faster but leaves seams)")(fn)
    fn = click.option("--chunk-shape", callback=_coordinate("chunk shape"), default=None, metavar="Z,Y,X",
                      help="chunk shape of the output (default: the raw volume's)")(fn)
    fn = precision_option()(fn)
    fn = memory_limit_option(fn)
    return engine_options(fn, default_scheduler="threads")  # predict_volume's default


@click.command()
@click.argument("checkpoint")
@click.argument("raw")
@click.argument("out")
@_predict_options
@click.option("--resample", is_flag=True,
              help="RAW has another voxel size than the model's: resample it to the model's, predict, and write OUT "
                   "at RAW's voxel size and extent (intermediate volumes in OUT.resample)")
def predict(checkpoint, raw, out, context, chunk_shape, precision, memory_limit, scheduler, workers, block_shape,
            overwrite, progress, resample):
    """Predict the volume RAW with CHECKPOINT into OUT (uint8): affinities (one channel per offset), or
    cleft / pre side / post side for a synapse model. Runs on threads unless --scheduler names a cluster
    ('local' for a local process cluster). Blocks are sized to --memory-limit; Ctrl-C stops within
    seconds and a rerun resumes at the first unfinished block."""
    from chunks import open_volume
    from training.model_card import check_checkpoint_data
    from training.predict import predict_volume

    if resample:  # the model at its own voxel size, OUT at RAW's (chunks/resample.py)
        from chunks.resample import run_at_voxel_size
        from training.checkpoint import load_checkpoint

        ran_at: dict = {}
        vol = run_at_voxel_size(
            open_volume(raw), load_checkpoint(checkpoint).get("voxel_size_nm"), out,
            lambda volume, url: predict_volume(checkpoint, volume, url, block_shape=block_shape, context=context,
                                               chunk_shape=chunk_shape, scheduler=scheduler, num_workers=workers,
                                               overwrite=overwrite, progress=progress, precision=precision,
                                               memory_limit=memory_limit, choice_out=ran_at),
            work_dir=f"{out.rstrip('/')}.resample", what=f"the model in {checkpoint}",
            scheduler=scheduler or "threads", num_workers=workers, overwrite=overwrite, progress=progress)
        click.echo(f"predicted {raw} -> {vol} (resampled to the model's voxel size and back) in "
                   f"{ran_at['precision']} ({ran_at['reason']})")
        return
    check_checkpoint_data(checkpoint, raw)  # a one-line warning when the data is not what the model knows
    ran: dict = {}
    vol = predict_volume(checkpoint, open_volume(raw), out, block_shape=block_shape, context=context,
                         chunk_shape=chunk_shape, scheduler=scheduler, num_workers=workers, overwrite=overwrite,
                         progress=progress, precision=precision, memory_limit=memory_limit, choice_out=ran)
    click.echo(f"predicted {raw} -> {vol} in {ran['precision']} ({ran['reason']}), blocks {tuple(ran['block_shape'])}")
