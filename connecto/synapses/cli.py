"""``connecto synapses`` and ``connecto evaluate-synapses`` (register on the main group with ``cli.add_command``)."""

from __future__ import annotations

import json

import click

from chunks.cli_options import engine_options


def read_table(path: str):
    """A synapse table from Parquet, or the partner table of a CREMI ``.h5``/``.hdf`` file.

    Returns (table, CremiVolume or None).
    """
    import pandas as pd

    if str(path).lower().endswith((".h5", ".hdf", ".hdf5")):
        from .cremi import read_cremi

        cremi = read_cremi(path, raw=False)
        return cremi.partners, cremi
    if not str(path).lower().endswith(".parquet"):
        raise click.BadParameter(f"{path} is neither Parquet (.parquet) nor CREMI HDF5 (.h5, .hdf, .hdf5)")
    return pd.read_parquet(path), None


@click.command()
@click.argument("volumes", nargs=-1, required=True, metavar="PREDICTION FRAGMENTS OUT_TABLE")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="cleft probability (0..1; uint8 volumes are read as /255) of a cleft voxel")
@click.option("--min-size", type=click.IntRange(min=1), default=150, show_default=True,
              help="clefts with fewer voxels are dropped")
@click.option("--dilation-nm", type=float, default=16.0, show_default=True,
              help="how far around a cleft the side probabilities are summed per fragment")
@click.option("--post-fraction", type=float, default=0.3, show_default=True,
              help="a fragment is a post partner when its summed post probability reaches this share of the largest")
@click.option("--max-extent-nm", type=float, default=400.0, show_default=True,
              help="largest cleft extent found exactly across block faces (sets the block context)")
@click.option("--clefts-out", default=None, metavar="URL",
              help="also write the detected clefts as a volume (uint64 synapse ids); needs PREDICTION")
@click.option("--work-dir", default=None, metavar="DIR",
              help="per-block tables and done-markers (default: OUT_TABLE without .parquet, plus '.blocks')")
@engine_options
def synapses(volumes, threshold, min_size, dilation_nm, post_fraction,
             max_extent_nm, clefts_out, work_dir, scheduler, workers, block_shape, overwrite, progress):
    """Detect synapses blockwise: PREDICTION (a synapse model's 3-channel output from `connecto predict`:
    cleft, pre side, post side) and FRAGMENTS (uint64 fragment volume) -> OUT_TABLE (Parquet).

    Predictions from elsewhere may come as two volumes instead of PREDICTION: CLEFT_PROB (1 channel)
    and SIDES (2 channels: pre side, post side), i.e. CLEFT_PROB SIDES FRAGMENTS OUT_TABLE.

    One row per (synapse, post partner): id, cleft/pre/post zyx nm, pre_fragment, post_fragment,
    score, size. Prints a JSON summary.
    """
    from chunks import open_volume

    from .detect import DetectParams, detect_synapses_blockwise, write_cleft_volume

    if len(volumes) == 3:
        cleft_prob, fragments, out_table = volumes
        sides = None
    elif len(volumes) == 4:
        cleft_prob, sides, fragments, out_table = volumes
    else:
        raise click.UsageError(f"expected PREDICTION FRAGMENTS OUT_TABLE (or CLEFT_PROB SIDES FRAGMENTS OUT_TABLE), "
                               f"got {len(volumes)} argument(s)")

    if clefts_out and sides is not None:
        raise click.UsageError("--clefts-out needs a synapse model's PREDICTION (not CLEFT_PROB SIDES)")
    try:
        params = DetectParams(threshold=threshold, min_size=min_size, dilation_nm=dilation_nm,
                              post_fraction=post_fraction, max_extent_nm=max_extent_nm)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if work_dir is None:
        work_dir = out_table.removesuffix(".parquet") + ".blocks"
    try:
        table = detect_synapses_blockwise(open_volume(cleft_prob), open_volume(sides) if sides else None,
                                          open_volume(fragments),
                                          work_dir, params=params, block_shape=block_shape, scheduler=scheduler,
                                          num_workers=workers, overwrite=overwrite, progress=progress)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    table.to_parquet(out_table, index=False)
    if clefts_out:
        write_cleft_volume(open_volume(cleft_prob), table, clefts_out, params=params, block_shape=block_shape,
                           scheduler=scheduler, num_workers=workers, overwrite=overwrite, progress=progress)
    click.echo(json.dumps({"table": out_table, "synapses": int(table["id"].nunique()), "rows": len(table),
                           "work_dir": work_dir, "clefts": clefts_out}))


@click.command("evaluate-synapses")
@click.argument("pred")
@click.argument("truth")
@click.option("--tolerance-nm", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="largest distance between a predicted and a true synapse location")
@click.option("--mapping", default=None, metavar="PARQUET",
              help="fragment -> segment mapping (columns fragment, segment) applied to PRED's fragments")
@click.option("--pred-neurons", type=click.Choice(["auto", "columns", "truth-labels"]), default="auto",
              show_default=True, help="where PRED's pre/post neurons come from: its id columns, or the truth's "
              "neuron labels under its pre/post points (auto: the labels when TRUTH is a CREMI file that has them)")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="cleft volumes: a probability PRED (uint8 read as /255) is a cleft where it reaches this")
