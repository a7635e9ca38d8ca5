"""Where our heatmap's TensorFlow time goes: the exported build vs the in-process one.

    python bench/backward_breakdown.py [--model=oO_netA --size=448 --batch=8 --repeats=5]

Runs the engine's backward pass over one forward trace (`drscreen.heatmaps.backprop`) built
as exports build it (inside `drscreen.layers.portable()`: every rule of forward ops) and as
in-process TensorFlow does (max pooling and leaky ReLU through TensorFlow's ``MaxPoolGrad``
and ``LeakyReluGrad``), and the in-process build with the convolution adjoint as
``conv2d_transpose`` (which XNNPACK does not take with a batch-dependent output shape);
prints the CPU time of each relative to ``tf.GradientTape``, the variants called in turn.
A diagnostic for the TensorFlow speed of the heatmap.
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


def _transposed(layer, inputs, upstream):
    """The convolution adjoint as TensorFlow's ``conv2d_transpose`` (gradient rule)."""
    return tf.nn.conv2d_transpose(
        upstream, layer.kernel, tf.shape(inputs), layer.strides, layer.padding.upper()
    )


def input_gradient(model, images: tf.Tensor, transposed: bool) -> tf.Tensor:
    """The engine's input gradient, convolutions through ``conv2d_transpose`` if asked."""
    outputs, trace = forward(model, images)
    signal = tf.ones_like(outputs)
    for index in reversed(range(len(trace.layers))):
        layer, inputs, out = trace.layers[index], trace.inputs[index], trace.outputs[index]
        if transposed and isinstance(layer, layers.Conv2D):
            signal = _transposed(layer, inputs, signal)
        else:
            signal = layer.backward(inputs, out, signal)
    return signal


def main(argv: list[str]) -> None:
    del argv
    model = build(_MODEL.value, input_size=_SIZE.value)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (_BATCH.value, _SIZE.value, _SIZE.value, 3)))
    images = tf.cast(images, tf.float32)
    # name: (convolutions through conv2d_transpose, built portable as exports are)
    variants = {
        "drscreen, exported ops": (False, True),
        "drscreen, in-process": (False, False),
        "+ conv2d_transpose": (True, False),
    }
    functions = {}
    for name, (transposed, portable) in variants.items():
        function = tf.function(lambda x, t=transposed: input_gradient(model, x, t))
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
