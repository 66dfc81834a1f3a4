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
