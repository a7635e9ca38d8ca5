"""Where our heatmap's TensorFlow time goes: each exportable backward rule vs TF's fused kernel.

    python bench/backward_breakdown.py [--model=oO_netA --size=448 --batch=8 --repeats=5]

Runs the engine's backward pass over one forward trace (`drscreen.heatmaps.backprop`) built
as exports build it (inside `drscreen.layers.portable()`) and as in-process TensorFlow does
(max pooling through TensorFlow's ``MaxPoolGrad``), and with, for chosen layer types,
TensorFlow's fused gradient kernel in place of the layer's exportable rule
(``LeakyReluGrad``, ``conv2d_transpose``: neither runs in TFLite's XNNPACK delegate or exists
in ONNX); prints the CPU time of each variant relative to ``tf.GradientTape``, the variants
called in turn. A diagnostic for the TensorFlow speed of the heatmap.
Runtime: ~3 min for net A on 2 shared cores.
"""

import contextlib
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from drscreen import layers  # noqa: E402
from drscreen.heatmaps.backprop import forward  # noqa: E402
from drscreen.models import build  # noqa: E402

_MODEL = flags.DEFINE_string("model", "oO_netA", "drscreen.models.build name.")
_SIZE = flags.DEFINE_integer("size", 448, "Input side in pixels.")
_BATCH = flags.DEFINE_integer("batch", 8, "Images per batch.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds.")


def _fused(layer, inputs, outputs, upstream):
    """TensorFlow's own gradient kernel for ``layer`` (gradient rule, inference)."""
    if isinstance(layer, layers.LeakyReLU):
        return tf.raw_ops.LeakyReluGrad(
            gradients=upstream, features=outputs, alpha=layer.negative_slope
        )
    return tf.nn.conv2d_transpose(
        upstream, layer.kernel, tf.shape(inputs), layer.strides, layer.padding.upper()
    )


def input_gradient(model, images: tf.Tensor, fused_types: tuple) -> tf.Tensor:
    """The engine's input gradient with TF's kernels for the layers of ``fused_types``."""
    outputs, trace = forward(model, images)
    signal = tf.ones_like(outputs)
    for index in reversed(range(len(trace.layers))):
        layer, inputs, out = trace.layers[index], trace.inputs[index], trace.outputs[index]
        if isinstance(layer, fused_types):
            signal = _fused(layer, inputs, out, signal)
        else:
            signal = layer.backward(inputs, out, signal)
    return signal


def main(argv: list[str]) -> None:
    del argv
    model = build(_MODEL.value, input_size=_SIZE.value)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (_BATCH.value, _SIZE.value, _SIZE.value, 3)))
    images = tf.cast(images, tf.float32)
    # name: (layer types given TF's fused kernel, built portable as exports are)
    variants = {
        "drscreen, exported ops": ((), True),
        "drscreen, in-process": ((), False),
        "+ LeakyReluGrad": ((layers.LeakyReLU,), False),
        "+ conv2d_transpose": ((layers.Conv2D,), False),
        "+ both": ((layers.LeakyReLU, layers.Conv2D), False),
    }
    functions = {}
    for name, (types, portable) in variants.items():
        function = tf.function(lambda x, types=types: input_gradient(model, x, types))
        with layers.portable() if portable else contextlib.nullcontext():
            function.get_concrete_function(images)
        functions[name] = function

    @tf.function
    def tape(x):
        with tf.GradientTape() as gradient_tape:
            gradient_tape.watch(x)
            total = tf.reduce_sum(model(x)[:, 0])
        return gradient_tape.gradient(total, x)

    functions["tf.GradientTape"] = tape
    reference = tape(images).numpy()
    for name, function in functions.items():
        difference = np.abs(function(images).numpy() - reference).max() / np.abs(reference).max()
        assert difference < 1e-4, (name, difference)
    seconds = {name: [] for name in functions}
    for _ in range(_REPEATS.value):
        for name, function in functions.items():
            start = time.process_time()
            function(images).numpy()
            seconds[name].append(time.process_time() - start)
    tape_s = statistics.median(seconds["tf.GradientTape"])
    print(f"{_MODEL.value} {_SIZE.value}px batch {_BATCH.value}, process CPU time, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:<24}{median * 1e3:8.0f} ms  x{median / tape_s:.2f} tape")


if __name__ == "__main__":
    app.run(main)
