"""Evaluation: image-level screening metrics, lesion-level heatmap metrics, reports.

Owns metrics and figures. Must not train or export models.
"""
