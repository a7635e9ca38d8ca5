"""Model zoo: the o_O networks of Kaggle DR 2015, a small CPU-trainable network, and the
evidence networks (`EVIDENCE_MODELS`: the grade is the mean of an evidence map, local or at
full resolution through a skip decoder).

Owns architectures built from `drscreen.layers`, the grade -> referable-probability mapping
and its calibration, and the run directory (`runs.RunDirectory`: its file names, loading its
model and calibration). Must not compute heatmaps or train.

Every network is a `keras.Sequential` of drscreen layers: its input normalisation first
(inputs are float32 RGB in [0, 255]; `NORMALIZATIONS`: o_O's `InputNormalization`, or
`GrahamNormalization` then a fixed z-score), grade regression (N, 1) last, so the backward
engine (`drscreen.heatmaps.backprop`) can walk it as a chain and `.keras` files reload it (a
U-Net's skips are composite layers of that chain, `drscreen.layers.SkipConcat`).
"""

from drscreen.models.calibration import DEFAULT_MIDPOINT, DEFAULT_SCALE, referable_probability
from drscreen.models.oO import net_a, net_b
from drscreen.models.small import small_net
from drscreen.models.stack import NORMALIZATIONS
from drscreen.models.zoo import EVIDENCE_MODELS, MODELS, build

__all__ = [
    "DEFAULT_MIDPOINT",
    "DEFAULT_SCALE",
    "EVIDENCE_MODELS",
    "MODELS",
    "NORMALIZATIONS",
    "build",
    "net_a",
    "net_b",
    "referable_probability",
    "small_net",
]
