"""This process's memory: current and peak resident set size, in MiB (the functions say MB for short)."""

from __future__ import annotations

import functools
import resource


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """The peak resident set size of this process (Linux: VmHWM, which starts afresh at exec; ``ru_maxrss``
    elsewhere, which on Linux would carry a parent's larger peak across fork and exec)."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """The resident set size of this process now."""
    now = _status_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def release_free_memory() -> None:
    """Hand memory that is freed but kept by the C allocator back to the system (glibc's ``malloc_trim``; a
    no-op elsewhere). Large blocks allocated and freed by several threads otherwise stay in per-thread
    arenas and the resident size creeps up block after block; dask trims its worker processes the same way."""
    trim = _glibc("malloc_trim")
    if trim:
        trim(0)


@functools.lru_cache(maxsize=None)
def _glibc(name: str):
    """A function of glibc, or None where there is none (another C library, another system)."""
    try:
        import ctypes

        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None
