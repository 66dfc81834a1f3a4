"""proofreading: versioned merge/split edits on the fragment -> segment mapping.

Depends on ``chunks`` only; reads the region-graph tables by their schema.
"""
