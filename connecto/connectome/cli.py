"""``connecto query | export | skeletonize | mesh``: the connectome commands.

Registered on the ``connecto`` group by ``connecto.cli`` (``cli.add_command``); each
command also works alone (``query.main([...])``). Neurons are given by segment id or name.
``query`` and ``export`` read a saved connectome directory or a reconstruction run
directory (built at the agglomeration, or at a proofreading ``--version``).
"""

from __future__ import annotations

import json

import click

from chunks.cli_options import engine_options

OUTPUT_FORMATS = ("table", "csv", "json")


def _neuron(value: str):
    return int(value) if value.isdigit() else value


def _open(path, version, database=None):
    from connecto.connectome import Connectome

    return Connectome.open(path, version=version, database=database)


VERSION_HELP = ("a saved connectome's version; for a run directory the proofreading version (an integer or 'head') "
                "[default: the current connectome; for a run, its agglomeration]")


def _version_options(fn):
    options = [
        click.option("--version", "version", default=None, help=VERSION_HELP),
        click.option("--database", default=None, help="a run's proofreading edit log: SQLite path or postgresql:// "
                     "URL [default: RUN/proofreading.sqlite]"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _roi(ctx, param, value):
    if value is None:
        return None
    from chunks import Roi, parse_coordinate

    if ":" not in value:
        raise click.BadParameter(f"{value!r} is not OFFSET:SHAPE (voxels, z,y,x each, e.g. 0,0,0:64,128,128)")
    offset, shape = value.split(":", 1)
    try:
        return Roi(parse_coordinate(offset, name="Roi offset", positive=False),
                   parse_coordinate(shape, name="Roi shape"))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _emit(table, fmt: str) -> None:
    if fmt == "csv":
        click.echo(table.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(table.to_json(orient="records"))
    else:
        click.echo(table.to_string(index=False) if len(table) else "(none)")


def _common(fn):
    options = [
        click.argument("connectome", type=click.Path(exists=True, file_okay=False)),
        _version_options,
        click.option("--kind", default=None, help="synapse kind, e.g. chemical or electrical (default: all)"),
        click.option("--min-weight", type=click.IntRange(min=1), default=1, show_default=True,
                     help="least synapses per connection"),
        click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def query():
    """Query a connectome directory (written by `connecto export` or Connectome.save) or a
    reconstruction run directory (its agglomeration, or a proofreading --version)."""


@query.command()
@click.argument("connectome", type=click.Path(exists=True, file_okay=False))
@_version_options
def summary(connectome, version, database):
    """Counts of neurons, synapses per kind, connections and motifs."""
    c = _open(connectome, version, database)
    click.echo(repr(c))
    for kind in c.kinds:
        click.echo(f"  {kind}: {json.dumps(c.motifs(kind=kind))}")


@query.command()
@_common
@click.argument("neuron")
def upstream(connectome, version, database, kind, min_weight, fmt, neuron):
    """Presynaptic partners of NEURON (id or name), strongest first."""
    _emit(_open(connectome, version, database).upstream(_neuron(neuron), min_weight=min_weight, kind=kind), fmt)


@query.command()
@_common
@click.argument("neuron")
def downstream(connectome, version, database, kind, min_weight, fmt, neuron):
    """Postsynaptic partners of NEURON (id or name), strongest first."""
    _emit(_open(connectome, version, database).downstream(_neuron(neuron), min_weight=min_weight, kind=kind), fmt)


@query.command()
@_common
@click.argument("source")
@click.argument("target")
@click.option("--max-length", type=click.IntRange(min=1), default=None,
              help="list all simple paths with at most this many connections (default: one shortest path)")
@click.option("--weighted", is_flag=True, help="shortest by the sum of 1/weight instead of the number of steps")
def path(connectome, version, database, kind, min_weight, fmt, source, target, max_length, weighted):
    """A shortest path from SOURCE to TARGET, or all paths up to --max-length."""
    import pandas as pd

    c = _open(connectome, version, database)
    if max_length is None:
        found = [c.shortest_path(_neuron(source), _neuron(target), min_weight=min_weight, kind=kind,
                                 weighted=weighted)]
        found = [p for p in found if p]
    else:
        found = c.paths(_neuron(source), _neuron(target), max_length=max_length, min_weight=min_weight, kind=kind)
    names = dict(zip(c.neuron_ids.tolist(), c.neurons["name"].astype(str))) if "name" in c.neurons else {}

    def label(segment_id):
        return f"{segment_id} ({names[segment_id]})" if segment_id in names else str(segment_id)

    _emit(pd.DataFrame({"length": [len(p) - 1 for p in found],
                        "path": [" -> ".join(label(s) for s in p) for p in found]}), fmt)


@query.command()
@_common
def motifs(connectome, version, database, kind, min_weight, fmt):
    """Reciprocal pairs and feed-forward triads."""
    import pandas as pd

    counts = _open(connectome, version, database).motifs(min_weight=min_weight, kind=kind)
    _emit(pd.DataFrame({"motif": list(counts), "count": list(counts.values())}), fmt)


@query.command()
@click.argument("connectome", type=click.Path(exists=True, file_okay=False))
@_version_options
@click.option("--roi", callback=_roi, default=None, metavar="Z,Y,X:Z,Y,X", help="offset:shape in voxels")
@click.option("--by", type=click.Choice(["centroid", "bbox"]), default="centroid", show_default=True,
              help="a neuron is in the Roi by its centroid or by an overlapping bounding box")
@click.option("--min-voxels", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True)
def neurons(connectome, version, database, roi, by, min_voxels, fmt):
    """Neurons, largest first, optionally in a Roi and above a size."""
    c = _open(connectome, version, database)
    table = c.neurons_by_size(min_voxels=min_voxels)
    if roi is not None:
        table = table[table["segment_id"].isin(c.neurons_in_roi(roi, mode=by)["segment_id"])]
    _emit(table, fmt)


@query.command()
@click.argument("connectome", type=click.Path(exists=True, file_okay=False))
@_version_options
@click.option("--roi", callback=_roi, required=True, metavar="Z,Y,X:Z,Y,X", help="offset:shape in voxels")
@click.option("--point", type=click.Choice(["location", "pre", "post", "cleft"]), default="location",
              show_default=True, help="which point of a synapse must be in the Roi")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True)
def synapses(connectome, version, database, roi, point, fmt):
    """Synapses in a Roi."""
    _emit(_open(connectome, version, database).synapses_in_roi(roi, point=point), fmt)


@click.command()
@click.argument("connectome", type=click.Path(exists=True, file_okay=False))
@click.argument("out")
@click.option("--format", "fmt", type=click.Choice(["parquet", "neuprint", "graphml", "swc", "precomputed"]),
              default="parquet", show_default=True,
              help="parquet: a connectome directory; neuprint: CSVs for neo4j-admin import; graphml: one file; "
                   "swc: one file per skeleton; precomputed: Neuroglancer layers of a run (raw with a pyramid, "
                   "segmentation with meshes, skeletons and segment properties, synapses) and a state.json")
@_version_options
@click.option("--dataset", default="connecto", show_default=True, help="neuPrint dataset name")
@click.option("--kind", default=None, help="graphml: only this synapse kind (default: all)")
@click.option("--min-voxels", type=click.IntRange(min=1), default=1000, show_default=True,
              help="precomputed: mesh and skeletonise segments of at least this many voxels")
@click.option("--base-url", default=None, metavar="URL",
              help="precomputed: where OUT will be served, for state.json's sources [default: http://127.0.0.1:8000; "
                   "connecto view serves it wherever it is]")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="precomputed: local workers (default: cores)")
@click.option("--progress/--no-progress", default=True, help="precomputed: show progress bars (default: on)")
@click.option("--overwrite", is_flag=True, help="replace an existing export at OUT")
def export(connectome, out, fmt, version, database, dataset, kind, min_voxels, base_url, workers, progress,
           overwrite):
    """Export the connectome at CONNECTOME (a connectome directory, or a run directory at its
    agglomeration or a proofreading --version) to OUT."""
    if fmt == "precomputed":
        from connecto.export_precomputed import DEFAULT_BASE_URL, export_precomputed

        done = export_precomputed(connectome, out, version=version, database=database, min_voxels=min_voxels,
                                  base_url=base_url or DEFAULT_BASE_URL, num_workers=workers, overwrite=overwrite,
                                  progress=progress)
        click.echo(f"exported {connectome} -> {out} (precomputed: raw, segmentation with {done['meshes']} meshes and "
                   f"{done['skeletons']} skeletons, {done['synapses']} synapses, state.json); view it with "
                   f"connecto view {out}")
        return
    c = _open(connectome, version, database)
    options = {"neuprint": {"dataset": dataset}, "graphml": {"kind": kind}}.get(fmt, {})
    click.echo(f"exported {c!r} -> {c.export(out, fmt, overwrite=overwrite, **options)} ({fmt})")


@click.command()
@click.argument("segmentation")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--min-voxels", type=click.IntRange(min=1), default=1000, show_default=True,
              help="skip labels smaller than this (whole-volume size)")
@engine_options
def skeletonize(segmentation, out, min_voxels, scheduler, workers, block_shape, overwrite, progress):
    """Skeletonise the segmentation volume SEGMENTATION into OUT/skeletons.parquet (kimimaro,
    blockwise). OUT may be a connectome directory, whose neurons then carry the skeletons."""
    from chunks import open_volume
    from connecto.connectome.skeleton_stage import skeletonize_volume

    table = skeletonize_volume(open_volume(segmentation), out, min_voxels=min_voxels, block_shape=block_shape,
                               scheduler=scheduler, num_workers=workers, overwrite=overwrite, progress=progress)
    click.echo(f"skeletonized {table['segment_id'].nunique()} segments ({len(table)} nodes) -> "
               f"{out}/skeletons.parquet")


@click.command()
@click.argument("segmentation")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--ids", default=None, metavar="ID,ID,...", help="only these segments (default: all)")
@click.option("--reduction-factor", type=click.IntRange(min=0), default=10, show_default=True,
              help="simplify to about 1/N of the triangles (0: no simplification)")
@click.option("--max-error", type=float, default=None, help="most a vertex may move when simplifying, nm "
                                                            "(default: one voxel)")
@click.option("--link/--no-link", default=True, show_default=True,
              help="when OUT is inside a precomputed segmentation layer, point its info at the meshes")
@engine_options
def mesh(segmentation, out, ids, reduction_factor, max_error, link, scheduler, workers, block_shape, overwrite,
         progress):
    """Mesh the segmentation volume SEGMENTATION into OUT, Neuroglancer precomputed (legacy) meshes."""
    from pathlib import Path

    from chunks import open_volume
    from connecto.connectome.meshes import link_mesh_to_segmentation, mesh_volume

    try:
        id_list = [int(i) for i in ids.split(",")] if ids else None
    except ValueError:
        raise click.BadParameter(f"{ids!r} is not a comma-separated list of segment ids", param_hint="--ids") from None
    count = mesh_volume(open_volume(segmentation), out, ids=id_list, block_shape=block_shape,
                        reduction_factor=reduction_factor, max_error=max_error, scheduler=scheduler,
                        num_workers=workers, overwrite=overwrite, progress=progress)
    layer = Path(out).resolve().parent
    if link and (layer / "info").exists():
        link_mesh_to_segmentation(layer, Path(out).name)
        click.echo(f"linked {layer}/info to its meshes")
    click.echo(f"meshed {count} segments -> {out}")


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False), metavar="RUN_OR_EXPORT")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="port of the viewer (0: any free port)")
@click.option("--bind", "bind_address", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0: reachable from other machines)")
@click.option("--browser/--no-browser", default=True, help="open the viewer in the default web browser (default: on)")
@click.option("--reexport", is_flag=True, help="for a run directory: export it again (RUN/precomputed)")
@click.option("--progress/--no-progress", default=True, help="show progress bars while exporting (default: on)")
def view(path, port, bind_address, browser, reexport, progress):
    """Show a run (or a precomputed export) in a local Neuroglancer: raw, segmentation with meshes and
    skeletons, synapses. Works offline; a run is exported to RUN/precomputed first. Ctrl-C stops it."""
    from connecto.viewer import export_for, open_browser, start_viewer, wait_forever

    session = start_viewer(export_for(path, overwrite=reexport, progress=progress, echo=click.echo),
                           bind_address=bind_address, port=port)
    click.echo(f"neuroglancer: {session.url}")
    click.echo(f"data served at {session.data_url}; Ctrl-C stops the viewer")
    if browser:
        open_browser(session.url)
    wait_forever(click.echo)
    session.stop()


COMMANDS = (query, export, skeletonize, mesh, view)
