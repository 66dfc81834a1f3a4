"""Image sources for ingest: PNG/TIFF stacks, multi-page TIFF, HDF5 datasets, numpy files.

A source knows its zyx shape and dtype from headers alone and reads any Roi on
demand, so a stack larger than memory is ingested slab by slab. Sources pickle by
their paths, so dask workers open them where they run.

Spec strings:

- ``DIR`` or ``"DIR/*.png"``: a stack of 2D images, one per z, sorted naturally
- ``stack.tif``: a multi-page TIFF (z pages of y, x)
- ``file.h5:/path/to/dataset``: an HDF5 dataset (zyx)
- ``volume.npy``: a numpy array (zyx), memory-mapped
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

from .coordinate import Coordinate
from .roi import Roi

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


@dataclass(frozen=True)
class StackSource:
    """A z-stack of 2D image files."""

    paths: tuple[str, ...]
    shape: Coordinate
    dtype: np.dtype

    @property
    def roi(self) -> Roi:
        return Roi((0, 0, 0), self.shape)

    def read(self, roi: Roi) -> np.ndarray:
        (z0, y0, x0), (z1, y1, x1) = roi.begin, roi.end
        out = np.empty(tuple(roi.shape), dtype=self.dtype)
        for i, z in enumerate(range(z0, z1)):
            out[i] = _read_image(self.paths[z])[y0:y1, x0:x1]
        return out


@dataclass(frozen=True)
class TiffSource:
    """A multi-page TIFF, one page per z."""

    path: str
    shape: Coordinate
    dtype: np.dtype

    @property
    def roi(self) -> Roi:
        return Roi((0, 0, 0), self.shape)

    def read(self, roi: Roi) -> np.ndarray:
        import tifffile

        (z0, y0, x0), (z1, y1, x1) = roi.begin, roi.end
        pages = tifffile.imread(self.path, key=range(z0, z1))
        pages = pages.reshape((z1 - z0,) + pages.shape[-2:])
        return np.ascontiguousarray(pages[:, y0:y1, x0:x1])


@dataclass(frozen=True)
class Hdf5Source:
    path: str
    dataset: str
    shape: Coordinate
    dtype: np.dtype

    @property
    def roi(self) -> Roi:
        return Roi((0, 0, 0), self.shape)

    def read(self, roi: Roi) -> np.ndarray:
        import h5py

        with h5py.File(self.path, "r") as f:
            return f[self.dataset][roi.to_slices()]


@dataclass(frozen=True)
class NumpySource:
    path: str
    shape: Coordinate
    dtype: np.dtype

    @property
    def roi(self) -> Roi:
        return Roi((0, 0, 0), self.shape)

    def read(self, roi: Roi) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r")[roi.to_slices()])


def source_files(source) -> tuple[str, ...]:
    """The files a source reads."""
    return tuple(source.paths) if isinstance(source, StackSource) else (source.path,)


def content_token(source) -> str:
    """A short string that changes when a source's files change (their names, sizes and modification
    times; nothing is read), so a rerun of ingest into the same volume notices another content."""
    import hashlib

    stats = []
    for path in source_files(source):
        st = os.stat(path)
        stats.append((os.path.abspath(path), st.st_size, st.st_mtime_ns))
    return hashlib.blake2b(repr(stats).encode(), digest_size=8).hexdigest()


def open_source(spec: str | os.PathLike):
    """Open an ingest source from a spec string (see the module docstring)."""
    spec = os.fspath(spec)
    h5_path, dataset = _split_hdf5(spec)
    if h5_path is not None:
        return _open_hdf5(h5_path, dataset)
    if any(ch in spec for ch in "*?["):
        return _open_stack(spec, sorted_paths(glob.glob(spec)))
    if os.path.isdir(spec):
        paths = [os.path.join(spec, n) for n in os.listdir(spec) if n.lower().endswith(IMAGE_SUFFIXES)]
        return _open_stack(spec, sorted_paths(paths))
    if not os.path.exists(spec):
        raise FileNotFoundError(f"ingest source {spec!r} does not exist")
    lower = spec.lower()
    if lower.endswith(".npy"):
        array = _load_npy(spec)
        _require_3d(spec, array.shape)
        return NumpySource(spec, Coordinate(array.shape), array.dtype)
    if lower.endswith((".tif", ".tiff")):
        return _open_tiff(spec)
    raise ValueError(
        f"cannot tell what {spec!r} is: expected a directory or glob of 2D images, a multi-page .tif, "
        "a .npy file, or FILE.h5:/dataset"
    )


def sorted_paths(paths) -> list[str]:
    """Natural sort (``img2.png`` before ``img10.png``)."""
    from natsort import natsorted

    return natsorted(paths)


def _split_hdf5(spec: str) -> tuple[str | None, str | None]:
    lower = spec.lower()
    for suffix in HDF5_SUFFIXES:
        marker = suffix + ":"
        pos = lower.find(marker)
        if pos >= 0:
            return spec[: pos + len(suffix)], spec[pos + len(marker):]
        if lower.endswith(suffix):
            return spec, None
    return None, None


def _open_hdf5(path: str, dataset: str | None) -> Hdf5Source:
    import h5py

    if not os.path.exists(path):
        raise FileNotFoundError(f"HDF5 file {path!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise OSError(f"cannot read HDF5 file {path!r}: {exc}") from None
    with f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
        if not dataset:
            raise ValueError(f"name the dataset in {path!r} as {path}:/DATASET; it holds {', '.join(names) or 'none'}")
        if dataset.strip("/") not in f or not isinstance(f[dataset.strip("/")], h5py.Dataset):
            raise KeyError(f"no dataset {dataset!r} in {path!r}; it holds {', '.join(names) or 'no datasets'}")
        ds = f[dataset.strip("/")]
        _require_3d(f"{path}:{dataset}", ds.shape)
        return Hdf5Source(path, dataset.strip("/"), Coordinate(ds.shape), np.dtype(ds.dtype))


def _open_tiff(path: str) -> TiffSource:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = tif.pages
            first = pages[0]
            shape = (len(pages),) + tuple(first.shape[-2:])
            if len(first.shape) != 2:
                raise ValueError(f"TIFF {path!r} has pages of shape {first.shape}; expected 2D grayscale pages (y, x)")
            dtype = np.dtype(first.dtype)
    except tifffile.TiffFileError as exc:
        raise OSError(f"cannot read TIFF {path!r}: {exc}") from None
    if shape[0] == 1:
        raise ValueError(f"TIFF {path!r} has a single page; give a directory or glob of slices for a stack")
    return TiffSource(path, Coordinate(shape), dtype)


def _open_stack(spec: str, paths: list[str]) -> StackSource:
    if not paths:
        raise FileNotFoundError(
            f"no images match {spec!r} (looked for {', '.join(IMAGE_SUFFIXES)} files)"
        )
    first_shape, first_dtype = _image_header(paths[0])
    for path in paths[1:]:
        shape, dtype = _image_header(path)
        if shape != first_shape or dtype != first_dtype:
            raise ValueError(
                f"slice {path!r} is {shape[0]}x{shape[1]} {dtype}, but {paths[0]!r} is "
                f"{first_shape[0]}x{first_shape[1]} {first_dtype}; all slices of a stack must match"
            )
    return StackSource(tuple(paths), Coordinate((len(paths), *first_shape)), first_dtype)


def _image_header(path: str) -> tuple[tuple[int, int], np.dtype]:
    """Shape (y, x) and dtype of a 2D image, from its header only."""
    if path.lower().endswith((".tif", ".tiff")):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if len(page.shape) != 2:
                    raise ValueError(f"slice {path!r} has shape {page.shape}; expected a 2D grayscale image")
                return tuple(page.shape), np.dtype(page.dtype)
        except tifffile.TiffFileError as exc:
            raise OSError(f"cannot read image {path!r}: {exc}") from None
    from PIL import Image, UnidentifiedImageError

    modes = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I": np.int32, "F": np.float32, "1": np.bool_}
    try:
        with Image.open(path) as img:
            if img.mode not in modes:
                raise ValueError(f"slice {path!r} is a {img.mode} image; expected grayscale (L, I;16, I or F)")
            return (img.size[1], img.size[0]), np.dtype(modes[img.mode])
    except (UnidentifiedImageError, OSError) as exc:
        raise OSError(f"cannot read image {path!r}: {exc}") from None


def _read_image(path: str) -> np.ndarray:
    if path.lower().endswith((".tif", ".tiff")):
        import tifffile

        return tifffile.imread(path)
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img)


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise OSError(f"cannot read numpy file {path!r}: {exc}") from None


def _require_3d(name: str, shape) -> None:
    if len(shape) != 3:
        raise ValueError(f"{name} has shape {tuple(shape)}; expected a 3D volume (z, y, x)")


def open_readable(spec: str | os.PathLike):
    """A Volume when ``spec`` names one, else an ingest source: either has ``.roi`` and ``.read(roi)``.

    The one place that decides how a user's "raw" or "labels" argument is read, whether a
    volume URL, ``FILE.h5:/dataset``, a ``.npy``, a multi-page TIFF or an image stack.
    """
    from .volume import open_volume

    try:
        return open_volume(spec)
    except (FileNotFoundError, ValueError):
        return open_source(spec)
