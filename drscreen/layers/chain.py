"""Models as chains of drscreen layers: the layer sequence, and the walk through it.

`chain_layers(model)` flattens a `keras.Sequential` or a single-chain functional model (nested
chain models included) into its `BackpropLayer`s, input to output, and refuses anything else
by name: a layer without a backward rule has no exact, exportable heatmap.

`trace_forward` runs a chain keeping each layer's input, output and saved extra (a `Trace`),
`trace_backward` propagates a signal back through it. The backward engine
(`drscreen.heatmaps.backprop`) walks a model's chain with them, and a composite layer
(`drscreen.layers.skip.SkipConcat`) its inner chain, so both walk alike.
"""

import dataclasses
from collections.abc import Sequence

import keras
import tensorflow as tf

from drscreen.layers.base import BackpropLayer
from drscreen.layers.rules import GRADIENT, BackwardRule


@dataclasses.dataclass(frozen=True)
class Trace:
    """What a forward pass through a chain leaves for the backward pass.

    Attributes
    ----------
    layers:
        The chain, input to output.
    inputs, outputs:
        Each layer's input and output tensor, aligned with ``layers``.
    saved:
        What each layer's `BackpropLayer.forward` returned besides its output (dropout masks,
        a composite layer's inner `Trace`; ``None`` for most layers). Empty means ``None``
        everywhere.
    """

    layers: tuple[BackpropLayer, ...]
    inputs: tuple[tf.Tensor, ...]
    outputs: tuple[tf.Tensor, ...]
    saved: tuple = ()

    def output_of(self, name: str) -> tf.Tensor:
        """The forward output of the layer called ``name`` (e.g. the Grad-CAM feature map)."""
        return self.outputs[self.index(name)]

    def index(self, name: str) -> int:
        """The position of the layer called ``name`` in the chain.

        Raises
        ------
        ValueError
            Naming the chain's layers; for a layer inside a composite layer, naming that
            composite (its inner outputs are not part of this chain's trace).
        """
        names = [layer.name for layer in self.layers]
        if name in names:
            return names.index(name)
        for layer in self.layers:
            if name in nested_layer_names(layer):
                raise ValueError(
                    f"layer {name!r} is inside the composite layer {layer.name!r}; the "
                    f"chain's trace holds its top-level layers only: {names}"
                )
        raise ValueError(f"no layer named {name!r} in the chain; layers are {names}")


def nested_layer_names(layer: BackpropLayer) -> tuple[str, ...]:
    """The names of the layers inside a composite layer (its ``inner`` chain), at any depth."""
    names = []
    for inner in getattr(layer, "inner", ()):
        names += [inner.name, *nested_layer_names(inner)]
    return tuple(names)


def trace_forward(
    layers: Sequence[BackpropLayer], x: tf.Tensor, training: bool = False
) -> tuple[tf.Tensor, Trace]:
    """Run ``layers`` in order on ``x``; return the last output and the `Trace` of the pass."""
    inputs, outputs, saved = [], [], []
    for layer in layers:
        inputs.append(x)
        x, extra = layer.forward(x, training=training)
        outputs.append(x)
        saved.append(extra)
    return x, Trace(tuple(layers), tuple(inputs), tuple(outputs), tuple(saved))


def trace_backward(
    trace: Trace,
    upstream: tf.Tensor,
    rule: BackwardRule = GRADIENT,
    training: bool = False,
    stop_index: int | None = None,
) -> tf.Tensor:
    """Propagate ``upstream`` (on the last output) back through the traced chain.

    Returns the signal on the chain's input or, with ``stop_index``, on the output of the
    layer at that position, in the compute dtype of the layers it went through.
    """
    saved = trace.saved or (None,) * len(trace.layers)
    signal = upstream
    for index in reversed(range(len(trace.layers))):
        if index == stop_index:
            return signal
        signal = trace.layers[index].backward(
            trace.inputs[index], trace.outputs[index], signal, rule, training, saved[index]
        )
    return signal


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
