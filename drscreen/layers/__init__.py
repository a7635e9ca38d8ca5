"""Heatmap-capable Keras layers: each carries a backward rule made of forward ops.

Owns the layers the model zoo is built from. Must not know about datasets or training.
"""
