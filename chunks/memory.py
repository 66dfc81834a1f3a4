"""This process's memory: current and peak resident set size, in MB."""

from __future__ import annotations

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
