"""``connecto segment`` and ``connecto evaluate`` (registered on the main group with ``cli.add_command``)."""

from __future__ import annotations

import json

import click

from chunks.cli_options import coordinate_option as _coordinate
from chunks.cli_options import engine_options
from connecto.defaults import DEFAULT_SCHEDULER, DEFAULT_THRESHOLD

from .params import AGGLOMERATIONS, AUTO_HIERARCHICAL_VOXELS, METHODS, default


def parse_thresholds(text: str) -> list[float]:
    """``"0.5"``, ``"0.3,0.5,0.7"`` or ``"START:STOP:STEP"`` (STOP included) -> thresholds.

    >>> parse_thresholds("0.1:0.3:0.1")
    [0.1, 0.2, 0.3]
    """
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
                raise ValueError
            start, stop, step = parts
            count = round((stop - start) / step) + 1
            values = [round(start + i * step, 6) for i in range(count)]
            return [v for v in values if v <= stop + 1e-9]
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a threshold list: expected T, T1,T2,… or START:STOP:STEP "
                                 "(e.g. 0.1:0.9:0.05)") from None


@click.command()
@click.argument("affinities")
@click.argument("out")
@click.option("--threshold", type=float, default=None, help="merge-score threshold of the segmentation written "
              "to OUT/segmentation (default: the one the model recommends, recorded in AFFINITIES by "
              f"`connecto predict`, else {DEFAULT_THRESHOLD})")
@click.option("--thresholds", default=None, metavar="START:STOP:STEP",
              help="sweep thresholds (e.g. 0.1:0.9:0.05 or 0.3,0.5); prints a table (VOI/ARAND with --gt)")
@click.option("--gt", "ground_truth", default=None, metavar="LABELS",
              help="ground-truth labels of the same shape (volume URL, FILE.h5:/dataset or .npy) to evaluate against")
@click.option("--method", type=click.Choice(METHODS), default=default("method"), show_default=True,
              help="mean: mean-affinity merge history (waterz semantics); mutex: mutex watershed on the region graph")
@click.option("--bias", type=float, default=default("bias"), show_default=True,
              help="mutex: mean affinity that separates attractive from repulsive edges")
@click.option("--aff-low", type=float, default=default("aff_low"), show_default=True,
              help="watershed: edges below this affinity are never linked; voxels without such an edge are background")
@click.option("--aff-high", type=float, default=default("aff_high"), show_default=True,
              help="watershed: edges at or above this affinity are always linked")
@click.option("--min-size", type=click.IntRange(min=0), default=default("min_size"), show_default=True,
              help="segments smaller than this many voxels join their best neighbour (0: keep them)")
@click.option("--agglomeration", type=click.Choice(AGGLOMERATIONS), default=default("agglomeration"),
              show_default=True, help="global: the exact merge history of the whole region graph in one process; "
              "hierarchical: per block with context, then a threshold cut over per-block files (bounded memory); "
              f"auto: hierarchical from {AUTO_HIERARCHICAL_VOXELS} voxels on")
@click.option("--fragment-merge", type=click.FloatRange(0, 1, max_open=True), default=default("fragment_merge"),
              show_default=True, help="agglomerate fragments inside each block up to this merge score first "
              "(fewer, larger fragments; 0: off, block-size invariant)")
@click.option("--fragment-absorb", type=click.IntRange(min=0), default=default("fragment_absorb"), show_default=True,
              metavar="VOXELS", help="fragments smaller than this join the neighbour across their strongest contact "
              "first (far fewer fragments, decided exactly per block; choose the threshold again; 0: off)")
