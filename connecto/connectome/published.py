"""Real data that installed packages ship or that sits in ``../shared/data``, read offline.

- :func:`celegans`: a C. elegans connectome from ``cect`` (default Cook et al. 2019,
  hermaphrodite: chemical and electrical weights), from the dataset cache cect ships.
- :func:`hemibrain_examples`: navis' bundled hemibrain DA1 projection neurons.
- :func:`dense_segmentation`: the pinky40 dense segmentation (crackle, [x, y, z] on
  disk) as a zyx array; the one place its axis order is converted.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from .connectome import Connectome

CECT_CLASSES = {"Generic_CS": "chemical", "Generic_GJ": "electrical"}
PINKY40_VOXEL_SIZE_NM = (40, 32, 32)  # z, y, x (the cc3d benchmark README: 32x32x40 nm, x,y,z)


def cect_edges(dataset: str = "Cook2019Herm") -> tuple[list[str], pd.DataFrame]:
    """(cell names, edge list with pre, post, kind, weight) of a cect dataset, from the
    JSON cache cect ships (no network, no spreadsheet parsing)."""
    try:
        from cect.ConnectomeDataset import get_cache_filename, load_connectome_dataset_file
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading C. elegans connectomes needs the 'cect' package: pip install cect") from exc
    cache = Path(get_cache_filename(f"{dataset}Reader"))
    if not cache.exists():
        available = sorted(p.stem.removesuffix("Reader") for p in cache.parent.glob("*Reader.json"))
        raise ValueError(f"cect has no cached dataset {dataset!r} ({cache} is missing); available: {available}")
    data = load_connectome_dataset_file(str(cache))
    names = [str(n) for n in data.nodes]
    parts = []
    for synclass, kind in CECT_CLASSES.items():
        matrix = np.asarray(data.connections.get(synclass, np.zeros((len(names), len(names)))))
        pre, post = np.nonzero(matrix)
        parts.append(pd.DataFrame({"pre": np.asarray(names)[pre], "post": np.asarray(names)[post], "kind": kind,
                                   "weight": matrix[pre, post].round().astype(np.int64)}))
    return names, pd.concat(parts, ignore_index=True)


def celegans(dataset: str = "Cook2019Herm") -> Connectome:
    """The C. elegans connectome ``dataset`` from cect: nodes are cells (neurons, muscles,
    other end organs) named in ``name``, ids 1..n in cect's node order; synapse kinds
    ``chemical`` (directed) and ``electrical`` (gap junctions, listed in both directions
    as cect gives them)."""
    names, edges = cect_edges(dataset)
    neurons = pd.DataFrame({"segment_id": np.arange(1, len(names) + 1, dtype=np.uint64), "name": names})
    connectome = Connectome.from_edge_list(edges, neurons=neurons)
    connectome.meta["source"] = f"cect:{dataset}"
    return connectome


def hemibrain_examples() -> Connectome:
    """navis' five bundled hemibrain neurons (skeletons and connectors) as a Connectome."""
    import navis

    return Connectome.from_navis(navis.example_neurons(kind="skeleton"))


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository root."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def dense_segmentation(path: str | Path | None = None, crop=None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(labels zyx C-ordered uint32, voxel size zyx nm) of the pinky40 segmentation.

    ``crop``: a tuple of slices in zyx applied before the copy.
    """
    import crackle

    path = Path(path) if path is not None else shared_data_dir() / "segmentation" / "connectomics.npy.ckl.gz"
    if not path.exists():
        raise FileNotFoundError(f"dense segmentation not found at {path} (../shared/data beside the repository)")
    xyz = crackle.decompress(gzip.decompress(path.read_bytes()))  # Fortran-ordered [x, y, z]
    zyx = xyz.T  # a C-ordered view in z, y, x
    if crop is not None:
        zyx = zyx[tuple(crop)]
    return np.ascontiguousarray(zyx), PINKY40_VOXEL_SIZE_NM
