"""Progressive resizing: initialise a stage's network from the previous stage's network.

o_O trained at 112 → 224 → 448 px, each stage starting from the previous stage's layers. The
zoo builds the same layer sequence at every input size, so weights are matched layer by layer
in order, variable by variable:

- same shape (convolution kernels, dense weights after a global pooling, tied biases):
  copied;
- untied biases (one per output row, column and channel, shape (H, W, C)) whose spatial size
  follows the input size: resized bilinearly to the new (H', W') — a bias map is a smooth
  function of the position on the retina, so resizing keeps its meaning;
- any other shape (e.g. the first dense kernel after a flatten, whose input length grows
  with the image): left at its fresh initialisation, and reported.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

COPIED = "copied"
RESIZED = "resized"
REINITIALISED = "reinitialised"


@dataclasses.dataclass(frozen=True)
class Transfer:
    """What happened to one variable of the new network."""

    path: str
    action: str
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]


def _resize_untied_bias(bias: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    resized = tf.image.resize(bias[np.newaxis], shape[:2], method="bilinear")
    return np.asarray(resized[0], dtype=bias.dtype)


def transfer_weights(source: keras.Model, target: keras.Model) -> list[Transfer]:
    """Copy `source`'s weights into `target` (same layer sequence, other input size).

    Returns
    -------
    One `Transfer` per variable of `target`, in order.

    Raises
    ------
    ValueError
        When the two networks do not have the same layers and variables in the same order.
    """
    if len(source.layers) != len(target.layers):
        raise ValueError(
            f"cannot initialise {target.name} from {source.name}: {len(target.layers)} layers "
            f"against {len(source.layers)}"
        )
    transfers = []
    for source_layer, target_layer in zip(source.layers, target.layers, strict=True):
        if len(source_layer.weights) != len(target_layer.weights):
            raise ValueError(
                f"cannot initialise layer {target_layer.name} from {source_layer.name}: "
                "different variables"
            )
        for old, new in zip(source_layer.weights, target_layer.weights, strict=True):
            old_shape, new_shape = tuple(old.shape), tuple(new.shape)
            value = np.asarray(keras.ops.convert_to_numpy(old.value))
            if old_shape == new_shape:
                new.assign(value)
                action = COPIED
            elif len(old_shape) == 3 and old_shape[-1] == new_shape[-1] and len(new_shape) == 3:
                new.assign(_resize_untied_bias(value, new_shape))
                action = RESIZED
            else:
                action = REINITIALISED
            transfers.append(Transfer(new.path, action, old_shape, new_shape))
    return transfers
