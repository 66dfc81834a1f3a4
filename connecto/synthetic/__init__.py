"""Synthetic EM volumes with known neurons and synapses.

``generate`` writes a raw image (uint8), dense neuron labels (uint64), synaptic clefts
(uint64, one id per synapse) and truth tables (Parquet) blockwise through the engine;
``generate_arrays`` returns the same in memory. The same config gives the same voxels
whatever the block shape. See docs/synthetic.md.

Importing this package does no work; the heavy modules load on first use.
"""

from __future__ import annotations

from .config import SynthConfig

__all__ = ["SynthConfig", "SyntheticResult", "SyntheticVolume", "build_model", "generate", "generate_arrays",
           "image_statistics", "read_tables"]

_LAZY = {
    "generate": "generator", "generate_arrays": "generator", "SyntheticVolume": "generator",
    "SyntheticResult": "generator", "build_model": "model", "read_tables": "tables",
    "image_statistics": "stats",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
