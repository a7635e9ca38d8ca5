"""Training: the o_O recipe and heatmap-aware training from a frozen config.

Owns optimisation, checkpoints and run directories. Must not define flags.
"""
