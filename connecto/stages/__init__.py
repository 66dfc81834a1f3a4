"""Pipeline stages: pure functions over arrays, plus their blockwise wrappers."""
