"""Defaults that more than one entry point uses, each defined once.

``connecto segment``, ``connecto reconstruct`` and their Python APIs
(:func:`connecto.segment.blockwise.segment`, :class:`connecto.reconstruct.ReconstructConfig`)
read these values from here; the segmentation parameters' own defaults are the fields of
:class:`connecto.segment.params.SegmentParams`, which the CLI options and the reconstruct
config take from there.

Nothing is imported here: ``import connecto.defaults`` is free.
"""

from __future__ import annotations

# Merge-score threshold of the segmentation when neither the user nor the model gives one.
# A model may recommend its own in its checkpoint's ``extra`` dict
# (``training.checkpoint.save_checkpoint(..., extra={"threshold": 0.6})``, key
# ``training.checkpoint.THRESHOLD_KEY``); ``connecto reconstruct`` reads it from the checkpoint,
# and prediction copies it into the affinity volume's attributes, where ``connecto segment``
# finds it. Order: the user's value, the model's, this one.
DEFAULT_THRESHOLD = 0.5

# Where the blocks of ``connecto segment`` and ``connecto reconstruct`` run: a local dask
# cluster of threads. torch, numpy, cc3d, fastremap and the compiled agglomeration compute
# without the GIL, and one process moves no block between processes and starts at once.
# Measured with benchmarks/fib25.py --scheduler: on 2 cores 15.0 and 16.4 s against 18.3 and
# 18.6 s on worker processes; on 16 cores and a GPU 20.0 and 20.9 s against 20.8 s (worker
# processes for all but prediction) and 29.0 and 35.6 s (worker processes for prediction too).
# ``connecto segment`` alone (256^3 affinities from the FIB-25 labels with noise 0.2, as in
# benchmarks/segment.py; the whole command, two runs each, alternating, on 2 cores shared with
# other work): 10.8 and 8.3 s on threads against 14.8 and 11.4 s on worker processes.
DEFAULT_SCHEDULER = "threads"
