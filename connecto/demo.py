"""``connecto demo``: the embedded default, end to end on data the project makes itself.

1. generates a synthetic EM volume with known neurons and synapses (``connecto.synthetic``);
2. reconstructs it with the affinity and synapse models that ship in ``connecto/data``
   (trained by the project on other synthetic volumes: see the README for the commands)
   and builds the connectome (neurons, synapses, weighted edges) from the run;
3. prints VOI / ARAND and synaptic-partner F1 against the known truth, where the outputs
   are, a PNG of a section (raw, affinities, segmentation, truth side by side) and a
   Neuroglancer layout with the synapses.
"""

from __future__ import annotations

import json
import os
import time
from importlib import resources

import click
import numpy as np

DEMO_SHAPE = (128, 256, 256)
DEMO_VOXEL_SIZE_NM = (8, 8, 8)
DEMO_SEED = 7  # the shipped model was trained on seed 101: the demo volume is unseen
DEMO_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
# the segmentation's threshold is reconstruct's default (the shipped model's recommendation,
# else connecto.defaults.DEFAULT_THRESHOLD); small segments are absorbed as the demo always did
DEMO_MIN_SIZE = 100
DEMO_SYNAPSES_PER_UM3 = 10.0  # denser than cortex (about 1): a small volume with a connectome worth a look


def shipped_checkpoint() -> str:
    return str(resources.files("connecto") / "data" / "synthetic_affinities.pt")


def shipped_synapse_checkpoint() -> str:
    """The synapse model trained on synthetic data (configs/synapses-synthetic.toml)."""
    return str(resources.files("connecto") / "data" / "synthetic_synapses.pt")


DEMO_MARKER = ".connecto-demo"  # in every directory the demo made: --overwrite deletes only those


def prepare_output(out_dir: str, overwrite: bool) -> None:
    """Create ``out_dir`` for the demo (with its marker file); with ``overwrite`` empty it first, but only a
    directory the demo made: any other non-empty directory (a home directory, a data folder) is refused."""
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, DEMO_MARKER)):
        raise FileExistsError(f"{out_dir} is not empty and was not made by connecto demo (it has no {DEMO_MARKER} "
                              "file); choose another --out, or empty it yourself")
    if overwrite and os.path.isdir(out_dir):
        import shutil

        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, DEMO_MARKER), "w") as f:
        f.write("made by connecto demo; connecto demo --overwrite may delete this directory\n")


