"""A connectome on disk: Parquet tables plus ``connectome.json`` in one directory, and the
rule every export follows: refuse an existing target unless told to overwrite.

Layout (a run directory's ``connectome/`` folder, or any directory)::

    connectome.json      format, voxel size, counts; written last
    neurons.parquet      one row per segment
    synapses.parquet     one row per synapse
    edges.parquet        (pre, post, kind, weight), derived, for readers without connecto
    skeletons.parquet    optional: (segment_id, node_id, parent_id, z_nm, y_nm, x_nm, radius_nm)
    versions/<v>/        the same layout for a saved version v
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

FORMAT = "connecto-connectome"
FORMAT_VERSION = 1
META = "connectome.json"
EXPORT_MARKER = "export.json"
TABLES = ("neurons", "synapses", "edges", "skeletons")


def refuse_existing(path: str | os.PathLike, overwrite: bool) -> Path:
    """Make ``path`` free for an export: refuse when it exists unless ``overwrite``; then
    remove it, but only a file or a directory that is empty or one of connecto's exports."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return path
    if not overwrite:
        raise FileExistsError(f"export target {path} exists; pass overwrite=True (CLI: --overwrite) to replace it "
                              "or choose another path")
    if path.is_dir() and not path.is_symlink():
        contents = list(path.iterdir())
        if contents and not (path / META).exists() and not (path / EXPORT_MARKER).exists():
            raise FileExistsError(f"refusing to replace the directory {path}: it holds files and is not a "
                                  f"connecto export (no {META} or {EXPORT_MARKER}); remove it yourself")
        shutil.rmtree(path)
    else:
        path.unlink()
    return path


def write_marker(directory: Path, fmt: str, **info) -> None:
    """The marker that makes an export directory recognisable (and replaceable with overwrite)."""
    (directory / EXPORT_MARKER).write_text(json.dumps({"format": fmt, **info}, indent=1) + "\n")


def connectome_dir(path: str | os.PathLike, version=None) -> Path:
    """The directory holding the connectome at ``path`` (a connectome directory or a run
    directory with ``connectome/``), at ``version`` if given."""
    path = Path(path)
    candidates = [path, path / "connectome"]
    base = next((c for c in candidates if (c / META).exists() or (c / "versions").is_dir()), None)
    if base is None:
        raise FileNotFoundError(f"no connectome at {path}: expected {path / META} or "
                                f"{path / 'connectome' / META} (write one with Connectome.save)")
    if version is None:
        if not (base / META).exists():
            raise FileNotFoundError(f"{base} holds only versions {available_versions(base)}; give one with --version")
        return base
    target = base / "versions" / str(version)
    if not (target / META).exists():
        raise ValueError(f"version {version!r} does not exist in {base}; available versions: "
                         f"{available_versions(base) or 'none'}")
    return target


def available_versions(base: Path) -> list[str]:
    versions = base / "versions"
    if not versions.is_dir():
        return []
    return sorted((d.name for d in versions.iterdir() if (d / META).exists()), key=_natural)


def _natural(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def write_tables(directory: Path, tables: dict[str, pd.DataFrame | None], meta: dict, overwrite: bool) -> Path:
    """Write ``tables`` as Parquet and ``meta`` as connectome.json (last) into ``directory``.

    An existing connectome there is refused unless ``overwrite``; only connecto's own
    files are replaced, so ``versions/`` beside them is kept."""
    directory = Path(directory)
    if (directory / META).exists():
        if not overwrite:
            raise FileExistsError(f"a connectome exists at {directory}; pass overwrite=True (CLI: --overwrite) "
                                  "to replace it or choose another path")
        for name in [META] + [f"{t}.parquet" for t in TABLES]:
            (directory / name).unlink(missing_ok=True)
    elif directory.exists() and not directory.is_dir():
        raise FileExistsError(f"export target {directory} exists and is a file, not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if table is not None:
            table.to_parquet(directory / f"{name}.parquet", index=False)
    (directory / META).write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **meta},
                                             indent=1) + "\n")
    return directory


def read_tables(directory: Path) -> tuple[dict[str, pd.DataFrame | None], dict]:
    meta = json.loads((directory / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory / META} is not a connecto connectome (format {meta.get('format')!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{directory} was written by a newer connecto (format_version "
                         f"{meta['format_version']} > {FORMAT_VERSION}); upgrade connecto to read it")
    tables = {}
    for name in ("neurons", "synapses", "skeletons"):
        file = directory / f"{name}.parquet"
        tables[name] = pd.read_parquet(file) if file.exists() else None
    for name in ("neurons", "synapses"):
        if tables[name] is None:
            raise FileNotFoundError(f"{directory} lacks {name}.parquet; the connectome is incomplete")
    return tables, meta
