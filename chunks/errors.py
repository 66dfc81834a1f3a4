"""Exceptions of ``chunks``; each subclasses a builtin so callers can catch broadly."""


class AlignmentError(ValueError):
    """A write Roi is not aligned to the volume's chunk grid."""


class OutOfBoundsError(ValueError):
    """A Roi reaches outside a volume."""


class IncompatibleVolumeError(ValueError):
    """An existing volume differs from the one asked for (shape, dtype, ...)."""


class BlockFailedError(RuntimeError):
    """One or more blocks of a blockwise run failed after their retries."""

    def __init__(self, message: str, failures: list):
        super().__init__(message)
        self.failures = failures


class CorruptChunkError(OSError):
    """A chunk file exists but cannot be read or decoded (truncated, overwritten, damaged).

    ``path`` is the chunk file, ``reason`` the decoder's error in a few words."""

    def __init__(self, message: str, path: str = "", reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason


class MissingChunkError(FileNotFoundError):
    """A chunk file that a finished stage wrote is gone."""


class IncompleteVolumeError(ValueError):
    """A volume read as an input was not finished by the stage that writes it."""


def first_unreadable_chunk(slices, chunk_shape, shape, read, path_of, url) -> CorruptChunkError | None:
    """Read the chunks under ``slices`` (zyx, in voxels of the array) one by one with ``read(chunk_slices)``;
    the error of the first that fails, naming its file (``path_of(grid_index)``), or None. Used by the
    stores after a read failed, to say which chunk file is damaged."""
    import itertools

    ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(slices, chunk_shape)]
    for index in itertools.product(*ranges):
        sl = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunk_shape, shape))
        try:
            read(sl)
        except Exception as exc:  # noqa: BLE001 - reported with the file it came from
            path, reason = path_of(index), f"{type(exc).__name__}: {exc}"
            return CorruptChunkError(
                f"cannot read chunk file {path} of {url} ({reason}): the file is damaged; "
                f"`connecto verify --repair {url}` lets a rerun of the stage that wrote it recompute "
                "its block", path, reason)
    return None