@click.option("--voxel-size", default=None, metavar="Z,Y,X",
              help="cleft volumes: voxel size in nm (default: the volumes' own, e.g. an HDF5 voxel_size_nm attribute)")
@click.option("--json", "json_path", default=None, metavar="PATH", help="also write the result to PATH")
def evaluate_synapses_command(pred, truth, tolerance_nm, mapping, pred_neurons, threshold, voxel_size, json_path):
    """Cleft and synaptic-partner precision / recall / F1 of PRED against TRUTH (Parquet or CREMI .h5), as JSON.

    With cleft volumes (FILE.h5:DATASET, zarr or any volume URL) instead of tables: precision /
    recall / F1 of 2D cleft profiles (per section) and of 3D cleft objects, matched one-to-one by
    overlap, and CREMI-style cleft distances in nm. PRED may be cleft ids, a mask or a probability map.
    """
    import pandas as pd

    from .clefts import is_volume_spec
    from .evaluate import evaluate_synapses, with_segments

    if is_volume_spec(pred) or is_volume_spec(truth):
        result = _evaluate_cleft_volumes(pred, truth, threshold, voxel_size)
        text = json.dumps(result, indent=2)
        if json_path:
            with open(json_path, "w") as f:
                f.write(text + "\n")
        click.echo(text)
        return

    pred_table, _ = read_table(pred)
    truth_table, cremi = read_table(truth)
    if mapping is not None:
        pred_table = with_segments(pred_table, pd.read_parquet(mapping))
    use_labels = pred_neurons == "truth-labels" or (pred_neurons == "auto" and cremi is not None
                                                    and cremi.labels is not None)
    if use_labels and (cremi is None or cremi.labels is None):
        raise click.UsageError(f"--pred-neurons truth-labels needs TRUTH to be a CREMI file with neuron labels; "
                               f"{truth} has none")
    labels = {"truth_labels": cremi.labels, "voxel_size_nm": cremi.voxel_size_nm,
              "offset_nm": cremi.offset_nm} if use_labels else {}
    try:
        result = evaluate_synapses(pred_table, truth_table, tolerance_nm, **labels)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    result.update({"pred": pred, "truth": truth, "pred_neurons": "truth-labels" if use_labels else "columns"})
    text = json.dumps(result, indent=2)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text + "\n")
    click.echo(text)


@click.command("detect-clefts")
@click.argument("checkpoint")
@click.argument("raw", metavar="RAW")
@click.argument("out", metavar="OUT.h5")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="cleft probability of a cleft pixel")
@click.option("--min-area-nm2", type=click.FloatRange(min=0), default=2000.0, show_default=True,
              help="cleft profiles (per section) smaller than this are dropped")
@click.option("--force", is_flag=True, help="predict even when RAW's voxel size differs from the model's")
def detect_clefts_command(checkpoint, raw, out, threshold, min_area_nm2, force):
    """Clefts of RAW (FILE.h5:DATASET or a volume URL; z, y, x) with a cleft model (model.outputs = ["clefts"],
    e.g. trained by `connecto train configs/vnc-clefts.toml`): OUT.h5 dataset `clefts` (uint64 object ids,
    RAW's shape) and `synapses` (id, centroid z/y/x nm, size, sections, mean score), also as OUT.synapses.csv."""
    from .clefts import detect_to_h5, load_cleft_model

    try:
        model, state = load_cleft_model(checkpoint)
        summary = detect_to_h5(model, state, raw, out, threshold=threshold, min_area_nm2=min_area_nm2, force=force)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary))


def _evaluate_cleft_volumes(pred: str, truth: str, threshold: float, voxel_size: str | None) -> dict:
    import numpy as np

    from .cleft_metrics import evaluate_clefts
    from .clefts import is_volume_spec, read_stack

    for name, spec in (("PRED", pred), ("TRUTH", truth)):
        if not is_volume_spec(spec):
            raise click.UsageError(f"{name} {spec} is a table, the other argument a volume: give two cleft volumes "
                                   "(FILE.h5:DATASET, zarr) or two tables")
    try:
        (p, p_voxel), (t, t_voxel) = read_stack(pred), read_stack(truth)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if voxel_size:
        try:
            voxel = [float(v) for v in voxel_size.split(",")]
        except ValueError:
            voxel = []
        if len(voxel) != 3 or min(voxel) <= 0:
            raise click.BadParameter(f"{voxel_size!r}: expected 3 numbers > 0 (z,y,x nm)", param_hint="--voxel-size")
    else:
        voxel = t_voxel or p_voxel
        if voxel is None:
            raise click.UsageError(f"neither {pred} nor {truth} records a voxel size; give --voxel-size Z,Y,X")
    if p.shape != t.shape:
        raise click.ClickException(f"PRED {pred} (shape {p.shape}) and TRUTH {truth} (shape {t.shape}) differ in shape")
    if np.issubdtype(p.dtype, np.floating):
        p = p >= threshold
    elif p.dtype == np.uint8 and p.max() > 1:
        p = p >= round(threshold * 255)
    result = evaluate_clefts(p, t, voxel)
    result.update({"pred": pred, "truth": truth})
    return result


COMMANDS = [synapses, evaluate_synapses_command, detect_clefts_command]
