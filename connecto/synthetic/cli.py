"""``connecto synth``: generate a synthetic EM volume with known neurons and synapses.

Registered on the main CLI with ``cli.add_command(synth)``. The shared options come from
``chunks.cli_options`` (as in ``connecto.cli``), so importing this module never imports
``connecto.cli``: no import cycle, wherever the registration sits.
"""

from __future__ import annotations

import click

from chunks.cli_options import coordinate_option as _coordinate
from chunks.cli_options import engine_options


@click.command()
@click.argument("out")
@click.option("--shape", required=True, callback=_coordinate("shape"), metavar="Z,Y,X",
              help="voxels per axis, e.g. 128,256,256")
@click.option("--voxel-size", callback=_coordinate("voxel size"), default="8,8,8", show_default=True,
              metavar="Z,Y,X", help="voxel size in nm (40,4,4 for ssTEM-like, 8,8,8 for FIB-SEM-like)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="random seed")
@click.option("--density", type=click.FloatRange(0.0, 0.95, min_open=True), default=0.6, show_default=True,
              help="share of the volume filled by neurite cores before they grow to touch")
@click.option("--synapses", "n_synapses", type=click.IntRange(min=0), default=None,
              help="number of synapses (default: 1.5 per um^3)")
@click.option("--max-posts", type=click.IntRange(1, 8), default=4, show_default=True,
              help="most postsynaptic partners per synapse (1: no polyadic synapses)")
@click.option("--difficulty", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True,
              help="0 clean .. 1 hard: sets noise, membrane contrast, artefact rate and blur unless given")
@click.option("--noise", type=click.FloatRange(0.0, 255.0), default=None, help="pixel noise std in grey levels")
@click.option("--membrane-contrast", type=click.FloatRange(0.0, 1.0), default=None,
              help="membrane darkening as a share of the cytoplasm intensity")
@click.option("--artefact-rate", type=click.FloatRange(0.0, 1.0), default=None,
              help="chance per section of a missing, shifted or contrast-jumped section")
@click.option("--chunk-shape", callback=_coordinate("chunk shape"), default="64,64,64", show_default=True,
              metavar="Z,Y,X", help="chunk shape of the output volumes in voxels")
@click.option("--format", "fmt", type=click.Choice(["zarr", "precomputed"]), default="zarr", show_default=True,
              help="volume format in OUT")
@engine_options
def synth(out, shape, voxel_size, seed, density, n_synapses, max_posts, difficulty, noise, membrane_contrast,
          artefact_rate, chunk_shape, fmt, scheduler, workers, block_shape, overwrite, progress):
    """Generate a synthetic EM volume with its truth into the directory OUT.

    OUT receives raw (uint8), labels (uint64 neuron ids) and clefts (uint64 synapse ids)
    volumes, the tables neurons, synapses, skeletons, mitochondria and vesicles as Parquet,
    and synthetic.json with every parameter. The same parameters give the same volume.
    """
    from connecto.synthetic.generator import generate

    params = {k: v for k, v in {"noise": noise, "membrane_contrast": membrane_contrast,
                                "artefact_rate": artefact_rate, "n_synapses": n_synapses}.items() if v is not None}
    result = generate(out, shape, voxel_size, seed=seed, density=density, max_posts=max_posts,
                      difficulty=difficulty, chunk_shape=chunk_shape, block_shape=block_shape, format=fmt,
                      scheduler=scheduler, num_workers=workers, overwrite=overwrite, progress=progress, **params)
    counts = result.tables
    click.echo(f"synthetic volume {tuple(result.config.shape)} at {tuple(result.config.voxel_size_nm)} nm: "
               f"{len(counts['neurons'])} neurons, {counts['synapses']['synapse_id'].nunique()} synapses "
               f"({len(counts['synapses'])} partners), {len(counts['mitochondria'])} mitochondria "
               f"in {result.seconds:.1f} s")
    for name, url in result.volumes.items():
        click.echo(f"  {name:7s} {url}")
    click.echo(f"  tables  {result.tables_url}/{{neurons,synapses,skeletons,mitochondria,vesicles}}.parquet")