def run_demo(out_dir: str, num_workers: int | None = None, overwrite: bool = False, progress: bool = True,
             precision: str = "auto", memory_limit=None) -> dict:
    from chunks import open_volume
    from chunks.cluster import connect
    from connecto.reconstruct import ReconstructConfig, reconstruct
    from connecto.synthetic import generate

    start = time.perf_counter()
    out_dir = os.path.abspath(out_dir)
    prepare_output(out_dir, overwrite)
    truth_dir = os.path.join(out_dir, "synthetic")
    click.echo(f"1/3 generating a {DEMO_SHAPE} synthetic EM volume ({DEMO_VOXEL_SIZE_NM} nm) in {truth_dir}")
    with connect(None, num_workers) as client:
        generate(truth_dir, DEMO_SHAPE, DEMO_VOXEL_SIZE_NM, seed=DEMO_SEED, synapses_per_um3=DEMO_SYNAPSES_PER_UM3,
                 scheduler=client, progress=progress)
    click.echo("2/3 reconstructing with the shipped models: affinities, fragments, region graph, agglomeration, "
               "synapses")
    config = ReconstructConfig(
        raw=os.path.join(truth_dir, "raw.zarr"), run_dir=os.path.join(out_dir, "run"),
        checkpoint=shipped_checkpoint(), thresholds=DEMO_THRESHOLDS, min_size=DEMO_MIN_SIZE,
        ground_truth=os.path.join(truth_dir, "labels.zarr"), synapse_checkpoint=shipped_synapse_checkpoint(),
        synapse_truth=os.path.join(truth_dir, "synapses.parquet"), workers=num_workers,
        precision=precision, memory_limit=memory_limit,
    )
    record = reconstruct(config, progress=progress, echo=lambda m: click.echo(f"    {m}"))
    click.echo("3/3 the connectome, pictures and a viewer layout")
    from connecto.connectome import Connectome

    run_dir = config.run_dir
    connectome = Connectome.open(run_dir)
    connectome_dir = connectome.save(os.path.join(run_dir, "connectome"), overwrite=True)
    picture = write_section_png(open_volume(config.raw), open_volume(os.path.join(run_dir, "affinities.zarr")),
                                open_volume(os.path.join(run_dir, "segmentation")),
                                open_volume(config.ground_truth), os.path.join(out_dir, "section.png"))
    layout = write_layout(out_dir, config, connectome.synapses)
    seconds = time.perf_counter() - start
    evaluation = record["stages"]["evaluate"]
    found = evaluation["synapses"]
    click.echo("")
    click.echo(f"accuracy against the known truth (threshold {record['config']['threshold']}):")
    click.echo(f"  VOI split {evaluation['voi_split']:.3f}  VOI merge {evaluation['voi_merge']:.3f}  "
               f"VOI sum {evaluation['voi_sum']:.3f}  ARAND {evaluation['arand']:.3f}  "
               f"segments {evaluation['segments']} (truth: {_count_ids(open_volume(config.ground_truth))})")
    for row in evaluation.get("sweep", []):
        click.echo(f"    threshold {row['threshold']:.2f}: VOI sum {row['voi_sum']:.3f}  ARAND {row['arand']:.3f}  "
                   f"segments {row['segments']}")
    partners = found["partners"]
    click.echo(f"  synapses: {found['clefts']['n_pred']} detected ({found['clefts']['n_true']} true), synaptic partner "
               f"F1 {partners['f1']:.3f} (precision {partners['precision']:.3f}, recall {partners['recall']:.3f}), "
               f"cleft F1 {found['clefts']['f1']:.3f}")
    edges = connectome.edges()
    click.echo(f"  connectome: {len(connectome)} neurons, {len(connectome.synapses)} synaptic pairs, "
               f"{len(edges)} weighted edges")
    click.echo("")
    click.echo(f"truth (raw, labels, clefts, synapse tables): {truth_dir}")
    click.echo(f"run (affinities, fragments, graph, agglomeration, segmentation, synapses, run.json): {run_dir}")
    click.echo(f"connectome (neurons, synapses, edges as Parquet; `connecto query ... {run_dir}`): {connectome_dir}")
    click.echo(f"  skeletons as SWC: `connecto skeletonize {run_dir}/segmentation {run_dir}`, then "
               f"`connecto export {run_dir} OUT --format swc`")
    click.echo(f"section picture (raw | affinities | segmentation | truth): {picture}")
    click.echo(f"Neuroglancer layout: {layout}")
    click.echo(f"  to view it offline: `connecto view {run_dir}` (raw, segmentation with meshes and skeletons, "
               "synapses in a local Neuroglancer)")
    click.echo(f"done in {seconds:.0f} s; rerunning skips every finished stage")
    return {"seconds": seconds, "evaluation": evaluation, "run_dir": run_dir, "picture": picture}


def _count_ids(volume) -> int:
    return int(np.count_nonzero(np.unique(volume.read())))


def write_section_png(raw, affinities, segmentation, truth, path: str, z: int | None = None) -> str:
    """raw | mean affinity | segmentation | truth of one section, titled, as a PNG: the segmentation in
    the colours of its best-matching true neurons, merges outlined red and splits yellow
    (:mod:`connecto.section_picture`)."""
    from PIL import Image

    from chunks import Coordinate, Roi
    from connecto.section_picture import section_picture

    z = raw.shape[0] // 2 if z is None else z
    roi = Roi(raw.offset + Coordinate(z, 0, 0), (1, raw.shape[1], raw.shape[2]))
    aff = affinities.read(roi)[:, 0].mean(axis=0).astype(np.uint8)
    picture = section_picture(raw.read(roi)[0], aff, segmentation.read(roi)[0], truth.read(roi)[0])
    Image.fromarray(picture).save(path)
    return path


def write_layout(out_dir: str, config, synapses=None) -> str:
    """A Neuroglancer state for the demo's outputs (and synapses), served from ``out_dir`` at localhost:8000."""
    from connecto.connectome.neuroglancer import neuroglancer_state, source_url

    served = {"http_root": out_dir, "http_url": "http://localhost:8000"}
    state = neuroglancer_state(
        DEMO_VOXEL_SIZE_NM,
        raw=source_url(config.raw, **served),
        segmentation=source_url(os.path.join(config.run_dir, "segmentation"), **served),
        synapses=synapses,
    )
    path = os.path.join(out_dir, "neuroglancer.json")
    with open(path, "w") as f:
        json.dump(state, f, indent=1)
    return path
