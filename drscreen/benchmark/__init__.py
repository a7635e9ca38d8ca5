"""The lesion benchmark: do image-supervised heatmaps find the lesions a pixel-supervised
detector finds, on held-out patients, over several seeds (``scripts/benchmark.py``)."""
