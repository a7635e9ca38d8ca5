"""Mixed precision for both backward passes of heatmap-aware training.

- ``mixed_float16``: the Keras global policy (float16 compute, float32 variables). The
  *outer* gradient (loss → weights) is loss-scaled by Keras' built-in
  `keras.optimizers.LossScaleOptimizer` (dynamic scale; `optimizer.scale_loss` in the step,
  unscaled and checked for overflow in `optimizer.apply`). The *inner* backward pass (score →
  pixels, the heatmap) is seeded with `HEATMAP_SEED_SCALE` instead of 1 so that small pixel
  gradients do not underflow in float16; the heatmap is cast to float32 and divided by the
  same factor before any penalty sees it. Both passes are linear in their seed, so the
  scaling is exact up to rounding.
- ``mixed_bfloat16``: bfloat16 has float32's exponent range, so neither pass needs scaling.
- ``float32``: no scaling. ``auto`` resolves to ``mixed_float16`` when a GPU is visible and
  to ``float32`` otherwise (CPUs gain nothing from float16).
"""

import keras
import tensorflow as tf

HEATMAP_SEED_SCALE = 2.0**10


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy name for config value `precision` (``auto`` resolved)."""
    if precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    if precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise ValueError(
            f"unknown precision {precision!r}; expected auto, float32, mixed_float16 or "
            "mixed_bfloat16"
        )
    return precision


def set_precision(precision: str) -> str:
    """Set the Keras global dtype policy for `precision` and return the policy name."""
    policy = resolve_precision(precision)
    keras.config.set_dtype_policy(policy)
    return policy


def heatmap_seed_scale(policy: str) -> float:
    """Factor on the inner backward seed (undone on the float32 heatmap) for `policy`."""
    return HEATMAP_SEED_SCALE if policy == "mixed_float16" else 1.0


def wrap_optimizer(optimizer: keras.optimizers.Optimizer, policy: str) -> keras.Optimizer:
    """`optimizer` wrapped in a dynamic `LossScaleOptimizer` under ``mixed_float16``."""
    if policy == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
