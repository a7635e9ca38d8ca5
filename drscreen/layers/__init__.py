"""Heatmap-capable Keras layers: each carries a backward rule made of forward ops.

Owns the layers the model zoo is built from. Must not know about datasets or training.

Why an explicit ``backward`` method per layer
---------------------------------------------
A heatmap is a backward pass (Quellec et al. 2017). Taking it with ``tf.GradientTape`` puts
``MaxPoolGrad``, ``LeakyReluGrad``, ``SigmoidGrad``... in the graph, which TFLite built-ins
and ONNX cannot run. ``keras.ops.custom_gradient`` would hide the same rule inside autodiff,
but then only one rule exists per layer, second-order gradients of the custom function need
their own definition, and alternative rules would need global state or monkey-patching
(xplique's approach, which is not serializable). So each `BackpropLayer` has an explicit
``backward(inputs, outputs, upstream, rule, training)`` written with ordinary forward ops
(transposed convolution, ``where``, equality masks, strided slices, pads). Consequences:

- it works on any chain of layers without global state (`drscreen.heatmaps.backprop`);
- several rules share the machinery (`rules`: gradient, guided back-propagation, deconvnet,
  LRP-epsilon), chosen per call;
- the score + heatmap graph contains only forward ops, so it exports to TFLite built-ins
  and ONNX;
- the backward pass is itself differentiable by ordinary autodiff, so a loss on the heatmap
  trains the weights (double back-propagation), and tests prove it equals nested tapes.

API (names other modules use)
-----------------------------
Rules (`drscreen.layers.rules`): ``BackwardRule(name="gradient", epsilon=1e-6)`` (frozen),
``GRADIENT``, ``GUIDED``, ``DECONVNET``, ``lrp_epsilon(eps)``, ``RULE_NAMES``.

Layers (all registered as ``drscreen>Name`` for ``.keras`` saving; weights in float32 and
compute in ``compute_dtype``, so ``mixed_float16`` works):

- ``InputNormalization(mean=OO_MEAN, std=OO_STD)``: ``(x - mean) / std`` per channel;
  ``OO_MEAN``/``OO_STD`` (o_O statistics of 0-255 RGB) live in `normalization`.
- ``GrahamNormalization(sigma_fraction=1/30)``: Graham's ``4x - 4 G_sigma * x + 128`` with
  sigma = sigma_fraction x half the (static, square) input side; fixed separable blur.
- ``Conv2D(filters, kernel_size, strides=1, padding="same", untied_bias=False,
  kernel_initializer="orthogonal", bias_initializer=Constant(0.05), kernel_regularizer=None)``.
- ``LeakyReLU(negative_slope=0.01)`` (0 = ReLU), ``SquaredReLU()`` (``relu(x)²``), ``Sigmoid()``.
- ``MaxPooling2D(pool_size=3, strides=2, padding="valid")``,
  ``AveragePooling2D(pool_size=2, strides=None)``, ``RMSPooling2D(pool_size=3, strides=None)``
  (``sqrt(avgpool(x^2) + 1e-12)``), ``GlobalAveragePooling2D()``, ``GlobalMaxPooling2D()``.
- ``Flatten()``, ``Dense(units, use_bias=True, kernel_initializer="orthogonal",
  bias_initializer=Constant(0.05), kernel_regularizer=None)``, ``Maxout(pieces=2)``
  (consecutive units), ``Dropout(rate, seed=None)``.
- ``BatchNormalization(momentum=0.99, epsilon=1e-3)`` (backward at inference only).
- ``UpSampling2D(size=2)`` (nearest; backward: size x size sum pooling by reshapes) and
  ``SkipConcat(inner)``: ``concat([x, inner(x)], channels)`` around an inner chain of these
  layers (nested composites allowed), a U-Net's skip connection (`skip`).

Each layer: ``forward(x, training) -> (y, saved)`` and
``backward(inputs, outputs, upstream, rule=GRADIENT, training=False, saved=None)``, built from
ops LiteRT's XNNPACK delegate runs (`base`'s docstring lists them): masks from
``base.positive_step(x, low)`` (exactly 1 where x > 0, ``low`` elsewhere), convolution
adjoints from ``convolution.conv_input_gradient``.

Portability (`drscreen.layers.portability`): ``with portable():`` builds the exported graphs
from TFLite built-ins and ONNX ops; outside it (in-process TensorFlow) max pooling's and leaky
ReLU's backward are TensorFlow's fused ``MaxPoolGrad`` and ``LeakyReluGrad``, and the
convolution adjoint is ``Conv2DBackpropInput`` (onto RGB with a stride: the phase convolution
with the fused ops as its gradient), tested equal.
``is_portable()`` reads the switch.

Chains (`drscreen.layers.chain`): models are chains (``keras.Sequential`` or a chain
functional model of these layers); ``chain_layers(model)`` is their layer sequence, input to
output, and refuses any other model by name. ``trace_forward(layers, x, training)`` runs a
chain keeping its ``Trace``; ``trace_backward(trace, upstream, rule, training, stop_index)``
walks it back (the engine and `SkipConcat` share them; a composite's ``saved`` is its inner
``Trace``).

Engine (`drscreen.heatmaps.backprop`)::

    outputs, trace = forward(model, images, training=False)          # Trace(layers, inputs,
    grad = backward(trace, seed, rule=GRADIENT, training=False,       #       outputs, saved)
                    stop_at=None)        # stop_at="conv5": w.r.t. that layer's OUTPUT
    outputs, grad = input_gradient(model, images, rule=GRADIENT, training=False, output_index=0)
    images = validate_images(images, expected_hw=None)
    feature_map = trace.output_of("conv5")

``validate_images(images, expected_hw=None, expected_channels=None)`` raises TypeError/
ValueError on non-float, wrong rank/size/channels and (eagerly) NaN/Inf pixels.

Export note (tested in tests/layers/export_test.py): ``TFLiteConverter.from_concrete_functions``
does not find the tf.Variables of a Keras 3 model through ``trackable_obj=model`` and leaves
them as uninitialised ``READ_VARIABLE`` ops (garbage outputs); pass a ``tf.Module`` holding
``[v.value for v in model.variables]`` as the trackable so they are frozen.
"""

from drscreen.layers.activations import LeakyReLU, Sigmoid, SquaredReLU
from drscreen.layers.base import BackpropLayer
from drscreen.layers.chain import chain_layers
from drscreen.layers.convolution import Conv2D
from drscreen.layers.core import Dense, Dropout, Flatten, Maxout
from drscreen.layers.normalization import (
    OO_MEAN,
    OO_STD,
    BatchNormalization,
    GrahamNormalization,
    InputNormalization,
)
from drscreen.layers.pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    RMSPooling2D,
)
from drscreen.layers.portability import is_portable, portable
from drscreen.layers.rules import (
    DECONVNET,
    GRADIENT,
    GUIDED,
    RULE_NAMES,
    BackwardRule,
    lrp_epsilon,
)
from drscreen.layers.skip import SkipConcat, UpSampling2D

__all__ = [
    "DECONVNET",
    "GRADIENT",
    "GUIDED",
    "OO_MEAN",
    "OO_STD",
    "RULE_NAMES",
    "AveragePooling2D",
    "BackpropLayer",
    "BackwardRule",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "GrahamNormalization",
    "InputNormalization",
    "LeakyReLU",
    "Maxout",
    "MaxPooling2D",
    "RMSPooling2D",
    "Sigmoid",
    "SkipConcat",
    "SquaredReLU",
    "UpSampling2D",
    "chain_layers",
    "is_portable",
    "lrp_epsilon",
    "portable",
]
