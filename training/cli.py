"""``connecto train`` and ``connecto predict`` (registered by connecto.cli)."""

from __future__ import annotations

import click


@click.command()
@click.argument("config_path", metavar="CONFIG")
@click.option("--progress/--no-progress", default=True, help="show a progress bar (default: on)")
def train(config_path, progress):
    """Train (or resume) the affinity model described by CONFIG (.toml or .yaml).

    Checkpoints, log.csv/log.json and curve.png go to the config's train.out_dir;
    rerunning the same command resumes from the latest checkpoint.
    """
    from training.config import load_config
    from training.train import train as run

    config = load_config(config_path)
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
    fn = click.option("--fp32", is_flag=True, help="full precision instead of bf16 autocast")(fn)
    return engine_options(fn)


@click.command()
@click.argument("checkpoint")
@click.argument("raw")
@click.argument("out")
@_predict_options
def predict(checkpoint, raw, out, context, chunk_shape, fp32, scheduler, workers, block_shape, overwrite, progress):
    """Predict the volume RAW with CHECKPOINT into OUT (uint8): affinities (one channel per offset), or
    cleft / pre side / post side for a synapse model. Runs on threads unless --scheduler names a cluster
    ('local' for a local process cluster)."""
    from chunks import open_volume
    from training.predict import predict_volume

    vol = predict_volume(checkpoint, open_volume(raw), out, block_shape=block_shape, context=context,
                         chunk_shape=chunk_shape, scheduler=scheduler, num_workers=workers, overwrite=overwrite,
                         progress=progress, autocast=not fp32)
    click.echo(f"predicted {raw} -> {vol}")
