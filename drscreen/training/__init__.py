"""Training: the o_O recipe and heatmap-aware training from a frozen config.

Owns optimisation, checkpoints, progressive resizing and writing the run directory
(`drscreen.models.runs.RunDirectory`: config, split, models, calibration, final metrics from
`drscreen.evaluation.model_evaluation`). Must not define flags.
"""
