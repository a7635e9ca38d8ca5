"""The library side of the commands that combine several packages: ``predict``, ``evaluate``.

Each module takes a frozen config (built by `drscreen.cli` from flags, or by a Python caller)
and does the whole job: `predict` (image files -> grades, calibrated probabilities, heatmap
overlays) and `evaluate` (a model and a dataset -> metrics.json, figures, report). They sit
above the packages they combine (data, models, heatmaps, evaluation) and hold no metric or
model code of their own. Must not define or read flags.
"""
