"""Synapse detection against fragments, its evaluation, and CREMI-format I/O.

- :mod:`.cremi`: read/write CREMI HDF5 (volumes, partner annotations);
- :mod:`.detect`: cleft probability + pre/post side maps + fragments -> synapse table
  (one array, or blockwise through the engine);
- :mod:`.evaluate`: cleft and partner precision / recall / F1 with a distance tolerance;
- :mod:`.clefts`, :mod:`.cleft_metrics`, :mod:`.baseline`, :mod:`.sanity`: clefts on anisotropic
  real EM (a section-wise cleft model's probability -> cleft objects + table), their scores against
  a real cleft mask, the random-forest baseline, and the distinct-sides sanity check.

Importing this package does no work; the modules load on first use.
"""

from __future__ import annotations

__all__ = ["detect_synapses", "detect_synapses_blockwise", "evaluate_synapses", "read_cremi", "write_cremi"]

_LAZY = {"detect_synapses": "detect", "detect_synapses_blockwise": "detect", "evaluate_synapses": "evaluate",
         "read_cremi": "cremi", "write_cremi": "cremi"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
