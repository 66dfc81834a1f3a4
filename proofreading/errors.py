"""Errors a proofreader reads: each names the bad value, what was expected and the way out."""

from __future__ import annotations


class UnknownSegmentError(ValueError):
    """A segment or fragment id that does not exist at the version the edit was made against."""


class SplitError(ValueError):
    """A split that cannot separate its sources from its sinks (or was asked across segments)."""


class NothingToUndoError(ValueError):
    """``undo``/``redo`` with nothing left on the author's stack, or an edit in the wrong state."""


class ConflictError(RuntimeError):
    """An edit touches segments that another edit changed after the edit's base version.

    Attributes
    ----------
    segments : dict[int, int | None]
        Each touched segment that no longer exists at the head, with the version of the
        edit that last changed it (``None`` where the log cannot say).
    base_version, head_version : int
    """

    def __init__(self, message: str, segments: dict[int, int | None], base_version: int, head_version: int):
        super().__init__(message)
        self.segments = segments
        self.base_version = base_version
        self.head_version = head_version


class LogCorruptError(RuntimeError):
    """The edit log does not replay onto its base mapping (edited by hand, or a foreign database)."""


class IncompatibleLogError(ValueError):
    """An existing edit log was started from a different agglomeration than the one asked for."""