@click.option("--json", "json_path", default=None, metavar="PATH", help="also write the results as JSON to PATH")
@engine_options(default_scheduler=DEFAULT_SCHEDULER)
def segment(affinities, out, threshold, thresholds, ground_truth, method, bias, aff_low, aff_high, min_size,
            agglomeration, fragment_merge, fragment_absorb, json_path, scheduler, workers, block_shape, overwrite, progress):
    """Segment the 3-channel affinity volume AFFINITIES into the run directory OUT.

    Writes OUT/fragments, the region graph (OUT/graph), the merge history
    (OUT/agglomeration) and, for a single threshold, OUT/segmentation. Blockwise and
    seam-free: any --block-shape gives the same segmentation (with --fragment-absorb,
    larger blocks join a few more small fragments near block faces).
    """
    from .blockwise import segment as run
    from .params import SegmentParams

    if threshold is not None and thresholds is not None:
        raise click.UsageError("give --threshold or --thresholds, not both")
    if thresholds is not None:
        values = parse_thresholds(thresholds)
    else:  # None: the run takes the model's recommended threshold or the default one
        values = None if threshold is None else [threshold]
    params = SegmentParams(aff_low=aff_low, aff_high=aff_high, method=method, bias=bias, min_size=min_size,
                           agglomeration=agglomeration, fragment_merge=fragment_merge,
                           fragment_absorb=fragment_absorb)
    result = run(affinities, out, thresholds=values, ground_truth=ground_truth, params=params,
                 write_segmentation=thresholds is None, block_shape=block_shape, scheduler=scheduler,
                 num_workers=workers, overwrite=overwrite, progress=progress)
    history = result.history
    merges = f"{len(history.merges)} merges" if hasattr(history, "merges") else "hierarchical agglomeration"
    click.echo(f"{history.fragment_ids.size} fragments, {merges} "
               f"({', '.join(f'{k} {v:.1f}s' for k, v in result.seconds.items())})")
    rows = []
    if result.evaluations is not None:
        click.echo(f"{'threshold':>9}  {'VOI split':>9}  {'VOI merge':>9}  {'VOI sum':>8}  {'ARAND':>7}  {'segments':>8}")
        for row in result.evaluations.to_dict("records"):
            click.echo(f"{row['threshold']:>9.4f}  {row['voi_split']:>9.4f}  {row['voi_merge']:>9.4f}  "
                       f"{row['voi_sum']:>8.4f}  {row['arand']:>7.4f}  {row['segments']:>8d}")
            rows.append(row)
    else:
        for value in result.thresholds:
            rows.append({"threshold": value, "segments": history.num_segments(value)})
            click.echo(f"threshold {value:.4f}: {history.num_segments(value)} segments")
    if result.segmentation is not None:
        click.echo(f"segmentation -> {result.segmentation.url}")
    if json_path:
        _write_json(json_path, {"run_dir": out, "seconds": result.seconds, "results": rows})


@click.command()
@click.argument("segmentation")
@click.argument("ground_truth")
@click.option("--ignore-label", "ignore_labels", type=int, multiple=True, default=(0,), show_default=True,
              help="GT label whose voxels are left out (repeat for several)")
@click.option("--no-ignore", is_flag=True, help="count every GT voxel (no ignored label)")
@click.option("--roi-offset", callback=_coordinate("roi offset"), default=None, metavar="Z,Y,X",
              help="evaluate only this region (voxels; with --roi-shape)")
@click.option("--roi-shape", callback=_coordinate("roi shape"), default=None, metavar="Z,Y,X",
              help="shape of the region to evaluate (voxels)")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="how many of the worst split and merge objects to list")
@click.option("--json", "json_path", default=None, metavar="PATH", help="write the results as JSON to PATH (- for standard output)")
def evaluate(segmentation, ground_truth, ignore_labels, no_ignore, roi_offset, roi_shape, top, json_path):
    """Compare SEGMENTATION with GROUND_TRUTH: VOI split/merge, adapted Rand error, worst objects.

    Both are volume URLs, FILE.h5:/dataset or .npy files of the same shape.
    """
    from chunks import Roi

    from .evaluate import evaluate as run

    roi = None
    if (roi_offset is None) != (roi_shape is None):
        raise click.UsageError("--roi-offset and --roi-shape go together")
    if roi_shape is not None:
        roi = Roi(roi_offset, roi_shape)
    result = run(segmentation, ground_truth, ignore_gt_labels=() if no_ignore else ignore_labels, top=top, roi=roi)
    click.echo(result.summary())
    for row in result.worst_splits:
        click.echo(f"  split: GT {row['gt_id']} ({row['size']} voxels) in {row['pieces']} segments, "
                   f"VOI split {row['voi_split']:.4f}")
    for row in result.worst_merges:
        click.echo(f"  merge: segment {row['seg_id']} ({row['size']} voxels) covers {row['gt_objects']} GT objects, "
                   f"VOI merge {row['voi_merge']:.4f}")
    if json_path:
        _write_json(json_path, {"segmentation": segmentation, "ground_truth": ground_truth, **result.to_dict()})


def _write_json(path: str, value: dict) -> None:
    """Write ``value`` as JSON to ``path`` ("-": standard output)."""
    text = json.dumps(value, indent=1, default=float)
    if path == "-":
        click.echo(text)
        return
    with open(path, "w") as f:
        f.write(text + "\n")
