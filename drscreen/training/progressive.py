"""Progressive resizing: initialise a stage's network from the previous stage's network.

o_O trained at 112 → 224 → 448 px with networks of 3, 4 and 5 conv blocks (`drscreen.models.
oO`), each stage starting from the previous stage's layers (nolearn's ``load_params_from``:
same layer, same shape, copied). Layers are matched by name, as the zoo names them the same at
every depth (``conv1``..., ``dense1``, ``grade``); then variable by variable:

- same shape (convolution kernels, dense weights after a global pooling, tied biases):
  copied;
- untied biases (one per output row, column and channel, shape (H, W, C)) whose spatial size
  follows the input size: resized bilinearly to the new (H', W') — a bias map is a smooth
  function of the position on the retina, so resizing keeps its meaning (o_O left them fresh);
- any other shape (e.g. the first dense kernel after the last pooling, whose input grows with
  the features): left at its fresh initialisation, and reported;
- a layer the previous network lacks (the new conv block): fresh, and reported.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

COPIED = "copied"
RESIZED = "resized"
REINITIALISED = "reinitialised"
NEW = "new"


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


def _transfer(old: keras.Variable, new: keras.Variable) -> str:
    old_shape, new_shape = tuple(old.shape), tuple(new.shape)
    value = np.asarray(keras.ops.convert_to_numpy(old.value))
    if old_shape == new_shape:
        new.assign(value)
        return COPIED
    if len(old_shape) == 3 and len(new_shape) == 3 and old_shape[-1] == new_shape[-1]:
        new.assign(_resize_untied_bias(value, new_shape))
        return RESIZED
    return REINITIALISED


def transfer_weights(source: keras.Model, target: keras.Model) -> list[Transfer]:
    """Copy `source`'s weights into the layers of `target` that have the same names.

    Returns
    -------
    One `Transfer` per variable of `target`, in order.

    Raises
    ------
    ValueError
        When no layer with weights is shared, or two layers of one name differ in kind or
        in their variables.
    """
    by_name = {layer.name: layer for layer in source.layers}
    transfers, shared = [], 0
    for target_layer in target.layers:
        source_layer = by_name.get(target_layer.name)
        if source_layer is None or not target_layer.weights:
            transfers += [Transfer(w.path, NEW, (), tuple(w.shape)) for w in target_layer.weights]
            continue
        if type(source_layer) is not type(target_layer) or len(source_layer.weights) != len(
            target_layer.weights
        ):
            raise ValueError(
                f"cannot initialise layer {target_layer.name} of {target.name} from the "
                f"{type(source_layer).__name__} of that name in {source.name}"
            )
        shared += 1
        for old, new in zip(source_layer.weights, target_layer.weights, strict=True):
            action = _transfer(old, new)
            transfers.append(Transfer(new.path, action, tuple(old.shape), tuple(new.shape)))
    if not shared:
        raise ValueError(
            f"cannot initialise {target.name} from {source.name}: no layer with weights shares "
            "a name"
        )
    return transfers
