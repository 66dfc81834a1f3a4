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
