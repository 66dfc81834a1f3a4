"""Connectome benchmark.

(a) Queries on a generated connectome of 100k neurons and 10M synapses (about 2.5M
    connections, 1 + geometric synapse counts, mean 4): building it from tables, upstream
    and downstream partners (cold, then warm median / p99 over 1000 random neurons), the
    full adjacency matrix from the synapse table, a 1000-neuron adjacency, shortest path,
    paths up to length 3, motif counts, Roi selections, Parquet save/open.
    Goals (issue 9): warm upstream < 50 ms, full adjacency < 10 s.
(b) Skeletonisation of a crop of the real pinky40 segmentation (../shared/data): kimimaro
    called directly on the whole crop beside connecto's blockwise skeletonisation of the
    same crop (in process, and through the chunks engine on a local cluster), as voxels/s.
    Goal: blockwise >= 0.8x direct.

    python benchmarks/connectome.py [--neurons 100000] [--synapses 10000000]
        [--crop 192] [--block 96] [--workers 2] [--skip-graph] [--skip-skeletons] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time

import numpy as np
import pandas as pd

from chunks import Roi


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None,)
    return {"node": platform.node(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "system": platform.platform(),
            "load_average_1min_at_start": load[0]}


def generate(n_neurons: int, n_synapses: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Neurons with random uint64 ids, sizes and positions in a 100 um cube; synapses on
    ~n_synapses/4 distinct connections with heavy-tailed presynaptic activity."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(1, 2**63, n_neurons + n_neurons // 10, dtype=np.uint64))[:n_neurons]
    rng.shuffle(ids)
    size = rng.lognormal(12, 1, n_neurons).astype(np.int64) + 1
    neurons = pd.DataFrame({"segment_id": ids, "size_voxels": size,
                            "z_nm": rng.uniform(0, 1e5, n_neurons), "y_nm": rng.uniform(0, 1e5, n_neurons),
                            "x_nm": rng.uniform(0, 1e5, n_neurons)})
    n_edges = n_synapses // 4
    activity = rng.lognormal(0, 1, n_neurons)
    pre = rng.choice(n_neurons, n_edges, p=activity / activity.sum())
    post = rng.integers(0, n_neurons, n_edges)
    pairs = np.unique(pre.astype(np.int64) * n_neurons + post)
    counts = rng.geometric(0.25, len(pairs))
    counts[-1] += n_synapses - counts.sum()
    while counts[-1] < 1:  # trim the surplus from the largest counts
        excess = 1 - counts[-1]
        largest = np.argsort(counts[:-1])[-excess:]
        counts[largest] -= 1
        counts[-1] += excess
    pairs = np.repeat(pairs, counts)
    pre_i, post_i = pairs // n_neurons, pairs % n_neurons
    position = neurons[["z_nm", "y_nm", "x_nm"]].to_numpy()[post_i] + rng.normal(0, 500, (len(pairs), 3))
    synapses = pd.DataFrame({"pre_segment": ids[pre_i], "post_segment": ids[post_i],
                             "pre_z_nm": position[:, 0], "pre_y_nm": position[:, 1], "pre_x_nm": position[:, 2],
                             "post_z_nm": position[:, 0] + 30, "post_y_nm": position[:, 1],
                             "post_x_nm": position[:, 2], "score": rng.uniform(0.5, 1, len(pairs)).astype(np.float32)})
    return neurons, synapses


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def graph_benchmark(n_neurons: int, n_synapses: int) -> dict:
    from connecto.connectome import Connectome

    out: dict = {}
    out["generate_tables_s"], (neurons, synapses) = timed(generate, n_neurons, n_synapses)
    out["from_tables_s"], c = timed(Connectome.from_tables, neurons, synapses, voxel_size_nm=(40, 8, 8))
    del neurons, synapses
    rng = np.random.default_rng(1)
    sample = rng.choice(c.neuron_ids, 1000, replace=False)
    out["upstream_cold_incl_graph_build_s"], _ = timed(c.upstream, int(sample[0]))
    for name, fn in (("upstream", c.upstream), ("downstream", c.downstream)):
        for min_weight in (1, 3):
            times = [timed(fn, int(s), min_weight=min_weight)[0] for s in sample]
            out[f"{name}_warm_min_weight_{min_weight}_median_s"] = statistics.median(times)
            out[f"{name}_warm_min_weight_{min_weight}_p99_s"] = float(np.percentile(times, 99))
    c._graphs.clear()
    out["full_adjacency_from_synapse_table_s"], matrix = timed(c.adjacency)
    out["connections"] = int(matrix.nnz)
    out["synapses_in_matrix"] = int(matrix.sum())
    out["full_adjacency_warm_copy_s"], _ = timed(c.adjacency)
    out["adjacency_1000_neurons_warm_s"], _ = timed(c.adjacency, sample)
    pairs = sample[:40].reshape(20, 2)
    times = [timed(c.shortest_path, int(a), int(b))[0] for a, b in pairs]
    out["shortest_path_median_s"] = statistics.median(times)
    times, counts = [], []
    for a, b in pairs[:5]:
        seconds, found = timed(c.paths, int(a), int(b), max_length=3)
        times.append(seconds)
        counts.append(len(found))
    out["paths_up_to_3_median_s"] = statistics.median(times)
    out["paths_up_to_3_found_median"] = statistics.median(counts)
    out["motif_counts_s"], out["motif_counts"] = timed(c.motifs)
    roi = Roi((0, 0, 0), (625, 3125, 3125))  # a quarter of the 100 um cube in x, y; half in z
    out["neurons_in_roi_s"], found = timed(c.neurons_in_roi, roi)
    out["neurons_in_roi_found"] = len(found)
    out["synapses_in_roi_s"], found = timed(c.synapses_in_roi, roi)
    out["synapses_in_roi_found"] = len(found)
    directory = tempfile.mkdtemp(prefix="connectome-bench-")
    try:
        out["save_parquet_s"], _ = timed(c.save, f"{directory}/c")
        out["open_parquet_s"], _ = timed(Connectome.open, f"{directory}/c")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return out


def skeleton_benchmark(crop: int, block: int, workers: int) -> dict:
    import kimimaro

    from chunks import create_volume
    from connecto.connectome.published import dense_segmentation
    from connecto.connectome.skeleton_stage import skeletonize_volume
    from connecto.connectome.skeletons import DEFAULT_TEASAR, large_labels, skeletonize

    start = (512 - crop) // 2
    labels, voxel_size = dense_segmentation(crop=(slice(start, start + crop),) * 3)
    keep, _ = large_labels(labels, 1000)
    voxels = labels.size
    out = {"volume_shape_zyx": list(labels.shape), "voxel_size_nm_zyx": list(voxel_size),
           "block_shape_zyx": [block] * 3, "labels_skeletonised": len(keep), "min_voxels": 1000}

    def direct(parallel):
        # what a user would write: kimimaro on the (x, y, z) array, labels of >= 1000 voxels
        import fastremap

        masked = fastremap.mask_except(labels.copy(), keep.astype(labels.dtype).tolist())
        return kimimaro.skeletonize(masked.T, teasar_params=DEFAULT_TEASAR, anisotropy=voxel_size[::-1],
                                    dust_threshold=0, progress=False, fix_branching=True, parallel=parallel)

    seconds = {}
    seconds["kimimaro_direct_1_process"], _ = timed(direct, 1)
    seconds[f"kimimaro_direct_{workers}_processes"], _ = timed(direct, workers)
    seconds["connecto_blockwise_in_process"], table = timed(skeletonize, labels, voxel_size, min_voxels=1000,
                                                            block_shape=(block,) * 3)
    directory = tempfile.mkdtemp(prefix="skeleton-bench-")
    try:
        volume = create_volume(f"{directory}/seg.zarr", labels.shape, labels.dtype, voxel_size,
                               chunk_shape=(block,) * 3)
        volume.write(volume.roi, labels)
        seconds[f"connecto_blockwise_engine_{workers}_workers"], _ = timed(
            skeletonize_volume, volume, f"{directory}/out", min_voxels=1000, num_workers=workers, progress=False)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    out["seconds"] = seconds
    out["voxels_per_second"] = {k: voxels / v for k, v in seconds.items()}
    out["skeleton_nodes_blockwise"] = len(table)
    out["ratio_blockwise_in_process_to_kimimaro_1_process"] = (
        seconds["kimimaro_direct_1_process"] / seconds["connecto_blockwise_in_process"])
    out[f"ratio_blockwise_engine_{workers}_workers_to_kimimaro_{workers}_processes"] = (
        seconds[f"kimimaro_direct_{workers}_processes"] / seconds[f"connecto_blockwise_engine_{workers}_workers"])
    return out


def print_table(result: dict) -> None:
    print(f"machine: {result['machine']['node']} ({result['machine']['processor']}, "
          f"{result['machine']['cpu_count']} cores, load {result['machine']['load_average_1min_at_start']})")
    if "graph" in result:
        g = result["graph"]
        print(f"\ngenerated connectome: {g['neurons']} neurons, {g['synapses']} synapses, "
              f"{g['connections']} connections")
        print(f"{'query':<52}{'seconds':>12}  goal")
        goals = {"upstream_warm_min_weight_1_median_s": "< 0.05", "full_adjacency_from_synapse_table_s": "< 10"}
        for key, value in g.items():
            if key.endswith("_s"):
                print(f"{key:<52}{value:>12.4f}  {goals.get(key, '')}")
        print(f"motifs: {g['motif_counts']}")
    if "skeletons" in result:
        s = result["skeletons"]
        print(f"\nskeletonisation of pinky40 {s['volume_shape_zyx']} ({s['labels_skeletonised']} labels), "
              f"blocks {s['block_shape_zyx']}")
        print(f"{'method':<52}{'seconds':>10}{'Mvoxel/s':>10}")
        for key, value in s["seconds"].items():
            print(f"{key:<52}{value:>10.2f}{s['voxels_per_second'][key] / 1e6:>10.3f}")
        for key, value in s.items():
            if key.startswith("ratio_"):
                print(f"{key}: {value:.2f} (goal >= 0.8)")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neurons", type=int, default=100_000)
    parser.add_argument("--synapses", type=int, default=10_000_000)
    parser.add_argument("--crop", type=int, default=192, help="edge of the cubic pinky40 crop, voxels")
    parser.add_argument("--block", type=int, default=96, help="edge of a cubic block, voxels")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--skip-graph", action="store_true")
    parser.add_argument("--skip-skeletons", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    result: dict = {"benchmark": "connectome", "machine": machine()}
    if not args.skip_graph:
        result["graph"] = {"neurons": args.neurons, "synapses": args.synapses,
                           **graph_benchmark(args.neurons, args.synapses)}
    if not args.skip_skeletons:
        result["skeletons"] = skeleton_benchmark(args.crop, args.block, args.workers)
    print_table(result)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=float)
    return result


if __name__ == "__main__":
    main()
