"""Heatmap methods: the paper's sensitivity map and competing methods, one module each.

Owns the backward pass over a model's layers and the methods built on it. Must not read
files or know about datasets.
"""
