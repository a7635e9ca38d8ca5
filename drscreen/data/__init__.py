"""Data: synthetic fundus benchmark, fundus pre-processing, dataset readers, tf.data input.

Owns everything between files on disk and batches of float32 RGB images in [0, 255] with
their grades and lesion masks: the patient split as image ids (`splits`), where a split's
images come from (`sources`: image files or a ``drscreen prepare`` folder) and ``prepare``
itself. Must not know about models, heatmaps or training.
"""
