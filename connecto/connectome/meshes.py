"""Meshes with zmesh, written as Neuroglancer precomputed legacy (unsharded) meshes.

Layout of a mesh directory (``<segmentation layer>/mesh`` by convention)::

    info               {"@type": "neuroglancer_legacy_mesh"}
    <id>:0             manifest, {"fragments": ["<id>:0:<part>", ...]}
    <id>:0:<part>      uint32 vertex count, float32 x y z per vertex (nm), uint32 triangles

Vertices are in nm, x, y, z, on voxel faces (voxel i spans [i, i+1) * voxel size, as in
Neuroglancer). Blockwise, each block is meshed with one voxel of overlap on its high
faces and left open where it is cut, so neighbouring fragments meet without walls
(as igneous does); every block is one fragment of the segment.
zmesh indexes arrays x, y, z: the transposition is in :func:`mesh_labels` only.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from chunks import Coordinate, Roi, Volume, run_blockwise

MESH_INFO = {"@type": "neuroglancer_legacy_mesh"}
_MESH_FILE = re.compile(r"^\d+:0(:[\w.-]+)?$")


def mesh_labels(labels: np.ndarray, voxel_size_nm, *, ids=None, offset=(0, 0, 0), reduction_factor: int = 10,
                max_error: float | None = None) -> dict:
    """{label: zmesh.Mesh} (x, y, z nm) for the non-zero labels of the zyx array
    ``labels`` (or only ``ids``); ``offset`` is the array's voxel offset (zyx)."""
    import zmesh

    anisotropy = tuple(float(v) for v in Coordinate(voxel_size_nm)[::-1])
    mesher = zmesh.Mesher(anisotropy)
    mesher.mesh(np.asarray(labels).T, close=False)
    wanted = mesher.ids() if ids is None else [i for i in (int(x) for x in ids) if i in set(mesher.ids())]
    shift = np.asarray(Coordinate(offset)[::-1], np.float32) * np.asarray(anisotropy, np.float32)
    meshes = {}
    for label in wanted:
        if label == 0:
            continue
        mesh = mesher.get(label, normals=False, reduction_factor=reduction_factor, max_error=max_error,
                          voxel_centered=True)
        mesh.vertices = mesh.vertices + shift
        meshes[int(label)] = mesh
    mesher.clear()
    return meshes


def write_fragments(meshes: dict, mesh_dir, part: str = "0") -> list[str]:
    """Write each mesh as the fragment ``<id>:0:<part>``; returns the file names."""
    mesh_dir = Path(mesh_dir)
    mesh_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for label, mesh in meshes.items():
        if len(mesh.faces) == 0:
            continue
        name = f"{int(label)}:0:{part}"
        _atomic_bytes(mesh_dir / name, mesh.to_precomputed())
        names.append(name)
    return names


def write_manifests(mesh_dir) -> int:
    """Write ``info`` and one manifest per segment listing its fragment files; returns
    the number of segments."""
    mesh_dir = Path(mesh_dir)
    fragments: dict[str, list[str]] = {}
    for file in mesh_dir.iterdir():
        parts = file.name.split(":")
        if len(parts) == 3 and parts[0].isdigit() and parts[1] == "0":
            fragments.setdefault(parts[0], []).append(file.name)
    for label, names in fragments.items():
        _atomic_bytes(mesh_dir / f"{label}:0", json.dumps({"fragments": sorted(names)}).encode())
    (mesh_dir / "info").write_text(json.dumps(MESH_INFO))
    return len(fragments)


def write_precomputed_meshes(meshes: dict, mesh_dir, *, overwrite: bool = False) -> str:
    """Write ``meshes`` ({id: zmesh.Mesh}) as a legacy precomputed mesh directory."""
    mesh_dir = Path(mesh_dir)
    _prepare(mesh_dir, overwrite)
    write_fragments(meshes, mesh_dir)
    write_manifests(mesh_dir)
    return str(mesh_dir)


def link_mesh_to_segmentation(layer_dir, mesh_dir_name: str = "mesh") -> dict:
    """Point a precomputed segmentation layer's ``info`` at its mesh directory."""
    info_path = Path(layer_dir) / "info"
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path} not found: {layer_dir} is not a precomputed layer; for a zarr "
                                "segmentation, give the mesh directory as a second Neuroglancer source")
    info = json.loads(info_path.read_text())
    if info.get("type") != "segmentation":
        raise ValueError(f"{layer_dir} is a precomputed {info.get('type')!r} layer, not a segmentation")
    info["mesh"] = mesh_dir_name
    info_path.write_text(json.dumps(info, indent=1))
    return info


def mesh_volume(segmentation: Volume, mesh_dir, *, ids=None, block_shape=None, reduction_factor: int = 10,
                max_error: float | None = None, scheduler=None, num_workers: int | None = None,
                overwrite: bool = False, progress: bool = True) -> int:
    """Mesh ``segmentation`` block by block into the legacy mesh directory ``mesh_dir``
    (resumable; done-markers in ``<mesh_dir>/done``); returns the number of segments."""
    mesh_dir = Path(mesh_dir)
    if overwrite or not (mesh_dir / "done" / "meshes").exists():  # a rerun of the same plan resumes
        _prepare(mesh_dir, overwrite)
    ids = None if ids is None else sorted(int(i) for i in ids)
    stage = functools.partial(_mesh_block, str(mesh_dir), tuple(segmentation.voxel_size_nm), ids,
                              reduction_factor, max_error)
    from .skeleton_stage import parallel_block_shape

    block_shape = Coordinate(block_shape) if block_shape else parallel_block_shape(segmentation, num_workers)
    run_blockwise(stage, segmentation.roi, block_shape,
                  task="meshes", inputs={"labels": segmentation}, context=(1, 1, 1), markers_at=str(mesh_dir),
                  params={"ids": ids, "reduction_factor": reduction_factor, "max_error": max_error,
                          "source": str(segmentation.url)},
                  scheduler=scheduler, num_workers=num_workers, overwrite=overwrite, progress=progress)
    return write_manifests(mesh_dir)


def _mesh_block(directory, voxel_size_nm, ids, reduction_factor, max_error, block, inputs) -> None:
    high = Roi(block.write_roi.offset, block.write_roi.shape + 1).intersect(block.read_roi)
    labels = inputs["labels"][high.to_slices(relative_to=block.read_roi.begin)]
    meshes = mesh_labels(labels, voxel_size_nm, ids=ids, offset=high.offset, reduction_factor=reduction_factor,
                         max_error=max_error)
    write_fragments(meshes, directory, part=block.name)


def _prepare(mesh_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``mesh_dir`` unless ``overwrite``; then remove only mesh files
    (info, manifests, fragments, done-markers), never anything else."""
    if mesh_dir.is_file():
        raise FileExistsError(f"mesh directory {mesh_dir} is a file")
    if mesh_dir.exists() and any(mesh_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"mesh directory {mesh_dir} exists and is not empty; pass overwrite=True "
                                  "(CLI: --overwrite) to replace its meshes")
        for file in mesh_dir.iterdir():
            if file.is_file() and (_MESH_FILE.match(file.name) or (file.name == "info" and _is_mesh_info(file))):
                file.unlink()
        shutil.rmtree(mesh_dir / "done", ignore_errors=True)
    mesh_dir.mkdir(parents=True, exist_ok=True)


def _is_mesh_info(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("@type") == MESH_INFO["@type"]
    except (ValueError, OSError):
        return False


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
