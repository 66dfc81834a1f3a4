"""training: the learned boundary model (3D U-Net affinities), targets, augmentations, training, prediction.

Depends on ``chunks`` only.
"""
