"""Models as chains of drscreen layers: the layer sequence the backward engine walks.

`chain_layers(model)` flattens a `keras.Sequential` or a single-chain functional model (nested
chain models included) into its `BackpropLayer`s, input to output, and refuses anything else
by name: a layer without a backward rule has no exact, exportable heatmap.
"""

import keras

from drscreen.layers.base import BackpropLayer


def _functional_chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of a functional model, input to output, if its graph is a single chain."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TypeError(
            f"model {model.name!r} is not a chain: it has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs"
        )
    chain = []
    tensor = model.outputs[0]
    while tensor is not model.inputs[0]:
        operation, node_index, _ = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        if len(node.input_tensors) != 1:
            raise TypeError(
                f"model {model.name!r} is not a chain: layer {operation.name!r} takes "
                f"{len(node.input_tensors)} inputs"
            )
        chain.append(operation)
        tensor = node.input_tensors[0]
    return chain[::-1]


def chain_layers(model: keras.Model | BackpropLayer) -> tuple[BackpropLayer, ...]:
    """The `BackpropLayer` chain of a model, input to output (nested chain models flattened).

    Raises
    ------
    TypeError
        If the model is not a chain, or holds a layer that is not a drscreen `BackpropLayer`.
    """
    if isinstance(model, BackpropLayer):
        return (model,)
    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras.Model of drscreen layers, got {type(model).__name__}")
    if isinstance(model, keras.Sequential):
        members = [
            layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
        ]
    else:
        members = _functional_chain(model)
    chain = []
    for layer in members:
        if isinstance(layer, keras.Model):
            chain.extend(chain_layers(layer))
        elif isinstance(layer, BackpropLayer):
            chain.append(layer)
        else:
            raise TypeError(
                f"model {model.name!r}: layer {layer.name!r} ({type(layer).__module__}."
                f"{type(layer).__name__}) is not a drscreen BackpropLayer, so it has no "
                "exportable backward pass; use the layers of drscreen.layers"
            )
    if not chain:
        raise TypeError(f"model {model.name!r} has no layers")
    return tuple(chain)
