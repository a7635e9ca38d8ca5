"""Data: synthetic fundus benchmark, fundus pre-processing, dataset readers, tf.data input.

Owns everything between files on disk and batches of float32 RGB images in [0, 255] with
their grades. Must not know about models, heatmaps or training.
"""
