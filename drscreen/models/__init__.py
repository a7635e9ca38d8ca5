"""Model zoo: the o_O networks of Kaggle DR 2015 and a small CPU-trainable network.

Owns architectures built from `drscreen.layers`. Must not compute heatmaps or train.
"""
